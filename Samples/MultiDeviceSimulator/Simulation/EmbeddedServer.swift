import Foundation
import Logging
import ServiceLifecycle
import Synchronization
public import Syncline
import SynclineServer

/// The embedded server: a real `SyncServer` with a SQLite backend on loopback, which can be
/// restarted on the same port over the same database file.
final class EmbeddedServer: Sendable {
    private struct Running {
        var group: ServiceGroup
        var task: Task<Void, any Error>
        var backend: RecordingBackend
    }

    let databasePath: String
    let token: String
    private let state = Mutex<Running?>(nil)
    private let counted = Mutex([EventID: Int]())
    private let countedRejections = Mutex(Set<EventID>())
    private let portBox = Mutex(0)

    init(databasePath: String, token: String) {
        self.databasePath = databasePath
        self.token = token
    }

    var port: Int { portBox.withLock { $0 } }
    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Applications per event id over every run of the server.
    var applications: [EventID: Int] {
        var total = counted.withLock { $0 }
        if let current = state.withLock({ $0?.backend }) {
            for (id, count) in current.applications { total[id, default: 0] += count }
        }
        return total
    }

    /// Changes rejected over every run of the server.
    var rejected: Set<EventID> {
        countedRejections.withLock { $0 }.union(state.withLock { $0?.backend.rejected } ?? [])
    }

    var backend: (any ServerBackend)? { state.withLock { $0?.backend } }

    /// Starts the server (on its previous port after a restart).
    func start() async throws {
        var logger = Logger(label: "syncline-sim.server")
        logger.logLevel = .critical
        let backend = RecordingBackend(try SQLiteBackend(path: databasePath))
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = SyncServer.application(
            backend: backend,
            configuration: SyncServerConfiguration(tokens: TokenStore([token: ["*"]]), rateLimit: nil),
            host: "127.0.0.1", port: port, logger: logger
        ) { portContinuation.yield($0) }
        var configuration = ServiceGroupConfiguration(services: [app], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(5)
        let group = ServiceGroup(configuration: configuration)
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next() else { throw SyncError(.transportUnavailable, "the embedded server did not start") }
        portBox.withLock { $0 = bound }
        state.withLock { $0 = Running(group: group, task: task, backend: backend) }
    }

    /// Stops the server gracefully (live sockets are closed; devices reconnect).
    func stop() async {
        guard let running = state.withLock({ $0 }) else { return }
        await running.group.triggerGracefulShutdown()
        _ = await running.task.result
        // Counted after the shutdown: pushes in flight when it began still finish and count.
        state.withLock { $0 = nil }
        counted.withLock { total in
            for (id, count) in running.backend.applications { total[id, default: 0] += count }
        }
        countedRejections.withLock { $0.formUnion(running.backend.rejected) }
    }

    func restart() async throws {
        await stop()
        try await start()
    }
}
