/// A write's fields in the binary codec, encoded once on the writer's task, before group commit.
///
/// Encoding is most of the CPU work of storing a new record that is not SQLite's own: done here, the
/// store's single owner (``LocalStore``, which commits for every writer in turn) only copies these
/// bytes into the record and its outbox entry, with the HLC and event id it stamps. The bytes are
/// those `BinaryCodec.encode` writes for the record and the entry (a test holds them equal).
package struct EncodedFields: Sendable {
    /// Each field's name then value, one after the other, in the dictionary's order.
    package let bytes: [UInt8]
    /// Where each field's bytes end.
    package let ends: [Int]

    package init(_ fields: [String: Value]) {
        var writer = BinaryWriter(capacity: fields.count * 48)
        var ends: [Int] = []
        ends.reserveCapacity(fields.count)
        for (name, value) in fields {
            writer.writeString(name)
            writer.write(value)
            ends.append(writer.bytes.count)
        }
        bytes = writer.bytes
        self.ends = ends
    }
}

extension BinaryCodec {
    /// The encoding of a new record whose only state is `fields`, pending at `hlc`: the same bytes
    /// as `encode(RecordState(collection:id:pendingFields:))` with each field at `hlc` and seq 0.
    package static func encodeNewRecord(_ key: RecordKey, fields: EncodedFields, hlc: HLC) -> [UInt8] {
        var writer = header(.recordState, capacity: 24 + key.collection.rawValue.utf8.count + key.id.rawValue.utf8.count + fields.bytes.count + fields.ends.count * 17)
        writer.writeString(key.collection.rawValue)
        writer.writeString(key.id.rawValue)
        writer.writeVarint(0)  // seq
        writer.writeVarint(0)  // no confirmed fields
        writer.writeVarint(UInt64(fields.ends.count))
        fields.bytes.withUnsafeBufferPointer { bytes in
            var start = 0
            for end in fields.ends {
                writer.writeRaw(UnsafeBufferPointer(rebasing: bytes[start..<end]))
                writer.write(hlc)
                writer.writeVarint(0)  // not confirmed
                start = end
            }
        }
        writer.writeByte(0)  // flags: no tombstone, no pending delete, not conflicted
        return writer.bytes
    }

    /// The encoding of an outbox entry whose change's fields are `fields`: the same bytes as
    /// `encode(entry)`.
    package static func encode(_ entry: OutboxEntry, fields: EncodedFields) -> [UInt8] {
        let change = entry.change
        var writer = header(.outboxEntry, capacity: 80 + change.collection.rawValue.utf8.count + change.record.rawValue.utf8.count + fields.bytes.count)
        writer.writeVarint(entry.position)
        writer.writeByte(entry.priority.rawValue)
        writer.writeByte(entry.sent ? 1 : 0)
        writer.writeChangeHeader(change)
        if change.operation == .upsert {
            writer.writeVarint(UInt64(fields.ends.count))
            writer.writeRaw(fields.bytes)
        }
        return writer.bytes
    }
}
