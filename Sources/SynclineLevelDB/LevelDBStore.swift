public import Syncline
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A ``SyncStore`` in a LevelDB directory: one `WriteBatch` per ``write(_:)``.
///
/// Keys: `m<name>` metadata, `r<collection>\0<id>` records, `o<priority><seq, 8 bytes big-endian>`
/// the outbox in drain order, `c<event id>` conflicts. The outbox's record index and next position
/// are kept in memory (rebuilt from the `o` keys when the store opens), so a write never reads
/// LevelDB to find a record's queued entries.
///
/// Opening a path that is not a Syncline store (a file, a directory of other files, a LevelDB
/// database of another application) or one written by a newer schema version throws
/// ``SyncError`` `.notASynclineStore` / `.newerSchema` and writes nothing to it.
public final class LevelDBStore: SyncStore {
    /// The schema version this build writes.
    public static let schemaVersion: UInt64 = 1

    public let path: String
    public let configuration: StoreConfiguration
    private let state: Mutex<LevelDBStoreState?>

    /// Opens or creates the store in the directory `path`.
    /// - Throws: ``SyncError`` `.notASynclineStore`, `.newerSchema`, or `.storage` with LevelDB's message.
    public init(path: String, configuration: StoreConfiguration = StoreConfiguration()) throws(SyncError) {
        self.path = path
        self.configuration = configuration
        let isNew = try Self.inspect(path: path)
        let database = try LevelDBDatabase(path: path, createIfMissing: isNew, sync: configuration.durability == .power)
        try Self.checkSchema(database, path: path)
        state = Mutex(try LevelDBStoreState(database: database))
    }

    public func read<Result: Sendable>(_ body: (any StoreReader) throws -> Result) throws -> Result {
        let limits = configuration.limits
        return try state.withLock { state in
            guard let state else { throw SyncError(.storeClosed, "the LevelDB store at \(path) was closed") }
            return try body(LevelDBTransaction(state: state, limits: limits))
        }
    }

    public func write<Result: Sendable>(_ body: (any StoreWriter) throws -> Result) throws -> Result {
        let limits = configuration.limits
        return try state.withLock { state in
            guard let state else { throw SyncError(.storeClosed, "the LevelDB store at \(path) was closed") }
            let transaction = LevelDBTransaction(state: state, limits: limits)
            let result: Result
            do {
                result = try body(transaction)
            } catch {
                transaction.rollBack()
                throw error
            }
            try transaction.commit()
            return result
        }
    }

    public func close() {
        state.withLock { $0 = nil }
    }

    // MARK: Opening

    /// `true` when nothing is at `path` yet or it is an empty directory; throws for anything that
    /// is not a LevelDB directory.
    private static func inspect(path: String) throws(SyncError) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return true }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw SyncError(.notASynclineStore, "\(path) is a file, not a LevelDB directory; it was left untouched")
        }
        var current = stat()
        if stat(path + "/CURRENT", &current) == 0 { return false }
        guard let directory = opendir(path) else {
            throw SyncError(.storage, "cannot list \(path): errno \(errno)", nativeCode: errno)
        }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { buffer in
                String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." {
                throw SyncError(
                    .notASynclineStore,
                    "\(path) holds other files (\(name)) and no LevelDB database; it was left untouched"
                )
            }
        }
        return true
    }

    private static func checkSchema(_ database: LevelDBDatabase, path: String) throws(SyncError) {
        if let bytes = try database.get(LevelDBKey.schema) {
            var reader = BinaryReader(bytes)
            let version = try reader.readVarint()
            if version > schemaVersion {
                throw SyncError(
                    .newerSchema,
                    "\(path) was written by schema version \(version); this build reads up to \(schemaVersion); it was left untouched"
                )
            }
            return
        }
        var isEmpty = true
        do {
            try database.scan(prefix: []) { _, _ in
                isEmpty = false
                return false
            }
        } catch let error as SyncError {
            throw error
        } catch {
            throw SyncError(.storage, "\(error)")
        }
        guard isEmpty else {
            throw SyncError(.notASynclineStore, "\(path) is a LevelDB database of another application; it was left untouched")
        }
        var writer = BinaryWriter()
        writer.writeVarint(schemaVersion)
        let batch = LevelDBWriteBatch()
        batch.put(LevelDBKey.schema, writer.bytes)
        try database.write(batch)
    }
}

/// Key layout.
enum LevelDBKey {
    static let schema: [UInt8] = Array("m\u{0}schema".utf8)
    static let outboxPrefix: [UInt8] = [UInt8(ascii: "o")]
    static let conflictPrefix: [UInt8] = [UInt8(ascii: "c")]

    static func metadata(_ name: String) -> [UInt8] { [UInt8(ascii: "m")] + Array(name.utf8) }

