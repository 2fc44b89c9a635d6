import CSQLite
public import Syncline
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A ``SyncStore`` in one SQLite file, in WAL mode, with prepared statements reused and one
/// transaction per ``write(_:)``.
///
/// ```swift
/// let store = try SQLiteStore(path: "alice.db")                      // durability .app
/// let safe = try SQLiteStore(path: "bob.db", configuration: .init(durability: .power))
/// ```
///
/// Opening a file that is not a Syncline store, or one written by a newer schema version, throws
/// ``SyncError`` `.notASynclineStore` / `.newerSchema` and leaves the file untouched.
public final class SQLiteStore: SyncStore {
    /// The schema version this build writes (`PRAGMA user_version`).
    public static let schemaVersion: Int64 = 2
    /// Marks a file as a Syncline store (`PRAGMA application_id`, "SYNC").
    public static let applicationID: Int64 = 0x5359_4E43

    public let path: String
    public let configuration: StoreConfiguration
    private let connection: Mutex<SQLiteStoreConnection?>

    /// Opens or creates the store at `path`.
    /// - Throws: ``SyncError`` `.notASynclineStore`, `.newerSchema`, or `.storage` with SQLite's code.
    public init(path: String, configuration: StoreConfiguration = StoreConfiguration()) throws(SyncError) {
        self.path = path
        self.configuration = configuration
        try Self.inspectExistingFile(at: path)
        let connection = try SQLiteConnection(path: path, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        try Self.prepare(connection, durability: configuration.durability)
        let store = try SQLiteStoreConnection(connection: connection, limits: configuration.limits)
        self.connection = Mutex(store)
    }

    public func read<Result: Sendable>(_ body: (any StoreReader) throws -> Result) throws -> Result {
        try connection.withLock { store in
            guard let store else { throw SyncError(.storeClosed, "the SQLite store at \(path) was closed") }
            try store.connection.statement("BEGIN DEFERRED").run()
            defer { store.endRead() }
            return try body(store)
        }
    }

    public func write<Result: Sendable>(_ body: (any StoreWriter) throws -> Result) throws -> Result {
        try connection.withLock { store in
            guard let store else { throw SyncError(.storeClosed, "the SQLite store at \(path) was closed") }
            try store.connection.statement("BEGIN IMMEDIATE").run()
            let result: Result
            do {
                result = try body(store)
            } catch {
                store.rollBack()
                throw error
            }
            try store.commit()
            return result
        }
    }

    public func close() {
        connection.withLock { $0 = nil }
    }

    // MARK: Opening

    /// Refuses, without writing to it, a file that is not a Syncline store or has a newer schema.
    private static func inspectExistingFile(at path: String) throws(SyncError) {
        var info = stat()
        guard stat(path, &info) == 0 else { return }  // a new store
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw SyncError(.notASynclineStore, "\(path) is not a regular file, so not a Syncline store")
        }
        guard info.st_size > 0 else { return }  // an empty file is an empty database
        guard let file = fopen(path, "rb") else {
            throw SyncError(.storage, "cannot read \(path): errno \(errno)", nativeCode: errno)
        }
        var header = [UInt8](repeating: 0, count: 16)
        let count = fread(&header, 1, 16, file)
        fclose(file)
        guard count == 16, header == Array("SQLite format 3\0".utf8) else {
            throw SyncError(.notASynclineStore, "\(path) is not a SQLite database, so not a Syncline store; it was left untouched")
        }
        let probe = try SQLiteConnection(path: path, flags: SQLITE_OPEN_READONLY)
        let applicationID = try probe.integer("PRAGMA application_id")
        let version = try probe.integer("PRAGMA user_version")
        let tables = try probe.integer("SELECT count(*) FROM sqlite_master")
        if applicationID == Self.applicationID {
            if version > schemaVersion {
                throw SyncError(
                    .newerSchema,
                    "\(path) was written by schema version \(version); this build reads up to \(schemaVersion); it was left untouched"
                )
            }
        } else if applicationID != 0 || tables > 0 {
            throw SyncError(.notASynclineStore, "\(path) is a SQLite database of another application; it was left untouched")
        }
    }

    /// The tables of schema version 2 (the benchmark's raw baseline creates the same).
    ///
    /// An outbox row's key is its drain position, ``outboxPosition(priority:seq:)``, so the
    /// table alone keeps the drain order: queueing a change is one B-tree insert, with no index
    /// to maintain. The entry's record is inside its blob; the in-memory ``OutboxIndex``
    /// (loaded at open) answers which entries a record has.
    package static let schema = """
        CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
        CREATE TABLE records(collection TEXT NOT NULL, id TEXT NOT NULL, state BLOB NOT NULL,
            PRIMARY KEY (collection, id)) WITHOUT ROWID;
        CREATE TABLE outbox(position INTEGER PRIMARY KEY, entry BLOB NOT NULL);
        CREATE TABLE conflicts(id BLOB PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;
        PRAGMA application_id=\(applicationID);
        PRAGMA user_version=\(schemaVersion);
        """

