@testable import SynclineServer
import Syncline
import SynclineTesting
import Testing

/// How the server stores a record (``ServerRecordCodec``): every part survives a round trip, the
/// replaced writes included, and a record stored before they existed still reads.
@Suite("Server record codec")
struct ServerRecordCodecTests {
    @Test func recordsRoundTripWithTheirReplacedWrites() throws {
        var model = RandomModel(seed: 29)
        for _ in 0..<500 {
            let key = RecordKey(collection: model.collection(), id: model.recordID())
            let record = ServerRecord(
                collection: key.collection, id: key.id, fields: model.fieldStates(), deleted: model.chance(0.3),
                tombstone: model.chance(0.4) ? model.hlc() : nil, deletedSeq: model.random.next() >> 3, seq: model.random.next() >> 3,
                superseded: model.chance(0.5) ? (0..<model.int(1...4)).map { _ in model.supersededWrite() } : []
            )
            #expect(try ServerRecordCodec.decode(ServerRecordCodec.encode(record), key: key) == record)
        }
    }

    /// Tried: the bytes of a record as the server wrote it before replaced writes were kept (no
    /// flag 4, nothing after the fields), and a flags byte with an unknown bit.
    @Test func aRecordStoredBeforeReplacedWritesStillReadsAndUnknownFlagsAreRefused() throws {
        let key = Sample.key("t1")
        var writer = BinaryWriter()
        writer.writeByte(1)  // version
        writer.writeVarint(7)  // seq
        writer.writeVarint(0)  // deleted seq
        writer.writeByte(0)  // flags
        let state = FieldState(value: "a", hlc: try HLC(wallMillis: 5, counter: 0, node: 3), seq: 7)
        writer.writeFields(["title": state]) { $0.write($1) }
        let record = try ServerRecordCodec.decode(writer.bytes, key: key)
        #expect(record.fields == ["title": state] && record.seq == 7 && record.superseded.isEmpty)
        var unknown = writer.bytes
        unknown[3] = 8
        let error = #expect(throws: SyncError.self) { try ServerRecordCodec.decode(unknown, key: key) }
        #expect(error?.code == .malformedInput && error?.message.contains("flags") == true)
    }
}
