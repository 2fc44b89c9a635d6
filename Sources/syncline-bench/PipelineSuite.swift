import ArgumentParser
import Foundation
import Syncline
import SynclineLevelDB
import SynclineSQLite
import Synchronization

/// `syncline-bench pipeline`: upserts/s through `SyncClient` with 1, 16 and 256 concurrent
/// writers (group commit) against the raw store's 1,000-per-transaction rate measured in the same
/// run, and end-to-end in-memory sync against the in-memory server's own push rate.
struct PipelineSuiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Upserts/s through SyncClient with 1/16/256 writers vs the raw store; end-to-end in-memory sync."
    )

    @OptionGroup var options: SuiteOptions

    @Option(name: .long, help: "Store durability: app (default) or power (an fsync per commit).")
    var durability: String = "app"

    @Option(
        name: .long,
        help: "Paired runs for group_commit_gain, the group-commit target (one pair is noisy on a shared machine; the median is kept)."
    )
    var gainPairs: Int = 9

    func run() async throws {
        guard let durability = Durability(rawValue: durability) else {
            throw ValidationError("--durability must be app or power, not \(self.durability)")
        }
        guard gainPairs >= 1 else { throw ValidationError("--gain-pairs must be at least 1, not \(gainPairs)") }
        let report = try await PipelineSuite(options: options, durability: durability, gainPairs: gainPairs).run()
        print(report.render(json: options.json))
    }
}

struct PipelineSuite {
    var options: SuiteOptions
    var durability: Durability = .app
    var gainPairs = 9

    func count(_ base: Int) -> Int { max(Int(Double(base) * options.scale), 256) }

