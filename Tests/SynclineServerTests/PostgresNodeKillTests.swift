import Foundation
import Logging
import PostgresNIO
import Synchronization
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Testing

/// One device's way to several `syncline-server` processes: the node its index picks, then the
/// next one when a request finds its node unavailable (killed, or answering 503). Once
/// ``patient`` is set (the quiescence, when no node is killed any more) a failed request is
/// retried through the next node for a while instead of failing: pushes are idempotent by event
/// id, pulls read.
final class NodeFailoverTransport: SyncTransport {
    let nodes: [any SyncTransport]
    private let current: Mutex<Int>
    private let patience = Atomic<Bool>(false)

    init(_ nodes: [any SyncTransport], first: Int) {
        self.nodes = nodes
        current = Mutex(first % nodes.count)
    }

    /// Retry unavailable nodes (up to 30 s) instead of failing.
    func setPatient(_ patient: Bool) { patience.store(patient, ordering: .relaxed) }

    func push(_ batch: ChangeBatch) async throws -> PushResponse { try await attempt { try await $0.push(batch) } }

    func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
        try await attempt { try await $0.pull(after: cursor, from: position, limit: limit, epoch: epoch) }
    }

    func liveHeads() async -> AsyncStream<UInt64> { await nodes[current.withLock { $0 }].liveHeads() }

    private func attempt<Result>(_ body: (any SyncTransport) async throws -> Result) async throws -> Result {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let index = current.withLock { $0 }
            do {
                return try await body(nodes[index])
            } catch let error as SyncError where error.code == .transportUnavailable {
                current.withLock { if $0 == index { $0 = (index + 1) % nodes.count } }
                guard patience.load(ordering: .relaxed), ContinuousClock.now < deadline else { throw error }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }
}

/// Several `syncline-server --database` processes on one schema of the test PostgreSQL, each
/// stopped on every way out of ``with(nodes:database:_:)``.
final class NodeCluster: Sendable {
    let database: String
    private let processes: Mutex<[ServerProcess]>

    private init(database: String, processes: [ServerProcess]) {
        self.database = database
        self.processes = Mutex(processes)
    }

    /// Every node's options: a small pool; a graceful shutdown cuts what is still open (a REST
    /// device's long poll, say) after 3 s.
    static let arguments = ["--pool-size", "4", "--shutdown-timeout", "3"]

    /// Node `index`'s current process.
    func node(_ index: Int) -> ServerProcess { processes.withLock { $0[index] } }

    var urls: [String] { processes.withLock { $0.map(\.baseURL) } }

    /// SIGKILLs node `index`.
    func kill(_ index: Int) async { await node(index).kill() }

    /// Starts node `index` again on its port.
    func restart(_ index: Int) async throws {
        let old = node(index)
        let process = try await ServerProcess(data: nil, database: database, port: old.port, arguments: NodeCluster.arguments)
        processes.withLock { $0[index] = process }
    }

    /// Starts `count` nodes on `database`, runs `body`, stops them (gracefully, or killed when `body` threw).
    static func with(nodes count: Int, database: String, _ body: (NodeCluster) async throws -> Void) async throws {
        var started: [ServerProcess] = []
        do {
            for _ in 0..<count {
                started.append(try await ServerProcess(data: nil, database: database, arguments: NodeCluster.arguments))
            }
        } catch {
            for process in started { await process.kill() }
            throw error
        }
        let cluster = NodeCluster(database: database, processes: started)
        do {
            try await body(cluster)
        } catch {
            for process in cluster.processes.withLock({ $0 }) { await process.kill() }
            throw error
        }
        for process in cluster.processes.withLock({ $0 }) {
            #expect(await process.terminate(within: .seconds(20)), "a node shuts down gracefully (SIGTERM)")
        }
    }

