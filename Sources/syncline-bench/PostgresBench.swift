import ArgumentParser
import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Syncline
import SynclineNetwork
import SynclineServer

/// `--backend sqlite|postgres` and `--database URL` for the suites that run against a server backend.
/// The PostgreSQL rows need a running PostgreSQL (`--database`, or `SYNCLINE_BENCH_POSTGRES_URL`);
/// `Scripts/bench.sh` starts a disposable cluster for them. Each measurement uses a schema of its
/// own, dropped afterwards.
struct BackendOptions: ParsableArguments {
    enum Kind: String, ExpressibleByArgument { case sqlite, postgres }

    @Option(name: .long, help: "The server backend: sqlite (embedded) or postgres (needs --database).")
    var backend: Kind = .sqlite

    @Option(name: .long, help: "The PostgreSQL for --backend postgres: postgres://USER@HOST:PORT/DB?sslmode=disable (default: $SYNCLINE_BENCH_POSTGRES_URL).")
    var database: String?

    func validate() throws {
        if backend == .postgres, databaseURL == nil {
            throw ValidationError("--backend postgres needs --database postgres://… (or SYNCLINE_BENCH_POSTGRES_URL); Scripts/bench.sh starts a disposable PostgreSQL")
        }
    }

    var databaseURL: String? { database ?? ProcessInfo.processInfo.environment["SYNCLINE_BENCH_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 } }

    /// The PostgreSQL of this run.
    func postgres() throws -> PostgresBench {
        guard let url = databaseURL else { throw ValidationError("no PostgreSQL: pass --database") }
        return try PostgresBench(url: url)
    }
}

/// Shared helpers of the PostgreSQL benchmark rows: backends in fresh schemas, a direct connection
/// for the raw baselines, and the schemas' clean-up.
struct PostgresBench: Sendable {
    let base: PostgresBackend.Configuration
    static let logger: Logger = {
        var logger = Logger(label: "bench-postgres")
        logger.logLevel = .error
        return logger
    }()

    init(url: String) throws {
        base = try PostgresBackend.Configuration(url: url)
    }

    /// A configuration for a new schema.
    func configuration(schema: String = PostgresBench.freshSchema()) -> PostgresBackend.Configuration {
        var configuration = base
        configuration.schema = schema
        configuration.operationTimeout = .seconds(120)
        return configuration
    }

    static func freshSchema() -> String { "bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased() }

    /// A direct connection (not a node's pool), closed after `body`.
    func withConnection<Result>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        var settings = PostgresConnection.Configuration(
            host: base.host, port: base.port, username: base.username, password: base.password, database: base.database, tls: .disable
        )
        settings.options.connectTimeout = .seconds(5)
        let connection = try await PostgresConnection.connect(configuration: settings, id: 1, logger: Self.logger)
        do {
            let result = try await body(connection)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()  // the error that matters is the one thrown below
            throw error
        }
    }

    func dropSchema(_ schema: String) async throws {
        _ = try await withConnection { try await $0.query(PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \(schema) CASCADE"), logger: Self.logger) }
    }

    /// Runs a backend on a new schema (its pool and LISTEN connection as a service) while `body` runs;
    /// the schema is dropped afterwards unless `keep`.
    func withBackend<Result>(
        schema: String = PostgresBench.freshSchema(), keep: Bool = false, _ body: (PostgresBackend) async throws -> Result
    ) async throws -> Result {
        let backend = PostgresBackend(configuration: configuration(schema: schema), logger: Self.logger)
        let group = ServiceGroup(services: [backend], logger: Self.logger)
        let result: Result
        do {
            result = try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                defer { tasks.cancelAll() }
                try await Self.waitUntilServing(backend)
                return try await body(backend)
            }
        } catch {
            try? await dropSchema(schema)  // clean-up after a failure; the failure is what is reported
            throw error
        }
        if !keep { try await dropSchema(schema) }
        return result
    }

    /// Waits until `backend` serves (PostgreSQL reachable, schema ready).
    static func waitUntilServing(_ backend: PostgresBackend, within limit: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + limit
        while let reason = await backend.outage() {
            guard ContinuousClock.now < deadline else { throw SyncError(.transportUnavailable, "PostgreSQL does not serve: \(reason)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// A node on loopback over `backend` (which runs as one of its services).
    static func server(_ backend: PostgresBackend, token: String) async throws -> RunningSyncServer {
        try await SyncServer.start(
            backend: backend, configuration: SyncServerConfiguration(tokens: TokenStore([token: ["*"]]), rateLimit: nil), logger: logger,
            services: [backend]
        )
    }

    // MARK: push_throughput

    /// The rows a namespace's pushes wrote: records and applied event ids, in seq order.
    struct WrittenRows: Sendable {
        var records: [(collection: String, id: String, seq: Int64, deleted: Bool, tombstone: Int64, state: ByteBuffer)] = []
        var applied: [(id: UUID, ord: Int64, result: ByteBuffer)] = []
    }

    func writtenRows(schema: String, namespace: String) async throws -> WrittenRows {
        try await withConnection { connection in
            var rows = WrittenRows()
            let records = try await connection.query(
                "SELECT collection, id, seq, deleted, tombstone_ms, state FROM \(unescaped: schema).records WHERE ns = \(namespace) ORDER BY seq",
                logger: Self.logger
            )
            for try await row in records.decode((String, String, Int64, Bool, Int64, ByteBuffer).self) { rows.records.append(row) }
            let applied = try await connection.query(
                "SELECT id, ord, result FROM \(unescaped: schema).applied WHERE ns = \(namespace) ORDER BY ord", logger: Self.logger
            )
            for try await row in applied.decode((UUID, Int64, ByteBuffer).self) { rows.applied.append(row) }
            return rows
        }
    }

    /// The raw baseline: the same rows inserted with postgres-nio into the same tables (an empty
    /// schema made by the backend), with the same bulk method as the backend (one multi-row
    /// `unnest` upsert per table), one transaction per batch of `batchSize`. Returns rows/s.
    func rawInserts(_ rows: WrittenRows, batchSize: Int, namespace: String) async throws -> Double {
        let schema = Self.freshSchema()
        // The tables, exactly as the backend creates them.
        try await withBackend(schema: schema, keep: true) { _ in }
        let rate = try await withConnection { connection in
            try await connection.query("SET search_path TO \(unescaped: schema)", logger: Self.logger)
            try await connection.query("SELECT 1", logger: Self.logger)  // warm
            return try await measureAsync(operations: rows.records.count) {
                for start in stride(from: 0, to: rows.records.count, by: batchSize) {
                    let records = rows.records[start..<min(start + batchSize, rows.records.count)]
                    let applied = rows.applied[start..<min(start + batchSize, rows.applied.count)]
                    try await connection.query("BEGIN", logger: Self.logger)
                    try await connection.query(
                        """
                        INSERT INTO records(ns, collection, id, seq, deleted, tombstone_ms, state)
                        SELECT \(namespace), * FROM unnest(
                            \(records.map(\.collection))::text[], \(records.map(\.id))::text[], \(records.map(\.seq))::int8[],
                            \(records.map(\.deleted))::bool[], \(records.map(\.tombstone))::int8[], \(records.map(\.state))::bytea[])
                        ON CONFLICT (ns, collection, id) DO UPDATE SET seq = excluded.seq, deleted = excluded.deleted,
                            tombstone_ms = excluded.tombstone_ms, state = excluded.state
                        """,
                        logger: Self.logger
                    )
                    try await connection.query(
                        """
                        INSERT INTO applied(ns, id, ord, result)
                        SELECT \(namespace), * FROM unnest(\(applied.map(\.id))::uuid[], \(applied.map(\.ord))::int8[], \(applied.map(\.result))::bytea[])
                        ON CONFLICT (ns, id) DO UPDATE SET ord = excluded.ord, result = excluded.result
                        """,
                        logger: Self.logger
                    )
                    try await connection.query("COMMIT", logger: Self.logger)
                }
            }
        }
        try await dropSchema(schema)
        return rate
    }

    /// The batches pushed through RESTTransport and a node on loopback; returns changes/s and the
    /// schema the node wrote (kept for ``writtenRows(schema:namespace:)``, dropped by the caller).
    func throughServer(_ batches: [ChangeBatch], token: String) async throws -> (rate: Double, schema: String) {
        let schema = Self.freshSchema()
        let backend = PostgresBackend(configuration: configuration(schema: schema), logger: Self.logger)
        let running = try await Self.server(backend, token: token)
        let rate: Double
        do {
            try await Self.waitUntilServing(backend)
            let transport = RESTTransport(url: "http://127.0.0.1:\(running.port)", namespace: try Namespace("bench"), token: { token })
            _ = try await transport.pull(after: 0, from: 0, limit: 1)  // warm the connection
            rate = try await measureAsync(operations: batches.reduce(0) { $0 + $1.changes.count }) {
                for batch in batches { _ = try await transport.push(batch) }
            }
        } catch {
            try await running.stop()
            throw error
        }
        try await running.stop()
        return (rate, schema)
    }

    /// The batches applied by a backend directly (no HTTP): the node's own ceiling; returns changes/s.
    func throughBackend(_ batches: [ChangeBatch]) async throws -> Double {
        try await withBackend { backend in
            let namespace = try Namespace("bench")
            return try await measureAsync(operations: batches.reduce(0) { $0 + $1.changes.count }) {
                for batch in batches { _ = try await backend.applyValidated(batch, namespace: namespace) }
            }
        }
    }

    // MARK: cross_node_live

    /// Write-to-live-delivery latencies in ms: a device writes through node A (REST); a socket on
    /// node A (same node) and one on node B (another node, same schema: LISTEN/NOTIFY) each time
    /// their page. From just before the push to the page's arrival, the push's commit included.
    func crossNodeLive(writes: Int, token: String) async throws -> (same: [Double], cross: [Double]) {
        let schema = Self.freshSchema()
        let first = PostgresBackend(configuration: configuration(schema: schema), logger: Self.logger)
        let second = PostgresBackend(configuration: configuration(schema: schema), logger: Self.logger)
        let nodeA = try await Self.server(first, token: token)
        let nodeB: RunningSyncServer
        do {
            nodeB = try await Self.server(second, token: token)
        } catch {
            try await nodeA.stop()
            throw error
        }
        let namespace = try Namespace("live")
        let sockets = [nodeA, nodeB].map { node in
            WebSocketTransport(
                url: "http://127.0.0.1:\(node.port)", namespace: namespace, token: { token },
                configuration: .init(initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(200))
            )
        }
        let arrivals = [Arrivals(), Arrivals()]
        var listeners: [Task<Void, Never>] = []
        func finish() async throws {
            listeners.forEach { $0.cancel() }
            sockets.forEach { $0.close() }
            try await nodeB.stop()
            try await nodeA.stop()
            try? await dropSchema(schema)  // best effort: a bench schema
        }
        do {
            try await Self.waitUntilServing(first)
            try await Self.waitUntilServing(second)
            for (index, socket) in sockets.enumerated() {
                _ = try await socket.pull(after: 0, from: 0, limit: 1)  // the socket opens once the cursor is known
                let deadline = ContinuousClock.now + .seconds(10)
                while !socket.isConnected {
                    guard ContinuousClock.now < deadline else { throw SyncError(.transportUnavailable, "a live socket did not open") }
                    try await Task.sleep(for: .milliseconds(5))
                }
                let heads = await socket.liveHeads()
                let arrived = arrivals[index]
                listeners.append(Task { for await head in heads { arrived.record(head) } })
            }
            let writer = RESTTransport(url: "http://127.0.0.1:\(nodeA.port)", namespace: namespace, token: { token })
            _ = try await writer.pull(after: 0, from: 0, limit: 1)  // warm
            var same: [Double] = []
            var cross: [Double] = []
            let collection = try CollectionName("probe")
            for number in 0..<writes {
                let now = WallClock.nowMillis()
                let change = Change(
                    id: EventID(high: now << 16 | 0x7000, low: 0x8000_0000_0000_0000 | UInt64(number)), collection: collection,
                    record: try RecordID("p\(number)"), operation: .upsert, fields: ["n": .int(Int64(number))],
                    hlc: HLC(packed: now << 16 | UInt64(number & 0xFFFF), node: 3), base: 0
                )
                let started = ContinuousClock.now
                let response = try await writer.push(ChangeBatch(changes: [change]))
                let deadline = ContinuousClock.now + .seconds(10)
                var times: [Double] = []
                for arrived in arrivals {
                    while true {
                        if let at = arrived.first(reaching: response.head) {
                            times.append(Observed.milliseconds(at - started))
                            break
                        }
                        guard ContinuousClock.now < deadline else { throw SyncError(.transportUnavailable, "a live page did not arrive within 10 s") }
                        try await Task.sleep(for: .microseconds(200))
                    }
                }
                same.append(times[0])
                cross.append(times[1])
                try await Task.sleep(for: .milliseconds(5))
            }
            try await finish()
            return (same, cross)
        } catch {
            try? await finish()  // the error that matters is rethrown
            throw error
        }
    }

    /// When a socket received each head.
    final class Arrivals: Sendable {
        private let heads = Mutex<[(head: UInt64, at: ContinuousClock.Instant)]>([])

        func record(_ head: UInt64) {
            let now = ContinuousClock.now
            heads.withLock { $0.append((head, now)) }
        }

        /// When the first page reaching `head` arrived.
        func first(reaching head: UInt64) -> ContinuousClock.Instant? { heads.withLock { $0.first { $0.head >= head }?.at } }
    }

    enum Observed {
        static func milliseconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) * 1_000 + Double(duration.components.attoseconds) / 1e15
        }

        /// Nearest-rank percentile.
        static func percentile(_ values: [Double], _ q: Double) -> Double {
            guard !values.isEmpty else { return 0 }
            let sorted = values.sorted()
            return sorted[min(max(Int((q * Double(sorted.count)).rounded(.up)) - 1, 0), sorted.count - 1)]
        }
    }
}
