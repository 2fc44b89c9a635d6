import CSQLite
public import Syncline
package import SynclineSQLite
import Synchronization

/// The embedded backend (DESIGN §6): one SQLite database in WAL mode holding every namespace.
/// Each push is one transaction; records are indexed by `(namespace, seq)` so a pull reads only
/// what changed after its cursor; applied event ids are kept for a window of pushes.
public actor SQLiteBackend: ServerBackend {
    public struct Configuration: Sendable {
        /// Applied event ids remembered per namespace for idempotency. Default 1,000,000.
        public var idempotencyWindow: Int
        /// `.power` makes every push survive power loss (an fsync per batch). Default `.app`.
        public var durability: Durability

        public init(idempotencyWindow: Int = 1_000_000, durability: Durability = .app) {
            self.idempotencyWindow = idempotencyWindow
            self.durability = durability
        }
    }

    let database: BackendDatabase
    private let configuration: Configuration
    public nonisolated let heads: HeadBroadcaster

    /// Opens (or creates) the database at `path`.
    /// - Throws: ``SyncError`` `.storage` when the file cannot be opened or is not a Syncline server database.
    public init(path: String, configuration: Configuration = Configuration()) throws {
        database = try BackendDatabase(path: path, durability: configuration.durability)
        self.configuration = configuration
        heads = HeadBroadcaster()
    }

    public func applyValidated(_ batch: ChangeBatch, namespace: Namespace) throws -> ServerEngine.PushOutcome {
        let outcome = try database.transaction { connection in
            var writer = try NamespaceRows(connection: connection, namespace: namespace, window: configuration.idempotencyWindow)
            let outcome = try ServerEngine.push(batch, into: &writer)
            try writer.pruneApplied()
            return outcome
        }
        heads.publish(outcome.head, namespace: namespace)
        return outcome
    }

    public func pull(
        namespace: Namespace, after cursor: UInt64, from position: UInt64, limit: Int, collections: Set<CollectionName>?,
        epoch: Epoch?, configuration: ServerEngine.Configuration
    ) throws -> PullPage {
        try database.read { connection in
            let reader = try NamespaceRows(connection: connection, namespace: namespace, window: self.configuration.idempotencyWindow)
            return try ServerEngine.pull(
                from: reader, after: cursor, from: position, limit: limit, collections: collections, epoch: epoch,
                configuration: configuration
            )
        }
    }

    public func purgeTombstones(olderThan cutoff: UInt64) throws -> [Namespace: UInt64] {
        let old = try database.read { connection -> [(String, UInt64)] in
            let statement = try connection.statement(
                "SELECT ns, max(seq) FROM records WHERE deleted = 1 AND tombstone_ms < ?1 GROUP BY ns"
            )
            defer { statement.reset() }
            try statement.bind(1, Int64(clamping: cutoff))
            var rows: [(String, UInt64)] = []
            while try statement.step() { rows.append((statement.text(0), UInt64(bitPattern: statement.int64(1)))) }
            return rows
        }
        var horizons: [Namespace: UInt64] = [:]
        for (name, through) in old {
            let namespace = try Namespace(name)
            try purgeTombstones(namespace: namespace, through: through)
            horizons[namespace] = through + 1
        }
        return horizons
    }

    public nonisolated func subscribe(namespace: Namespace) -> AsyncStream<UInt64> { heads.subscribe(namespace: namespace) }

    public func head(namespace: Namespace) throws -> UInt64 {
        try database.read { try NamespaceRows(connection: $0, namespace: namespace, window: 0).currentHead() }
    }

    public func epoch(namespace: Namespace) throws -> Epoch {
        try database.read { try NamespaceRows(connection: $0, namespace: namespace, window: 0).epoch() }
    }

    public func purgeTombstones(namespace: Namespace, through seq: UInt64) throws {
        try database.transaction { connection in
            let statement = try connection.statement("DELETE FROM records WHERE ns = ?1 AND deleted = 1 AND seq <= ?2")
            try statement.bind(1, namespace.rawValue)
            try statement.bind(2, Int64(bitPattern: seq))
            try statement.run()
            let horizon = try connection.statement(
                "INSERT INTO namespaces(ns, head, horizon, applied, epoch) VALUES (?1, 0, ?2, 0, ?3) ON CONFLICT(ns) DO UPDATE SET horizon = max(horizon, ?2)"
            )
            try horizon.bind(1, namespace.rawValue)
            try horizon.bind(2, Int64(bitPattern: seq + 1))
            try horizon.bind(3, Int64(bitPattern: try BackendDatabase.defaultEpoch(connection).rawValue))
            try horizon.run()
        }
    }
}

