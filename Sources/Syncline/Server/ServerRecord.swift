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

    public init(
        collection: CollectionName, id: RecordID, fields: [String: FieldState] = [:], deleted: Bool = false,
        tombstone: HLC? = nil, deletedSeq: UInt64 = 0, seq: UInt64 = 0
    ) {
        self.collection = collection
        self.id = id
        self.fields = fields
        self.deleted = deleted
        self.tombstone = tombstone
        self.deletedSeq = deletedSeq
        self.seq = seq
    }

    public var key: RecordKey { RecordKey(collection: collection, id: id) }

    /// The pull entry for a device whose cursor is `cursor`: only what changed after it.
    ///
    /// When the record was deleted after the cursor, the device's copy may hold fields that are
    /// gone: a live record is then sent whole with ``RemoteChange/reset`` set, so the device
    /// replaces its copy instead of merging into it.
    public func remoteChange(after cursor: UInt64) -> RemoteChange {
        if deleted {
            return RemoteChange(seq: seq, collection: collection, record: id, deleted: true, hlc: tombstone)
        }
        let reset = deletedSeq > cursor
        let changed = reset ? fields : fields.filter { $0.value.seq > cursor }
        return RemoteChange(seq: seq, collection: collection, record: id, deleted: false, fields: changed, reset: reset)
    }
}
