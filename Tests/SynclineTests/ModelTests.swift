import Syncline
import SynclineTesting
import Testing

@Suite("HLC and HybridClock")
struct HLCTests {
    @Test func sendRuleFollowsTheWallClockAndCountsWithinAMillisecond() throws {
        var clock = HybridClock(node: 7)
        let first = try clock.now(wallMillis: 1_000)
        let second = try clock.now(wallMillis: 1_000)
        let third = try clock.now(wallMillis: 1_005)
        #expect(first.wallMillis == 1_000 && first.counter == 0)
        #expect(second.wallMillis == 1_000 && second.counter == 1)
        #expect(third.wallMillis == 1_005 && third.counter == 0)
        #expect(first < second && second < third)
        #expect([first, second, third].allSatisfy { $0.node == 7 })
    }

    @Test func staysMonotonicWhenTheWallClockGoesBackwards() throws {
        var clock = HybridClock(node: 1)
        var previous = try clock.now(wallMillis: 50_000)
        // Tried: the wall clock jumping back 10 s, then creeping forward, then back again.
        for wall: UInt64 in [40_000, 40_001, 49_999, 50_000, 30_000, 50_001, 50_001] {
            let next = try clock.now(wallMillis: wall)
            #expect(next > previous, "wall \(wall): \(next) is not after \(previous)")
            previous = next
        }
        #expect(previous.wallMillis == 50_001)
    }

    @Test func receiveRuleAdvancesPastARemoteStamp() throws {
        var local = HybridClock(node: 1)
        _ = try local.now(wallMillis: 1_000)
        // A remote device whose clock is 5 s ahead.
        let remote = try HLC(wallMillis: 6_000, counter: 3, node: 2)
        try local.receive(remote, wallMillis: 1_001)
        let next = try local.now(wallMillis: 1_002)
        #expect(next > remote)
        #expect(next.wallMillis == 6_000 && next.counter == 5)
        // A remote stamp in the past does not move the clock backwards.
        try local.receive(try HLC(wallMillis: 10, counter: 0, node: 3), wallMillis: 1_003)
        #expect(try local.now(wallMillis: 1_003) > next)
        // When the wall clock is ahead of both, it wins with counter 0.
        try local.receive(remote, wallMillis: 9_000)
        #expect(local.last.wallMillis == 9_000 && local.last.counter == 0)
    }

    @Test func counterOverflowCarriesIntoTheMillisecond() throws {
        var clock = HybridClock(node: 1, last: try HLC(wallMillis: 100, counter: .max, node: 1))
        let next = try clock.now(wallMillis: 100)
        #expect(next.wallMillis == 101 && next.counter == 0)
    }

    @Test func totalOrderUsesTheNodeAsTieBreaker() throws {
        let a = try HLC(wallMillis: 5, counter: 1, node: 1)
        let b = try HLC(wallMillis: 5, counter: 1, node: 2)
        let c = try HLC(wallMillis: 5, counter: 2, node: 0)
        #expect(a < b && b < c && a < c)
        #expect(a != b)
        #expect([c, b, a].sorted() == [a, b, c])
    }

    @Test func stringFormRoundTrips() throws {
        let hlc = try HLC(wallMillis: 1_732_300_000_000, counter: 3, node: 0x9F1C_2A7B_3D4E_5F60)
        #expect(hlc.description == "1732300000000.3@9f1c2a7b3d4e5f60")
        #expect(try HLC(parsing: "1732300000000.3@9f1c2a7b3d4e5f60") == hlc)
        var model = RandomModel(seed: 42)
        for _ in 0..<1_000 {
            let random = model.hlc()
            #expect(try HLC(parsing: random.description) == random)
        }
        // Tried: missing parts, non-hex node, short node, counter over 65535, 49-bit time.
        for bad in ["", "1.2", "1.2@", "1@00000000000000ff", "1.2@zz00000000000000", "1.2@ff", "1.65536@00000000000000ff",
            "562949953421312.0@0000000000000001", "-1.0@0000000000000001"]
        {
            #expect(throws: SyncError.self, "\(bad)") { _ = try HLC(parsing: bad) }
        }
        #expect(throws: SyncError.self) { _ = try HLC(wallMillis: HLC.maxWallMillis + 1, counter: 0, node: 0) }
    }
}

