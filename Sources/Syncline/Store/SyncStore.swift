/// How durable a returned write is.
public enum Durability: String, Hashable, Sendable, CaseIterable {
    /// A returned write survives a crash of the app (SQLite WAL with `synchronous=NORMAL`,
    /// LevelDB `sync=false`). The default.
    case app
    /// A returned write survives a power loss (SQLite `synchronous=FULL`, LevelDB `sync=true`):
    /// every commit waits for an fsync.
    case power
}

/// Settings shared by every store.
public struct StoreConfiguration: Hashable, Sendable {
    /// Default `.app`.
    public var durability: Durability
    /// Size limits enforced on every record and outbox entry written. Default ``Limits/default``.
    public var limits: Limits

    public init(durability: Durability = .app, limits: Limits = .default) {
        self.durability = durability
        self.limits = limits
    }
}

/// The device's identity and clock, kept in the store so they survive restarts.
public struct DeviceMetadata: Hashable, Sendable {
    public var deviceID: UInt64
    /// The greatest HLC the device produced or received.
    public var lastHLC: HLC

    public init(deviceID: UInt64, lastHLC: HLC) {
        self.deviceID = deviceID
        self.lastHLC = lastHLC
    }
}

/// A device's local database: records with per-field state, the outbox, the pull cursor, device
/// metadata and unresolved conflicts (DESIGN §3).
///
/// Every access happens in a transaction closure. `write` is atomic: when the closure returns the
/// whole update is committed at the store's ``Durability``; when it throws, nothing it did is
/// visible. Calls are serialized; they block the calling thread for the duration of the
/// transaction, so keep closures short and do not call back into the store from inside one.
///
/// ```swift
/// let store = try SQLiteStore(path: "alice.db")
/// try store.write { tx in
///     try tx.putRecord(record)
///     try tx.enqueue(change, priority: .high)
/// }
/// let pending = try store.read { tx in try tx.outboxCount() }
/// ```
///
/// The transaction object passed to a closure must not escape it.
public protocol SyncStore: AnyObject, Sendable {
    /// Runs `body` against a consistent view of the store.
    /// - Throws: what `body` throws, or ``SyncError`` `.storage` / `.storeClosed`.
    func read<Result: Sendable>(_ body: (any StoreReader) throws -> Result) throws -> Result

    /// Runs `body` as one atomic transaction: all of its writes are committed together when it
    /// returns, none when it throws.
    /// - Throws: what `body` throws, or ``SyncError`` `.storage` / `.storeClosed`.
    func write<Result: Sendable>(_ body: (any StoreWriter) throws -> Result) throws -> Result

    /// Closes the store; later calls throw ``SyncError`` `.storeClosed`. Closing twice is harmless.
    func close()
}

/// What a transaction can read.
public protocol StoreReader {
    /// The limits this store enforces.
    var limits: Limits { get }

    func record(_ key: RecordKey) throws -> RecordState?
    /// The records of one collection, in id order (UTF-8 byte order).
    func records(in collection: CollectionName) throws -> [RecordState]
    /// Every record of every collection (a resync compares them with a snapshot).
    func allRecords() throws -> [RecordState]

    /// Up to `limit` entries in drain order: higher priority first, FIFO within a priority. Two
    /// entries of the same record are always in the order they were made.
    func outbox(limit: Int) throws -> [OutboxEntry]
    /// The same, leaving out the entries at `skipping` (pushed, their answer not applied yet):
    /// up to `limit` others. A store that keeps entries encoded leaves those out undecoded.
    func outbox(limit: Int, skipping: Set<UInt64>) throws -> [OutboxEntry]
    /// The entries of one record, oldest first.
    func outboxEntries(for key: RecordKey) throws -> [OutboxEntry]
    func outboxEntry(position: UInt64) throws -> OutboxEntry?
    func outboxCount() throws -> Int
    /// The binary-encoded size of the queued changes (what their batches carry before
    /// compression), for progress: ``SyncEvent/pushProgress(done:total:bytesDone:bytesTotal:)``.
    func outboxBytes() throws -> Int
    /// The binary-encoded size of the change the entry at `position` carries, when the store
    /// knows it without encoding the change (it keeps the entries encoded); `nil` otherwise.
    func outboxChangeSize(position: UInt64) throws -> Int?

    /// A small named value (device metadata, cursor, settings of higher layers).
    func metadata(_ name: String) throws -> [UInt8]?

    func conflict(_ id: EventID) throws -> StoredConflict?
    /// All unresolved conflicts, in id order.
    func conflicts() throws -> [StoredConflict]
}