    static func recordPrefix(_ collection: CollectionName) -> [UInt8] {
        var key = [UInt8]()
        key.reserveCapacity(collection.rawValue.utf8.count + 2)
        key.append(UInt8(ascii: "r"))
        key.append(contentsOf: collection.rawValue.utf8)
        key.append(0)
        return key
    }

    static func record(_ key: RecordKey) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(key.collection.rawValue.utf8.count + key.id.rawValue.utf8.count + 2)
        bytes.append(UInt8(ascii: "r"))
        bytes.append(contentsOf: key.collection.rawValue.utf8)
        bytes.append(0)
        bytes.append(contentsOf: key.id.rawValue.utf8)
        return bytes
    }

    static func outbox(priority: Priority, seq: UInt64) -> [UInt8] {
        var key = [UInt8](repeating: 0, count: 10)
        key[0] = UInt8(ascii: "o")
        key[1] = priority.rawValue
        for index in 0..<8 { key[2 + index] = UInt8(truncatingIfNeeded: seq >> (56 - 8 * index)) }
        return key
    }

    static func conflict(_ id: EventID) -> [UInt8] { conflictPrefix + id.bytes }
}

/// The open database and the in-memory outbox index. Only used under ``LevelDBStore``'s lock.
final class LevelDBStoreState {
    let database: LevelDBDatabase
    var index = OutboxIndex()
    /// Reused by every transaction (cleared at its start).
    let batch = LevelDBWriteBatch()

    init(database: LevelDBDatabase) throws(SyncError) {
        self.database = database
        do {
            try database.scan(prefix: LevelDBKey.outboxPrefix) { _, value in
                let entry = try BinaryCodec.decodeOutboxEntryIndex(value)
                index.load(
                    OutboxIndex.Item(
                        seq: entry.position, priority: entry.priority, key: entry.key, bytes: value.count - BinaryCodec.outboxEntryOverhead(seq: entry.position)
                    )
                )
                return true
            }
        } catch let error as SyncError {
            throw error
        } catch {
            throw SyncError(.storage, "\(error)")
        }
    }
}

/// One transaction: writes go to a `WriteBatch`; reads after writes see them through an overlay
/// built only when such a read happens. Outbox index changes are journaled in the store's index
/// and rolled back unless the batch is written.
final class LevelDBTransaction: StoreWriter {
    private let state: LevelDBStoreState
    let limits: Limits
    private var hasWrites = false
    /// This transaction's writes by key, built from the batch only when a read follows a write.
    private var overlay: [[UInt8]: [UInt8]?]?

    init(state: LevelDBStoreState, limits: Limits) {
        self.state = state
        self.limits = limits
        state.batch.clear()
    }

    func commit() throws(SyncError) {
        if hasWrites {
            do {
                try state.database.write(state.batch)
            } catch {
                rollBack()
                throw error
            }
        }
        state.index.commit()
    }

    func rollBack() {
        state.index.rollBack()
        state.batch.clear()
    }

    // MARK: Raw access with the overlay

    private func pendingWrites() -> [[UInt8]: [UInt8]?] {
        if let overlay { return overlay }
        var built = [[UInt8]: [UInt8]?]()
        state.batch.forEach { key, value in built[key] = .some(value) }
        overlay = built
        return built
    }

    private func get(_ key: [UInt8]) throws(SyncError) -> [UInt8]? {
        if hasWrites, let pending = pendingWrites()[key] { return pending }
        return try state.database.get(key)
    }

    private func put(_ key: [UInt8], _ value: [UInt8]) {
        state.batch.put(key, value)
        hasWrites = true
        overlay?[key] = .some(value)
    }

    private func delete(_ key: [UInt8]) {
        state.batch.delete(key)
        hasWrites = true
        overlay?[key] = .some(nil)
    }

    /// Key-ordered values under `prefix`, merging this transaction's writes over the database.
    private func scan(prefix: [UInt8], limit: Int = .max) throws -> [[UInt8]] {
        let pending = !hasWrites
            ? []
            : pendingWrites().filter { $0.key.starts(with: prefix) }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        var result = [[UInt8]]()
        var next = 0
        guard limit > 0 else { return result }
        try state.database.scan(prefix: prefix) { key, value in
            while next < pending.count, pending[next].key.lexicographicallyPrecedes(key) {
                if let value = pending[next].value { result.append(value) }
                next += 1
                if result.count >= limit { return false }
            }
            if next < pending.count, pending[next].key == key {
                if let value = pending[next].value { result.append(value) }
                next += 1
            } else {
                result.append(value)
            }
            return result.count < limit
        }
        while result.count < limit, next < pending.count {
            if let value = pending[next].value { result.append(value) }
            next += 1
        }
        return result
    }

    // MARK: Records

    func record(_ key: RecordKey) throws -> RecordState? {
        try get(LevelDBKey.record(key)).map { bytes throws(SyncError) in try BinaryCodec.decodeRecordState(bytes) }
    }

