import Syncline

/// A server record's stored form (its key lives in the row's columns).
enum ServerRecordCodec {
    static let version: UInt8 = 1

    static func encode(_ record: ServerRecord) -> [UInt8] {
        var writer = BinaryWriter(capacity: 32 + record.fields.count * 64)
        writer.writeByte(version)
        writer.writeVarint(record.seq)
        writer.writeVarint(record.deletedSeq)
        writer.writeByte((record.deleted ? 1 : 0) | (record.tombstone != nil ? 2 : 0))
        if let tombstone = record.tombstone { writer.write(tombstone) }
        writer.writeFields(record.fields) { $0.write($1) }
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
        let fields = try reader.readFields { (reader: inout BinaryReader) throws(SyncError) in try reader.readFieldState() }
        return ServerRecord(
            collection: key.collection, id: key.id, fields: fields, deleted: flags & 1 != 0, tombstone: tombstone,
            deletedSeq: deletedSeq, seq: seq
        )
    }
}