/// What a write transaction can do, beyond reading. Higher-level operations (``enqueue(_:priority:)``,
/// the cursor, device metadata) are built on these primitives in one place, so every store behaves
/// the same.
public protocol StoreWriter: StoreReader {
    /// Inserts or replaces a record.
    /// - Throws: ``SyncError`` `.fieldTooLarge` / `.recordTooLarge` naming the field or record.
    func putRecord(_ state: RecordState) throws
    /// Inserts the record only when none has its key; `false` (and nothing written) otherwise.
    /// Lets a store answer "is it new?" and write it in one step.
    func insertRecordIfAbsent(_ state: RecordState) throws -> Bool
    /// The same, when the caller can make the record's binary encoding more cheaply than
    /// `BinaryCodec.encode(state)` (`encoded` makes exactly those bytes). A store that keeps
    /// records encoded calls it; the default never does.
    func insertRecordIfAbsent(_ state: RecordState, encoded: @autoclosure () -> [UInt8]) throws -> Bool
    func removeRecord(_ key: RecordKey) throws

    /// A new outbox position, greater than every position in the outbox.
    func allocateOutboxPosition() throws -> UInt64
    /// Inserts an entry, or replaces the entry with the same `seq` (its priority may change).
    func putOutboxEntry(_ entry: OutboxEntry) throws
    /// The same, with a cheaper way to the entry's binary encoding (exactly the bytes of
    /// `BinaryCodec.encode(entry)`); the default never calls it.
    func putOutboxEntry(_ entry: OutboxEntry, encoded: @autoclosure () -> [UInt8]) throws
    /// Removes entries by position; unknown positions are ignored.
    func removeOutboxEntries(_ seqs: [UInt64]) throws

    /// Sets or (with `nil`) removes a named value.
    func setMetadata(_ name: String, _ value: [UInt8]?) throws

    func putConflict(_ conflict: StoredConflict) throws
    func removeConflict(_ id: EventID) throws
}

extension StoreWriter {
    public func insertRecordIfAbsent(_ state: RecordState, encoded: @autoclosure () -> [UInt8]) throws -> Bool {
        try insertRecordIfAbsent(state)
    }

    public func putOutboxEntry(_ entry: OutboxEntry, encoded: @autoclosure () -> [UInt8]) throws {
        try putOutboxEntry(entry)
    }

    public func insertRecordIfAbsent(_ state: RecordState) throws -> Bool {
        try limits.checkSize(of: state, encodedSize: BinaryCodec.encode(state).count)
        guard try record(state.key) == nil else { return false }
        try putRecord(state)
        return true
    }

    /// Queues a change, coalescing it into the record's last queued entry when that one was never
    /// sent (see ``Change/coalescing(_:)``).
    ///
    /// Per-record order is kept under priorities: when the new change has a higher priority than
    /// earlier entries of the same record, those are promoted to it, so the drain order
    /// (priority, then FIFO) never puts a later change of a record before an earlier one.
    /// - Returns: the entry that now holds the change (new, or the coalesced one).
    /// - Throws: ``SyncError`` `.fieldTooLarge` / `.recordTooLarge` for an oversized change.
    @discardableResult
    public func enqueue(_ change: Change, priority: Priority) throws -> OutboxEntry {
        let existing = try outboxEntries(for: change.key)
        var entry: OutboxEntry
        if let last = existing.last, !last.sent, let merged = last.change.coalescing(change) {
            entry = last
            entry.change = merged
            entry.priority = max(last.priority, priority)
        } else {
            entry = OutboxEntry(position: try allocateOutboxPosition(), priority: priority, change: change)
        }
        try limits.checkSize(of: entry.change)
        for earlier in existing where earlier.position != entry.position && earlier.priority < entry.priority {
            var promoted = earlier
            promoted.priority = entry.priority
            try putOutboxEntry(promoted)
        }
        try putOutboxEntry(entry)
        return entry
    }

    /// Queues the first change of a record that has nothing queued (one just created: records are
    /// never removed, and entries are only written with their record), without looking for
    /// earlier entries to coalesce with or promote.
    /// - Parameter fields: the change's fields, already encoded, when the caller has them.
    package func enqueueFirst(_ change: Change, priority: Priority, fields: EncodedFields? = nil) throws {
        try limits.checkSize(of: change)
        let entry = OutboxEntry(position: try allocateOutboxPosition(), priority: priority, change: change)
        if let fields {
            try putOutboxEntry(entry, encoded: BinaryCodec.encode(entry, fields: fields))
        } else {
            try putOutboxEntry(entry)
        }
    }

