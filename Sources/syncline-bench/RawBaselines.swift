import CLevelDB
import CSQLite
import Syncline
import SynclineSQLite

/// The baseline: the same two writes per operation straight through SQLite's C API, same schema,
/// same pragmas, statements prepared once.
enum RawSQLite {
    static func run(
        path: String, durability: Durability, perTransaction: Int, workload: StoreWorkload,
        blobs: [(record: [UInt8], entry: [UInt8])]
    ) throws -> Double {
        var db: OpaquePointer?
        try check(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil), db)
        defer { sqlite3_close_v2(db) }
        let synchronous = durability == .power ? "FULL" : "NORMAL"
        try check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=\(synchronous);", nil, nil, nil), db)
        try check(sqlite3_exec(db, "BEGIN; \(SQLiteStore.schema) COMMIT;", nil, nil, nil), db)
        let record = try prepare(db, "INSERT OR REPLACE INTO records(collection, id, state) VALUES (?1, ?2, ?3)")
        let outbox = try prepare(db, "INSERT OR REPLACE INTO outbox(position, entry) VALUES (?1, ?2)")
        let begin = try prepare(db, "BEGIN IMMEDIATE")
        let commit = try prepare(db, "COMMIT")
        defer { [record, outbox, begin, commit].forEach { sqlite3_finalize($0) } }
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        let collection = workload.collection.rawValue
        let count = blobs.count
        return try measure(operations: count) {
            var index = 0
            while index < count {
                let end = min(index + perTransaction, count)
                try step(begin, db)
                for position in index..<end {
                    let id = workload.ids[position].rawValue
                    sqlite3_bind_text(record, 1, collection, -1, transient)
                    sqlite3_bind_text(record, 2, id, -1, transient)
                    blobs[position].record.withUnsafeBytes { _ = sqlite3_bind_blob(record, 3, $0.baseAddress, Int32($0.count), transient) }
                    try step(record, db)
                    sqlite3_bind_int64(outbox, 1, SQLiteStore.outboxPosition(priority: .normal, seq: UInt64(position + 1)))
                    blobs[position].entry.withUnsafeBytes { _ = sqlite3_bind_blob(outbox, 2, $0.baseAddress, Int32($0.count), transient) }
                    try step(outbox, db)
                }
                try step(commit, db)
                index = end
            }
        }
    }

    private static func prepare(_ db: OpaquePointer?, _ sql: String) throws -> OpaquePointer? {
        var statement: OpaquePointer?
        try check(sqlite3_prepare_v2(db, sql, -1, &statement, nil), db)
        return statement
    }

    private static func step(_ statement: OpaquePointer?, _ db: OpaquePointer?) throws {
        let code = sqlite3_step(statement)
        sqlite3_reset(statement)
        if code != SQLITE_DONE && code != SQLITE_ROW { try check(code, db) }
    }

    private static func check(_ code: Int32, _ db: OpaquePointer?) throws {
        guard code == SQLITE_OK || code == SQLITE_DONE else {
            throw SyncError(.storage, "raw SQLite baseline: \(String(cString: sqlite3_errmsg(db)))", nativeCode: code)
        }
    }
}

/// The baseline: the same two puts per operation in one LevelDB `WriteBatch` per transaction,
/// same options (bloom filter, cache, write buffer, `sync`).
enum RawLevelDB {
    static func run(
        path: String, durability: Durability, perTransaction: Int, workload: StoreWorkload,
        blobs: [(record: [UInt8], entry: [UInt8])]
    ) throws -> Double {
        let options = leveldb_options_create()
        let filter = leveldb_filterpolicy_create_bloom(10)
        let cache = leveldb_cache_create_lru(8 * 1024 * 1024)
        leveldb_options_set_create_if_missing(options, 1)
        leveldb_options_set_filter_policy(options, filter)
        leveldb_options_set_cache(options, cache)
        leveldb_options_set_compression(options, Int32(leveldb_snappy_compression))
        leveldb_options_set_write_buffer_size(options, 8 * 1024 * 1024)
        let writeOptions = leveldb_writeoptions_create()
        leveldb_writeoptions_set_sync(writeOptions, durability == .power ? 1 : 0)
        var error: UnsafeMutablePointer<CChar>?
        let db = leveldb_open(options, path, &error)
        defer {
            leveldb_close(db)
            leveldb_options_destroy(options)
            leveldb_filterpolicy_destroy(filter)
            leveldb_cache_destroy(cache)
            leveldb_writeoptions_destroy(writeOptions)
        }
        if let error {
            defer { leveldb_free(error) }
            throw SyncError(.storage, "raw LevelDB baseline: \(String(cString: error))")
        }
        let recordPrefix = Array("r\(workload.collection.rawValue)\u{0}".utf8)
        let keys = workload.ids.prefix(blobs.count).map { recordPrefix + Array($0.rawValue.utf8) }
        let count = blobs.count
        let batch = leveldb_writebatch_create()
        defer { leveldb_writebatch_destroy(batch) }
        var failure: String?
        let rate = measure(operations: count) {
            var index = 0
            while index < count {
                let end = min(index + perTransaction, count)
                leveldb_writebatch_clear(batch)
                for position in index..<end {
                    put(batch, keys[position], blobs[position].record)
                    var outboxKey = [UInt8](repeating: 0, count: 10)
                    outboxKey[0] = UInt8(ascii: "o")
                    outboxKey[1] = 1
                    let seq = UInt64(position + 1)
                    for byte in 0..<8 { outboxKey[2 + byte] = UInt8(truncatingIfNeeded: seq >> (56 - 8 * byte)) }
                    put(batch, outboxKey, blobs[position].entry)
                }
                var error: UnsafeMutablePointer<CChar>?
                leveldb_write(db, writeOptions, batch, &error)
                if let error {
                    failure = String(cString: error)
                    leveldb_free(error)
                    return
                }
                index = end
            }
        }
        if let failure { throw SyncError(.storage, "raw LevelDB baseline: \(failure)") }
        return rate
    }

    private static func put(_ batch: OpaquePointer?, _ key: [UInt8], _ value: [UInt8]) {
        key.withUnsafeBytes { keyBuffer in
            value.withUnsafeBytes { valueBuffer in
                leveldb_writebatch_put(
                    batch, keyBuffer.baseAddress?.assumingMemoryBound(to: CChar.self), keyBuffer.count,
                    valueBuffer.baseAddress?.assumingMemoryBound(to: CChar.self), valueBuffer.count
                )
            }
        }
    }
}
