/// Size limits on what a device may store and send. Every store and codec enforces them with a
/// typed error naming the offending value.
public struct Limits: Hashable, Sendable {
    /// The largest encoded value of one field (binary codec bytes). Default 256 KiB.
    public var maxFieldBytes: Int
    /// The largest encoded record or change (all fields together). Default 1 MiB.
    public var maxRecordBytes: Int

    public init(maxFieldBytes: Int = 256 * 1024, maxRecordBytes: Int = 1024 * 1024) {
        self.maxFieldBytes = maxFieldBytes
        self.maxRecordBytes = maxRecordBytes
    }

    public static let `default` = Limits()

    /// Checks each field's name, value and size, and their total.
    public func validate(fields: [String: Value], record: RecordKey) throws(SyncError) {
        var total = 0
        for (name, value) in fields {
            try FieldName.validate(name)
            // Scalars need no structural check, and their size has a cheap exact-enough bound;
            // containers are walked (and encoded) only when present.
            let bound = value.shallowSizeBound
            if bound < Int.max / 2 && bound <= maxFieldBytes {
                total += bound + name.utf8.count
                continue
            }
            try value.validate(path: "\(record).\(name)")
            let size = value.encodedSize
            if size > maxFieldBytes {
                throw SyncError(
                    .fieldTooLarge,
                    "field \"\(name)\" of \(record) is \(size) bytes; the limit is \(maxFieldBytes)", limit: maxFieldBytes
                )
            }
            total += size + name.utf8.count
        }
        if total > maxRecordBytes {
            throw SyncError(.recordTooLarge, "record \(record) is \(total) bytes; the limit is \(maxRecordBytes)", limit: maxRecordBytes)
        }
    }

    /// Checks a record's visible and pending fields.
    public func validate(_ state: RecordState) throws(SyncError) {
        var all = state.fields.mapValues(\.value)
        for (name, pending) in state.pendingFields { all[name] = pending.value }
        try validate(fields: all, record: state.key)
    }
}
