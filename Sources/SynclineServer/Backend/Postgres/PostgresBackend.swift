public import Logging
import NIOCore
import PostgresNIO
public import ServiceLifecycle
public import Syncline
import Synchronization

/// The scale-out backend (DESIGN §6): any number of identical server nodes share one PostgreSQL.
///
/// Records are stored as ``ServerRecordCodec`` bytes (`bytea`), as the SQLite backend stores them,
/// and every push and pull runs the shared ``ServerEngine`` (see ``PostgresNamespaceState`` for how
/// the synchronous engine runs over asynchronous reads). Each push is one transaction that holds
/// its namespace row (`SELECT … FOR UPDATE`) while it allocates seqs; a pull reads one snapshot
/// (`REPEATABLE READ`) by the `(ns, seq)` index. A commit on any node is announced with `NOTIFY`
/// (namespace and head) and wakes live connections on every node.
///
/// Run it as a service before the server (``SyncServer/application(backend:configuration:metrics:host:port:logger:services:onServerRunning:)``
/// takes it in `services:`): ``run()`` runs the connection pool, creates or upgrades the schema and
/// keeps the LISTEN connection. While PostgreSQL is unreachable, requests are refused at once with
/// `503` and `Retry-After`, and `/healthz` says why; the node recovers by itself.
///
/// ```swift
/// let backend = PostgresBackend(configuration: try .init(url: "postgres://syncline@db:5432/syncline"), logger: logger)
/// let app = SyncServer.application(backend: backend, configuration: configuration, logger: logger, services: [backend])
/// ```
public final class PostgresBackend: ServerBackend, Service {
    public let configuration: Configuration
    let client: PostgresClient
    let logger: Logger
    /// Each namespace's newest head, from this node's commits and every node's NOTIFY.
    public let heads: HeadBroadcaster
    /// The NOTIFY channel of this schema.
    let channel: String
    /// Why requests are refused now (`nil`: PostgreSQL is reachable and the schema ready).
    let outageReason: Mutex<String?>
    /// Namespaces with live subscribers on this node: their heads are read again after the LISTEN
    /// connection comes back, so a commit announced while it was down is not missed.
    let watched = Mutex<Set<Namespace>>([])

