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

    let database: SQLiteBackendDatabase
    private let configuration: Configuration
    public nonisolated let heads: HeadBroadcaster

    /// Opens (or creates) the database at `path`.
    /// - Throws: ``SyncError`` `.storage` when the file cannot be opened or is not a Syncline server database.
    public init(path: String, configuration: Configuration = Configuration()) throws {
        database = try SQLiteBackendDatabase(path: path, durability: configuration.durability)
        self.configuration = configuration
        heads = HeadBroadcaster()
    }

    public func applyValidated(_ batch: ChangeBatch, namespace: Namespace) throws -> ServerEngine.PushOutcome {
        let outcome = try database.transaction { connection in
            var writer = try SQLiteNamespaceRows(connection: connection, namespace: namespace, window: configuration.idempotencyWindow)
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
            let reader = try SQLiteNamespaceRows(connection: connection, namespace: namespace, window: self.configuration.idempotencyWindow)
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
        try database.read { try SQLiteNamespaceRows(connection: $0, namespace: namespace, window: 0).currentHead() }
    }

    public func epoch(namespace: Namespace) throws -> Epoch {
        try database.read { try SQLiteNamespaceRows(connection: $0, namespace: namespace, window: 0).epoch() }
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
            try horizon.bind(3, Int64(bitPattern: try SQLiteBackendDatabase.defaultEpoch(connection).rawValue))
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
