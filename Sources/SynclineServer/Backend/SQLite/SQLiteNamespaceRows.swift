import Syncline
import SynclineSQLite

/// One namespace's rows, for the shared engine.
struct SQLiteNamespaceRows: ServerNamespaceWriter, ServerNamespaceReader {
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
            namespaceEpoch = try SQLiteBackendDatabase.defaultEpoch(connection)
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
        return try AppliedChangeCodec.decode(statement.blob(0))
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
        let statement = try connection.statement("INSERT OR REPLACE INTO applied(ns, id, ord, result) VALUES (?1, ?2, ?3, ?4)")
        try statement.bind(1, namespace.rawValue)
        try statement.bind(2, blob: id.bytes)
        try statement.bind(3, appliedCount)
        try statement.bind(4, blob: AppliedChangeCodec.encode(applied))
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