    /// Waits until every node serves (`/healthz` 200: PostgreSQL reachable, schema ready).
    func waitUntilServing(within limit: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + limit
        for url in urls {
            let probe = RESTTransport(url: url, namespace: try Namespace("healthz"), token: { LiveServer.token }, configuration: .init(timeout: .seconds(5)))
            while true {
                do {
                    _ = try await probe.pull(after: 0, from: 0, limit: 1, epoch: nil)
                    break
                } catch let error as SyncError where error.code == .transportUnavailable {
                    guard ContinuousClock.now < deadline else { throw SyncError(.transportUnavailable, "node \(url) does not serve: \(error.message)") }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        }
    }
}

/// The test PostgreSQL as `syncline-server --database` URLs, and direct reads of a schema's tables.
extension PostgresTestDatabase {
    /// `SYNCLINE_TEST_POSTGRES_URL` with `schema=` set.
    static func serverURL(variable: String = PostgresTestDatabase.variable, schema: String) throws -> String {
        guard let url = ProcessInfo.processInfo.environment[variable], !url.isEmpty else {
            throw SyncError(
                .transportUnavailable,
                "this test needs \(variable)=postgres://USER@HOST:PORT/DB; Scripts/test.sh starts a disposable cluster and sets it"
            )
        }
        return url + (url.contains("?") ? "&" : "?") + "schema=\(schema)"
    }

    /// The event ids a namespace's `applied` table holds (every change applied, within the retention window).
    static func appliedIDs(_ configuration: PostgresBackend.Configuration, namespace: Namespace) async throws -> Set<EventID> {
        var settings = PostgresConnection.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username, password: configuration.password,
            database: configuration.database, tls: .disable
        )
        settings.options.connectTimeout = .seconds(5)
        let logger = logger()
        let connection = try await PostgresConnection.connect(configuration: settings, id: 1, logger: logger)
        do {
            let rows = try await connection.query(
                "SELECT id FROM \(unescaped: configuration.schema).applied WHERE ns = \(namespace.rawValue)", logger: logger
            )
            var ids: Set<EventID> = []
            for try await id in rows.decode(UUID.self) { ids.insert(try EventID(parsing: id.uuidString)) }
            try await connection.close()
            return ids
        } catch {
            try await connection.close()
            throw error
        }
    }
}

/// The randomized convergence run (``ConvergenceSimulation``) through three real node processes on
/// one PostgreSQL: devices spread over the nodes (REST and WebSocket, both codecs), nodes SIGKILLed
/// and started again mid-run. The ground truth comes from outside the nodes: PostgreSQL's
/// `applied` table (what was applied) and every push answer the devices got (an event id answered
/// `applied` at two seqs was applied twice). Conflict reports (invariant 7) are checked by the
/// in-process convergence tests, whose server keeps a ledger of every merge; a killed process keeps none.
final class NodeClusterSimulationServer: SimulationServer {
    let cluster: NodeCluster
    let configuration: PostgresBackend.Configuration
    private let transports = Mutex<[NodeFailoverTransport]>([])
    private let sockets = Mutex<[WebSocketTransport]>([])
    private let answers = AnswerLog()

    init(cluster: NodeCluster, configuration: PostgresBackend.Configuration) {
        self.cluster = cluster
        self.configuration = configuration
    }

    func transport(device: Int, namespace: Namespace) -> any SyncTransport {
        let format: WireCodec.Format = device % 4 < 2 ? .binary : .json
        let nodes: [any SyncTransport] = cluster.urls.map { url in
            if device % 2 == 0 {
                return RESTTransport(
                    url: url, namespace: namespace, token: { LiveServer.token },
                    configuration: .init(wire: WireCodec(format: format), timeout: .seconds(20))
                )
            }
            let socket = WebSocketTransport(
                url: url, namespace: namespace, token: { LiveServer.token },
                configuration: .init(wire: WireCodec(format: format), ackTimeout: .seconds(20), initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(300))
            )
            sockets.withLock { $0.append(socket) }
            return socket
        }
        let failover = NodeFailoverTransport(nodes, first: device)
        transports.withLock { $0.append(failover) }
        return AnswerRecordingTransport(failover) { [answers] response in answers.record(response) }
    }

    func setPatient() { for transport in transports.withLock({ $0 }) { transport.setPatient(true) } }
    func closeSockets() { for socket in sockets.withLock({ $0 }) { socket.close() } }

