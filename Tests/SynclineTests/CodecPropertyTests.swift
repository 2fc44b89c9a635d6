import Syncline
import SynclineTesting
import Testing

/// encode → decode is the identity, for random documents, in both codecs.
@Suite("Codec round trips")
struct CodecPropertyTests {
    static let seeds: [UInt64] = [1, 2, 3, 4, 5]

    @Test(arguments: seeds)
    func binaryRoundTrips(seed: UInt64) throws {
        var model = RandomModel(seed: seed)
        // Values may hold NaN and infinities in binary; they compare bit by bit.
        var wild = RandomModel(seed: seed &+ 1_000, finiteDoublesOnly: false)
        for round in 0..<500 {
            let batch = model.changeBatch()
            #expect(try BinaryCodec.decodeChangeBatch(BinaryCodec.encode(batch)) == batch, "seed \(seed) round \(round)")
            let page = model.pullPage()
            #expect(try BinaryCodec.decodePullPage(BinaryCodec.encode(page)) == page, "seed \(seed) round \(round)")
            let response = model.pushResponse()
            #expect(try BinaryCodec.decodePushResponse(BinaryCodec.encode(response)) == response, "seed \(seed) round \(round)")
            let value = wild.value()
            var writer = BinaryWriter()
            writer.write(value)
            var reader = BinaryReader(writer.bytes)
            let back = try reader.readValue()
            #expect(back.bitwiseEqual(value), "seed \(seed) round \(round)")
        }
    }

    @Test(arguments: seeds)
    func jsonRoundTrips(seed: UInt64) throws {
        var model = RandomModel(seed: seed)
        for round in 0..<500 {
            let batch = model.changeBatch()
            #expect(try JSONCodec.decodeChangeBatch(JSONCodec.encode(batch)) == batch, "seed \(seed) round \(round)")
            let page = model.pullPage()
            #expect(try JSONCodec.decodePullPage(JSONCodec.encode(page)) == page, "seed \(seed) round \(round)")
            let response = model.pushResponse()
            #expect(try JSONCodec.decodePushResponse(JSONCodec.encode(response)) == response, "seed \(seed) round \(round)")
            let value = model.value()
            #expect(try JSONCodec.decodeValue(JSONCodec.encode(value)).bitwiseEqual(value), "seed \(seed) round \(round)")
        }
    }

    @Test func storeDocumentsRoundTrip() throws {
        var model = RandomModel(seed: 11)
        for _ in 0..<500 {
            let record = RecordState(
                collection: model.collection(), id: model.recordID(), fields: model.fieldStates(), seq: model.random.next() >> 3,
                tombstone: model.chance(0.3) ? model.hlc() : nil, pendingFields: model.fieldStates(),
                pendingDelete: model.chance(0.3) ? model.hlc() : nil, conflicted: model.chance(0.5),
                ownWrites: model.chance(0.5)
                    ? Dictionary((0..<model.int(1...3)).map { _ in (model.hlc(), OwnWrite(id: model.eventID(), seq: model.random.next() >> 3)) }) { a, _ in a }
                    : [:],
                lostWrites: model.chance(0.3)
                    ? Dictionary((0..<model.int(1...2)).map { _ in (model.hlc(), (0..<model.int(0...3)).map { _ in model.key() }) }) { a, _ in a }
                    : [:]
            )
            #expect(try BinaryCodec.decodeRecordState(BinaryCodec.encode(record)) == record)
            let entry = OutboxEntry(
                position: model.random.next(), priority: Priority.allCases[model.int(0...2)], change: model.change(),
                sent: model.chance(0.5)
            )
            #expect(try BinaryCodec.decodeOutboxEntry(BinaryCodec.encode(entry)) == entry)
            let index = try BinaryCodec.decodeOutboxEntryIndex(BinaryCodec.encode(entry))
            #expect(index.position == entry.position && index.priority == entry.priority && index.key == entry.change.key)
            let conflict = StoredConflict(
                id: model.eventID(), collection: model.collection(), record: model.recordID(), fieldNames: ["a", "b"],
                local: model.fields(), server: model.fieldStates(), detected: model.hlc()
            )
            #expect(try BinaryCodec.decodeStoredConflict(BinaryCodec.encode(conflict)) == conflict)
        }
    }

    /// Group commit stores a new record and its first change from fields encoded beforehand on the
    /// writer's task: those bytes must be exactly what the codec writes for the same documents.
    @Test func fieldsEncodedAheadMatchTheCodec() throws {
        var model = RandomModel(seed: 12)
        for round in 0..<500 {
            // Tried: random field sets (0 to 5 fields of every value kind, nested ones included).
            let fields = model.fields()
            let key = RecordKey(collection: model.collection(), id: model.recordID())
            let hlc = model.hlc()
            let encoded = EncodedFields(fields)
            let record = RecordState(
                collection: key.collection, id: key.id, pendingFields: fields.mapValues { FieldState(value: $0, hlc: hlc, seq: 0) }
            )
            let recordBytes = BinaryCodec.encodeNewRecord(key, fields: encoded, hlc: hlc)
            #expect(recordBytes == BinaryCodec.encode(record), "round \(round)")
            #expect(try BinaryCodec.decodeRecordState(recordBytes) == record, "round \(round)")
            let change = Change(
                id: model.eventID(), collection: key.collection, record: key.id, operation: .upsert, fields: fields, hlc: hlc,
                base: 0, mode: [.lww, .reject, .force][round % 3]
            )
            let entry = OutboxEntry(position: model.random.next() >> UInt64(round % 64), priority: Priority.allCases[round % 3], change: change)
            let entryBytes = BinaryCodec.encode(entry, fields: encoded)
            #expect(entryBytes == BinaryCodec.encode(entry), "round \(round)")
            #expect(try BinaryCodec.decodeOutboxEntry(entryBytes) == entry, "round \(round)")
        }
    }
}

extension Value {
    /// Equality that also tells -0.0 from 0.0 and matches NaN with NaN of the same bits.
    func bitwiseEqual(_ other: Value) -> Bool {
        switch (self, other) {
        case (.double(let a), .double(let b)): return a.bitPattern == b.bitPattern
        case (.array(let a), .array(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.bitwiseEqual($1) }
        case (.object(let a), .object(let b)):
            return a.count == b.count && a.allSatisfy { key, value in b[key].map { value.bitwiseEqual($0) } ?? false }
        default: return self == other
        }
    }
}