    /// Schema version 1 kept the outbox by seq with an index on (priority, seq); version 2 keys
    /// it by drain position. The upgrade runs in one transaction when a version 1 store opens.
    static let upgradeFromVersion1 = """
        CREATE TABLE outbox_v2(position INTEGER PRIMARY KEY, entry BLOB NOT NULL);
        INSERT INTO outbox_v2(position, entry) SELECT (priority << 56) | seq, entry FROM outbox;
        DROP TABLE outbox;
        ALTER TABLE outbox_v2 RENAME TO outbox;
        PRAGMA user_version=2;
        """

    /// Outbox positions stay below 2^56, so the priority fits in the key's top byte.
    package static let maxOutboxSeq: UInt64 = (1 << 56) - 1

    /// An outbox row's key: priority in the top byte, then the position, so that key order is
    /// drain order (higher priority first, then oldest first).
    package static func outboxPosition(priority: Priority, seq: UInt64) -> Int64 {
        Int64(bitPattern: UInt64(priority.rawValue) << 56 | seq)
    }

    private static func prepare(_ connection: SQLiteConnection, durability: Durability) throws(SyncError) {
        try connection.execute("PRAGMA journal_mode=WAL")
        try connection.execute(durability == .power ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL")
        try connection.execute("PRAGMA busy_timeout=5000")
        let version = try connection.integer("PRAGMA user_version")
        if version == 0 {
            try connection.execute("BEGIN IMMEDIATE;\n\(schema)\nCOMMIT;")
        } else if version == 1 {
            do {
                try connection.execute("BEGIN IMMEDIATE;\n\(upgradeFromVersion1)\nCOMMIT;")
            } catch {
                _ = try? connection.execute("ROLLBACK")  // nothing of the upgrade remains either way
                throw SyncError(.storage, "upgrading the store from schema version 1 failed: \(error.message)")
            }
        }
    }
}

extension SQLiteStore {
    /// The SQL of every statement the store has prepared so far (for the query-plan test).
    package func preparedSQL() throws(SyncError) -> [String] {
        try connection.withLock { store throws(SyncError) in
            guard let store else { throw SyncError(.storeClosed, "the SQLite store at \(path) was closed") }
            return store.connection.preparedSQL
        }
    }

    /// SQLite's plan for one of the store's statements, with `bindings`.
    package func queryPlan(_ sql: String, bindings: [SQLiteValue]) throws(SyncError) -> [String] {
        try connection.withLock { store throws(SyncError) in
            guard let store else { throw SyncError(.storeClosed, "the SQLite store at \(path) was closed") }
            return try store.connection.queryPlan(sql, bindings: bindings)
        }
    }
}

/// The connection and its transaction operations. Only used under ``SQLiteStore``'s lock.
final class SQLiteStoreConnection: StoreWriter {
    let connection: SQLiteConnection
    let limits: Limits
    /// The outbox's record index, in memory so queueing a change needs no query.
    private var index = OutboxIndex()

    init(connection: SQLiteConnection, limits: Limits) throws(SyncError) {
        self.connection = connection
        self.limits = limits
        let statement = try connection.statement("SELECT position, entry FROM outbox")
        defer { statement.reset() }
        while try statement.step() {
            let position = statement.int64(0)
            do throws(SyncError) {
                let blob = statement.blob(1)
                let (seq, priority, key) = try BinaryCodec.decodeOutboxEntryIndex(blob)
                guard SQLiteStore.outboxPosition(priority: priority, seq: seq) == position else {
                    throw SyncError(.storage, "it holds the entry of seq \(seq), priority \(priority)")
                }
                index.load(OutboxIndex.Item(seq: seq, priority: priority, key: key, bytes: blob.count - BinaryCodec.outboxEntryOverhead(seq: seq)))
            } catch {
                throw SyncError(.storage, "outbox row \(position) is damaged: \(error.message)")
            }
        }
    }

    func commit() throws(SyncError) {
        do {
            try connection.statement("COMMIT").run()
        } catch {
            rollBack()
            throw error
        }
        index.commit()
    }

    /// Ends a read transaction; it wrote nothing, so a failed COMMIT is followed by a ROLLBACK.
    func endRead() {
        do {
            try connection.statement("COMMIT").run()
        } catch {
            rollBack()
        }
    }

