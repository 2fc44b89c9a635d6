import Syncline
import SynclineTesting
import Foundation
import Testing

/// One suite, run against every store: InMemoryStore, SQLiteStore and LevelDBStore.
@Suite("SyncStore conformance")
struct StoreConformanceTests {
    struct Boom: Error {}

    @Test(arguments: StoreKind.allCases)
    func putThenReadRecord(_ kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        var record = Sample.record("t1", fields: ["title": "Buy milk", "done": false, "n": 3, "blob": .bytes([0, 1, 255])])
        record.pendingFields["done"] = FieldState(value: true, hlc: Sample.hlc(5), seq: 0)
        record.conflicted = true
        try store.write { tx in try tx.putRecord(record) }
        let read = try store.read { tx in try tx.record(record.key) }
        #expect(read == record)
        #expect(read?.visibleFields["done"] == .bool(true))
        let missing = try store.read { tx in try tx.record(Sample.key("nope")) }
        #expect(missing == nil)
    }

    @Test(arguments: StoreKind.allCases)
    func insertIfAbsentNeverOverwrites(_ kind: StoreKind) throws {
        let store = try StoreFixture(kind).open()
        let first = Sample.record("a", fields: ["v": 1])
        let second = Sample.record("a", fields: ["v": 2])
        let results = try store.write { tx in [try tx.insertRecordIfAbsent(first), try tx.insertRecordIfAbsent(second)] }
        #expect(results == [true, false])
        #expect(try store.read { tx in try tx.record(first.key) } == first)
        // Tried: an oversized record: refused with a typed error even though the key is new.
        let huge = Sample.record("b", fields: ["x": .string(String(repeating: "y", count: 300 * 1024))])
        #expect {
            _ = try store.write { tx in try tx.insertRecordIfAbsent(huge) }
        } throws: { error in
            (error as? SyncError)?.code == .fieldTooLarge
        }
        #expect(try store.read { tx in try tx.record(huge.key) } == nil)
    }

    @Test(arguments: StoreKind.allCases)
    func reopenKeepsEverything(_ kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        var store = try fixture.open()
        let records = (0..<20).map { Sample.record("r\($0)", fields: ["n": .int(Int64($0))], seq: UInt64($0 + 1)) }
        var tombstone = Sample.record("gone", fields: [:], seq: 30)
        tombstone.tombstone = Sample.hlc(30)
        let conflict = StoredConflict(
            id: Sample.eventID(99), collection: Sample.collection(), record: Sample.id("r1"), fieldNames: ["n"],
            local: ["n": 5], server: ["n": FieldState(value: 6, hlc: Sample.hlc(7), seq: 9)], detected: Sample.hlc(8)
        )
        let device = DeviceMetadata(deviceID: 0xDEAD_BEEF, lastHLC: Sample.hlc(1234, node: 0xDEAD_BEEF))
        try store.write { tx throws in
            for record in records { try tx.putRecord(record) }
            try tx.putRecord(tombstone)
            try tx.enqueue(Sample.change(1, record: "r1", fields: ["n": 1]), priority: .low)
            try tx.enqueue(Sample.change(2, record: "r2", .delete), priority: .high)
            try tx.setPullCursor(42)
            try tx.setDeviceMetadata(device)
            try tx.putConflict(conflict)
        }
        let outboxBefore = try store.read { tx in try tx.outbox(limit: 10) }
        store.close()
        #expect(throws: SyncError.self) { try store.read { tx in try tx.outboxCount() } }

        store = try fixture.open()
        try store.read { tx throws in
            #expect(try tx.records(in: Sample.collection()).count == 21)
            for record in records { #expect(try tx.record(record.key) == record) }
            #expect(try tx.record(tombstone.key)?.isDeleted == true)
            #expect(try tx.outbox(limit: 10) == outboxBefore)
            #expect(try tx.outbox(limit: 10).map(\.change.id) == [Sample.eventID(2), Sample.eventID(1)])
            #expect(try tx.pullCursor() == 42)
            #expect(try tx.deviceMetadata() == device)
            #expect(try tx.conflicts() == [conflict])
            #expect(try tx.conflict(conflict.id) == conflict)
        }
        // New positions after a reopen still come after the old ones.
        let entry = try store.write { tx in try tx.enqueue(Sample.change(3, record: "r3"), priority: .low) }
        #expect(entry.position > outboxBefore.map(\.position).max()!)
    }

    @Test(arguments: StoreKind.allCases)
    func updateThatThrowsMidwayLeavesNoTrace(_ kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        var store = try fixture.open()
        let keep = Sample.record("keep", fields: ["v": 1])
        let conflict = StoredConflict(
            id: Sample.eventID(5), collection: Sample.collection(), record: Sample.id("keep"), fieldNames: ["v"],
            local: ["v": 2], server: [:], detected: Sample.hlc(1)
        )
        try store.write { tx throws in
            try tx.putRecord(keep)
            try tx.enqueue(Sample.change(1, record: "keep", fields: ["v": 1]), priority: .normal)
            try tx.setPullCursor(7)
            try tx.putConflict(conflict)
        }
        let before = try snapshot(store)

        // Tried: a transaction that touches every kind of data, then throws.
        #expect(throws: Boom.self) {
            try store.write { tx throws in
                try tx.putRecord(Sample.record("new", fields: ["v": 9]))
                try tx.putRecord(Sample.record("keep", fields: ["v": 100]))
                try tx.enqueue(Sample.change(2, record: "keep", fields: ["w": 2]), priority: .high)  // coalesces
                try tx.enqueue(Sample.change(3, record: "other"), priority: .low)
                try tx.markSent([1])
                try tx.setPullCursor(8)
                try tx.setDeviceMetadata(DeviceMetadata(deviceID: 1, lastHLC: Sample.hlc(1)))
                try tx.removeConflict(conflict.id)
                try tx.removeRecord(keep.key)
                throw Boom()
            }
        }
        #expect(try snapshot(store) == before)
        store.close()
        store = try fixture.open()
        #expect(try snapshot(store) == before)

        // An oversized record is refused with a typed error and the transaction leaves nothing.
        let huge = Value.string(String(repeating: "x", count: fixture.configuration.limits.maxFieldBytes + 1))
        #expect {
            try store.write { tx throws in
                try tx.putRecord(Sample.record("ok", fields: ["v": 1]))
                try tx.putRecord(Sample.record("big", fields: ["payload": huge]))
            }
        } throws: { error in
            (error as? SyncError)?.code == .fieldTooLarge && (error as? SyncError)?.message.contains("payload") == true
        }
        #expect(try snapshot(store) == before)
    }

    @Test(arguments: StoreKind.allCases)
    func outboxDrainsByPriorityThenFIFO(_ kind: StoreKind) throws {
        let store = try StoreFixture(kind).open()
        let priorities: [Priority] = [.low, .normal, .high, .normal, .low, .high, .high, .low, .normal]
        try store.write { tx throws in
            for (index, priority) in priorities.enumerated() {
                try tx.enqueue(Sample.change(UInt64(index + 1), record: "r\(index)"), priority: priority)
            }
        }
        let order = try store.read { tx in try tx.outbox(limit: 100) }.map(\.change.record.rawValue)
        #expect(order == ["r2", "r5", "r6", "r1", "r3", "r8", "r0", "r4", "r7"])
        let firstThree = try store.read { tx in try tx.outbox(limit: 3) }.map(\.change.record.rawValue)
        #expect(firstThree == ["r2", "r5", "r6"])
        #expect(try store.read { tx in try tx.outboxCount() } == priorities.count)
    }

    @Test(arguments: StoreKind.allCases)
    func outboxNeverReordersOneRecord(_ kind: StoreKind) throws {
        let store = try StoreFixture(kind).open()
        try store.write { tx throws in
            try tx.enqueue(Sample.change(1, record: "other", fields: ["x": 1]), priority: .normal)
            let first = try tx.enqueue(Sample.change(2, record: "a", fields: ["v": 1]), priority: .low)
            try tx.markSent([first.position])  // in flight: the next change cannot join it
            try tx.enqueue(Sample.change(3, record: "a", fields: ["v": 2]), priority: .high)
            // delete then re-create: never coalesced, the re-creation must follow the delete
            try tx.enqueue(Sample.change(4, record: "b", .delete), priority: .low)
            try tx.enqueue(Sample.change(5, record: "b", fields: ["v": 3]), priority: .high)
        }
        let entries = try store.read { tx in try tx.outbox(limit: 100) }
        #expect(entries.map(\.change.id) == [2, 3, 4, 5, 1].map(Sample.eventID))
        #expect(entries.prefix(4).allSatisfy { $0.priority == .high })
        let forA = try store.read { tx in try tx.outboxEntries(for: Sample.key("a")) }
        #expect(forA.map(\.change.fields) == [["v": 1], ["v": 2]])
        #expect(forA.map(\.sent) == [true, false])
    }

    @Test(arguments: StoreKind.allCases)
    func unsentEntriesAreCoalesced(_ kind: StoreKind) throws {
        let store = try StoreFixture(kind).open()
        let entries = try store.write { tx throws in
            let first = try tx.enqueue(Sample.change(1, record: "a", fields: ["x": 1, "y": 1], base: 4), priority: .low)
            let second = try tx.enqueue(Sample.change(2, record: "a", fields: ["y": 2, "z": 2], base: 6), priority: .normal)
            let deleted = try tx.enqueue(Sample.change(3, record: "b", fields: ["x": 1]), priority: .normal)
            let deletion = try tx.enqueue(Sample.change(4, record: "b", .delete, base: 2), priority: .normal)
            return [first, second, deleted, deletion]
        }
        #expect(entries[1].position == entries[0].position)
        #expect(entries[3].position == entries[2].position)
        try store.read { tx throws in
            #expect(try tx.outboxCount() == 2)
            let a = try #require(try tx.outboxEntries(for: Sample.key("a")).first)
            #expect(a.change.fields == ["x": 1, "y": 2, "z": 2])
            #expect(a.change.id == Sample.eventID(2))
            #expect(a.change.hlc == Sample.change(2, record: "a").hlc)
            #expect(a.change.base == 4)
            #expect(a.priority == .normal)
            let b = try #require(try tx.outboxEntries(for: Sample.key("b")).first)
            #expect(b.change.operation == .delete)
            #expect(b.change.fields.isEmpty)
            #expect(b.change.base == 0)
        }
        // Two enqueues of one record in one transaction see each other (read-your-writes).
        try store.write { tx throws in
            try tx.enqueue(Sample.change(5, record: "c", fields: ["v": 1]), priority: .normal)
            try tx.enqueue(Sample.change(6, record: "c", fields: ["v": 2]), priority: .normal)
            #expect(try tx.outboxEntries(for: Sample.key("c")).count == 1)
            #expect(try tx.outboxCount() == 3)
        }
        // Acknowledged entries are removed; unknown positions are ignored.
        let seqs = try store.read { tx in try tx.outbox(limit: 10).map(\.position) }
        try store.write { tx in try tx.removeOutboxEntries(seqs + [999_999]) }
        #expect(try store.read { tx in try tx.outboxCount() } == 0)
        #expect(try store.read { tx in try tx.outboxEntry(position: seqs[0]) } == nil)
    }

    /// `outbox(limit:skipping:)` (the cut of a batch while the last one's answer is applied) gives
    /// the entries of `outbox(limit:)` without the skipped positions, up to `limit` of the others,
    /// in drain order, on every store: with priorities, skipped entries at the front, in the
    /// middle, and more skipped than the limit.
    @Test(arguments: StoreKind.allCases)
    func outboxSkippingLeavesOutTheGivenPositions(_ kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        let store = try fixture.open()
        try store.write { tx throws in
            for number in 0..<40 {
                let priority: Priority = number % 7 == 0 ? .high : .normal
                try tx.enqueue(Sample.change(UInt64(number + 1), record: "s\(number)", fields: ["n": .int(Int64(number))]), priority: priority)
            }
        }
        try store.read { tx throws in
            let all = try tx.outbox(limit: 100)
            #expect(all.count == 40)
            for (skipped, limit) in [([], 10), (Array(all.prefix(5)), 10), (Array(all[3..<9]) + [all[20]], 15), (Array(all.prefix(30)), 20)] {
                let skipping = Set(skipped.map(\.position))
                let expected = Array(all.filter { !skipping.contains($0.position) }.prefix(limit))
                #expect(try tx.outbox(limit: limit, skipping: skipping) == expected, "skipping \(skipping.count), limit \(limit)")
            }
        }
    }

    /// The outbox's byte total (push progress) is the binary size of its changes, through
    /// enqueues, coalescing, a promotion, an entry marked sent, removals, a rolled-back
    /// transaction and a reopen (positions past 127 take a longer varint).
    @Test(arguments: StoreKind.allCases)
    func outboxBytesFollowTheQueuedChanges(_ kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        var store = try fixture.open()
        func expected(_ tx: any StoreReader) throws -> Int {
            try tx.outbox(limit: 100_000).reduce(0) { total, entry in
                var writer = BinaryWriter()
                writer.write(entry.change)
                return total + writer.bytes.count
            }
        }
        func check(_ what: String) throws {
            try store.read { tx throws in
                #expect(try tx.outboxBytes() == (try expected(tx)), "\(what)")
                // A store that knows each entry's size (the cut of a batch uses it) knows it right.
                for entry in try tx.outbox(limit: 100_000) {
                    var writer = BinaryWriter()
                    writer.write(entry.change)
                    let known = try tx.outboxChangeSize(position: entry.position)
                    #expect(known == nil || known == writer.bytes.count, "\(what): entry \(entry.position) size \(String(describing: known))")
                }
            }
        }
        try check("empty")
        try store.write { tx throws in
            for number in 0..<300 {
                try tx.enqueue(Sample.change(UInt64(number + 1), record: "r\(number % 120)", fields: ["n": .int(Int64(number)), "text": .string(String(repeating: "x", count: number))]), priority: .normal)
            }
        }
        try check("after enqueues, coalesced per record")
        try store.write { tx throws in
            let first = try #require(try tx.outbox(limit: 1).first)
            try tx.enqueue(Sample.change(1_000, record: "r0", fields: ["n": 1]), priority: .high)  // promoted
            try tx.markSent([first.position])
            try tx.markSent(try tx.outbox(limit: 3))  // the form that does not read them again
        }
        try check("after a promotion and sent marks")
        try store.read { tx throws in
            #expect(try tx.outbox(limit: 3).allSatisfy(\.sent), "marked sent, both forms")
        }
        #expect(throws: StoreConformanceTests.Boom.self) {
            try store.write { tx throws in
                try tx.enqueue(Sample.change(2_000, record: "new", fields: ["n": 1]), priority: .low)
                try tx.removeOutboxEntries(try tx.outbox(limit: 10).map(\.position))
                throw StoreConformanceTests.Boom()
            }
        }
        try check("after a rolled-back transaction")
        try store.write { tx throws in try tx.removeOutboxEntries(try tx.outbox(limit: 50).map(\.position)) }
        try check("after removals")
        let before = try store.read { tx in try tx.outboxBytes() }
        #expect(before > 0)
        store.close()
        store = try fixture.open()
        try check("after a reopen")
        #expect(try store.read { tx in try tx.outboxBytes() } == before)
    }

    @Test(arguments: StoreKind.allCases)
    func tenThousandRecordsRoundTrip(_ kind: StoreKind) throws {
        let fixture = try StoreFixture(kind)
        var store = try fixture.open()
        var model = RandomModel(seed: 10_000)
        let records = (0..<10_000).map { index in
            RecordState(
                collection: Sample.collection(), id: Sample.id(String(format: "rec-%05d", index)),
                fields: model.fieldStates(max: 4), seq: UInt64(index + 1)
            )
        }
        for chunk in stride(from: 0, to: records.count, by: 1_000) {
            try store.write { tx throws in
                for record in records[chunk..<(chunk + 1_000)] { try tx.putRecord(record) }
            }
        }
        store.close()
        store = try fixture.open()
        let read = try store.read { tx in try tx.records(in: Sample.collection()) }
        #expect(read.count == records.count)
        #expect(read == records)
    }

    @Test(arguments: StoreKind.allCases)
    func queriesByCollection(_ kind: StoreKind) throws {
        let store = try StoreFixture(kind).open()
        // Collection names that are prefixes of each other must not leak into each other.
        try store.write { tx throws in
            for name in ["a", "a.b", "ab", "b"] {
                for id in ["2", "10", "1", "é"] { try tx.putRecord(Sample.record(id, in: name, fields: ["c": .string(name)])) }
            }
            try tx.removeRecord(Sample.key("10", in: "ab"))
        }
        try store.read { tx throws in
            let a = try tx.records(in: Sample.collection("a"))
            #expect(a.map(\.id.rawValue) == ["1", "10", "2", "é"])
            #expect(a.allSatisfy { $0.fields["c"]?.value == "a" })
            #expect(try tx.records(in: Sample.collection("ab")).map(\.id.rawValue) == ["1", "2", "é"])
            #expect(try tx.records(in: Sample.collection("a.b")).count == 4)
            #expect(try tx.records(in: Sample.collection("zzz")).isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func closedStoreRefusesWork(_ kind: StoreKind) throws {
        let store = try StoreFixture(kind).open()
        store.close()
        store.close()
        #expect {
            try store.write { tx in try tx.putRecord(Sample.record("x", fields: [:])) }
        } throws: { error in
            (error as? SyncError)?.code == .storeClosed
        }
    }

    /// Everything a store holds, for before/after comparisons.
    struct Snapshot: Equatable {
        var records: [RecordState]
        var outbox: [OutboxEntry]
        var cursor: UInt64
        var device: DeviceMetadata?
        var conflicts: [StoredConflict]
        var count: Int
    }

    func snapshot(_ store: any SyncStore) throws -> Snapshot {
        try store.read { tx throws in
            Snapshot(
                records: try tx.records(in: Sample.collection()), outbox: try tx.outbox(limit: 1_000),
                cursor: try tx.pullCursor(), device: try tx.deviceMetadata(), conflicts: try tx.conflicts(),
                count: try tx.outboxCount()
            )
        }
    }
}

extension StoreConformanceTests.Snapshot: Sendable {}
