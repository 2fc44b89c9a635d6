/// What a change does to its record.
public enum ChangeOperation: String, Hashable, Sendable {
    case upsert
    case delete
}

/// How the server treats a field that another device wrote after this change's `base` (DESIGN §4).
public enum ConflictMode: String, Hashable, Sendable {
    /// Keep the greater `(hlc, node)` per field.
    case lww
    /// Keep the server's value, reject the field, return the current values.
    case reject
    /// Take the incoming value.
    case force
}

/// A delta from a device to the server: only the fields that changed.
public struct Change: Hashable, Sendable {
    /// Makes the push idempotent.
    public var id: EventID
    public var collection: CollectionName
    public var record: RecordID
    public var operation: ChangeOperation
    /// The changed fields (empty for a delete).
    public var fields: [String: Value]
    public var hlc: HLC
    /// The server seq of the record the device had seen when it made the edit (0 for a new record).
    public var base: UInt64
    public var mode: ConflictMode

    public init(
        id: EventID,
        collection: CollectionName,
        record: RecordID,
        operation: ChangeOperation,
        fields: [String: Value] = [:],
        hlc: HLC,
        base: UInt64,
        mode: ConflictMode = .lww
    ) {
        self.id = id
        self.collection = collection
        self.record = record
        self.operation = operation
        self.fields = operation == .delete ? [:] : fields
        self.hlc = hlc
        self.base = base
        self.mode = mode
    }

    /// The record this change is about.
    public var key: RecordKey { RecordKey(collection: collection, id: record) }

    /// Checks field names, values and sizes against `limits`.
    /// - Throws: ``SyncError`` naming the offending field: `.invalidFieldName`, `.invalidValue`,
    ///   `.fieldTooLarge` or `.recordTooLarge`.
    public func validate(_ limits: Limits = .default) throws(SyncError) {
        try limits.validate(fields: fields, record: key)
    }

    /// Folds a newer, not yet sent change to the same record into this one, as the outbox does.
    ///
    /// - upsert + upsert: one upsert; per field the newer value wins.
    /// - upsert or delete + delete: the delete.
    /// - delete + upsert: `nil`, the two stay separate (a re-creation must follow the delete).
    ///
    /// The result carries the newer change's id, HLC and mode and the older change's `base`, so the
    /// server checks for concurrent edits since the first of the two.
    public func coalescing(_ newer: Change) -> Change? {
        guard newer.collection == collection, newer.record == record else { return nil }
        switch (operation, newer.operation) {
        case (.delete, .upsert):
            return nil
        case (_, .delete):
            var result = newer
            result.base = min(base, newer.base)
            return result
        case (.upsert, .upsert):
            var result = newer
            result.fields = fields.merging(newer.fields) { _, latest in latest }
            result.base = min(base, newer.base)
            return result
        }
    }
}

/// A record's address: collection and id.
public struct RecordKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var collection: CollectionName
    public var id: RecordID

    public init(collection: CollectionName, id: RecordID) {
        self.collection = collection
        self.id = id
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.collection, lhs.id) < (rhs.collection, rhs.id) }
    public var description: String { "\(collection)/\(id)" }
}

/// A field as the server last confirmed it: its value, the HLC of the write, and the server seq
/// that wrote it.
public struct FieldState: Hashable, Sendable {
    public var value: Value
    public var hlc: HLC
    /// The server seq that wrote the field; 0 for a local write not yet confirmed.
    public var seq: UInt64

    public init(value: Value, hlc: HLC, seq: UInt64) {
        self.value = value
        self.hlc = hlc
        self.seq = seq
    }
}

/// A record as a device holds it: the last confirmed server state plus the device's own edits not
/// yet acknowledged (optimistic local state, DESIGN §4).
public struct RecordState: Hashable, Sendable {
    public var collection: CollectionName
    public var id: RecordID
    /// Confirmed fields, as the server has them.
    public var fields: [String: FieldState]
    /// The highest server seq known for this record: the `base` of the next edit.
    public var seq: UInt64
    /// The HLC of the confirmed deletion, when the record is a tombstone.
    public var tombstone: HLC?
    /// Local field writes not yet acknowledged (their `seq` is 0).
    public var pendingFields: [String: FieldState]
    /// The HLC of a local delete not yet acknowledged.
    public var pendingDelete: HLC?
    /// Set while the record has an unresolved `manual` conflict.
    public var conflicted: Bool
    /// This device's writes among the confirmed ones (`fields` and `tombstone`), by HLC: when a
    /// concurrent write replaces one later, the pull that says so (``SupersededWrite``) names the
    /// change in the conflict report.
    public var ownWrites: [HLC: OwnWrite]
    /// This device's sent writes that a pull said were replaced before their acknowledgement
    /// came (the acknowledgement was lost), with the fields they lost: reported with the
    /// acknowledgement, which names the change.
    public var lostWrites: [HLC: [String]]