    /// Marks entries just read as handed to a transport (as `markSent` of their positions does),
    /// without reading them again.
    public func markSent(_ entries: [OutboxEntry]) throws {
        for var entry in entries where !entry.sent {
            entry.sent = true
            try putOutboxEntry(entry)
        }
    }

    /// Marks entries as handed to a transport, so nothing is coalesced into them any more.
    public func markSent(_ seqs: [UInt64]) throws {
        for seq in seqs {
            guard var entry = try outboxEntry(position: seq), !entry.sent else { continue }
            entry.sent = true
            try putOutboxEntry(entry)
        }
    }

    public func setPullCursor(_ cursor: UInt64) throws {
        var writer = BinaryWriter(capacity: 10)
        writer.writeVarint(cursor)
        try setMetadata(MetadataName.cursor, writer.bytes)
    }

    /// Stores the namespace epoch the pull cursor belongs to (`nil` forgets it); written in the
    /// same transaction as the cursor.
    public func setPullEpoch(_ epoch: Epoch?) throws {
        guard let epoch else { return try setMetadata(MetadataName.epoch, nil) }
        var writer = BinaryWriter(capacity: 8)
        writer.writeFixed64(epoch.rawValue)
        try setMetadata(MetadataName.epoch, writer.bytes)
    }

    public func setDeviceMetadata(_ device: DeviceMetadata) throws {
        var writer = BinaryWriter(capacity: 24)
        writer.writeFixed64(device.deviceID)
        writer.write(device.lastHLC)
        try setMetadata(MetadataName.device, writer.bytes)
    }
}

extension StoreReader {
    public func outboxChangeSize(position: UInt64) throws -> Int? { nil }

    public func outbox(limit: Int, skipping: Set<UInt64>) throws -> [OutboxEntry] {
        Array(try outbox(limit: limit + skipping.count).lazy.filter { !skipping.contains($0.position) }.prefix(limit))
    }

    /// The pull cursor: the server seq up to which remote changes were applied (0 before the first pull).
    public func pullCursor() throws -> UInt64 {
        guard let bytes = try metadata(MetadataName.cursor) else { return 0 }
        var reader = BinaryReader(bytes)
        let cursor = try reader.readVarint()
        try reader.expectEnd()
        return cursor
    }

    /// The namespace epoch the pull cursor belongs to; `nil` before the first pull that told it
    /// (or a store written before epochs).
    public func pullEpoch() throws -> Epoch? {
        guard let bytes = try metadata(MetadataName.epoch) else { return nil }
        var reader = BinaryReader(bytes)
        let value = try reader.readFixed64()
        try reader.expectEnd()
        return Epoch(rawValue: value)
    }

    /// The device's id and clock, or `nil` before they were first set.
    public func deviceMetadata() throws -> DeviceMetadata? {
        guard let bytes = try metadata(MetadataName.device) else { return nil }
        var reader = BinaryReader(bytes)
        let deviceID = try reader.readFixed64()
        let hlc = try reader.readHLC()
        try reader.expectEnd()
        return DeviceMetadata(deviceID: deviceID, lastHLC: hlc)
    }
}

enum MetadataName {
    static let cursor = "syncline.cursor"
    static let epoch = "syncline.epoch"
    static let device = "syncline.device"
}

extension Limits {
    /// Checks a record cheaply: the full per-field check runs only when the encoded size says a
    /// limit may be exceeded, so the common write pays one comparison.
    package func checkSize(of state: RecordState, encodedSize: Int) throws(SyncError) {
        if encodedSize > maxFieldBytes { try validate(state) }
    }

    /// The same for an outbox entry's change.
    package func checkSize(of change: Change) throws(SyncError) {
        var total = 0
        for (_, value) in change.fields {
            total += value.shallowSizeBound
            if total > maxFieldBytes { return try validate(fields: change.fields, record: change.key) }
        }
    }
}

extension Value {
    /// A quick upper bound of the encoded size for scalars; containers report `Int.max / 2` so the
    /// full check runs for them only when needed.
    var shallowSizeBound: Int {
        switch self {
        case .null, .bool: return 1
        case .int, .double: return 11
        case .string(let text): return text.utf8.count + 11
        case .bytes(let data): return data.count + 11
        case .array(let items): return items.isEmpty ? 2 : Int.max / 2
        case .object(let members): return members.isEmpty ? 2 : Int.max / 2
        }
    }
}
