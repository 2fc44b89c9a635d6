import Syncline

/// A server record's stored form (its key lives in the row's columns): a version byte, the seqs,
/// a flags byte (1 deleted, 2 a tombstone HLC follows, 4 superseded writes follow the fields),
/// the tombstone, the fields, then the superseded writes. Flag 4 came later within version 1:
/// records stored before it read as having none.
enum ServerRecordCodec {
    static let version: UInt8 = 1

    static func encode(_ record: ServerRecord) -> [UInt8] {
        var writer = BinaryWriter(capacity: 32 + record.fields.count * 64)
        writer.writeByte(version)
        writer.writeVarint(record.seq)
        writer.writeVarint(record.deletedSeq)
        writer.writeByte((record.deleted ? 1 : 0) | (record.tombstone != nil ? 2 : 0) | (record.superseded.isEmpty ? 0 : 4))
        if let tombstone = record.tombstone { writer.write(tombstone) }
        writer.writeFields(record.fields) { $0.write($1) }
        if !record.superseded.isEmpty { writer.write(record.superseded) }
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8], key: RecordKey) throws(SyncError) -> ServerRecord {
        var reader = BinaryReader(bytes)
        let stored = try reader.readByte()
        guard stored == version else {
            throw SyncError(.unsupportedVersion, "record \(key) is stored in version \(stored); this server reads \(version)")
        }
        let seq = try reader.readVarint()
        let deletedSeq = try reader.readVarint()
        let flags = try reader.readByte()
        let tombstone = flags & 2 != 0 ? try reader.readHLC() : nil
        guard flags & ~7 == 0 else { throw SyncError(.malformedInput, "record \(key) has unknown flags \(flags)") }
        let fields = try reader.readFields { (reader: inout BinaryReader) throws(SyncError) in try reader.readFieldState() }
        let superseded = flags & 4 != 0 ? try reader.readSupersededWrites() : []
        return ServerRecord(
            collection: key.collection, id: key.id, fields: fields, deleted: flags & 1 != 0, tombstone: tombstone,
            deletedSeq: deletedSeq, seq: seq, superseded: superseded
        )
    }
}