    public init(
        collection: CollectionName,
        id: RecordID,
        fields: [String: FieldState] = [:],
        seq: UInt64 = 0,
        tombstone: HLC? = nil,
        pendingFields: [String: FieldState] = [:],
        pendingDelete: HLC? = nil,
        conflicted: Bool = false,
        ownWrites: [HLC: OwnWrite] = [:],
        lostWrites: [HLC: [String]] = [:]
    ) {
        self.collection = collection
        self.id = id
        self.fields = fields
        self.seq = seq
        self.tombstone = tombstone
        self.pendingFields = pendingFields
        self.pendingDelete = pendingDelete
        self.conflicted = conflicted
        self.ownWrites = ownWrites
        self.lostWrites = lostWrites
    }

    public var key: RecordKey { RecordKey(collection: collection, id: id) }

    /// Whether the app sees the record as deleted: a pending local delete, or a confirmed tombstone
    /// with no later local write.
    public var isDeleted: Bool {
        if pendingDelete != nil { return true }
        return tombstone != nil && pendingFields.isEmpty
    }

    /// Forgets own writes no confirmed field or tombstone holds any more.
    mutating func pruneOwnWrites() {
        guard !ownWrites.isEmpty else { return }
        var held = Set(fields.values.map(\.hlc))
        if let tombstone { held.insert(tombstone) }
        ownWrites = ownWrites.filter { held.contains($0.key) }
    }

    /// The values the app sees: confirmed fields overlaid by pending local writes; empty when deleted.
    public var visibleFields: [String: Value] {
        if isDeleted { return [:] }
        var result = [String: Value](minimumCapacity: fields.count + pendingFields.count)
        if tombstone == nil {
            for (name, state) in fields { result[name] = state.value }
        }
        for (name, state) in pendingFields { result[name] = state.value }
        return result
    }
}

/// A write of this device that the server confirmed: its change and the seq it was applied at.
public struct OwnWrite: Hashable, Sendable {
    public var id: EventID
    public var seq: UInt64

    public init(id: EventID, seq: UInt64) {
        self.id = id
        self.seq = seq
    }
}

/// Outbox priority: `high` drains before `normal`, `normal` before `low`.
public enum Priority: UInt8, Hashable, Comparable, Sendable, CaseIterable {
    case high = 0
    case normal = 1
    case low = 2

    /// `high > normal > low`.
    public static func < (lhs: Priority, rhs: Priority) -> Bool { lhs.rawValue > rhs.rawValue }
}

/// A change waiting in the durable outbox.
public struct OutboxEntry: Hashable, Sendable {
    /// The entry's place in the outbox: increases with every enqueue (a local number, never a
    /// server seq).
    public var position: UInt64
    public var priority: Priority
    public var change: Change
    /// Set once the entry has been handed to a transport. A sent entry is never coalesced into,
    /// because the server may already have applied its event id.
    public var sent: Bool

    public init(position: UInt64, priority: Priority, change: Change, sent: Bool = false) {
        self.position = position
        self.priority = priority
        self.change = change
        self.sent = sent
    }
}

/// A conflict kept for the app to resolve later (the `manual` policy).
public struct StoredConflict: Hashable, Sendable {
    public var id: EventID
    public var collection: CollectionName
    public var record: RecordID
    /// The names of the fields in conflict.
    public var fieldNames: [String]
    /// What this device wrote.
    public var local: [String: Value]
    /// What the server holds.
    public var server: [String: FieldState]
    /// When the conflict was detected.
    public var detected: HLC

    public init(
        id: EventID,
        collection: CollectionName,
        record: RecordID,
        fieldNames: [String],
        local: [String: Value],
        server: [String: FieldState],
        detected: HLC
    ) {
        self.id = id
        self.collection = collection
        self.record = record
        self.fieldNames = fieldNames
        self.local = local
        self.server = server
        self.detected = detected
    }

    public var key: RecordKey { RecordKey(collection: collection, id: record) }
}
