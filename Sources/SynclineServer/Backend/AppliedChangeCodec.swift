import Syncline

/// The stored form of an applied change's result (its seq and resulting fields), kept per event id
/// for idempotency by every backend.
enum AppliedChangeCodec {
    static func encode(_ applied: ServerEngine.AppliedChange) -> [UInt8] {
        var writer = BinaryWriter(capacity: 16 + applied.fields.count * 48)
        writer.writeVarint(applied.seq)
        writer.writeFields(applied.fields) { $0.write($1) }
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(SyncError) -> ServerEngine.AppliedChange {
        var reader = BinaryReader(bytes)
        let seq = try reader.readVarint()
        let fields = try reader.readFields { (reader: inout BinaryReader) throws(SyncError) in try reader.readFieldState() }
        return ServerEngine.AppliedChange(seq: seq, fields: fields)
    }
}
