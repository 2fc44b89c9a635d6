import ArgumentParser
import Foundation
import Syncline
import SynclineServer

/// `syncline-bench growth`: pulling a fixed delta must cost the same however long the history.
struct GrowthSuiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "growth",
        abstract: "Time and bytes to pull a delta of 1,000 changes with a history of 1,000,000 vs 10,000 changes."
    )

    @OptionGroup var options: SuiteOptions
    @OptionGroup var backend: BackendOptions

    func run() async throws {
        let report = try await GrowthSuite(options: options, backend: backend).run()
        print(report.render(json: options.json))
    }
}

struct GrowthSuite {
    var options: SuiteOptions
    var backend: BackendOptions
    static let delta = 1_000

    func run() async throws -> BenchReport {
        var report = BenchReport(suite: "growth")
        let root = try options.makeScratchDirectory()
        defer { removeScratchDirectory(root) }
        let small = max(Int(10_000 * options.scale), 2 * Self.delta)
        let large = max(Int(1_000_000 * options.scale), 10 * small)
        let store = backend.backend.rawValue
        let short: (pullsPerSecond: Double, bytes: Int)
        let long: (pullsPerSecond: Double, bytes: Int)
        switch backend.backend {
        case .sqlite:
            short = try await Self.measure(history: small, backend: try SQLiteBackend(path: root.appendingPathComponent("small.sqlite").path), repeats: options.repeats)
            long = try await Self.measure(history: large, backend: try SQLiteBackend(path: root.appendingPathComponent("large.sqlite").path), repeats: options.repeats)
        case .postgres:
            // Each history in a schema of its own, its tables ANALYZEd (as a database that lived has
            // statistics); then pulls of the two alternate (a pull takes milliseconds, a loaded
            // machine's drift more), median of at least 15 each.
            let postgres = try backend.postgres()
            (short, long) = try await postgres.withBackend { shortBackend in
                try await postgres.withBackend { longBackend in
                    try await Self.build(history: small, backend: shortBackend)
                    try await Self.build(history: large, backend: longBackend)
                    try await shortBackend.analyze()
                    try await longBackend.analyze()
                    var shortRates: [Double] = []
                    var longRates: [Double] = []
                    var bytes = (0, 0)
                    for _ in 0..<max(options.repeats, 15) {
                        let first = try await Self.pull(history: small, backend: shortBackend)
                        let second = try await Self.pull(history: large, backend: longBackend)
                        shortRates.append(first.rate)
                        longRates.append(second.rate)
                        bytes = (first.bytes, second.bytes)
                    }
                    return (
                        (shortRates.sorted()[shortRates.count / 2], bytes.0), (longRates.sorted()[longRates.count / 2], bytes.1)
                    )
                }
            }
        }
        report.rows.append(
            BenchRow(
                name: "pull_delta_1000", store: store, perTransaction: large, durability: "app", opsPerSecond: long.pullsPerSecond,
                baselineOpsPerSecond: short.pullsPerSecond, unit: "pulls/s"
            )
        )
        report.rows.append(
            BenchRow(
                name: "pull_delta_1000_bytes", store: "wire", perTransaction: large, durability: "-", opsPerSecond: Double(long.bytes),
                baselineOpsPerSecond: Double(short.bytes), unit: "bytes/pull"
            )
        )
        report.notes.append(
            "growth: a pull of the last \(Self.delta) changes (\(backend.backend == .sqlite ? "SQLiteBackend" : "PostgresBackend"), coalesced page, encoded in the binary codec and deflated) with a history of \(large) changes (value) against \(small) (baseline); ratio 1.0 is flat; per_tx holds the long history; median of \(backend.backend == .sqlite ? options.repeats : max(options.repeats, 15)) pulls\(backend.backend == .sqlite ? "" : ", the two histories' pulls alternating, tables ANALYZEd")"
        )
        return report
    }

    /// Builds a history of `history` changes (one record each, in batches of 5,000), then times
    /// pulls of the last `delta` of them.
    static func measure(history: Int, backend: any ServerBackend, repeats: Int) async throws -> (pullsPerSecond: Double, bytes: Int) {
        try await build(history: history, backend: backend)
        var rates: [Double] = []
        var bytes = 0
        for _ in 0..<max(repeats, 1) {
            let pulled = try await pull(history: history, backend: backend)
            bytes = pulled.bytes
            rates.append(pulled.rate)
        }
        return (rates.sorted()[rates.count / 2], bytes)
    }

    static let namespace = try! Namespace("growth")

    /// A history of `history` changes, one record each, in batches of 5,000.
    static func build(history: Int, backend: any ServerBackend) async throws {
        let collection = try CollectionName("items")
        let now = WallClock.nowMillis()
        var written = 0
        while written < history {
            let count = min(5_000, history - written)
            var changes: [Change] = []
            changes.reserveCapacity(count)
            for index in written..<(written + count) {
                let id = EventID(high: (now + UInt64(index)) << 16 | 0x7000, low: 0x8000_0000_0000_0000 | UInt64(index))
                let fields: [String: Value] = ["title": .string("item \(index)"), "n": .int(Int64(index)), "done": .bool(index % 2 == 0)]
                let hlc = HLC(packed: now << 16 | UInt64(index & 0xFFFF), node: 5)
                changes.append(
                    Change(id: id, collection: collection, record: try RecordID("item-\(index)"), operation: .upsert, fields: fields, hlc: hlc, base: 0)
                )
            }
            _ = try await backend.applyValidated(ChangeBatch(changes: changes), namespace: namespace)
            written += count
        }
    }

    /// One timed pull of the last `delta` changes: pulls/s and the page's encoded bytes.
    static func pull(history: Int, backend: any ServerBackend) async throws -> (rate: Double, bytes: Int) {
        let cursor = UInt64(history - delta)
        var page: PullPage?
        let rate = try await measureAsync(operations: 1) {
            page = try await backend.pull(
                namespace: namespace, after: cursor, from: cursor, limit: delta, collections: nil, epoch: nil, configuration: .init()
            )
        }
        guard let page, page.changes.count == delta else { throw SyncError(.invalidPage, "the delta pull returned \(page?.changes.count ?? 0) entries") }
        return (rate, try WireCodec(format: .binary).encode(page).bytes.count)
    }
}
