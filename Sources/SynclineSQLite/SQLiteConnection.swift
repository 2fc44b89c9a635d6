import CSQLite
package import Syncline

/// `SQLITE_TRANSIENT`, which Swift does not import: SQLite copies the bound bytes.
let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection. Not thread-safe: one owner (``SQLiteStore``'s lock) uses it at a time.
package final class SQLiteConnection {
    let handle: OpaquePointer
    /// Prepared statements by the address of their SQL literal: a lookup hashes one pointer.
    private var statements: [UnsafeRawPointer: SQLiteStatement] = [:]

    package init(path: String, flags: Int32) throws(SyncError) {
        var handle: OpaquePointer?
        let code = sqlite3_open_v2(path, &handle, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard code == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code))
            sqlite3_close_v2(handle)
            throw SyncError(.storage, "cannot open SQLite database at \(path): \(message)", nativeCode: code)
        }
        self.handle = handle
        sqlite3_extended_result_codes(handle, 1)
    }

    deinit {
        statements.removeAll()  // finalizes every statement before the connection closes
        sqlite3_close_v2(handle)
    }

    /// Runs one or more statements without results.
    package func execute(_ sql: String) throws(SyncError) {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if code != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? lastError
            sqlite3_free(errorMessage)
            throw SyncError(.storage, "SQLite failed on \(sql.prefix(60)): \(message)", nativeCode: code)
        }
    }

    /// A prepared statement, prepared once and reused: callers reset it after use.
    package func statement(_ sql: StaticString) throws(SyncError) -> SQLiteStatement {
        let key = UnsafeRawPointer(sql.utf8Start)
        if let cached = statements[key] { return cached }
        var pointer: OpaquePointer?
        let code = sql.withUTF8Buffer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { text in
                sqlite3_prepare_v3(handle, text.baseAddress, Int32(text.count), UInt32(SQLITE_PREPARE_PERSISTENT), &pointer, nil)
            }
        }
        guard code == SQLITE_OK, let pointer else {
            throw SyncError(.storage, "SQLite cannot prepare \(sql): \(lastError)", nativeCode: code)
        }
        let statement = SQLiteStatement(pointer, connection: self)
        statements[key] = statement
        return statement
    }

    /// The SQL of every statement this connection has prepared and kept, for plan checks.
    package var preparedSQL: [String] {
        statements.values.compactMap { sqlite3_sql($0.handle).map { String(cString: $0) } }
    }

    /// SQLite's plan for `sql` (`EXPLAIN QUERY PLAN`), one `detail` line per step, with
    /// `bindings` bound to `?1`, `?2`, … as the statement would run.
    package func queryPlan(_ sql: String, bindings: [SQLiteValue] = []) throws(SyncError) -> [String] {
        var pointer: OpaquePointer?
        let code = sqlite3_prepare_v2(handle, "EXPLAIN QUERY PLAN " + sql, -1, &pointer, nil)
        guard code == SQLITE_OK, let pointer else {
            throw SyncError(.storage, "SQLite cannot explain \(sql): \(lastError)", nativeCode: code)
        }
        let statement = SQLiteStatement(pointer, connection: self)
        for (offset, value) in bindings.enumerated() {
            let index = Int32(offset + 1)
            switch value {
            case .integer(let integer): try statement.bind(index, integer)
            case .text(let text): try statement.bind(index, text)
            case .blob(let bytes): try statement.bind(index, blob: bytes)
            }
        }
        var details: [String] = []
        while try statement.step() { details.append(statement.text(3)) }
        return details
    }

    /// Reads one integer (a pragma, a count).
    package func integer(_ sql: StaticString) throws(SyncError) -> Int64 {
        let statement = try self.statement(sql)
        defer { statement.reset() }
        guard try statement.step() else { throw SyncError(.storage, "SQLite returned no row for \(sql)") }
        return statement.int64(0)
    }

    package var lastError: String { String(cString: sqlite3_errmsg(handle)) }

    /// Copies this whole database into `destination` with SQLite's online backup API in one step:
    /// one read transaction on this side, so the copy is one consistent snapshot while other
    /// connections (other processes too) keep writing in WAL mode. A busy destination is retried
    /// for up to about 10 s.
    /// - Throws: ``SyncError`` `.storage` with SQLite's code when the copy fails.
    package func backup(into destination: SQLiteConnection) throws(SyncError) {
        guard let backup = sqlite3_backup_init(destination.handle, "main", handle, "main") else {
            let code = sqlite3_errcode(destination.handle)
            throw SyncError(.storage, "SQLite cannot start a backup: \(destination.lastError)", nativeCode: code)
        }
        var code = sqlite3_backup_step(backup, -1)
        var attempts = 0
        while (code == SQLITE_BUSY || code == SQLITE_LOCKED) && attempts < 200 {
            sqlite3_sleep(50)
            attempts += 1
            code = sqlite3_backup_step(backup, -1)
        }
        let finished = sqlite3_backup_finish(backup)
        guard code == SQLITE_DONE else {
            throw SyncError(.storage, "SQLite backup failed: \(Self.name(of: code)) \(destination.lastError)", nativeCode: code)
        }
        try destination.check(finished, "finish the backup")
    }

    /// Rows changed by the last statement.
    package var changes: Int32 { sqlite3_changes(handle) }

    package func check(_ code: Int32, _ what: @autoclosure () -> String) throws(SyncError) {
        guard code == SQLITE_OK || code == SQLITE_DONE || code == SQLITE_ROW else {
            throw SyncError(.storage, "SQLite failed to \(what()): \(lastError) (\(Self.name(of: code)))", nativeCode: code)
        }
    }

    package static func name(of code: Int32) -> String {
        switch code & 0xFF {
        case SQLITE_BUSY: return "SQLITE_BUSY"
        case SQLITE_LOCKED: return "SQLITE_LOCKED"
        case SQLITE_FULL: return "SQLITE_FULL"
        case SQLITE_IOERR: return "SQLITE_IOERR"
        case SQLITE_CORRUPT: return "SQLITE_CORRUPT"
        case SQLITE_NOTADB: return "SQLITE_NOTADB"
        case SQLITE_READONLY: return "SQLITE_READONLY"
        case SQLITE_CONSTRAINT: return "SQLITE_CONSTRAINT"
        case SQLITE_TOOBIG: return "SQLITE_TOOBIG"
        default: return String(cString: sqlite3_errstr(code))
        }
    }
}