    /// - Parameter logger: PostgreSQL's background events (connections, reconnects) go here.
    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        client = PostgresClient(configuration: configuration.client(), backgroundLogger: logger)
        heads = HeadBroadcaster()
        channel = "syncline_heads_\(configuration.schema)"
        outageReason = Mutex("connecting to PostgreSQL at \(configuration.host):\(configuration.port)")
    }

    /// Runs the connection pool and the LISTEN connection (creating or upgrading the schema first)
    /// until a graceful shutdown.
    /// - Throws: ``SyncError`` `.notASynclineStore` or `.newerSchema` when the schema is refused.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await self.client.run() }
            try await cancelWhenGracefulShutdown { try await self.listen() }
            group.cancelAll()
        }
    }

    // MARK: ServerBackend

    public func applyValidated(_ batch: ChangeBatch, namespace: Namespace) async throws -> ServerEngine.PushOutcome {
        let window = configuration.idempotencyWindow
        let channel = channel
        let outcome = try await withStatements { statements in
            try await statements.transaction { statements in
                var state = try await statements.lockNamespace(namespace, reading: batch.changes.map(\.id), records: batch.changes.map(\.key))
                return try await Self.run(statements, &state) { state in
                    var state = state
                    let outcome = try ServerEngine.push(batch, into: &state)
                    return (outcome, state)
                } then: { (outcome: ServerEngine.PushOutcome, written: PostgresNamespaceState) in
                    try await statements.write(written, window: window, channel: channel)
                    return outcome
                }
            }
        }
        heads.publish(outcome.head, namespace: namespace)
        return outcome
    }

    public func pull(
        namespace: Namespace, after cursor: UInt64, from position: UInt64, limit: Int, collections: Set<CollectionName>?,
        epoch: Epoch?, configuration engine: ServerEngine.Configuration
    ) async throws -> PullPage {
        try await withStatements { statements in
            try await statements.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") { statements in
                var state = try await statements.readNamespace(namespace)
                // What ServerEngine.pull reads, read up front in this snapshot (anything else it
                // asks for is read on demand): the page after `position` and, when it is full, the count after it (first page) or
                // whether anything is after it (later pages).
                let page = PostgresNamespaceState.PageRequest(
                    position: position, collections: collections, liveOnly: cursor == 0 && position == 0,
                    limit: max(1, min(limit, engine.maxPageSize))
                )
                if position >= state.currentHead() {
                    state.pages[page] = []
                } else if position >= cursor {
                    try await statements.readPage(page, into: &state)
                    if let records = state.pages[page], records.count == page.limit, let last = records.last {
                        // A first page counts what is left; a later one asks whether anything is.
                        if position == cursor {
                            try await statements.readCount(.init(position: last.seq, collections: collections), into: &state)
                        } else {
                            let probe = PostgresNamespaceState.PageRequest(
                                position: last.seq, collections: collections, liveOnly: false, limit: 1
                            )
                            try await statements.readPage(probe, into: &state)
                        }
                    }
                }
                return try await Self.run(statements, &state) { state in
                    let page = try ServerEngine.pull(
                        from: state, after: cursor, from: position, limit: limit, collections: collections, epoch: epoch,
                        configuration: engine
                    )
                    return (page, state)
                } then: { page, _ in page }
            }
        }
    }

    public func head(namespace: Namespace) async throws -> UInt64 {
        try await withStatements { try await $0.head(namespace) }
    }

    public func epoch(namespace: Namespace) async throws -> Epoch {
        try await withStatements { try await $0.readNamespace(namespace).epoch() }
    }

    public func purgeTombstones(namespace: Namespace, through seq: UInt64) async throws {
        try await withStatements { statements in
            try await statements.transaction { try await $0.purgeTombstones(namespace, through: seq) }
        }
    }

    /// Only one node purges at a time (a session advisory lock); the others return at once with nothing purged.
    public func purgeTombstones(olderThan cutoff: UInt64) async throws -> [Namespace: UInt64] {
        let key = "syncline.janitor.\(configuration.schema)"
        return try await withStatements(bounded: false) { statements in
            let connection = statements.connection
            let locked = try await connection.query("SELECT pg_try_advisory_lock(hashtext(\(key)))", logger: self.logger)
            var acquired = false
            for try await value in locked.decode(Bool.self) { acquired = value }
            guard acquired else { return [:] }
            let result: Result<[Namespace: UInt64], any Error>
            do {
                var horizons: [Namespace: UInt64] = [:]
                for (namespace, through) in try await statements.oldTombstones(before: cutoff) {
                    try await statements.transaction { try await $0.purgeTombstones(namespace, through: through) }
                    horizons[namespace] = through + 1
                }
                result = .success(horizons)
            } catch {
                result = .failure(error)
            }
            try await connection.query("SELECT pg_advisory_unlock(hashtext(\(key)))", logger: self.logger)
            return try result.get()
        }
    }

    public func subscribe(namespace: Namespace) async -> AsyncStream<UInt64> {
        watched.withLock { _ = $0.insert(namespace) }
        return heads.subscribe(namespace: namespace)
    }

    public func outage() async -> String? { outageReason.withLock { $0 } }

    // MARK: Restore fence

    /// The restore fence (as ``SQLiteBackend/fence()``): every namespace gets a new epoch and its
    /// head moves past any seq a device could have seen; the default epoch is replaced; one
    /// transaction; every node hears the new heads. Returns each namespace's new head and epoch.
    public func fence() async throws -> [Namespace: (head: UInt64, epoch: Epoch)] {
        let channel = channel
        let report = try await withStatements { statements in
            try await statements.transaction { statements -> [Namespace: (head: UInt64, epoch: Epoch)] in
                let connection = statements.connection
                let rows = try await connection.query("SELECT ns, head, horizon FROM namespaces FOR UPDATE", logger: self.logger)
                var found: [(String, Int64, Int64)] = []
                for try await row in rows.decode((String, Int64, Int64).self) { found.append(row) }
                var report: [Namespace: (head: UInt64, epoch: Epoch)] = [:]
                for (name, head, horizon) in found {
                    let fenced = ServerEngine.fence(head: UInt64(bitPattern: head), horizon: UInt64(bitPattern: horizon))
                    let epoch = Epoch.random()
                    try await connection.query(
                        """
                        UPDATE namespaces SET head = \(Int64(bitPattern: fenced.head)), horizon = \(Int64(bitPattern: fenced.horizon)),
                            epoch = \(Int64(bitPattern: epoch.rawValue)) WHERE ns = \(name)
                        """,
                        logger: self.logger
                    )
                    let namespace = try Namespace(name)
                    report[namespace] = (fenced.head, epoch)
                    try await statements.notify(channel: channel, namespace: namespace, head: fenced.head)
                }
                try await connection.query(
                    "UPDATE syncline_meta SET value = \(Int64(bitPattern: Epoch.random().rawValue)) WHERE name = 'default_epoch'",
                    logger: self.logger
                )
                return report
            }
        }
        for (namespace, moved) in report { heads.publish(moved.head, namespace: namespace) }
        return report
    }

    // MARK: Running the engine

    /// Runs `engine` over `state`; each time it asks for something not read yet, reads it (in the
    /// caller's transaction) and runs it again from the start. Then `then` finishes with what it returned.
    static func run<Value, Result>(
        _ statements: PostgresStatements, _ state: inout PostgresNamespaceState,
        _ engine: (PostgresNamespaceState) throws -> (Value, PostgresNamespaceState),
        then: (Value, PostgresNamespaceState) async throws -> Result
    ) async throws -> Result {
        for _ in 0..<64 {
            let value: Value
            let written: PostgresNamespaceState
            do {
                (value, written) = try engine(state.unwritten)
            } catch let need as PostgresNamespaceState.Need {
                try await statements.read(need, into: &state)
                continue
            }
            return try await then(value, written)
        }
        throw SyncError(.storage, "the engine kept asking for rows the PostgreSQL backend had not read (64 rounds)")
    }

    // MARK: Connections

    /// Lends a pooled connection to `body`, refusing at once while PostgreSQL is known to be
    /// unreachable and giving up after `timeout` (both `503` with `Retry-After`).
    func withStatements<Result: Sendable>(
        bounded: Bool = true, _ body: @escaping @Sendable (PostgresStatements) async throws -> Result
    ) async throws -> Result {
        if let reason = outageReason.withLock({ $0 }) { throw unavailable(reason) }
        let timeout = configuration.operationTimeout
        let logger = logger
        let client = client
        do {
            guard bounded else {
                return try await client.withConnection { connection in
                    try await body(PostgresStatements(connection: connection, logger: logger))
                }
            }
            let answer = try await PostgresDeadline.run(within: timeout) {
                try await client.withConnection { connection in
                    try await body(PostgresStatements(connection: connection, logger: logger))
                }
            }
            guard let answer else { throw unavailable("PostgreSQL did not answer within \(timeout)") }
            return answer
        } catch {
            throw translate(error)
        }
    }
}

