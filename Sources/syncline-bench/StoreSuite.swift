import ArgumentParser
import CLevelDB
import CSQLite
import Foundation
import Syncline
import SynclineLevelDB
import SynclineSQLite

/// `syncline-bench store`: committed "record + outbox entry" writes per second through each store,
/// against raw C doing the same two writes with the same settings.
struct StoreSuiteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Record + outbox writes/s through SQLiteStore and LevelDBStore vs raw SQLite / LevelDB C calls."
    )

    @OptionGroup var options: SuiteOptions

    func run() throws {
        let report = try StoreSuite(options: options).run()
        print(report.render(json: options.json))
    }
}

struct StoreSuite {
    var options: SuiteOptions

    struct Case {
        var store: String
        var durability: Durability
        var perTransaction: Int
        var operations: Int

        var name: String { "\(store)_\(durability.rawValue)_\(perTransaction)" }
    }

    var cases: [Case] {
        func count(_ base: Int) -> Int { max(Int(Double(base) * options.scale) / 1_000 * 1_000, 1_000) }
        let all = [
            Case(store: "sqlite", durability: .app, perTransaction: 1, operations: count(20_000)),
            Case(store: "sqlite", durability: .app, perTransaction: 1_000, operations: count(200_000)),
            Case(store: "sqlite", durability: .power, perTransaction: 1, operations: count(2_000)),
            Case(store: "sqlite", durability: .power, perTransaction: 1_000, operations: count(100_000)),
            Case(store: "leveldb", durability: .app, perTransaction: 1, operations: count(200_000)),
            Case(store: "leveldb", durability: .app, perTransaction: 1_000, operations: count(300_000)),
            Case(store: "leveldb", durability: .power, perTransaction: 1, operations: count(2_000)),
            Case(store: "leveldb", durability: .power, perTransaction: 1_000, operations: count(100_000)),
        ]
        guard let only = options.only else { return all }
        return all.filter { $0.name == only || $0.name.hasPrefix(only + "_") && only.split(separator: "_").count < 3 }
    }

    func run() throws -> BenchReport {
        var report = BenchReport(suite: "store")
        report.notes.append("record ids in ascending order (time-ordered), ~200-byte records; median ratio of \(options.repeats) paired runs")
        let root = try options.makeScratchDirectory()
        defer { removeScratchDirectory(root) }

        let largest = cases.map(\.operations).max() ?? 0
        let workload = StoreWorkload(count: largest)
        var run = 0
        for item in cases {
            // Each repetition measures the baseline and the store back to back (alternating which
            // goes first), so both see the same machine; the row is the repetition with the median ratio.
            var pairs: [(store: Double, baseline: Double)] = []
            for repetition in 0..<max(options.repeats, 1) {
                run += 1
                let baselinePath = root.appendingPathComponent("baseline-\(run)").path
                let storePath = root.appendingPathComponent("store-\(run)").path
                var baseline = 0.0
                var store = 0.0
                if repetition % 2 == 0 {
                    baseline = try Self.baseline(item, workload: workload, path: baselinePath)
                    store = try Self.throughStore(item, workload: workload, path: storePath)
                } else {
                    store = try Self.throughStore(item, workload: workload, path: storePath)
                    baseline = try Self.baseline(item, workload: workload, path: baselinePath)
                }
                pairs.append((store, baseline))
                try? FileManager.default.removeItem(atPath: baselinePath)  // temporary files only
                try? FileManager.default.removeItem(atPath: storePath)
            }
            let median = medianByRatio(pairs) { $0.store / $0.baseline }
            report.rows.append(
                BenchRow(
                    name: item.name, store: item.store, perTransaction: item.perTransaction,
                    durability: item.durability.rawValue, opsPerSecond: median.store, baselineOpsPerSecond: median.baseline
                )
            )
        }
        return report
    }

    static func throughStore(_ item: Case, workload: StoreWorkload, path: String) throws -> Double {
        let configuration = StoreConfiguration(durability: item.durability)
        let store: any SyncStore =
            item.store == "sqlite"
            ? try SQLiteStore(path: path, configuration: configuration)
            : try LevelDBStore(path: path, configuration: configuration)
        defer { store.close() }
        return try measure(operations: item.operations) {
            var index = 0
            while index < item.operations {
                let end = min(index + item.perTransaction, item.operations)
                try store.write { tx in
                    for position in index..<end {
                        try tx.putRecord(workload.record(position))
                        try tx.enqueue(workload.change(position), priority: .normal)
                    }
                }
                index = end
            }
        }
    }

    static func baseline(_ item: Case, workload: StoreWorkload, path: String) throws -> Double {
        let blobs = workload.blobs(item.operations)
        if item.store == "sqlite" {
            return try RawSQLite.run(path: path, durability: item.durability, perTransaction: item.perTransaction, workload: workload, blobs: blobs)
        }
        return try RawLevelDB.run(path: path, durability: item.durability, perTransaction: item.perTransaction, workload: workload, blobs: blobs)
    }
}

/// The records and changes both sides write: ascending ids, the same ~200-byte content.
struct StoreWorkload {
    let ids: [RecordID]
    let collection = try! CollectionName("todos")
    let template: [String: Value]
    /// The record's pending fields, built once: the clock starts after the data exists.
    let pendingFields: [String: FieldState]
    static let node: UInt64 = 0x9F1C_2A7B_3D4E_5F60

    init(count: Int) {
        ids = (0..<count).map { try! RecordID(String(format: "rec-%010d", $0)) }
        template = [
            "title": .string(String(repeating: "buy oat milk and bread ", count: 6)),
            "done": .bool(false),
            "priority": .int(3),
            "list": .string("groceries"),
        ]
        let stamp = HLC(packed: 1_732_300_000_000 << 16, node: Self.node)
        pendingFields = template.mapValues { FieldState(value: $0, hlc: stamp, seq: 0) }
    }

    func hlc(_ index: Int) -> HLC { HLC(packed: (1_732_300_000_000 + UInt64(index)) << 16, node: Self.node) }

    func record(_ index: Int) -> RecordState {
        RecordState(collection: collection, id: ids[index], pendingFields: pendingFields)
    }

    func change(_ index: Int) -> Change {
        Change(
            id: EventID(high: UInt64(1_732_300_000_000 + index) << 16 | 0x7000, low: 0x8000_0000_0000_0000 | UInt64(index)),
            collection: collection, record: ids[index], operation: .upsert, fields: template, hlc: hlc(index), base: 0
        )
    }

    /// The encoded record and outbox entry for each index, made before the clock starts.
    func blobs(_ count: Int) -> [(record: [UInt8], entry: [UInt8])] {
        (0..<count).map { index in
            (BinaryCodec.encode(record(index)),
             BinaryCodec.encode(OutboxEntry(position: UInt64(index + 1), priority: .normal, change: change(index))))
        }
    }
}
