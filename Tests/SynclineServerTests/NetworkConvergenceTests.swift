import Synchronization
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Testing

/// Devices on the real server: REST and WebSocket transports alternate, in both codecs.
final class NetworkSimulationServer: SimulationServer {
    let live: LiveServer
    let recording: RecordingBackend
    private let sockets = Mutex<[WebSocketTransport]>([])

    init(live: LiveServer, recording: RecordingBackend) {
        self.live = live
        self.recording = recording
    }

    func transport(device: Int, namespace: Namespace) -> any SyncTransport {
        let format: WireCodec.Format = device % 4 < 2 ? .binary : .json
        if device % 2 == 0 { return live.rest(namespace, format: format) }
        let socket = live.webSocket(namespace, format: format)
        sockets.withLock { $0.append(socket) }
        return socket
    }

    func closeSockets() { for socket in sockets.withLock({ $0 }) { socket.close() } }

    func liveRecords(namespace: Namespace, collection: CollectionName) async throws -> [RecordID: [String: Value]] {
        var result: [RecordID: [String: Value]] = [:]
        var position: UInt64 = 0
        while true {
            let page = try await live.backend.pull(
                namespace: namespace, after: 0, from: position, limit: 1_000, collections: [collection], epoch: nil, configuration: .init()
            )
            // A snapshot's later pages carry tombstones too: a deleted record is not live.
            for entry in page.changes where !entry.deleted { result[entry.record] = entry.fields.mapValues(\.value) }
            guard page.hasMore else { return result }
            position = page.cursor
        }
    }

    func head(namespace: Namespace) async throws -> UInt64 { try await live.backend.head(namespace: namespace) }
    func applications(namespace: Namespace) -> [EventID: Int] { recording.applications }
    func losses(namespace: Namespace) -> [EventID: LossLedger.Loss] { recording.losses }
}

@Suite("Convergence through the real server", .timeLimit(.minutes(5)))
struct NetworkConvergenceTests {
    @Test(arguments: 301...310 as ClosedRange<UInt64>)
    func devicesConvergeOverRESTAndWebSocket(seed: UInt64) async throws {
        let time = SimulatedTime(start: WallClock.nowMillis())
        let recording = RecordingBackend(try SQLiteBackend(path: ":memory:"))
        var configuration = LiveServer.configuration()
        configuration.clock = { time.now }
        try await LiveServer.with(backend: recording, configuration: configuration) { live in
            let server = NetworkSimulationServer(live: live, recording: recording)
            defer { server.closeSockets() }
            let simulation = try await ConvergenceSimulation(
                server: server, time: time, stores: [.sqlite, .leveldb, .inMemory, .sqlite], devices: 5, seed: seed,
                label: "network"
            )
            try await simulation.run(operations: 400)
            var problems = try await simulation.quiesce()
            problems += try await simulation.verify()
            #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        }
    }
}