    private func probe(_ namespace: Namespace) -> NodeFailoverTransport {
        let probe = NodeFailoverTransport(
            cluster.urls.map { RESTTransport(url: $0, namespace: namespace, token: { LiveServer.token }, configuration: .init(timeout: .seconds(20))) },
            first: 0
        )
        probe.setPatient(true)
        return probe
    }

    func liveRecords(namespace: Namespace, collection: CollectionName) async throws -> [RecordID: [String: Value]] {
        let probe = probe(namespace)
        var result: [RecordID: [String: Value]] = [:]
        var position: UInt64 = 0
        while true {
            let page = try await probe.pull(after: 0, from: position, limit: 1_000, epoch: nil)
            for entry in page.changes where !entry.deleted && entry.collection == collection { result[entry.record] = entry.fields.mapValues(\.value) }
            guard page.hasMore else { return result }
            position = page.cursor
        }
    }

    func head(namespace: Namespace) async throws -> UInt64 { try await probe(namespace).pull(after: 0, from: 0, limit: 1, epoch: nil).head }

    /// Each change in PostgreSQL's `applied` table once; a change answered `applied` at n different seqs, n times.
    func applications(namespace: Namespace) async -> [EventID: Int] {
        var result: [EventID: Int] = [:]
        do {
            for id in try await PostgresTestDatabase.appliedIDs(configuration, namespace: namespace) { result[id] = 1 }
        } catch {
            Issue.record("could not read the applied table: \(error)")
        }
        for (id, seqs) in answers.seqs where seqs.count > 1 { result[id] = seqs.count }
        return result
    }

    func losses(namespace: Namespace) async -> [EventID: LossLedger.Loss] { [:] }
}

/// The seqs each event id was answered `applied` at.
final class AnswerLog: Sendable {
    private let applied = Mutex<[EventID: Set<UInt64>]>([:])

    func record(_ response: PushResponse) {
        applied.withLock { applied in
            for case .applied(let id, let seq, _) in response.results { applied[id, default: []].insert(seq) }
        }
    }

    var seqs: [EventID: Set<UInt64>] { applied.withLock { $0 } }
}

/// Passes every push answer to `observe`.
final class AnswerRecordingTransport: SyncTransport {
    let base: any SyncTransport
    let observe: @Sendable (PushResponse) -> Void

    init(_ base: any SyncTransport, observe: @escaping @Sendable (PushResponse) -> Void) {
        self.base = base
        self.observe = observe
    }

    func push(_ batch: ChangeBatch) async throws -> PushResponse {
        let response = try await base.push(batch)
        observe(response)
        return response
    }

    func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
        try await base.pull(after: cursor, from: position, limit: limit, epoch: epoch)
    }

    func liveHeads() async -> AsyncStream<UInt64> { await base.liveHeads() }
}

@Suite("PostgreSQL cluster: nodes killed mid-run", .timeLimit(.minutes(3)))
struct PostgresNodeKillTests {
    @Test(arguments: [401, 402, 403] as [UInt64])
    func devicesOnThreeNodesConvergeAcrossNodeKills(seed: UInt64) async throws {
        let configuration = try PostgresTestDatabase.configuration()
        let database = try PostgresTestDatabase.serverURL(schema: configuration.schema)
        try await NodeCluster.with(nodes: 3, database: database) { cluster in
            try await cluster.waitUntilServing()
            let server = NodeClusterSimulationServer(cluster: cluster, configuration: configuration)
            defer { server.closeSockets() }
            let time = SimulatedTime(start: WallClock.nowMillis())
            let simulation = try await ConvergenceSimulation(
                server: server, time: time, stores: [.sqlite, .leveldb, .inMemory, .sqlite], devices: 6, seed: seed, label: "3 nodes"
            )
            // Devices write, sync, go offline and restart while each node in turn is killed and
            // started again on its port (its devices fail over to the next node meanwhile).
            try await simulation.run(operations: 200)
            for victim in [0, 1, 2] {
                await cluster.kill(victim)
                try await simulation.run(operations: 150)
                try await cluster.restart(victim)
                try await simulation.run(operations: 100)
            }
            try await cluster.waitUntilServing()
            server.setPatient()
            var problems = try await simulation.quiesce()
            problems += try await simulation.verify(expectConflicts: false, checkReports: false)
            #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        }
    }
}