    func records(in collection: CollectionName) throws -> [RecordState] {
        try scan(prefix: LevelDBKey.recordPrefix(collection)).map { try BinaryCodec.decodeRecordState($0) }
    }

    func allRecords() throws -> [RecordState] {
        try scan(prefix: [UInt8(ascii: "r")]).map { try BinaryCodec.decodeRecordState($0) }
    }

    func putRecord(_ record: RecordState) throws {
        let bytes = BinaryCodec.encode(record)
        try limits.checkSize(of: record, encodedSize: bytes.count)
        put(LevelDBKey.record(record.key), bytes)
    }

    func insertRecordIfAbsent(_ record: RecordState, encoded: @autoclosure () -> [UInt8]) throws -> Bool {
        let bytes = encoded()
        try limits.checkSize(of: record, encodedSize: bytes.count)
        guard try get(LevelDBKey.record(record.key)) == nil else { return false }  // exists: no need to decode it
        put(LevelDBKey.record(record.key), bytes)
        return true
    }

    func removeRecord(_ key: RecordKey) throws {
        delete(LevelDBKey.record(key))
    }

    // MARK: Outbox

    func outbox(limit: Int) throws -> [OutboxEntry] {
        try scan(prefix: LevelDBKey.outboxPrefix, limit: limit).map { try BinaryCodec.decodeOutboxEntry($0) }
    }

    func outbox(limit: Int, skipping: Set<UInt64>) throws -> [OutboxEntry] {
        var result = [OutboxEntry]()
        for bytes in try scan(prefix: LevelDBKey.outboxPrefix, limit: limit + skipping.count) where result.count < limit {
            if skipping.contains(try BinaryCodec.outboxEntryPosition(bytes)) { continue }
            result.append(try BinaryCodec.decodeOutboxEntry(bytes))
        }
        return result
    }

    func outboxEntries(for key: RecordKey) throws -> [OutboxEntry] {
        try state.index.positions(for: key).compactMap { try outboxEntry(position: $0) }
    }

    func outboxEntry(position seq: UInt64) throws -> OutboxEntry? {
        guard let item = state.index.item(seq) else { return nil }
        return try get(LevelDBKey.outbox(priority: item.priority, seq: seq)).map { bytes throws(SyncError) in
            try BinaryCodec.decodeOutboxEntry(bytes)
        }
    }

    func outboxCount() throws -> Int { state.index.count }

    func outboxBytes() throws -> Int { state.index.bytes }
    func outboxChangeSize(position: UInt64) throws -> Int? { state.index.item(position)?.bytes }

    func allocateOutboxPosition() throws -> UInt64 { state.index.allocate() }

    func putOutboxEntry(_ entry: OutboxEntry) throws {
        try putOutboxEntry(entry, encoded: BinaryCodec.encode(entry))
    }

    func putOutboxEntry(_ entry: OutboxEntry, encoded: @autoclosure () -> [UInt8]) throws {
        let bytes = encoded()
        let old = state.index.set(
            OutboxIndex.Item(
                seq: entry.position, priority: entry.priority, key: entry.change.key, bytes: bytes.count - BinaryCodec.outboxEntryOverhead(seq: entry.position)
            )
        )
        if let old, old.priority != entry.priority {
            delete(LevelDBKey.outbox(priority: old.priority, seq: entry.position))
        }
        put(LevelDBKey.outbox(priority: entry.priority, seq: entry.position), bytes)
    }

    func removeOutboxEntries(_ seqs: [UInt64]) throws {
        for seq in seqs {
            guard let item = state.index.item(seq) else { continue }
            delete(LevelDBKey.outbox(priority: item.priority, seq: seq))
            state.index.remove(seq: seq)
        }
    }

    // MARK: Metadata and conflicts

    func metadata(_ name: String) throws -> [UInt8]? { try get(LevelDBKey.metadata(name)) }

    func setMetadata(_ name: String, _ value: [UInt8]?) throws {
        if let value { put(LevelDBKey.metadata(name), value) } else { delete(LevelDBKey.metadata(name)) }
    }

    func conflict(_ id: EventID) throws -> StoredConflict? {
        try get(LevelDBKey.conflict(id)).map { bytes throws(SyncError) in try BinaryCodec.decodeStoredConflict(bytes) }
    }

    func conflicts() throws -> [StoredConflict] {
        try scan(prefix: LevelDBKey.conflictPrefix).map { try BinaryCodec.decodeStoredConflict($0) }
    }

    func putConflict(_ conflict: StoredConflict) throws {
        put(LevelDBKey.conflict(conflict.id), BinaryCodec.encode(conflict))
    }

    func removeConflict(_ id: EventID) throws {
        delete(LevelDBKey.conflict(id))
    }
}
