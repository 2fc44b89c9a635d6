import CSQLite
import Foundation
import Syncline
@testable import SynclineLevelDB
import SynclineSQLite
import SynclineTesting
import Testing

/// Opening something that is not a Syncline store, or a newer one, fails clearly and leaves it untouched.
@Suite("Opening stores")
struct StoreOpeningTests {
    func bytes(at path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// Expects a ``SyncError`` with `code` whose message says the file was left alone.
    func expectCode(_ code: SyncError.Code, sayingUntouched: Bool = true, _ body: () throws -> Void) {
        #expect {
            try body()
        } throws: { error in
            guard let error = error as? SyncError, error.code == code else { return false }
            return !sayingUntouched || error.message.contains("left untouched")
        }
    }

    // MARK: SQLite

    @Test func sqliteRefusesAFileOfGarbage() throws {
        let fixture = try StoreFixture(.sqlite)
        let garbage = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try garbage.write(to: URL(fileURLWithPath: fixture.storePath))
        // Tried: 4 KiB of non-SQLite bytes at the store path.
        expectCode(.notASynclineStore) { _ = try SQLiteStore(path: fixture.storePath) }
        #expect(try bytes(at: fixture.storePath) == garbage)
    }

    @Test func sqliteRefusesAnotherApplicationsDatabase() throws {
        let fixture = try StoreFixture(.sqlite)
        try rawSQLite(fixture.storePath, "CREATE TABLE invoices(id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5);")
        let before = try bytes(at: fixture.storePath)
        // Tried: a valid SQLite database with someone else's table.
        expectCode(.notASynclineStore) { _ = try SQLiteStore(path: fixture.storePath) }
        #expect(try bytes(at: fixture.storePath) == before)
    }