    func rollBack() {
        index.rollBack()
        // ROLLBACK fails only when no transaction is open (SQLite already rolled back after an
        // I/O error): either way nothing of this transaction remains.
        _ = try? connection.statement("ROLLBACK").run()
    }

    // MARK: Records

    func record(_ key: RecordKey) throws -> RecordState? {
        let statement = try connection.statement("SELECT state FROM records WHERE collection = ?1 AND id = ?2")
        defer { statement.reset() }
        try statement.bind(1, key.collection.rawValue)
        try statement.bind(2, key.id.rawValue)
        guard try statement.step() else { return nil }
        return try BinaryCodec.decodeRecordState(statement.blob(0))
    }

    func allRecords() throws -> [RecordState] {
        let statement = try connection.statement("SELECT state FROM records")
        defer { statement.reset() }
        var result = [RecordState]()
        while try statement.step() { result.append(try BinaryCodec.decodeRecordState(statement.blob(0))) }
        return result
    }

    func records(in collection: CollectionName) throws -> [RecordState] {
        let statement = try connection.statement("SELECT state FROM records WHERE collection = ?1 ORDER BY id")
        defer { statement.reset() }
        try statement.bind(1, collection.rawValue)
        var result = [RecordState]()
        while try statement.step() { result.append(try BinaryCodec.decodeRecordState(statement.blob(0))) }
        return result
    }

    func putRecord(_ record: RecordState) throws {
        let bytes = BinaryCodec.encode(record)
        try limits.checkSize(of: record, encodedSize: bytes.count)
        let statement = try connection.statement(
            "INSERT OR REPLACE INTO records(collection, id, state) VALUES (?1, ?2, ?3)"
        )
        defer { statement.reset() }
        try statement.bind(1, record.collection.rawValue)
        try statement.bind(2, record.id.rawValue)
        try statement.bind(3, blob: bytes)
        _ = try statement.step()
    }

    func insertRecordIfAbsent(_ record: RecordState) throws -> Bool {
        try insertRecordIfAbsent(record, encoded: BinaryCodec.encode(record))
    }

    func insertRecordIfAbsent(_ record: RecordState, encoded: @autoclosure () -> [UInt8]) throws -> Bool {
        let bytes = encoded()
        try limits.checkSize(of: record, encodedSize: bytes.count)
        let statement = try connection.statement("INSERT OR IGNORE INTO records(collection, id, state) VALUES (?1, ?2, ?3)")
        defer { statement.reset() }
        try statement.bind(1, record.collection.rawValue)
        try statement.bind(2, record.id.rawValue)
        try statement.bind(3, blob: bytes)
        _ = try statement.step()
        return connection.changes == 1
    }

    func removeRecord(_ key: RecordKey) throws {
        let statement = try connection.statement("DELETE FROM records WHERE collection = ?1 AND id = ?2")
        try statement.bind(1, key.collection.rawValue)
        try statement.bind(2, key.id.rawValue)
        try statement.run()
    }

    // MARK: Outbox

    func outbox(limit: Int) throws -> [OutboxEntry] {
        let statement = try connection.statement("SELECT entry FROM outbox ORDER BY position LIMIT ?1")
        defer { statement.reset() }
        try statement.bind(1, Int64(max(limit, 0)))
        return try decodeEntries(statement)
    }

    func outboxEntries(for key: RecordKey) throws -> [OutboxEntry] {
        try index.positions(for: key).compactMap { try outboxEntry(position: $0) }
    }

    func outboxEntry(position seq: UInt64) throws -> OutboxEntry? {
        guard let item = index.item(seq) else { return nil }
        let statement = try connection.statement("SELECT entry FROM outbox WHERE position = ?1")
        defer { statement.reset() }
        try statement.bind(1, SQLiteStore.outboxPosition(priority: item.priority, seq: seq))
        return try decodeEntries(statement).first
    }

    func outboxCount() throws -> Int { index.count }

    func outboxBytes() throws -> Int { index.bytes }
    func outboxChangeSize(position: UInt64) throws -> Int? { index.item(position)?.bytes }

    func allocateOutboxPosition() throws -> UInt64 {
        guard index.lastSeq < SQLiteStore.maxOutboxSeq else {
            throw SyncError(.storage, "the outbox has used all \(SQLiteStore.maxOutboxSeq) positions")
        }
        return index.allocate()
    }

    func putOutboxEntry(_ entry: OutboxEntry) throws {
        try putOutboxEntry(entry, encoded: BinaryCodec.encode(entry))
    }

