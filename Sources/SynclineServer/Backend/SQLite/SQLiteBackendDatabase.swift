import CSQLite
import Syncline
import SynclineSQLite

/// The connection, owned by ``SQLiteBackend``.
final class SQLiteBackendDatabase {
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
        try connection.serverTransaction { try body($0) }
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
