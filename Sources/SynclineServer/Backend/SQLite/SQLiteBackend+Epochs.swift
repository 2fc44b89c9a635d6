import CSQLite
import Foundation
public import Syncline
import SynclineSQLite

/// Namespace epochs, the restore fence and online backups (DESIGN §5; README "Backup and restore").
extension SQLiteBackend {
    /// What a restore fence did.
    public struct FenceReport: Sendable {
        /// Each namespace's new head (its old head plus ``ServerEngine/fenceGap``) and new epoch.
        public var namespaces: [Namespace: (head: UInt64, epoch: Epoch)]
        /// The epoch namespaces not written yet start with.
        public var defaultEpoch: Epoch
        /// The database's new instance id (see ``ServerDataDirectory``).
        public var instance: Epoch
    }

    /// The restore fence: every namespace gets a new epoch and its head moves past any seq a device
    /// could have seen (``ServerEngine/fence(head:horizon:)``), the default epoch and the instance
    /// id are replaced; one transaction. Devices from before get `410 resync_required`.
    public func fence() throws -> FenceReport {
        try database.transaction { connection in
            var rows: [(String, UInt64, UInt64)] = []
            let select = try connection.statement("SELECT ns, head, horizon FROM namespaces")
            defer { select.reset() }
            while try select.step() {
                rows.append((select.text(0), UInt64(bitPattern: select.int64(1)), UInt64(bitPattern: select.int64(2))))
            }
            select.reset()
            var report = FenceReport(namespaces: [:], defaultEpoch: Epoch.random(), instance: Epoch.random())
            let update = try connection.statement("UPDATE namespaces SET head = ?2, horizon = ?3, epoch = ?4 WHERE ns = ?1")
            for (name, head, horizon) in rows {
                let fenced = ServerEngine.fence(head: head, horizon: horizon)
                let epoch = Epoch.random()
                try update.bind(1, name)
                try update.bind(2, Int64(bitPattern: fenced.head))
                try update.bind(3, Int64(bitPattern: fenced.horizon))
                try update.bind(4, Int64(bitPattern: epoch.rawValue))
                try update.run()
                report.namespaces[try Namespace(name)] = (fenced.head, epoch)
            }
            try SQLiteBackendDatabase.setMeta(connection, SQLiteBackendDatabase.MetaName.defaultEpoch, report.defaultEpoch)
            try SQLiteBackendDatabase.setMeta(connection, SQLiteBackendDatabase.MetaName.instance, report.instance)
            return report
        }
    }

    /// The database's instance id, `nil` before one was set (see ``ServerDataDirectory``).
    public func instance() throws -> Epoch? {
        try database.read { try SQLiteBackendDatabase.meta($0, SQLiteBackendDatabase.MetaName.instance) }
    }

    /// Sets the database's instance id.
    public func setInstance(_ instance: Epoch) throws {
        try database.transaction { try SQLiteBackendDatabase.setMeta($0, SQLiteBackendDatabase.MetaName.instance, instance) }
    }

    /// Copies the server database at `source` to a new file at `destination` while a server may be
    /// writing to it (SQLite's online backup API: one consistent snapshot, writers are not blocked
    /// in WAL mode). The copy is a single self-contained file (rollback journal, no `-wal`) whose
    /// instance id is replaced, so a server started on it notices it was restored and fences
    /// itself even when the operator skips `restore-fence`.
    /// - Throws: ``SyncError`` `.notASynclineStore` when `source` is not a server database,
    ///   `.storage` when `destination` exists or the copy fails.
    public static func backup(databaseAt source: String, to destination: String) throws {
        let from = try SQLiteConnection(path: source, flags: SQLITE_OPEN_READWRITE)  // reads only; WAL needs its -shm
        guard try from.integer("PRAGMA application_id") == SQLiteBackendDatabase.applicationID else {
            throw SyncError(.notASynclineStore, "\(source) is not a Syncline server database")
        }
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw SyncError(.storage, "\(destination) already exists; a backup never overwrites a file")
        }
        let to = try SQLiteConnection(path: destination, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        try from.backup(into: to)
        try to.execute("PRAGMA journal_mode=DELETE")
        try to.serverTransaction { to in
            // A database from before epochs gets them here, so the copy restores like any other.
            if try to.integer("PRAGMA user_version") < SQLiteBackendDatabase.schemaVersion { try SQLiteBackendDatabase.upgradeToEpochs(to) }
            try SQLiteBackendDatabase.setMeta(to, SQLiteBackendDatabase.MetaName.instance, Epoch.random())
        }
    }
}

extension SQLiteBackendDatabase {
    /// The server schema this build writes: 2 added namespace epochs and `server_meta`.
    static let schemaVersion: Int64 = 2

    enum MetaName {
        /// The epoch of namespaces not written yet (a namespace row copies it when created).
        static let defaultEpoch = "default_epoch"
        /// A random id that changes with every fence and with every backup copy; compared with
        /// the data directory's marker file to notice a restore.
        static let instance = "instance"
    }

    /// The upgrade from schema 1 (or a new database): an epoch per namespace and the meta table,
    /// in the caller's transaction.
    static func upgradeToEpochs(_ connection: SQLiteConnection) throws {
        let columns = try connection.integer("SELECT count(*) FROM pragma_table_info('namespaces') WHERE name = 'epoch'")
        if columns == 0 { try connection.execute("ALTER TABLE namespaces ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0") }
        try connection.execute("CREATE TABLE IF NOT EXISTS server_meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID")
        var names: [String] = []
        let select = try connection.statement("SELECT ns FROM namespaces WHERE epoch = 0")
        while try select.step() { names.append(select.text(0)) }
        select.reset()
        let update = try connection.statement("UPDATE namespaces SET epoch = ?2 WHERE ns = ?1")
        for name in names {
            try update.bind(1, name)
            try update.bind(2, Int64(bitPattern: Epoch.random().rawValue))
            try update.run()
        }
        if try meta(connection, MetaName.defaultEpoch) == nil { try setMeta(connection, MetaName.defaultEpoch, Epoch.random()) }
        try connection.execute("PRAGMA user_version = \(schemaVersion)")
    }

    /// The epoch a namespace without a row has.
    static func defaultEpoch(_ connection: SQLiteConnection) throws -> Epoch {
        guard let epoch = try meta(connection, MetaName.defaultEpoch) else {
            throw SyncError(.storage, "the server database has no default epoch (schema \(schemaVersion) not applied)")
        }
        return epoch
    }

    static func meta(_ connection: SQLiteConnection, _ name: String) throws -> Epoch? {
        let statement = try connection.statement("SELECT value FROM server_meta WHERE name = ?1")
        defer { statement.reset() }
        try statement.bind(1, name)
        guard try statement.step() else { return nil }
        return Epoch(rawValue: UInt64(bitPattern: statement.int64(0)))
    }

    static func setMeta(_ connection: SQLiteConnection, _ name: String, _ value: Epoch) throws {
        let statement = try connection.statement("INSERT OR REPLACE INTO server_meta(name, value) VALUES (?1, ?2)")
        try statement.bind(1, name)
        try statement.bind(2, Int64(bitPattern: value.rawValue))
        try statement.run()
    }
}
