import Synchronization
import Syncline
import SynclineTesting
import Testing

/// A device with a wrong clock never stalls (issue 12 §9). Before, a change stamped more than
/// 5 minutes ahead of the server stayed queued "until the clocks agree" (a phone a day ahead could
/// not sync for a day), and a phone a day behind lost every last-writer-wins race for edits it made
/// later. Now every answer carries the server's time; the device keeps an offset, stamps with the
/// corrected time, and re-stamps what no one has seen. Tried: device clocks a day ahead and a day
/// behind, with writes made before the device ever heard the server and after.
@Suite("A device with a wrong clock", .timeLimit(.minutes(1)))
struct ClockSkewTests {
    static let day: Int64 = 86_400_000

    static func device(_ harness: Harness, skew: Int64) throws -> SyncClient {
        try SyncClient(
            namespace: harness.namespace, store: InMemoryStore(), transport: InMemoryTransport(server: harness.server, namespace: harness.namespace),
            configuration: .init(wallClock: { UInt64(Int64(WallClock.nowMillis()) + skew) })
        )
    }

    /// The server's stamp of a record's field, in real (server) milliseconds.
    static func stamp(_ harness: Harness, _ key: RecordKey, _ field: String) async throws -> UInt64 {
        let record = try #require(await harness.server.records(namespace: harness.namespace)[key])
        return try #require(record.fields[field]).hlc.wallMillis
    }

    @Test(arguments: [day, -day])
    func writesSyncAtOnceWithTheirRealTime(skew: Int64) async throws {
        let harness = Harness()
        let device = try Self.device(harness, skew: skew)
        let key = Sample.key("t1")
        // Written before the device ever heard the server: stamped by the wrong clock.
        let before = WallClock.nowMillis()
        _ = try await device.upsert(key, fields: ["title": "offline"])
        try await device.sync()
        #expect(try await device.pendingCount() == 0, "synced in the first sync()")
        #expect(try await device.deadLetters().isEmpty)
        let first = try await Self.stamp(harness, key, "title")
        #expect(first >= before - 1_000 && first <= WallClock.nowMillis() + 1_000, "re-stamped to when it was written: \(first) vs \(before)")
        // Written after: stamped with the corrected time.
        _ = try await device.upsert(key, fields: ["title": "online"])
        try await device.sync()
        let second = try await Self.stamp(harness, key, "title")
        #expect(second >= first && second <= WallClock.nowMillis() + 1_000, "\(second)")
        device.close()
    }

    /// A device that had heard the server, whose clock then jumps a day ahead (the user set it):
    /// its next push is refused for skew (nothing of the batch applied), the refusal says the
    /// server's time, and the device re-stamps and sends again in the same `sync()`.
    @Test func aRefusalForSkewIsCorrectedInTheSameSync() async throws {
        let harness = Harness()
        let skew = Atomic<Int64>(0)
        let device = try SyncClient(
            namespace: harness.namespace, store: InMemoryStore(), transport: InMemoryTransport(server: harness.server, namespace: harness.namespace),
            configuration: .init(wallClock: { UInt64(Int64(WallClock.nowMillis()) + skew.load(ordering: .relaxed)) })
        )
        try await device.sync()
        skew.store(Self.day, ordering: .relaxed)
        let key = Sample.key("t1")
        for number in 0..<3 { _ = try await device.upsert(key, fields: ["n": .int(Int64(number))]) }
        // Written at different times, coalesced into one change that carries the newest stamp.
        _ = try await device.upsert(key, fields: ["early": "a"])
        try await Task.sleep(for: .milliseconds(5))
        _ = try await device.upsert(key, fields: ["late": "b"])
        _ = try await device.upsert(Sample.key("t2"), fields: ["n": 9])
        let before = WallClock.nowMillis()
        try await device.sync()
        #expect(try await device.pendingCount() == 0)
        #expect(try await device.deadLetters().isEmpty)
        #expect(await harness.server.records(namespace: harness.namespace)[key]?.fields["n"]?.value == 2, "the last write, in order")
        let stamp = try await Self.stamp(harness, key, "n")
        #expect(stamp <= before + 1_000, "re-stamped to real time: \(stamp) vs \(before)")
        // Every pending write moved with its change: the acknowledgement settled them all.
        let record = try #require(try await device.record(key))
        #expect(record.pendingFields.isEmpty, "nothing left pending: \(record.pendingFields)")
        #expect(try await device.fields(of: key) == ["n": 2, "early": "a", "late": "b"])
        device.close()
    }

    /// The later edit in real time wins, whichever device's clock is wrong and whoever pushes
    /// first; the skewed device's edit was made before it ever heard the server.
    @Test(arguments: [(day, true), (day, false), (-day, true), (-day, false)])
    func lastWriterWinsByRealTime(skew: Int64, skewedEditsLast: Bool) async throws {
        let harness = Harness()
        let skewed = try Self.device(harness, skew: skew)
        let accurate = try Self.device(harness, skew: 0)
        let key = Sample.key("t1")
        _ = try await accurate.upsert(key, fields: ["title": "first"])
        try await accurate.sync()
        if skewedEditsLast {
            _ = try await accurate.upsert(key, fields: ["title": "accurate"])
            try await Task.sleep(for: .milliseconds(20))
            _ = try await skewed.upsert(key, fields: ["title": "skewed"])
        } else {
            _ = try await skewed.upsert(key, fields: ["title": "skewed"])
            try await Task.sleep(for: .milliseconds(20))
            _ = try await accurate.upsert(key, fields: ["title": "accurate"])
        }
        try await skewed.sync()
        try await accurate.sync()
        try await skewed.sync()
        let winner: Value = skewedEditsLast ? "skewed" : "accurate"
        #expect(try await skewed.fields(of: key)?["title"] == winner)
        #expect(try await accurate.fields(of: key)?["title"] == winner)
        #expect(try await skewed.deadLetters().isEmpty)
        #expect(try await skewed.pendingCount() == 0)
        skewed.close()
        accurate.close()
    }
}