    func putOutboxEntry(_ entry: OutboxEntry, encoded: @autoclosure () -> [UInt8]) throws {
        guard entry.position <= SQLiteStore.maxOutboxSeq else {
            throw SyncError(.invalidParameter, "outbox position \(entry.position) is above \(SQLiteStore.maxOutboxSeq)")
        }
        let bytes = encoded()
        // The index is journaled with the transaction, so a failure below is rolled back with it.
        let item = OutboxIndex.Item(
            seq: entry.position, priority: entry.priority, key: entry.change.key, bytes: bytes.count - BinaryCodec.outboxEntryOverhead(seq: entry.position)
        )
        if let old = index.set(item),
            old.priority != entry.priority
        {
            try deleteOutboxRow(priority: old.priority, seq: old.seq)  // promoted: its key changes
        }
        let statement = try connection.statement("INSERT OR REPLACE INTO outbox(position, entry) VALUES (?1, ?2)")
        defer { statement.reset() }
        try statement.bind(1, SQLiteStore.outboxPosition(priority: entry.priority, seq: entry.position))
        try statement.bind(2, blob: bytes)
        _ = try statement.step()
    }

    func removeOutboxEntries(_ seqs: [UInt64]) throws {
        for seq in seqs {
            guard let item = index.item(seq) else { continue }
            try deleteOutboxRow(priority: item.priority, seq: seq)
            index.remove(seq: seq)
        }
    }

    private func deleteOutboxRow(priority: Priority, seq: UInt64) throws {
        let statement = try connection.statement("DELETE FROM outbox WHERE position = ?1")
        try statement.bind(1, SQLiteStore.outboxPosition(priority: priority, seq: seq))
        try statement.run()
    }

    func outbox(limit: Int, skipping: Set<UInt64>) throws -> [OutboxEntry] {
        guard !skipping.isEmpty else { return try outbox(limit: limit) }
        let statement = try connection.statement("SELECT entry FROM outbox ORDER BY position LIMIT ?1")
        defer { statement.reset() }
        try statement.bind(1, Int64(max(limit, 0) + skipping.count))
        var result = [OutboxEntry]()
        while result.count < limit, try statement.step() {
            let bytes = statement.blob(0)
            if skipping.contains(try BinaryCodec.outboxEntryPosition(bytes)) { continue }
            result.append(try BinaryCodec.decodeOutboxEntry(bytes))
        }
        return result
    }

    private func decodeEntries(_ statement: SQLiteStatement) throws -> [OutboxEntry] {
        var result = [OutboxEntry]()
        while try statement.step() { result.append(try BinaryCodec.decodeOutboxEntry(statement.blob(0))) }
        return result
    }

    // MARK: Metadata and conflicts

    func metadata(_ name: String) throws -> [UInt8]? {
        let statement = try connection.statement("SELECT value FROM meta WHERE name = ?1")
        defer { statement.reset() }
        try statement.bind(1, name)
        return try statement.step() ? statement.blob(0) : nil
    }

    func setMetadata(_ name: String, _ value: [UInt8]?) throws {
        if let value {
            let statement = try connection.statement("INSERT OR REPLACE INTO meta(name, value) VALUES (?1, ?2)")
            try statement.bind(1, name)
            try statement.bind(2, blob: value)
            try statement.run()
        } else {
            let statement = try connection.statement("DELETE FROM meta WHERE name = ?1")
            try statement.bind(1, name)
            try statement.run()
        }
    }

    func conflict(_ id: EventID) throws -> StoredConflict? {
        let statement = try connection.statement("SELECT state FROM conflicts WHERE id = ?1")
        defer { statement.reset() }
        try statement.bind(1, blob: id.bytes)
        return try statement.step() ? BinaryCodec.decodeStoredConflict(statement.blob(0)) : nil
    }

    func conflicts() throws -> [StoredConflict] {
        let statement = try connection.statement("SELECT state FROM conflicts ORDER BY id")
        defer { statement.reset() }
        var result = [StoredConflict]()
        while try statement.step() { result.append(try BinaryCodec.decodeStoredConflict(statement.blob(0))) }
        return result
    }

    func putConflict(_ conflict: StoredConflict) throws {
        let statement = try connection.statement("INSERT OR REPLACE INTO conflicts(id, state) VALUES (?1, ?2)")
        try statement.bind(1, blob: conflict.id.bytes)
        try statement.bind(2, blob: BinaryCodec.encode(conflict))
        try statement.run()
    }

    func removeConflict(_ id: EventID) throws {
        let statement = try connection.statement("DELETE FROM conflicts WHERE id = ?1")
        try statement.bind(1, blob: id.bytes)
        try statement.run()
    }
}