    func run() async throws -> BenchReport {
        var report = BenchReport(suite: "pipeline")
        report.notes.append("writers upsert records with ascending ids (4 fields, ~200 bytes); .\(durability.rawValue) durability; median of \(options.repeats) paired runs")
        let root = try options.makeScratchDirectory()
        defer { removeScratchDirectory(root) }
        var run = 0
        func path(_ name: String) -> String {
            run += 1
            return root.appendingPathComponent("\(name)-\(run)").path
        }

        for store in ["sqlite", "leveldb"] {
            for writers in [1, 16, 256] {
                let name = "writers_\(writers)"
                if let only = options.only, !"\(store)_\(name)".contains(only) && name != only { continue }
                let operations = count(40_000)  // every writer count does the same work
                var pairs: [(Double, Double)] = []
                var groups: [Double] = []
                for _ in 0..<max(options.repeats, 1) {
                    let baseline = try StoreSuite.baseline(
                        StoreSuite.Case(store: store, durability: durability, perTransaction: 1_000, operations: operations),
                        workload: StoreWorkload(count: operations), path: path("baseline")
                    )
                    let (rate, group) = try await Self.throughClient(
                        store: store, path: path("client"), writers: writers, operations: operations, durability: durability
                    )
                    pairs.append((rate, baseline))
                    groups.append(group)
                }
                let median = medianByRatio(pairs) { $0.0 / $0.1 }
                report.rows.append(
                    BenchRow(
                        name: name, store: store, perTransaction: writers, durability: durability.rawValue, opsPerSecond: median.0,
                        baselineOpsPerSecond: median.1
                    )
                )
                report.notes.append("\(store)_\(name): \(String(format: "%.1f", groups.reduce(0, +) / Double(groups.count))) writes per transaction on average")
            }
        }

        for store in ["sqlite"] where options.only == nil || "\(store)_group_commit_gain".contains(options.only!) {
            // The group-commit target as its own paired measurement: 256 writers against one
            // writer, back to back, so the machine's drift cancels out as in the other rows. Both
            // write the same 40,000 records into a new store (the same work).
            var pairs: [(Double, Double)] = []
            for _ in 0..<gainPairs {
                let (one, _) = try await Self.throughClient(
                    store: store, path: path("gain-1"), writers: 1, operations: count(40_000), durability: durability
                )
                let (many, _) = try await Self.throughClient(
                    store: store, path: path("gain-256"), writers: 256, operations: count(40_000), durability: durability
                )
                pairs.append((many, one))
            }
            let median = medianByRatio(pairs) { $0.0 / $0.1 }
            report.rows.append(
                BenchRow(
                    name: "group_commit_gain", store: store, perTransaction: 256, durability: durability.rawValue, opsPerSecond: median.0,
                    baselineOpsPerSecond: median.1
                )
            )
            report.notes.append(
                "group_commit_gain: 256 writers (value) against 1 writer (baseline) on \(store), measured back to back, median ratio of \(gainPairs) pairs; ratios \(pairs.map { String(format: "%.2f", $0.0 / $0.1) }.joined(separator: ", "))"
            )
        }

        if durability == .app && (options.only == nil || "e2e_inmemory".contains(options.only!)) {
            let operations = count(20_000)
            var pairs: [(Double, Double)] = []
            for _ in 0..<max(options.repeats, 1) {
                let ceiling = try await Self.serverCeiling(operations: operations)
                let rate = try await Self.endToEnd(operations: operations)
                pairs.append((rate, ceiling))
            }
            let median = medianByRatio(pairs) { $0.0 / $0.1 }
            report.rows.append(
                BenchRow(name: "e2e_inmemory", store: "inMemory", perTransaction: 500, durability: "app", opsPerSecond: median.0, baselineOpsPerSecond: median.1)
            )
            report.notes.append("e2e_inmemory: device A upserts N records and syncs; rate until device B has all N (both synced a namespace of one record before), against the in-memory server applying the same batches directly")
        }

        if durability == .app && (options.only == nil || "e2e_rest".contains(options.only!)) {
            let records = max(Int(20_000 * options.scale) / NetworkSuite.batchSize, 2) * NetworkSuite.batchSize
            var pairs: [(Double, Double)] = []
            for run in 0..<max(options.repeats, 1) {
                pairs.append(try await EndToEndREST.measure(records: records, root: root, run: run))
            }
            let median = medianByRatio(pairs) { $0.0 / $0.1 }
            report.rows.append(
                BenchRow(
                    name: "e2e_rest", store: "sqlite", perTransaction: 500, durability: "app", opsPerSecond: median.0,
                    baselineOpsPerSecond: median.1, unit: "changes/s"
                )
            )
            report.notes.append(
                "e2e_rest: device A (SQLite, REST) drains \(records) queued changes to syncline-server on loopback while device B (SQLite, REST) pulls them, until B has all (both synced a namespace of one record before); against the SQLite backend applying the same records in batches of 500 (push_throughput's baseline)"
            )
        }

        if durability == .app && (options.only == nil || "observe_update".contains(options.only!)) {
            let large = max(Int(100_000 * options.scale), 1_000)
            let small = max(large / 100, 100)
            let updates = count(5_000)
            var pairs: [(Double, Double)] = []
            for _ in 0..<max(options.repeats, 1) {
                let big = try await ObserveUpdate.measure(records: large, updates: updates)
                let little = try await ObserveUpdate.measure(records: small, updates: updates)
                pairs.append((big, little))
            }
            let median = medianByRatio(pairs) { $0.0 / $0.1 }
            report.rows.append(
                BenchRow(
                    name: "observe_update", store: "inMemory", perTransaction: 1, durability: "app", opsPerSecond: median.0,
                    baselineOpsPerSecond: median.1, unit: "updates/s"
                )
            )
            report.notes.append(
                "observe_update: one writer updates records one at a time; rate until an observe() subscriber's snapshot shows the last update, a collection of \(large) records against one of \(small)"
            )
        }

        if options.only == nil || "initial_sync".contains(options.only!) || options.only!.hasPrefix("initial_sync") {
            let large = max(Int(300_000 * options.scale), 1_000)
            let small = max(large / 10, 100)
            var pairs: [(InitialSync.Measurement, InitialSync.Measurement)] = []
            var raw: [Double] = []
            for repeat_ in 0..<max(1, min(options.repeats, 3)) {
                let big = try await InitialSync.measure(records: large, root: root, run: 2 * repeat_)
                let little = try await InitialSync.measure(records: small, root: root, run: 2 * repeat_ + 1)
                pairs.append((big, little))
                raw.append(
                    try StoreSuite.baseline(
                        StoreSuite.Case(store: "sqlite", durability: durability, perTransaction: 1_000, operations: large),
                        workload: StoreWorkload(count: large), path: path("initial-raw")
                    )
                )
            }
            let median = medianByRatio(pairs) { $0.0.rate / $0.1.rate }
            let rawRate = raw.sorted()[raw.count / 2]
            report.rows.append(
                BenchRow(
                    name: "initial_sync", store: "sqlite", perTransaction: 1_000, durability: durability.rawValue,
                    opsPerSecond: median.0.rate, baselineOpsPerSecond: median.1.rate, unit: "records/s"
                )
            )
            report.rows.append(
                BenchRow(
                    name: "initial_sync_vs_store", store: "sqlite", perTransaction: 1_000, durability: durability.rawValue,
                    opsPerSecond: median.0.rate, baselineOpsPerSecond: rawRate, unit: "records/s"
                )
            )
            let growth = medianByRatio(pairs) { Double($0.0.peakGrowth) / Double(max($0.1.peakGrowth, 1)) }
            report.rows.append(
                BenchRow(
                    name: "initial_sync_rss", store: "sqlite", perTransaction: 1_000, durability: durability.rawValue,
                    opsPerSecond: Double(growth.0.peakGrowth) / 1_048_576, baselineOpsPerSecond: Double(growth.1.peakGrowth) / 1_048_576,
                    unit: "MiB"
                )
            )
            report.notes.append(
                "initial_sync: a new device (SQLiteStore, RESTTransport, pages of 1,000) joining \(large) records against one joining \(small), records/s of its first sync; initial_sync_vs_store: the same \(large)-record rate against the raw SQLite store writing \(large) record + outbox pairs 1,000 per transaction; initial_sync_rss: the process's peak resident memory during the sync minus before it, \(large) against \(small) (the server runs in the same process); median of \(pairs.count)"
                    + (pairs.allSatisfy { $0.0.peakReset && $0.1.peakReset } ? "" : "; the kernel's peak could not be reset, so a peak may predate the sync")
            )
        }

        return report
    }