/// A prepared statement owned by its connection.
package final class SQLiteStatement {
    let handle: OpaquePointer
    private unowned let connection: SQLiteConnection

    package init(_ handle: OpaquePointer, connection: SQLiteConnection) {
        self.handle = handle
        self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    package func bind(_ index: Int32, _ text: String) throws(SyncError) {
        try connection.check(sqlite3_bind_text(handle, index, text, -1, sqliteTransient), "bind text")
    }

    package func bind(_ index: Int32, _ value: Int64) throws(SyncError) {
        try connection.check(sqlite3_bind_int64(handle, index, value), "bind an integer")
    }

    package func bind(_ index: Int32, blob: [UInt8]) throws(SyncError) {
        let code = blob.withUnsafeBytes { buffer in
            buffer.isEmpty
                ? sqlite3_bind_zeroblob(handle, index, 0)
                : sqlite3_bind_blob(handle, index, buffer.baseAddress, Int32(buffer.count), sqliteTransient)
        }
        try connection.check(code, "bind a blob")
    }

    /// Steps once: `true` when a row is available, `false` when done.
    package func step() throws(SyncError) -> Bool {
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            throw SyncError(
                .storage,
                "SQLite statement failed: \(connection.lastError) (\(SQLiteConnection.name(of: code)))",
                nativeCode: code
            )
        }
    }

    /// Steps a statement that returns no rows, then resets it.
    package func run() throws(SyncError) {
        defer { reset() }
        _ = try step()
    }

    /// Makes the statement ready to run again; every use binds all of its parameters anew.
    package func reset() {
        sqlite3_reset(handle)
    }

    package func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    package func text(_ column: Int32) -> String {
        guard let pointer = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    package func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let pointer = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}
