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

    func run() async throws {
        let report = try await NetworkSuite(options: options).run()
        print(report.render(json: options.json))
    }
}

struct NetworkSuite {
    var options: SuiteOptions
    static let batchSize = 500
    static let token = "bench"

    func run() async throws -> BenchReport {
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

        if options.only == nil || "bytes_per_change".contains(options.only!) {
            let (wire, json) = try Self.bytesPerChange()
            report.rows.append(
                BenchRow(
                    name: "bytes_per_change", store: "wire", perTransaction: Self.batchSize, durability: "-", opsPerSecond: wire,
                    baselineOpsPerSecond: json, unit: "bytes/change"
                )
            )
            report.notes.append(
                "bytes_per_change: updates of 2 fields of 8-field records, a batch of \(Self.batchSize) in the binary codec deflated (what RESTTransport sends), against the uncompressed JSON of the whole records"
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