    static let fields: [String: Value] = [
        "title": .string(String(repeating: "buy oat milk and bread ", count: 6)), "done": .bool(false), "priority": .int(3),
        "list": .string("groceries"),
    ]

    static func open(_ store: String, path: String, durability: Durability) throws -> any SyncStore {
        let configuration = StoreConfiguration(durability: durability)
        return store == "sqlite"
            ? try SQLiteStore(path: path, configuration: configuration)
            : try LevelDBStore(path: path, configuration: configuration)
    }

    static func throughClient(store: String, path: String, writers: Int, operations: Int, durability: Durability) async throws
        -> (rate: Double, writesPerTransaction: Double)
    {
        let namespace = try Namespace("bench")
        let client = try SyncClient(
            namespace: namespace, store: try open(store, path: path, durability: durability),
            transport: InMemoryTransport(server: InMemorySyncServer(), namespace: namespace)
        )
        defer { client.close() }
        let collection = try CollectionName("todos")
        let perWriter = operations / writers
        // Ids in ascending order across writers (like time-ordered ids), as the baseline's are:
        // each write takes the next number from a shared counter.
        let keys = (0..<(perWriter * writers)).map { RecordKey(collection: collection, id: try! RecordID(String(format: "r%010d", $0))) }
        let next = Counter()
        let rate = try await measureAsync(operations: perWriter * writers) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<writers {
                    group.addTask {
                        for _ in 0..<perWriter {
                            let index = next.take()
                            try await client.upsert(keys[index], fields: fields)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let (transactions, writes) = (client.ingest.transactions, client.ingest.writes)
        return (rate, Double(writes) / Double(max(transactions, 1)))
    }

    static func changes(_ operations: Int, node: UInt64) throws -> [Change] {
        let collection = try CollectionName("todos")
        var result: [Change] = []
        result.reserveCapacity(operations)
        // Time-ordered like a device's own clock: the server refuses HLCs far in its future.
        let start = WallClock.nowMillis()
        for index in 0..<operations {
            let millis = start + UInt64(index)
            let id = EventID(high: millis << 16 | 0x7000, low: 0x8000_0000_0000_0000 | UInt64(index))
            let record = try RecordID(String(format: "r%08d", index))
            let hlc = HLC(packed: millis << 16, node: node)
            result.append(Change(id: id, collection: collection, record: record, operation: .upsert, fields: fields, hlc: hlc, base: 0))
        }
        return result
    }

    /// The in-memory server applying the same changes in batches of 500, with nothing in front.
    static func serverCeiling(operations: Int) async throws -> Double {
        let server = InMemorySyncServer()
        let namespace = try Namespace("bench")
        let all = try changes(operations, node: 1)
        return try await measureAsync(operations: operations) {
            for start in stride(from: 0, to: all.count, by: 500) {
                _ = try await server.push(ChangeBatch(changes: Array(all[start..<min(start + 500, all.count)])), namespace: namespace)
            }
        }
    }

    /// Device A writes N records and syncs; device B syncs until it has all N.
    static func endToEnd(operations: Int) async throws -> Double {
        let server = InMemorySyncServer()
        let namespace = try Namespace("bench")
        let alice = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: InMemoryTransport(server: server, namespace: namespace))
        let bob = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: InMemoryTransport(server: server, namespace: namespace))
        let collection = try CollectionName("todos")
        let keys = (0..<operations).map { RecordKey(collection: collection, id: try! RecordID(String(format: "r%08d", $0))) }
        // Both devices have synced a namespace in use (one record) before: their cursors are past
        // 0, so their pulls are deltas, not snapshots (a snapshot carries a device's own writes).
        _ = try await bob.upsert(RecordKey(collection: try CollectionName("seed"), id: try RecordID("seed")), fields: fields)
        try await bob.sync()
        try await alice.sync()
        return try await measureAsync(operations: operations) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<16 {
                    group.addTask {
                        for index in stride(from: writer, to: keys.count, by: 16) { try await alice.upsert(keys[index], fields: fields) }
                    }
                }
                try await group.waitForAll()
            }
            try await alice.sync()
            var received = 0
            while received < operations {
                try await bob.sync()
                received = try await bob.visibleRecords(in: collection).count
            }
        }
    }
}

/// A shared counter handing out increasing numbers to concurrent tasks.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func take() -> Int { value.add(1, ordering: .relaxed).oldValue }
}
