import SynclineSQLite

extension SQLiteConnection {
    /// The server's one SQLite transaction helper: runs `body` in a write transaction (`BEGIN
    /// IMMEDIATE`), committed on return, rolled back on throw.
    func serverTransaction<Result>(_ body: (SQLiteConnection) throws -> Result) throws -> Result {
        try statement("BEGIN IMMEDIATE").run()
        do {
            let result = try body(self)
            try statement("COMMIT").run()
            return result
        } catch {
            _ = try? statement("ROLLBACK").run()  // fails only when SQLite already rolled back
            throw error
        }
    }
}
