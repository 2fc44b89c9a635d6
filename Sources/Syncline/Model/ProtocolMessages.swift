/// A batch of changes pushed by a device (`POST /v1/ns/{ns}/push`).
public struct ChangeBatch: Hashable, Sendable {
    public var changes: [Change]
    public init(changes: [Change]) { self.changes = changes }
}

/// One record's entry in a pull page: the fields written after the cursor, or a tombstone.
public struct RemoteChange: Hashable, Sendable {
    /// The highest seq among what the entry carries.
    public var seq: UInt64
    public var collection: CollectionName
    public var record: RecordID
    public var deleted: Bool
    /// For a tombstone, the HLC of the delete.
    public var hlc: HLC?
    public var fields: [String: FieldState]
    /// The record was deleted (and written again) after the cursor: `fields` is the whole live
    /// record and replaces the device's copy. An extension of DESIGN §5.1 (`"reset": true`;
    /// readers that do not know it ignore it, as the contract says).
    public var reset: Bool
    /// Writes that a concurrent write replaced after the cursor, so the devices that made them
    /// learn they lost (see ``SupersededWrite``). An extension of DESIGN §5.1 (`"superseded"`).
    public var superseded: [SupersededWrite]

    public init(
        seq: UInt64,
        collection: CollectionName,
        record: RecordID,
        deleted: Bool,
        hlc: HLC? = nil,
        fields: [String: FieldState] = [:],
        reset: Bool = false,
        superseded: [SupersededWrite] = []
    ) {
        self.seq = seq
        self.collection = collection
        self.record = record
        self.deleted = deleted
        self.hlc = hlc
        self.fields = fields
        self.reset = reset && !deleted
        self.superseded = superseded
    }
}

/// A page of remote changes (`GET /v1/ns/{ns}/changes`).
public struct PullPage: Hashable, Sendable {
    public var changes: [RemoteChange]
    /// What to send as `after` next.
    public var cursor: UInt64
    public var hasMore: Bool
    /// How many entries are still after `cursor` (exact, for progress).
    public var remaining: UInt64
    /// The namespace's head seq when the page was read.
    public var head: UInt64
    /// The namespace's ``Epoch``: the device keeps it with its cursor and sends it with its next
    /// pull. `nil` only from a server older than epochs.
    public var epoch: Epoch?
    /// The server's clock (Unix ms) when it answered, so a device with a wrong clock corrects its
    /// stamps even if it only pulls (an extension of DESIGN §5.1, `"serverTime"`). `nil` from
    /// servers older than it.
    public var serverTime: UInt64?

    public init(
        changes: [RemoteChange], cursor: UInt64, hasMore: Bool, remaining: UInt64, head: UInt64, epoch: Epoch? = nil,
        serverTime: UInt64? = nil
    ) {
        self.changes = changes
        self.cursor = cursor
        self.hasMore = hasMore
        self.remaining = remaining
        self.head = head
        self.epoch = epoch
        self.serverTime = serverTime
    }
}

/// The server's answer to one change of a push.
public enum PushResult: Hashable, Sendable {
    /// Applied at `seq`; `fields` are the resulting field states.
    case applied(id: EventID, seq: UInt64, fields: [String: FieldState])
    /// Already applied before, at `seq`; `fields` are the field states that application produced
    /// (an extension of DESIGN §5.1, so a device whose acknowledgement was lost still learns
    /// whether its write won).
    case duplicate(id: EventID, seq: UInt64, fields: [String: FieldState] = [:])
    /// Not applied: `conflicts` names the concurrent fields, `current` holds the server's values.
    case rejected(id: EventID, conflicts: [String], current: [String: FieldState])

    public var id: EventID {
        switch self {
        case .applied(let id, _, _), .duplicate(let id, _, _), .rejected(let id, _, _): return id
        }
    }
}

/// The server's answer to a push: one result per change, in order.
public struct PushResponse: Hashable, Sendable {
    public var results: [PushResult]
    public var head: UInt64
    /// Server time in Unix milliseconds.
    public var serverTime: UInt64
    /// The namespace's ``Epoch`` (the seqs above belong to it). `nil` only from a server older than epochs.
    public var epoch: Epoch?

    public init(results: [PushResult], head: UInt64, serverTime: UInt64, epoch: Epoch? = nil) {
        self.results = results
        self.head = head
        self.serverTime = serverTime
        self.epoch = epoch
    }
}

extension RemoteChange {
    /// Whether the entry carries only `node`'s own writes (every field, or the delete), reports no
    /// replaced write and is not a reset (which also says the record was deleted meanwhile): the
    /// device that made them knows all of it from its acknowledgements.
    public func carriesOnlyWrites(of node: UInt64) -> Bool {
        guard superseded.isEmpty, !reset else { return false }
        if deleted { return fields.isEmpty && hlc?.node == node }
        return !fields.isEmpty && fields.values.allSatisfy { $0.hlc.node == node }
    }
}

extension PullPage {
    /// Leaves out the entries that carry only `node`'s own writes (DESIGN §5, `device`): a device
    /// is not sent back what it wrote. Paging is unchanged (`cursor`, `hasMore` and `remaining`
    /// are the page's as read), so a page may come back with fewer entries, or none.
    public mutating func leaveOut(writesOf node: UInt64) {
        changes.removeAll { $0.carriesOnlyWrites(of: node) }
    }
}

