import ArgumentParser
import Foundation
import Logging
import Syncline
import SynclineNetwork
import SynclineServer

/// `syncline-bench network`: the server over loopback against its own backend, and the protocol's
/// bytes against plain JSON.
struct NetworkSuiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "Changes/s pushed through the server over loopback vs the backend's raw rate; wire bytes per change vs whole-record JSON."
    )

    @OptionGroup var options: SuiteOptions
    @OptionGroup var backend: BackendOptions

    func run() async throws {
        let report = try await NetworkSuite(options: options, backend: backend).run()
        print(report.render(json: options.json))
    }
}

struct NetworkSuite {
    var options: SuiteOptions
    var backend: BackendOptions
    static let batchSize = 500
    static let token = "bench"

    func run() async throws -> BenchReport {
        if backend.backend == .postgres { return try await runPostgres() }
        var report = BenchReport(suite: "network")
        let root = try options.makeScratchDirectory()
        defer { removeScratchDirectory(root) }
        var run = 0
        func path() -> String {
            run += 1
            return root.appendingPathComponent("backend-\(run).sqlite").path
        }
        let operations = max(Int(20_000 * options.scale) / Self.batchSize, 2) * Self.batchSize

        if options.only == nil || "push_throughput".contains(options.only!) {
            var pairs: [(Double, Double)] = []
            for repeat_ in 0..<max(options.repeats, 1) {
                let batches = Self.batches(operations, seed: UInt64(repeat_))
                let raw = try await Self.rawBackend(batches, path: path())
                let served = try await Self.throughServer(batches, path: path())
                pairs.append((served, raw))
            }
            let median = medianByRatio(pairs) { $0.0 / $0.1 }
            report.rows.append(
                BenchRow(
                    name: "push_throughput", store: "sqlite", perTransaction: Self.batchSize, durability: "app", opsPerSecond: median.0,
                    baselineOpsPerSecond: median.1, unit: "changes/s"
                )
            )
            report.notes.append(
                "push_throughput: \(operations) new records in batches of \(Self.batchSize) through RESTTransport (binary, deflate) and the server on loopback, against SQLiteBackend.push with the same batches; median of \(options.repeats)"
            )
        }

        if options.only == nil || "bytes_per_change".contains(options.only!) { try Self.addBytesPerChange(to: &report) }
        return report
    }

    static func addBytesPerChange(to report: inout BenchReport) throws {
        let (wire, json) = try bytesPerChange()
        report.rows.append(
            BenchRow(
                name: "bytes_per_change", store: "wire", perTransaction: batchSize, durability: "-", opsPerSecond: wire,
                baselineOpsPerSecond: json, unit: "bytes/change"
            )
        )
        report.notes.append(
            "bytes_per_change: updates of 2 fields of 8-field records, a batch of \(batchSize) in the binary codec deflated (what RESTTransport sends), against the uncompressed JSON of the whole records"
        )
    }

