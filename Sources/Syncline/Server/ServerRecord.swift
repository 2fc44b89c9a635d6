/// A record as the server holds it: the authority every device converges to.
public struct ServerRecord: Hashable, Sendable {
    public var collection: CollectionName
    public var id: RecordID
    /// Live fields with the HLC and seq of the write that set them.
    public var fields: [String: FieldState]
    /// Set while the record is deleted.
    public var deleted: Bool
    /// The HLC of the last delete (kept after a revival, as the bar later concurrent writes must pass).
    public var tombstone: HLC?
    /// The seq of the last delete; 0 when never deleted. Fields older than it are gone.
    public var deletedSeq: UInt64
    /// The highest seq that touched the record.
    public var seq: UInt64
    /// Applied writes that concurrent ones replaced, oldest first, at most
    /// ``SupersededWrite/keptPerRecord``.
    public var superseded: [SupersededWrite]

    public init(
        collection: CollectionName, id: RecordID, fields: [String: FieldState] = [:], deleted: Bool = false,
        tombstone: HLC? = nil, deletedSeq: UInt64 = 0, seq: UInt64 = 0, superseded: [SupersededWrite] = []
    ) {
        self.collection = collection
        self.id = id
        self.fields = fields
        self.deleted = deleted
        self.tombstone = tombstone
        self.deletedSeq = deletedSeq
        self.seq = seq
        self.superseded = superseded
    }

    public var key: RecordKey { RecordKey(collection: collection, id: id) }

    /// The pull entry for a device whose cursor is `cursor`: only what changed after it.
    ///
    /// When the record was deleted after the cursor, the device's copy may hold fields that are
    /// gone: a live record is then sent whole with ``RemoteChange/reset`` set, so the device
    /// replaces its copy instead of merging into it.
    ///
    /// The entry also carries the writes that concurrent ones replaced after the cursor, so the
    /// devices that made them learn they lost (see ``SupersededWrite``).
    public func remoteChange(after cursor: UInt64) -> RemoteChange {
        let replaced = superseded.isEmpty ? [] : superseded.filter { $0.seq > cursor }
        if deleted {
            return RemoteChange(seq: seq, collection: collection, record: id, deleted: true, hlc: tombstone, superseded: replaced)
        }
        let reset = deletedSeq > cursor
        let changed = reset ? fields : fields.filter { $0.value.seq > cursor }
        return RemoteChange(
            seq: seq, collection: collection, record: id, deleted: false, fields: changed, reset: reset, superseded: replaced
        )
    }

    /// Remembers writes a concurrent one replaced, keeping the newest
    /// ``SupersededWrite/keptPerRecord``.
    mutating func remember(_ replaced: [SupersededWrite]) {
        guard !replaced.isEmpty else { return }
        superseded.append(contentsOf: replaced)
        if superseded.count > SupersededWrite.keptPerRecord {
            superseded.removeFirst(superseded.count - SupersededWrite.keptPerRecord)
        }
    }
}