    @Test func sqliteRefusesANewerSchema() throws {
        let fixture = try StoreFixture(.sqlite)
        let store = try SQLiteStore(path: fixture.storePath)
        try store.write { tx in try tx.putRecord(Sample.record("a", fields: ["v": 1])) }
        store.close()
        try rawSQLite(fixture.storePath, "PRAGMA user_version=\(SQLiteStore.schemaVersion + 1)")
        let before = try bytes(at: fixture.storePath)
        // Tried: a Syncline store whose user_version is one above what this build writes.
        #expect {
            _ = try SQLiteStore(path: fixture.storePath)
        } throws: { error in
            (error as? SyncError)?.code == .newerSchema && (error as? SyncError)?.message.contains("version \(SQLiteStore.schemaVersion + 1)") == true
        }
        #expect(try bytes(at: fixture.storePath) == before)
    }

    @Test func sqliteUpgradesAVersion1Store() throws {
        let fixture = try StoreFixture(.sqlite)
        // A store as schema version 1 wrote it: the outbox keyed by seq, with an index on
        // (priority, seq) and the record's name in columns.
        let entries = [
            OutboxEntry(position: 1, priority: .normal, change: Sample.change(1, record: "a", fields: ["v": 1])),
            OutboxEntry(position: 2, priority: .low, change: Sample.change(2, record: "b", fields: ["v": 2])),
            OutboxEntry(position: 3, priority: .high, change: Sample.change(3, record: "c", fields: ["v": 3]), sent: true),
        ]
        let rows = entries.map { entry in
            let blob = BinaryCodec.encode(entry).map { String(format: "%02x", $0) }.joined()
            return "(\(entry.position), \(entry.priority.rawValue), 'todos', '\(entry.change.record)', X'\(blob)')"
        }
        try rawSQLite(
            fixture.storePath,
            """
            CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE records(collection TEXT NOT NULL, id TEXT NOT NULL, state BLOB NOT NULL,
                PRIMARY KEY (collection, id)) WITHOUT ROWID;
            CREATE TABLE outbox(seq INTEGER PRIMARY KEY, priority INTEGER NOT NULL,
                collection TEXT NOT NULL, record TEXT NOT NULL, entry BLOB NOT NULL);
            CREATE INDEX outbox_drain ON outbox(priority, seq);
            CREATE TABLE conflicts(id BLOB PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;
            INSERT INTO outbox VALUES \(rows.joined(separator: ", "));
            PRAGMA application_id=\(SQLiteStore.applicationID);
            PRAGMA user_version=1;
            """
        )
        let store = try SQLiteStore(path: fixture.storePath)
        // Drain order (priority, then seq), each entry whole, and the per-record index rebuilt.
        #expect(try store.read { tx in try tx.outbox(limit: 10) } == [entries[2], entries[0], entries[1]])
        #expect(try store.read { tx in try tx.outboxEntries(for: Sample.key("b")) } == [entries[1]])
        #expect(try store.read { tx in try tx.outboxCount() } == 3)
        // New entries take positions after the old ones; removal works on upgraded rows.
        try store.write { tx in
            try tx.enqueue(Sample.change(4, record: "d", fields: ["v": 4]), priority: .normal)
            try tx.removeOutboxEntries([1])
        }
        #expect(try store.read { tx in try tx.outbox(limit: 10).map(\.position) } == [3, 4, 2])
        store.close()
        // The file says version 2 now, and opens again as it is.
        let reopened = try SQLiteStore(path: fixture.storePath)
        #expect(try reopened.read { tx in try tx.outbox(limit: 10).map(\.position) } == [3, 4, 2])
        reopened.close()
        var db: OpaquePointer?
        defer { sqlite3_close_v2(db) }
        #expect(sqlite3_open(fixture.storePath, &db) == SQLITE_OK)
        var statement: OpaquePointer?
        defer { sqlite3_finalize(statement) }
        #expect(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &statement, nil) == SQLITE_OK)
        #expect(sqlite3_step(statement) == SQLITE_ROW)
        #expect(sqlite3_column_int64(statement, 0) == 2)
    }

    @Test func sqliteRefusesADirectory() throws {
        let fixture = try StoreFixture(.sqlite)
        // Tried: a directory at the store path.
        try FileManager.default.createDirectory(atPath: fixture.storePath, withIntermediateDirectories: true)
        expectCode(.notASynclineStore, sayingUntouched: false) { _ = try SQLiteStore(path: fixture.storePath) }
    }

    @Test func sqliteOpensAnEmptyFile() throws {
        let fixture = try StoreFixture(.sqlite)
        #expect(FileManager.default.createFile(atPath: fixture.storePath, contents: Data()))
        let store = try SQLiteStore(path: fixture.storePath)
        try store.write { tx in try tx.putRecord(Sample.record("a", fields: ["v": 1])) }
        #expect(try store.read { tx in try tx.record(Sample.key("a")) } != nil)
    }

    // MARK: LevelDB

    @Test func leveldbRefusesAFile() throws {
        let fixture = try StoreFixture(.leveldb)
        let content = Data("not a database".utf8)
        try content.write(to: URL(fileURLWithPath: fixture.storePath))
        // Tried: a regular file at the store path.
        expectCode(.notASynclineStore) { _ = try LevelDBStore(path: fixture.storePath) }
        #expect(try bytes(at: fixture.storePath) == content)
    }

    @Test func leveldbRefusesADirectoryOfOtherFiles() throws {
        let fixture = try StoreFixture(.leveldb)
        try FileManager.default.createDirectory(atPath: fixture.storePath, withIntermediateDirectories: true)
        let notes = fixture.storePath + "/notes.txt"
        try Data("mine".utf8).write(to: URL(fileURLWithPath: notes))
        // Tried: a directory holding someone's files but no LevelDB database.
        expectCode(.notASynclineStore) { _ = try LevelDBStore(path: fixture.storePath) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.storePath) == ["notes.txt"])
    }

    @Test func leveldbRefusesAnotherApplicationsDatabase() throws {
        let fixture = try StoreFixture(.leveldb)
        do {
            let database = try LevelDBDatabase(path: fixture.storePath, createIfMissing: true, sync: false)
            let batch = LevelDBWriteBatch()
            batch.put(Array("user:1".utf8), Array("alice".utf8))
            try database.write(batch)
        }
        // Tried: a LevelDB database with another application's keys.
        expectCode(.notASynclineStore) { _ = try LevelDBStore(path: fixture.storePath) }
        let database = try LevelDBDatabase(path: fixture.storePath, createIfMissing: false, sync: false)
        #expect(try database.get(Array("user:1".utf8)) == Array("alice".utf8))
        #expect(try database.get(LevelDBKey.schema) == nil)
    }

    @Test func leveldbRefusesANewerSchema() throws {
        let fixture = try StoreFixture(.leveldb)
        let store = try LevelDBStore(path: fixture.storePath)
        try store.write { tx in try tx.putRecord(Sample.record("a", fields: ["v": 1])) }
        store.close()
        var writer = BinaryWriter()
        writer.writeVarint(LevelDBStore.schemaVersion + 1)
        do {
            let database = try LevelDBDatabase(path: fixture.storePath, createIfMissing: false, sync: false)
            let batch = LevelDBWriteBatch()
            batch.put(LevelDBKey.schema, writer.bytes)
            try database.write(batch)
        }
        // Tried: a Syncline LevelDB store whose schema key says version 2.
        #expect {
            _ = try LevelDBStore(path: fixture.storePath)
        } throws: { error in
            (error as? SyncError)?.code == .newerSchema && (error as? SyncError)?.message.contains("version \(LevelDBStore.schemaVersion + 1)") == true
        }
        let database = try LevelDBDatabase(path: fixture.storePath, createIfMissing: false, sync: false)
        #expect(try database.get(LevelDBKey.schema) == writer.bytes)
    }

    @Test func leveldbOpenedTwiceIsATypedError() throws {
        let fixture = try StoreFixture(.leveldb)
        let first = try LevelDBStore(path: fixture.storePath)
        // Tried: a second store on a directory whose LOCK the first one holds.
        expectCode(.storage, sayingUntouched: false) { _ = try LevelDBStore(path: fixture.storePath) }
        first.close()
        #expect(throws: Never.self) { _ = try LevelDBStore(path: fixture.storePath) }
    }

    // MARK: Invalid names and sizes

    @Test func invalidNamesAreTypedErrorsNamingTheValue() {
        // Tried: each name with a character outside [A-Za-z0-9._-], empty, and 65 characters.
        for bad in ["", "has space", "slash/", "ünïcode", String(repeating: "n", count: 65)] {
            #expect(throws: SyncError.self) { _ = try Namespace(bad) }
            #expect {
                _ = try CollectionName(bad)
            } throws: { error in
                (error as? SyncError)?.code == .invalidCollection
                    && (error as? SyncError)?.message.contains("\"" + bad.prefix(20)) == true
            }
        }
        // Tried: an empty id, a 257-byte id, an id with NUL.
        for bad in ["", String(repeating: "é", count: 129), "a\u{0}b"] {
            #expect {
                _ = try RecordID(bad)
            } throws: { error in
                (error as? SyncError)?.code == .invalidRecordID
            }
        }
        #expect(throws: Never.self) { _ = try RecordID(String(repeating: "x", count: 256)) }
        // Tried: field names that are empty, reserved ($), or too long.
        for bad in ["", "$b", String(repeating: "f", count: 129)] {
            #expect {
                try Sample.change(1, record: "r", fields: [bad: 1]).validate()
            } throws: { error in
                (error as? SyncError)?.code == .invalidFieldName
            }
        }
    }

    @Test func oversizedChangesAreRefusedByEveryStore() throws {
        for kind in StoreKind.allCases {
            let limits = Limits(maxFieldBytes: 1_000, maxRecordBytes: 2_500)
            let store = try StoreFixture(kind, configuration: StoreConfiguration(limits: limits)).open()
            let field = Value.string(String(repeating: "x", count: 900))
            // Tried: three 900-byte fields (each under the field limit, together over the record limit).
            #expect {
                try store.write { tx in
                    try tx.enqueue(Sample.change(1, record: "r", fields: ["a": field, "b": field, "c": field]), priority: .normal)
                }
            } throws: { error in
                (error as? SyncError)?.code == .recordTooLarge && (error as? SyncError)?.message.contains("todos/r") == true
            }
            // Tried: one 1,500-byte field.
            #expect {
                try store.write { tx in
                    try tx.enqueue(Sample.change(2, record: "r", fields: ["big": .bytes(Array(repeating: 1, count: 1_500))]), priority: .normal)
                }
            } throws: { error in
                (error as? SyncError)?.code == .fieldTooLarge && (error as? SyncError)?.message.contains("\"big\"") == true
            }
            #expect(try store.read { tx in try tx.outboxCount() } == 0, "\(kind)")
        }
    }

    private func rawSQLite(_ path: String, _ sql: String) throws {
        var db: OpaquePointer?
        defer { sqlite3_close_v2(db) }
        guard sqlite3_open(path, &db) == SQLITE_OK, sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
            throw SyncError(.storage, "test setup failed: \(String(cString: sqlite3_errmsg(db)))")
        }
    }
}