extension SQLiteBackend {
    /// The SQL of every statement the backend has prepared so far (for the query-plan test).
    package func preparedSQL() -> [String] { database.connection.preparedSQL }

    /// SQLite's plan for one of the backend's statements, with `bindings`.
    package func queryPlan(_ sql: String, bindings: [SQLiteValue]) throws -> [String] {
        try database.connection.queryPlan(sql, bindings: bindings)
    }
}

/// The connection, owned by ``SQLiteBackend``.
final class BackendDatabase {
    let connection: SQLiteConnection
    static let applicationID: Int64 = 0x5359_4E53  // "SYNS"

    init(path: String, durability: Durability) throws(SyncError) {
        connection = try SQLiteConnection(path: path, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        // Checked before anything is written: another application's database (or a client's
        // store) is refused as it was found, not switched to WAL or given our tables.
        let applicationID = try connection.integer("PRAGMA application_id")
        let tables = try connection.integer("SELECT count(*) FROM sqlite_master")
        if applicationID != Self.applicationID && (applicationID != 0 || tables > 0) {
            throw SyncError(
                .notASynclineStore,
                "\(path) is not a Syncline server database (application_id \(applicationID)); it was left untouched"
            )
        }
        let schema = try connection.integer("PRAGMA user_version")
        guard schema <= Self.schemaVersion else {
            throw SyncError(
                .newerSchema, "\(path) has server schema version \(schema); this server knows up to \(Self.schemaVersion)"
            )
        }
        try connection.execute("PRAGMA journal_mode=WAL")
        try connection.execute(durability == .power ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL")
        try connection.execute(
            """
            BEGIN;
            CREATE TABLE IF NOT EXISTS namespaces(ns TEXT PRIMARY KEY, head INTEGER NOT NULL, horizon INTEGER NOT NULL,
                applied INTEGER NOT NULL) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS records(ns TEXT NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL,
                seq INTEGER NOT NULL, deleted INTEGER NOT NULL, tombstone_ms INTEGER NOT NULL, state BLOB NOT NULL,
                PRIMARY KEY(ns, collection, id)) WITHOUT ROWID;
            CREATE UNIQUE INDEX IF NOT EXISTS records_by_seq ON records(ns, seq);
            CREATE INDEX IF NOT EXISTS records_tombstones ON records(ns, seq) WHERE deleted = 1;
            CREATE TABLE IF NOT EXISTS applied(ns TEXT NOT NULL, id BLOB NOT NULL, ord INTEGER NOT NULL,
                result BLOB NOT NULL, PRIMARY KEY(ns, id)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS applied_by_ord ON applied(ns, ord);
            PRAGMA application_id=\(Self.applicationID);
            COMMIT;
            """
        )
        if schema < Self.schemaVersion {
            do {
                try transaction(Self.upgradeToEpochs)
            } catch let error as SyncError {
                throw error
            } catch {
                throw SyncError(.storage, "upgrading \(path) to server schema \(Self.schemaVersion) failed: \(error)")
            }
        }
    }

    /// Runs `body` in a write transaction: committed on return, rolled back on throw.
    func transaction<Result>(_ body: (SQLiteConnection) throws -> Result) throws -> Result {
        try connection.statement("BEGIN IMMEDIATE").run()
        do {
            let result = try body(connection)
            try connection.statement("COMMIT").run()
            return result
        } catch {
            _ = try? connection.statement("ROLLBACK").run()  // fails only when SQLite already rolled back
            throw error
        }
    }

    /// Runs `body` in a read transaction (one consistent snapshot).
    func read<Result>(_ body: (SQLiteConnection) throws -> Result) throws -> Result {
        try connection.statement("BEGIN").run()
        defer {
            // A read wrote nothing; if COMMIT fails, ROLLBACK ends the transaction so the next
            // BEGIN does not fail (ROLLBACK fails only when none is open).
            do { try connection.statement("COMMIT").run() } catch { _ = try? connection.statement("ROLLBACK").run() }
        }
        return try body(connection)
    }
}

/// One namespace's rows, for the shared engine.
struct NamespaceRows: ServerNamespaceWriter, ServerNamespaceReader {
    let connection: SQLiteConnection
    let namespace: Namespace
    let window: Int
    private var head: UInt64
    private var horizon: UInt64
    private var appliedCount: Int64
    private let namespaceEpoch: Epoch
    private var dirty = false

    init(connection: SQLiteConnection, namespace: Namespace, window: Int) throws {
        self.connection = connection
        self.namespace = namespace
        self.window = window
        let statement = try connection.statement("SELECT head, horizon, applied, epoch FROM namespaces WHERE ns = ?1")
        defer { statement.reset() }
        try statement.bind(1, namespace.rawValue)
        if try statement.step() {
            head = UInt64(bitPattern: statement.int64(0))
            horizon = UInt64(bitPattern: statement.int64(1))
            appliedCount = statement.int64(2)
            namespaceEpoch = Epoch(rawValue: UInt64(bitPattern: statement.int64(3)))
        } else {
            (head, horizon, appliedCount) = (0, 0, 0)
            namespaceEpoch = try BackendDatabase.defaultEpoch(connection)
        }
    }

    func currentHead() -> UInt64 { head }

    func epoch() -> Epoch { namespaceEpoch }

    func tombstoneHorizon() -> UInt64 { horizon }

    func applied(_ id: EventID) throws -> ServerEngine.AppliedChange? {
        let statement = try connection.statement("SELECT result FROM applied WHERE ns = ?1 AND id = ?2")
        defer { statement.reset() }
        try statement.bind(1, namespace.rawValue)
        try statement.bind(2, blob: id.bytes)
        guard try statement.step() else { return nil }
        var reader = BinaryReader(statement.blob(0))
        let seq = try reader.readVarint()
        let fields = try reader.readFields { (reader: inout BinaryReader) throws(SyncError) in try reader.readFieldState() }
        return ServerEngine.AppliedChange(seq: seq, fields: fields)
    }

    func record(_ key: RecordKey) throws -> ServerRecord? {
        let statement = try connection.statement("SELECT state FROM records WHERE ns = ?1 AND collection = ?2 AND id = ?3")
        defer { statement.reset() }
        try statement.bind(1, namespace.rawValue)
        try statement.bind(2, key.collection.rawValue)
        try statement.bind(3, key.id.rawValue)
        guard try statement.step() else { return nil }
        return try ServerRecordCodec.decode(statement.blob(0), key: key)
    }

    mutating func store(_ record: ServerRecord, replacing previous: ServerRecord?) throws {
        let statement = try connection.statement(
            "INSERT OR REPLACE INTO records(ns, collection, id, seq, deleted, tombstone_ms, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        )
        try statement.bind(1, namespace.rawValue)
        try statement.bind(2, record.collection.rawValue)
        try statement.bind(3, record.id.rawValue)
        try statement.bind(4, Int64(bitPattern: record.seq))
        try statement.bind(5, record.deleted ? 1 : 0)
        try statement.bind(6, Int64(record.deleted ? record.tombstone?.wallMillis ?? 0 : 0))
        try statement.bind(7, blob: ServerRecordCodec.encode(record))
        try statement.run()
    }

    mutating func remember(_ id: EventID, _ applied: ServerEngine.AppliedChange) throws {
        appliedCount += 1
        var writer = BinaryWriter(capacity: 16 + applied.fields.count * 48)
        writer.writeVarint(applied.seq)
        writer.writeFields(applied.fields) { $0.write($1) }
        let statement = try connection.statement("INSERT OR REPLACE INTO applied(ns, id, ord, result) VALUES (?1, ?2, ?3, ?4)")
        try statement.bind(1, namespace.rawValue)
        try statement.bind(2, blob: id.bytes)
        try statement.bind(3, appliedCount)
        try statement.bind(4, blob: writer.bytes)
        try statement.run()
        dirty = true
    }

    mutating func setHead(_ head: UInt64) throws {
        self.head = head
        dirty = true
    }

    /// Writes the namespace row and forgets applied ids older than the window.
    mutating func pruneApplied() throws {
        guard dirty else { return }
        let statement = try connection.statement(
            "INSERT INTO namespaces(ns, head, horizon, applied, epoch) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(ns) DO UPDATE SET head = ?2, applied = ?4"
        )
        try statement.bind(1, namespace.rawValue)
        try statement.bind(2, Int64(bitPattern: head))
        try statement.bind(3, Int64(bitPattern: horizon))
        try statement.bind(4, appliedCount)
        try statement.bind(5, Int64(bitPattern: namespaceEpoch.rawValue))
        try statement.run()
        if appliedCount > Int64(window) {
            let prune = try connection.statement("DELETE FROM applied WHERE ns = ?1 AND ord <= ?2")
            try prune.bind(1, namespace.rawValue)
            try prune.bind(2, appliedCount - Int64(window))
            try prune.run()
        }
    }

    func latestRecords(after position: UInt64, collections: Set<CollectionName>?, liveOnly: Bool, limit: Int) throws -> [ServerRecord] {
        var result: [ServerRecord] = []
        try scan(after: position, collections: collections, liveOnly: liveOnly) { record in
            result.append(record)
            return result.count < limit
        }
        return result
    }

    /// Counted from the rows' columns, per collection, without decoding a record.
    func countLatestRecords(after position: UInt64, collections: Set<CollectionName>?) throws -> UInt64 {
        let statement = try connection.statement(
            // INDEXED BY: left to itself, SQLite plans this on the primary key (ns, collection, id)
            // to avoid sorting for GROUP BY, and reads the whole namespace; the (ns, seq) index
            // reads only the delta (and fails loudly at prepare if the index ever goes).
            "SELECT collection, count(*) FROM records INDEXED BY records_by_seq WHERE ns = ?1 AND seq > ?2 GROUP BY collection"
        )
        defer { statement.reset() }
        try statement.bind(1, namespace.rawValue)
        try statement.bind(2, Int64(bitPattern: position))
        var count: UInt64 = 0
        while try statement.step() {
            if let collections, !collections.contains(try CollectionName(statement.text(0))) { continue }
            count += UInt64(statement.int64(1))
        }
        return count
    }

    /// Visits records after `position` in seq order until `visit` returns false.
    private func scan(
        after position: UInt64, collections: Set<CollectionName>?, liveOnly: Bool, _ visit: (ServerRecord) throws -> Bool
    ) throws {
        let statement = try connection.statement(
            "SELECT collection, id, deleted, state FROM records WHERE ns = ?1 AND seq > ?2 ORDER BY seq"
        )
        defer { statement.reset() }
        try statement.bind(1, namespace.rawValue)
        try statement.bind(2, Int64(bitPattern: position))
        while try statement.step() {
            if liveOnly && statement.int64(2) != 0 { continue }
            let collection = try CollectionName(statement.text(0))
            if let collections, !collections.contains(collection) { continue }
            let key = RecordKey(collection: collection, id: try RecordID(statement.text(1)))
            guard try visit(try ServerRecordCodec.decode(statement.blob(3), key: key)) else { return }
        }
    }
}