extension PostgresBackend {
    /// PostgreSQL's plans (`EXPLAIN`) for the pull's page and count statements with these values
    /// (for the query-plan test).
    package func explainPull(
        namespace: Namespace, after position: UInt64, collections: Set<CollectionName>?, liveOnly: Bool, limit: Int
    ) async throws -> (page: [String], count: [String]) {
        try await withStatements { statements in
            let page = try PostgresStatements.pageQuery(
                namespace, .init(position: position, collections: collections, liveOnly: liveOnly, limit: limit)
            )
            let count = try PostgresStatements.countQuery(namespace, .init(position: position, collections: collections))
            return (try await statements.explain(page), try await statements.explain(count))
        }
    }

    /// PostgreSQL's plan (`EXPLAIN`) for a push's statement that locks the namespace and reads the
    /// batch's event ids and records (for the query-plan test).
    package func explainPushReads(namespace: Namespace, ids: [EventID], keys: [RecordKey]) async throws -> [String] {
        try await withStatements { statements in
            try await statements.explain(PostgresStatements.lockAndReadQuery(namespace, ids: ids, keys: Array(Set(keys))))
        }
    }

    /// Runs `ANALYZE` on the tables (statistics for the planner, as a production database has).
    package func analyze() async throws {
        try await withStatements { statements in
            try await statements.connection.query("ANALYZE", logger: statements.logger)
            return ()
        }
    }
}

extension PostgresStatements {
    func explain(_ query: PostgresQuery) async throws -> [String] {
        let rows = try await connection.query(PostgresQuery(unsafeSQL: "EXPLAIN " + query.sql, binds: query.binds), logger: logger)
        var lines: [String] = []
        for try await line in rows.decode(String.self) { lines.append(line) }
        return lines
    }
}
