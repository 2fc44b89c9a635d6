import Syncline
import SynclineTesting
import Testing

/// The device side of namespace epochs (DESIGN §5): the epoch is stored with the cursor in every
/// store, and a server that was fenced (restored from a backup) makes the device resync from a
/// snapshot while it keeps and sends its unsent changes.
@Suite("Epoch resync", .timeLimit(.minutes(1)))
struct EpochResyncTests {
    @Test(arguments: StoreKind.allCases)
    func theEpochIsStoredWithTheCursorAndSurvivesAReopen(_ kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let epoch = Epoch(rawValue: 0x0123_4567_89AB_CDEF)
        var store = try fixture.open()
        #expect(try store.read { try $0.pullEpoch() } == nil, "a new store knows no epoch")
        try store.write { tx in
            try tx.setPullCursor(42)
            try tx.setPullEpoch(epoch)
        }
        store.close()
        store = try fixture.open()
        #expect(try store.read { tx in try tx.pullEpoch() } == epoch)
        #expect(try store.read { tx in try tx.pullCursor() } == 42)
        // Tried: a stored epoch of the wrong length is a typed error, not a guess.
        try store.write { tx in try tx.setMetadata("syncline.epoch", [1, 2, 3]) }
        #expect(throws: SyncError.self) { try store.read { tx in try tx.pullEpoch() } }
        try store.write { tx in try tx.setPullEpoch(nil) }
        #expect(try store.read { tx in try tx.pullEpoch() } == nil)
        store.close()
    }

    @Test(arguments: StoreKind.allCases)
    func aFencedServerMakesTheDeviceResyncAndKeepItsUnsentChanges(_ kind: StoreKind) async throws {
        let harness = Harness()
        let (alice, _, _) = try harness.device(kind)
        let (bob, _, _) = try harness.device(kind)
        try await alice.upsert(Sample.key("r1"), fields: ["title": "one"])
        try await alice.upsert(Sample.key("r2"), fields: ["title": "two"])
        try await alice.sync()
        try await bob.sync()
        let before = try #require(try await bob.pullEpoch())
        #expect(before == (await harness.server.epoch(namespace: harness.namespace)))
        try await bob.upsert(Sample.key("r3"), fields: ["title": "unsent"])
        try await bob.upsert(Sample.key("r1"), fields: ["note": "unsent note"])

        await harness.server.fence()
        // Written after the fence by another device: a device that skipped it would be wrong.
        try await alice.upsert(Sample.key("r4"), fields: ["title": "after fence"])
        try await alice.sync()
        try await bob.sync()
        try await alice.sync()

        let after = await harness.server.epoch(namespace: harness.namespace)
        #expect(after != before)
        let expected: [RecordID: [String: Value]] = [
            Sample.id("r1"): ["title": "one", "note": "unsent note"], Sample.id("r2"): ["title": "two"],
            Sample.id("r3"): ["title": "unsent"], Sample.id("r4"): ["title": "after fence"],
        ]
        let head = await harness.server.head(namespace: harness.namespace)
        for device in [alice, bob] {
            #expect(try await device.visibleRecords(in: Sample.collection()) == expected)
            #expect(try await device.pendingCount() == 0)
            #expect(try await device.pullEpoch() == after)
            #expect(try await device.pullCursor() == head)
        }
        #expect(head > ServerEngine.fenceGap)
    }
}