@Suite("EventID")
struct EventIDTests {
    @Test func generatesTimeOrderedVersion7IDs() {
        var generator = EventIDGenerator()
        var random = SeededRandom(seed: 9)
        var previous = generator.next(wallMillis: 1_000, using: &random)
        // Tried: 10,000 ids in the same millisecond, then a clock going backwards.
        for step in 0..<10_000 {
            let wall: UInt64 = step < 9_000 ? 1_000 : 900
            let next = generator.next(wallMillis: wall, using: &random)
            #expect(next > previous)
            #expect(next.version == 7)
            #expect(next.low >> 62 == 0b10, "RFC 9562 variant bits")
            previous = next
        }
        let later = generator.next(wallMillis: 5_000, using: &random)
        #expect(later.unixMillis == 5_000)
    }

    @Test func stringAndByteFormsRoundTrip() throws {
        let text = "0193520a-7c1e-7b3f-8d2a-4f0e9c1b2a3d"
        let id = try EventID(parsing: text)
        #expect(id.description == text)
        #expect(try EventID(parsing: text.uppercased()) == id)
        #expect(id.bytes.count == 16)
        #expect(try EventID(bytes: id.bytes) == id)
        #expect(id.version == 7)
        // Tried: wrong length, misplaced dashes, non-hex digits, 15 bytes.
        for bad in ["", "0193520a7c1e7b3f8d2a4f0e9c1b2a3d", "0193520a-7c1e-7b3f-8d2a-4f0e9c1b2a3", "0193520a-7c1e7-b3f-8d2a-4f0e9c1b2a3d",
            "0193520g-7c1e-7b3f-8d2a-4f0e9c1b2a3d"]
        {
            #expect(throws: SyncError.self, "\(bad)") { _ = try EventID(parsing: bad) }
        }
        #expect(throws: SyncError.self) { _ = try EventID(bytes: [UInt8](repeating: 0, count: 15)) }
    }
}

@Suite("Change and RecordState")
struct ChangeTests {
    @Test func coalescingFollowsTheOutboxRules() throws {
        let first = Sample.change(1, record: "r", fields: ["a": 1, "b": 1], base: 5)
        let second = Sample.change(2, record: "r", fields: ["b": 2, "c": 2], base: 9)
        let merged = try #require(first.coalescing(second))
        #expect(merged.fields == ["a": 1, "b": 2, "c": 2])
        #expect(merged.id == second.id && merged.hlc == second.hlc && merged.base == 5)

        let deletion = Sample.change(3, record: "r", .delete, base: 9)
        let deleted = try #require(first.coalescing(deletion))
        #expect(deleted.operation == .delete && deleted.fields.isEmpty && deleted.base == 5)
        #expect(deletion.coalescing(second) == nil, "a re-creation after a delete stays separate")
        #expect(first.coalescing(Sample.change(4, record: "other")) == nil)
    }

    @Test func visibleFieldsOverlayPendingWritesOnConfirmedState() {
        var record = Sample.record("r", fields: ["a": 1, "b": 1])
        record.pendingFields["b"] = FieldState(value: 2, hlc: Sample.hlc(9), seq: 0)
        #expect(record.visibleFields == ["a": 1, "b": 2])
        #expect(!record.isDeleted)
        record.pendingDelete = Sample.hlc(10)
        #expect(record.isDeleted && record.visibleFields.isEmpty)
        record.pendingDelete = nil
        record.tombstone = Sample.hlc(11)
        #expect(!record.isDeleted, "a local write after the tombstone brings the record back")
        #expect(record.visibleFields == ["b": 2])
        record.pendingFields = [:]
        #expect(record.isDeleted)
    }

    @Test func valueValidationRejectsReservedKeysAndDeepNesting() {
        var deep = Value.int(1)
        for _ in 0..<(Value.maxDepth + 1) { deep = .array([deep]) }
        // Tried: 65 nested arrays; an object key "$b" two levels down.
        #expect(throws: SyncError.self) { try deep.validate() }
        #expect(throws: SyncError.self) { try Value.object(["ok": .object(["$b": "x"])]).validate() }
        #expect(throws: Never.self) { try Value.object(["ok": .array([1, 2.5, "s", nil, .bytes([1])])]).validate() }
    }
}
