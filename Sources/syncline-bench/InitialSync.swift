import Foundation
import Logging
import Syncline
import SynclineNetwork
import SynclineSQLite
import SynclineServer

/// A new device joining a namespace of N records: what `initial_sync` and `initial_sync_rss`
/// measure. The server runs in this process on a SQLite backend filled beforehand; the device is
/// a `SyncClient` on a new SQLite store over `RESTTransport` (binary, deflate), pulling pages of
/// 1,000 until it has all N.
enum InitialSync {
    struct Measurement {
        /// Records per second of the device's first `sync()`.
        var rate: Double
        /// Peak resident memory during the sync minus the resident memory before it (bytes).
        var peakGrowth: Int
        /// Whether the kernel's peak was reset before the sync (otherwise the peak may be older).
        var peakReset: Bool
    }

    static let token = "bench"

    static func measure(records: Int, root: URL, run: Int) async throws -> Measurement {
        let backend = try SQLiteBackend(path: root.appendingPathComponent("initial-server-\(run).sqlite").path)
        let namespace = try Namespace("join")
        try await fill(backend, namespace: namespace, records: records)
        var logger = Logger(label: "bench-server")
        logger.logLevel = .error
        let running = try await SyncServer.start(
            backend: backend, configuration: SyncServerConfiguration(tokens: TokenStore([token: ["*"]]), rateLimit: nil), logger: logger
        )
        let transport = RESTTransport(
            url: "http://127.0.0.1:\(running.port)", namespace: namespace, token: { token }, configuration: .init(longPoll: nil)
        )
        let store = try SQLiteStore(path: root.appendingPathComponent("initial-device-\(run).sqlite").path)
        let device = try SyncClient(namespace: namespace, store: store, transport: transport, configuration: .init(pageSize: 1_000))
        let reset = resetPeakMemory()
        let before = residentBytes("VmRSS")
        let rate = try await measureAsync(operations: records) {
            let stats = try await device.sync()
            guard stats.pulled == records else {
                throw SyncError(.invalidPage, "the new device pulled \(stats.pulled) records of \(records)")
            }
        }
        let peak = residentBytes("VmHWM")
        device.close()
        try await running.stop()
        return Measurement(rate: rate, peakGrowth: max(0, peak - before), peakReset: reset)
    }

    /// `records` new records (ascending ids, about 120 bytes each) in batches of 5,000.
    static func fill(_ backend: SQLiteBackend, namespace: Namespace, records: Int) async throws {
        let collection = try CollectionName("todos")
        let now = WallClock.nowMillis()
        var start = 0
        while start < records {
            let end = min(start + 5_000, records)
            var changes: [Change] = []
            changes.reserveCapacity(end - start)
            for index in start..<end {
                let fields: [String: Value] = [
                    "title": .string("Water the plants on the balcony, pot \(index)"), "done": .bool(index % 3 == 0),
                    "priority": .int(Int64(index % 4)), "list": .string("home"),
                ]
                changes.append(
                    Change(
                        id: EventID(high: (now + UInt64(index)) << 16 | 0x7000, low: 0x8000_0000_0000_0000 | UInt64(index)),
                        collection: collection, record: try RecordID(String(format: "r%08d", index)), operation: .upsert, fields: fields,
                        hlc: HLC(packed: now << 16 | UInt64(index & 0xFFFF), node: 5), base: 0
                    )
                )
            }
            _ = try await backend.applyValidated(ChangeBatch(changes: changes), namespace: namespace)
            start = end
        }
    }

    /// Resets the kernel's peak resident size of this process (`VmHWM`), so the next reading is
    /// the peak since now (Linux: writing 5 to `/proc/self/clear_refs`).
    /// - Returns: whether it could (the report says so when not).
    static func resetPeakMemory() -> Bool {
        do {
            try Data("5".utf8).write(to: URL(fileURLWithPath: "/proc/self/clear_refs"))
            return true
        } catch {
            return false
        }
    }

    /// A `/proc/self/status` line in bytes (`VmRSS`, `VmHWM`); 0 where there is none.
    static func residentBytes(_ field: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            let digits = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
            return (digits ?? 0) * 1_024
        }
        return 0
    }
}