    /// The same rows with `--backend postgres`, and `cross_node_live`.
    func runPostgres() async throws -> BenchReport {
        var report = BenchReport(suite: "network")
        let postgres = try backend.postgres()
        let operations = max(Int(20_000 * options.scale) / Self.batchSize, 2) * Self.batchSize

        if options.only == nil || "push_throughput".contains(options.only!) {
            var pairs: [(Double, Double)] = []
            var direct: [(Double, Double)] = []
            for repeat_ in 0..<max(options.repeats, 1) {
                let batches = Self.batches(operations, seed: UInt64(repeat_))
                let backendRate = try await postgres.throughBackend(batches)
                let (served, schema) = try await postgres.throughServer(batches, token: Self.token)
                let rows = try await postgres.writtenRows(schema: schema, namespace: "bench")
                try await postgres.dropSchema(schema)
                guard rows.records.count == operations, rows.applied.count == operations else {
                    throw SyncError(.storage, "the node wrote \(rows.records.count) records and \(rows.applied.count) event ids for \(operations) changes")
                }
                let raw = try await postgres.rawInserts(rows, batchSize: Self.batchSize, namespace: "bench")
                pairs.append((served, raw))
                direct.append((backendRate, raw))
            }
            let median = medianByRatio(pairs) { $0.0 / $0.1 }
            let medianDirect = medianByRatio(direct) { $0.0 / $0.1 }
            report.rows.append(
                BenchRow(
                    name: "push_throughput", store: "postgres", perTransaction: Self.batchSize, durability: "commit", opsPerSecond: median.0,
                    baselineOpsPerSecond: median.1, unit: "changes/s"
                )
            )
            report.rows.append(
                BenchRow(
                    name: "push_backend", store: "postgres", perTransaction: Self.batchSize, durability: "commit", opsPerSecond: medianDirect.0,
                    baselineOpsPerSecond: medianDirect.1, unit: "changes/s"
                )
            )
            report.notes.append(
                "push_backend (postgres): the same batches applied by PostgresBackend.applyValidated directly (no HTTP), against the same raw inserts"
            )
            report.notes.append(
                "push_throughput (postgres): \(operations) new records in batches of \(Self.batchSize) through RESTTransport (binary, deflate) and a node on loopback (PostgresBackend, its own schema), against raw postgres-nio inserts of the rows that node wrote (records and event ids, the same bytes) into the same empty tables, one multi-row unnest upsert per table and one transaction per batch of \(Self.batchSize); median of \(options.repeats)"
            )
        }

        if options.only == nil || "bytes_per_change".contains(options.only!) { try Self.addBytesPerChange(to: &report) }

        if options.only == nil || "cross_node_live".contains(options.only!) {
            let writes = max(Int(300 * options.scale), 20)
            let (same, cross) = try await postgres.crossNodeLive(writes: writes, token: Self.token)
            for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
                report.rows.append(
                    BenchRow(
                        name: "cross_node_live_\(label)", store: "postgres", perTransaction: 1, durability: "-",
                        opsPerSecond: PostgresBench.Observed.percentile(cross, q), baselineOpsPerSecond: PostgresBench.Observed.percentile(same, q),
                        unit: "ms"
                    )
                )
            }
            report.notes.append(
                "cross_node_live: \(writes) one-change pushes through node A (REST, loopback); time from just before the push to the live page on a socket on node B (another PostgresBackend on the same schema, woken by LISTEN/NOTIFY; value) and on node A (baseline); the ratio is other node / same node (1.0: no cost for being on another node)"
            )
        }
        return report
    }

    static let fieldNames = ["title", "note", "done", "priority", "due", "list", "owner", "tags"]

    static func record(_ index: Int) -> [String: Value] {
        [
            "title": .string("Buy oat milk and bread, item \(index)"), "note": .string("from the shop on the corner, before six"),
            "done": .bool(index % 3 == 0), "priority": .int(Int64(index % 5)), "due": .int(1_800_000_000_000 + Int64(index) * 60_000),
            "list": .string("groceries"), "owner": .string("alice@example.com"), "tags": .array([.string("home"), .string("weekly")]),
        ]
    }

    /// New records, in batches.
    static func batches(_ count: Int, seed: UInt64) -> [ChangeBatch] {
        let collection = try! CollectionName("todos")
        let now = WallClock.nowMillis()
        var changes: [Change] = []
        changes.reserveCapacity(count)
        for index in 0..<count {
            let id = EventID(high: (now + UInt64(index)) << 16 | 0x7000, low: 0x8000_0000_0000_0000 | seed << 32 | UInt64(index))
            changes.append(
                Change(
                    id: id, collection: collection, record: try! RecordID("r\(seed)-\(index)"), operation: .upsert, fields: record(index),
                    hlc: HLC(packed: now << 16 | UInt64(index & 0xFFFF), node: 7), base: 0
                )
            )
        }
        return stride(from: 0, to: changes.count, by: batchSize).map { ChangeBatch(changes: Array(changes[$0..<min($0 + batchSize, changes.count)])) }
    }

    /// The backend applying the batches directly: the server's own write ceiling.
    static func rawBackend(_ batches: [ChangeBatch], path: String) async throws -> Double {
        let backend = try SQLiteBackend(path: path)
        let namespace = try Namespace("bench")
        return try await measureAsync(operations: batches.count * batchSize) {
            for batch in batches { _ = try await backend.applyValidated(batch, namespace: namespace) }
        }
    }

    /// The same batches through RESTTransport and the server on loopback.
    static func throughServer(_ batches: [ChangeBatch], path: String) async throws -> Double {
        let backend = try SQLiteBackend(path: path)
        let namespace = try Namespace("bench")
        var logger = Logger(label: "bench-server")
        logger.logLevel = .error
        let running = try await SyncServer.start(
            backend: backend, configuration: SyncServerConfiguration(tokens: TokenStore([token: ["*"]]), rateLimit: nil),
            logger: logger
        )
        let transport = RESTTransport(url: "http://127.0.0.1:\(running.port)", namespace: namespace, token: { token })
        _ = try await transport.pull(after: 0, from: 0, limit: 1)  // warm the connection
        let rate = try await measureAsync(operations: batches.count * batchSize) {
            for batch in batches { _ = try await transport.push(batch) }
        }
        try await running.stop()
        return rate
    }

    /// Wire bytes per change of a delta batch (binary, deflated) and JSON bytes per whole record.
    static func bytesPerChange() throws -> (wire: Double, json: Double) {
        let collection = try CollectionName("todos")
        let now = WallClock.nowMillis()
        var deltas: [Change] = []
        var whole = 0
        for index in 0..<batchSize {
            var full = record(index)
            full["done"] = .bool(index % 3 != 0)
            full["priority"] = .int(Int64((index + 1) % 5))
            let delta = ["done": full["done"]!, "priority": full["priority"]!]
            let id = EventID(high: (now + UInt64(index)) << 16 | 0x7000, low: 0x8000_0000_0000_0000 | UInt64(index))
            let hlc = HLC(packed: now << 16 | UInt64(index), node: 0x9F1C_2A7B_3D4E_5F60)
            deltas.append(
                Change(id: id, collection: collection, record: try RecordID("todo-\(index)"), operation: .upsert, fields: delta, hlc: hlc, base: UInt64(index + 1))
            )
            // Whole-record JSON as a plain REST API would send it: {"collection", "id", fields...}.
            var object = full
            object["id"] = .string("todo-\(index)")
            object["collection"] = .string("todos")
            whole += try JSONCodec.encode(.object(object)).count
        }
        let body = try WireCodec(format: .binary).encode(ChangeBatch(changes: deltas))
        return (Double(body.bytes.count) / Double(batchSize), Double(whole) / Double(batchSize))
    }
}
