import CSQLite
import Foundation
public import Logging
import Syncline
import SynclineSQLite

/// The embedded server's data directory (`--data DIR`): the database `syncline.sqlite`, the
/// marker file `syncline.instance` and the lock file `syncline.lock`. It backs the server up,
/// restores a backup, and fences after a restore (README "Backup and restore").
///
/// Noticing a restore: the database and the marker file hold the same random instance id. A
/// backup copy gets a new id and a fence sets a new one in both, so a database put back from a
/// backup by any means (our `restore`, `cp`, a volume snapshot of the database alone) disagrees
/// with the marker, or finds none, and ``openBackend(configuration:logger:)`` fences it before
/// the server answers anyone.
public struct ServerDataDirectory: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public var databasePath: String { file("syncline.sqlite") }
    public var markerPath: String { file("syncline.instance") }
    public var lockPath: String { file("syncline.lock") }

    private func file(_ name: String) -> String { URL(fileURLWithPath: path).appendingPathComponent(name).path }

    /// Opens (or creates) the database; fences it first when it was restored from a backup.
    /// - Throws: ``SyncError`` as ``SQLiteBackend/init(path:configuration:)``, or `.storage` when
    ///   the marker cannot be written.
    public func openBackend(configuration: SQLiteBackend.Configuration = .init(), logger: Logger) async throws -> SQLiteBackend {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let backend = try SQLiteBackend(path: databasePath, configuration: configuration)
        let stored = try await backend.instance()
        let marker = readMarker()
        switch (stored, marker) {
        case (let stored?, let marker?) where stored == marker:
            break
        case (nil, nil):
            // A new database, or the first start after the upgrade to epochs: nothing was restored.
            let instance = Epoch.random()
            try await backend.setInstance(instance)
            try writeMarker(instance)
        default:
            let report = try await backend.fence()
            try writeMarker(report.instance)
            logger.warning(
                "the database was restored from a backup (its instance id does not match \(markerPath)): fenced",
                metadata: [
                    "syncline.namespaces": "\(report.namespaces.count)", "syncline.instance.database": "\(stored.map { "\($0)" } ?? "none")",
                    "syncline.instance.marker": "\(marker.map { "\($0)" } ?? "none")",
                ]
            )
        }
        return backend
    }

    /// Copies the live database to `destination` (a new file) while a server may be running; see
    /// ``SQLiteBackend/backup(databaseAt:to:)``.
    public func backup(to destination: String) throws {
        guard FileManager.default.fileExists(atPath: databasePath) else {
            throw SyncError(.notFound, "\(databasePath) does not exist: nothing to back up")
        }
        try SQLiteBackend.backup(databaseAt: databasePath, to: destination)
    }

    /// Puts the backup at `source` in place of the directory's database and fences it. The server
    /// must be stopped: the directory's lock is taken (a running server holds it).
    /// - Throws: ``SyncError`` `.notASynclineStore` when `source` is not a server database or
    ///   fails SQLite's `quick_check`; `.storage` when a server holds the directory.
    public func restore(from source: String, logger: Logger) async throws -> SQLiteBackend.FenceReport {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let lock = try DataDirectoryLock(path: lockPath)
        let staging = file("syncline.sqlite.restoring")
        try? FileManager.default.removeItem(atPath: staging)  // left over by an interrupted restore
        do {
            let from: SQLiteConnection
            do {
                from = try SQLiteConnection(path: source, flags: SQLITE_OPEN_READONLY)
                guard try from.integer("PRAGMA application_id") == SQLiteBackendDatabase.applicationID else {
                    throw SyncError(.notASynclineStore, "\(source) is not a Syncline server database; nothing was changed")
                }
                let check = try from.statement("PRAGMA quick_check")
                defer { check.reset() }
                guard try check.step(), check.text(0) == "ok" else {
                    throw SyncError(.notASynclineStore, "\(source) fails SQLite's quick_check; nothing was changed")
                }
            } catch let error as SyncError where error.code != .notASynclineStore {
                throw SyncError(.notASynclineStore, "\(source) is not a readable Syncline server database (\(error.message)); nothing was changed")
            }
            let to = try SQLiteConnection(path: staging, flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
            try from.backup(into: to)
            try to.execute("PRAGMA journal_mode=DELETE")
        }
        // The old database's WAL must go with it, or SQLite would apply it to the restored file.
        for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: databasePath + suffix) {
            try FileManager.default.removeItem(atPath: databasePath + suffix)
        }
        try FileManager.default.moveItem(atPath: staging, toPath: databasePath)
        let report = try await fence(holding: lock)
        logger.info("restored", metadata: ["syncline.from": "\(source)", "syncline.namespaces": "\(report.namespaces.count)"])
        return report
    }

    /// The restore fence on the directory's database (the server must be stopped); see
    /// ``SQLiteBackend/fence()``.
    public func fence() async throws -> SQLiteBackend.FenceReport {
        try await fence(holding: try DataDirectoryLock(path: lockPath))
    }

    private func fence(holding lock: DataDirectoryLock) async throws -> SQLiteBackend.FenceReport {
        guard FileManager.default.fileExists(atPath: databasePath) else {
            throw SyncError(.notFound, "\(databasePath) does not exist: nothing to fence")
        }
        let backend = try SQLiteBackend(path: databasePath)
        let report = try await backend.fence()
        try writeMarker(report.instance)
        withExtendedLifetime(lock) {}
        return report
    }

    /// Holds the directory's lock for as long as the returned value lives (a serving process does;
    /// `restore` and `restore-fence` refuse to run meanwhile).
    /// - Throws: ``SyncError`` `.storage` when another process holds it.
    public func lock() throws -> DataDirectoryLock {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return try DataDirectoryLock(path: lockPath)
    }

    // MARK: Marker

    func readMarker() -> Epoch? {
        guard let data = FileManager.default.contents(atPath: markerPath) else { return nil }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return try? Epoch(parsing: text)  // an unreadable marker counts as a mismatch: a fence is safe
    }

    func writeMarker(_ instance: Epoch) throws {
        do {
            try Data("\(instance)\n".utf8).write(to: URL(fileURLWithPath: markerPath), options: .atomic)
        } catch {
            throw SyncError(.storage, "cannot write \(markerPath): \(error)")
        }
    }
}
