import Foundation
import Logging
import Synchronization
import Syncline
import SynclineServer

/// The embedded server: a real `SyncServer` with a SQLite backend on loopback, which can be
/// restarted on the same port over the same database file.
final class EmbeddedServer: Sendable {
    private struct Running {
        var server: RunningSyncServer
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
        let server = try await SyncServer.start(
            backend: backend, configuration: SyncServerConfiguration(tokens: TokenStore([token: ["*"]]), rateLimit: nil),
            port: port, logger: logger, shutdownTimeout: .seconds(5)
        )
        portBox.withLock { $0 = server.port }
        state.withLock { $0 = Running(server: server, backend: backend) }
    }

    /// Stops the server gracefully (live sockets are closed; devices reconnect).
    /// - Throws: what ended the server, when it was not the shutdown.
    func stop() async throws {
        guard let running = state.withLock({ $0 }) else { return }
        defer { count(running.backend) }  // counted even when the server had failed
        try await running.server.stop()
    }

    /// Moves a finished run's tallies into the totals.
    private func count(_ backend: RecordingBackend) {
        // Counted after the shutdown: pushes in flight when it began still finish and count.
        state.withLock { $0 = nil }
        counted.withLock { total in
            for (id, count) in backend.applications { total[id, default: 0] += count }
        }
        countedRejections.withLock { $0.formUnion(backend.rejected) }
    }

    func restart() async throws {
        try await stop()
        try await start()
    }
}
