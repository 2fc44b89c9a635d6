import Foundation
import Logging
import NIOCore
import PostgresNIO
import Syncline

/// Every statement the PostgreSQL backend runs on the namespace tables (created by
/// ``PostgresSchema``): reads for the engine, bulk writes after it, heads and tombstones.
struct PostgresStatements {
    let connection: PostgresConnection
    let logger: Logger

    // MARK: Transactions

    /// Runs `body` in a transaction started with `begin`: committed on return, rolled back on throw.
    /// A connection whose rollback fails is closed, so the pool never lends it half-open.
    func transaction<Result>(
        _ begin: PostgresQuery = "BEGIN", _ body: (PostgresStatements) async throws -> Result
    ) async throws -> Result {
        try await connection.query(begin, logger: logger)
        let result: Result
        do {
            result = try await body(self)
        } catch {
            do {
                try await connection.query("ROLLBACK", logger: logger)
            } catch let rollback {
                logger.debug("rollback failed; closing the connection", metadata: ["syncline.error": "\(String(reflecting: rollback))"])
                PostgresBackend.close(connection, logger: logger)
            }
            throw error
        }
        try await connection.query("COMMIT", logger: logger)
        return result
    }

    // MARK: Namespace rows

    /// The namespace row, locked until the transaction ends (created, with the default epoch, when
    /// missing): pushes to one namespace serialize here, other namespaces never wait.
    func lockNamespace(_ namespace: Namespace) async throws -> PostgresNamespaceState {
        if let state = try await namespaceRow(namespace, lock: true) { return state }
        try await connection.query(
            """
            INSERT INTO namespaces(ns, head, horizon, applied, epoch)
            SELECT \(namespace.rawValue), 0, 0, 0, value FROM syncline_meta WHERE name = 'default_epoch'
            ON CONFLICT (ns) DO NOTHING
            """,
            logger: logger
        )
        guard let state = try await namespaceRow(namespace, lock: true) else {
            throw SyncError(.storage, "the namespace row of \(namespace) could not be created (no default epoch in syncline_meta)")
        }
        return state
    }

    /// ``lockNamespace(_:)`` and ``readApplied(_:andRecords:into:)`` in one statement (one round
    /// trip fewer per push) when that is safe. The statement's reads see its snapshot, taken
    /// before the row lock was granted: if another push committed in between, they would miss its
    /// writes. So the statement also returns whether the locked row (its newest version) is the
    /// version of the snapshot (same `xmin`: every write to a namespace's records and event ids
    /// updates its row in the same transaction); when it is not, or the row does not exist yet,
    /// the reads are done again after the lock, as separate statements.
    func lockNamespace(
        _ namespace: Namespace, reading ids: [EventID], records keys: [RecordKey]
    ) async throws -> PostgresNamespaceState {
        let wantedKeys = Array(Set(keys))
        let rows = try await connection.query(Self.lockAndReadQuery(namespace, ids: ids, keys: wantedKeys), logger: logger)
        var state: PostgresNamespaceState?
        var current = false
        var applied: [(UUID, ByteBuffer)] = []
        var records: [(String, String, ByteBuffer)] = []
        for try await row in rows.decode((Int64?, Int64?, Int64?, Int64?, Bool?, UUID?, String?, String?, ByteBuffer?).self) {
            if let head = row.0, let horizon = row.1, let count = row.2, let epoch = row.3 {
                state = PostgresNamespaceState(
                    namespace: namespace, head: UInt64(bitPattern: head), horizon: UInt64(bitPattern: horizon), appliedCount: count,
                    epoch: Epoch(rawValue: UInt64(bitPattern: epoch))
                )
                current = row.4 ?? false
            } else if let id = row.5, let bytes = row.8 {
                applied.append((id, bytes))
            } else if let collection = row.6, let record = row.7, let bytes = row.8 {
                records.append((collection, record, bytes))
            }
        }
        guard var state else {
            var created = try await lockNamespace(namespace)
            try await readApplied(ids, andRecords: keys, into: &created)
            return created
        }
        guard current else {
            try await readApplied(ids, andRecords: keys, into: &state)
            return state
        }
        for id in ids { state.appliedRead[id] = .some(nil) }
        for key in wantedKeys { state.recordsRead[key] = .some(nil) }
        for (id, bytes) in applied { state.appliedRead[EventID(uuid: id)] = try AppliedChangeCodec.decode(Array(bytes.readableBytesView)) }
        for (collection, record, bytes) in records {
            let key = RecordKey(collection: try CollectionName(collection), id: try RecordID(record))
            state.recordsRead[key] = try ServerRecordCodec.decode(Array(bytes.readableBytesView), key: key)
        }
        return state
    }

    /// The statement of ``lockNamespace(_:reading:records:)`` (also for the query-plan test).
    static func lockAndReadQuery(_ namespace: Namespace, ids: [EventID], keys: [RecordKey]) -> PostgresQuery {
        let name = namespace.rawValue
        let wantedKeys = keys
        return
            """
            WITH locked AS (SELECT xmin, head, horizon, applied, epoch FROM namespaces WHERE ns = \(name) FOR UPDATE),
                 seen AS (SELECT xmin FROM namespaces WHERE ns = \(name))
            SELECT l.head, l.horizon, l.applied, l.epoch, coalesce(l.xmin = s.xmin, false),
                NULL::uuid, NULL::text, NULL::text, NULL::bytea
            FROM locked l LEFT JOIN seen s ON true
            UNION ALL
            SELECT NULL, NULL, NULL, NULL, NULL, a.id, NULL, NULL, a.result FROM unnest(\(ids.map(\.uuid))::uuid[]) AS i(id)
            CROSS JOIN LATERAL (SELECT id, result FROM applied WHERE ns = \(name) AND id = i.id LIMIT 1) a
            UNION ALL
            SELECT NULL, NULL, NULL, NULL, NULL, NULL, r.collection, r.id, r.state
            FROM unnest(\(wantedKeys.map(\.collection.rawValue))::text[], \(wantedKeys.map(\.id.rawValue))::text[]) AS k(collection, id)
            CROSS JOIN LATERAL (
                SELECT collection, id, state FROM records WHERE ns = \(name) AND collection = k.collection AND id = k.id LIMIT 1
            ) r
            """
    }

    /// The namespace as it is (a namespace never written: head 0 and the default epoch).
    func readNamespace(_ namespace: Namespace) async throws -> PostgresNamespaceState {
        let rows = try await connection.query(
            """
            SELECT n.head, n.horizon, n.applied, coalesce(n.epoch, m.value)
            FROM syncline_meta m LEFT JOIN namespaces n ON n.ns = \(namespace.rawValue)
            WHERE m.name = 'default_epoch'
            """,
            logger: logger
        )
        for try await (head, horizon, applied, epoch) in rows.decode((Int64?, Int64?, Int64?, Int64).self) {
            return PostgresNamespaceState(
                namespace: namespace, head: UInt64(bitPattern: head ?? 0), horizon: UInt64(bitPattern: horizon ?? 0),
                appliedCount: applied ?? 0, epoch: Epoch(rawValue: UInt64(bitPattern: epoch))
            )
        }
        throw SyncError(.storage, "the PostgreSQL schema has no default epoch (syncline_meta)")
    }

    private func namespaceRow(_ namespace: Namespace, lock: Bool) async throws -> PostgresNamespaceState? {
        let rows = try await connection.query(
            "SELECT head, horizon, applied, epoch FROM namespaces WHERE ns = \(namespace.rawValue) \(unescaped: lock ? "FOR UPDATE" : "")",
            logger: logger
        )
        for try await (head, horizon, applied, epoch) in rows.decode((Int64, Int64, Int64, Int64).self) {
            return PostgresNamespaceState(
                namespace: namespace, head: UInt64(bitPattern: head), horizon: UInt64(bitPattern: horizon), appliedCount: applied,
                epoch: Epoch(rawValue: UInt64(bitPattern: epoch))
            )
        }
        return nil
    }

    // MARK: Reads for the engine

    // The batch's event ids and records are read one index lookup per key (`LATERAL … LIMIT 1`
    // keeps the planner from flattening it): as a join, without statistics, PostgreSQL hashed the
    // namespace's whole table, so every push cost grew with the history.

    /// Reads the remembered results of `ids` into `state` (absent ones as `nil`).
    func readApplied(_ ids: some Collection<EventID>, into state: inout PostgresNamespaceState) async throws {
        let wanted = ids.filter { state.appliedRead[$0] == nil }
        guard !wanted.isEmpty else { return }
        for id in wanted { state.appliedRead[id] = .some(nil) }
        let rows = try await connection.query(
            """
            SELECT a.id, a.result FROM unnest(\(wanted.map(\.uuid))::uuid[]) AS k(id)
            CROSS JOIN LATERAL (SELECT id, result FROM applied WHERE ns = \(state.namespace.rawValue) AND id = k.id LIMIT 1) a
            """,
            logger: logger
        )
        for try await (id, result) in rows.decode((UUID, ByteBuffer).self) {
            state.appliedRead[EventID(uuid: id)] = try AppliedChangeCodec.decode(Array(result.readableBytesView))
        }
    }

    /// ``readApplied(_:into:)`` and ``readRecords(_:into:)`` in one statement (one round trip).
    func readApplied(
        _ ids: some Collection<EventID>, andRecords keys: some Collection<RecordKey>, into state: inout PostgresNamespaceState
    ) async throws {
        let wantedIDs = ids.filter { state.appliedRead[$0] == nil }
        let wantedKeys = Set(keys.filter { state.recordsRead[$0] == nil })
        guard !wantedIDs.isEmpty, !wantedKeys.isEmpty else {
            try await readApplied(wantedIDs, into: &state)
            try await readRecords(wantedKeys, into: &state)
            return
        }
        for id in wantedIDs { state.appliedRead[id] = .some(nil) }
        for key in wantedKeys { state.recordsRead[key] = .some(nil) }
        let namespace = state.namespace.rawValue
        let rows = try await connection.query(
            """
            SELECT a.id, NULL::text, NULL::text, a.result FROM unnest(\(wantedIDs.map(\.uuid))::uuid[]) AS k(id)
            CROSS JOIN LATERAL (SELECT id, result FROM applied WHERE ns = \(namespace) AND id = k.id LIMIT 1) a
            UNION ALL
            SELECT NULL::uuid, r.collection, r.id, r.state
            FROM unnest(\(wantedKeys.map(\.collection.rawValue))::text[], \(wantedKeys.map(\.id.rawValue))::text[]) AS k(collection, id)
            CROSS JOIN LATERAL (
                SELECT collection, id, state FROM records WHERE ns = \(namespace) AND collection = k.collection AND id = k.id LIMIT 1
            ) r
            """,
            logger: logger
        )
        for try await (id, collection, record, bytes) in rows.decode((UUID?, String?, String?, ByteBuffer).self) {
            if let id {
                state.appliedRead[EventID(uuid: id)] = try AppliedChangeCodec.decode(Array(bytes.readableBytesView))
            } else if let collection, let record {
                let key = RecordKey(collection: try CollectionName(collection), id: try RecordID(record))
                state.recordsRead[key] = try ServerRecordCodec.decode(Array(bytes.readableBytesView), key: key)
            }
        }
    }

    /// Reads the records of `keys` into `state` (absent ones as `nil`), by the primary key.
    func readRecords(_ keys: some Collection<RecordKey>, into state: inout PostgresNamespaceState) async throws {
        let wanted = Set(keys.filter { state.recordsRead[$0] == nil })
        guard !wanted.isEmpty else { return }
        for key in wanted { state.recordsRead[key] = .some(nil) }
        let rows = try await connection.query(
            """
            SELECT r.collection, r.id, r.state
            FROM unnest(\(wanted.map(\.collection.rawValue))::text[], \(wanted.map(\.id.rawValue))::text[]) AS k(collection, id)
            CROSS JOIN LATERAL (
                SELECT collection, id, state FROM records WHERE ns = \(state.namespace.rawValue) AND collection = k.collection AND id = k.id LIMIT 1
            ) r
            """,
            logger: logger
        )
        for try await (collection, id, bytes) in rows.decode((String, String, ByteBuffer).self) {
            let key = RecordKey(collection: try CollectionName(collection), id: try RecordID(id))
            state.recordsRead[key] = try ServerRecordCodec.decode(Array(bytes.readableBytesView), key: key)
        }
    }

    /// The page of records whose latest seq is after the request's position, by the `(ns, seq)` index.
    func readPage(_ request: PostgresNamespaceState.PageRequest, into state: inout PostgresNamespaceState) async throws {
        guard state.pages[request] == nil else { return }
        let query = try Self.pageQuery(state.namespace, request)
        let rows = try await connection.query(query, logger: logger)
        var page: [ServerRecord] = []
        for try await (collection, id, bytes) in rows.decode((String, String, ByteBuffer).self) {
            let key = RecordKey(collection: try CollectionName(collection), id: try RecordID(id))
            page.append(try ServerRecordCodec.decode(Array(bytes.readableBytesView), key: key))
        }
        state.pages[request] = page
    }

    /// How many records (tombstones included) have their latest seq after the position.
    func readCount(_ request: PostgresNamespaceState.CountRequest, into state: inout PostgresNamespaceState) async throws {
        guard state.counts[request] == nil else { return }
        let rows = try await connection.query(try Self.countQuery(state.namespace, request), logger: logger)
        var count: Int64 = 0
        for try await value in rows.decode(Int64.self) { count = value }
        state.counts[request] = UInt64(count)
    }

    /// The pull's page statement (the query-plan test explains it): `$1` namespace, `$2` position,
    /// `$3` the collections when filtered.
    static func pageQuery(_ namespace: Namespace, _ request: PostgresNamespaceState.PageRequest) throws -> PostgresQuery {
        var (sql, binds) = delta("SELECT collection, id, state", namespace, after: request.position, request.collections)
        if request.liveOnly { sql += " AND NOT deleted" }
        sql += " ORDER BY seq LIMIT \(request.limit)"
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }

    /// The pull's count statement (the query-plan test explains it).
    static func countQuery(_ namespace: Namespace, _ request: PostgresNamespaceState.CountRequest) throws -> PostgresQuery {
        let (sql, binds) = delta("SELECT count(*)", namespace, after: request.position, request.collections)
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }

    /// `select` over the namespace's records after `position` (the delta on the `(ns, seq)`
    /// index), in the given collections when filtered: `$1` namespace, `$2` position, `$3` the
    /// collections.
    private static func delta(
        _ select: String, _ namespace: Namespace, after position: UInt64, _ collections: Set<CollectionName>?
    ) -> (sql: String, binds: PostgresBindings) {
        var sql = select + " FROM records WHERE ns = $1 AND seq > $2"
        var binds = PostgresBindings()
        binds.append(namespace.rawValue)
        binds.append(Int64(bitPattern: position))
        if let collections {
            binds.append(collections.map(\.rawValue))
            sql += " AND collection = ANY($3)"
        }
        return (sql, binds)
    }

    /// Reads what the engine said it needs.
    func read(_ need: PostgresNamespaceState.Need, into state: inout PostgresNamespaceState) async throws {
        switch need {
        case .applied(let id): try await readApplied([id], into: &state)
        case .record(let key): try await readRecords([key], into: &state)
        case .page(let request): try await readPage(request, into: &state)
        case .count(let request): try await readCount(request, into: &state)
        }
    }

    // MARK: Writes after the engine

    /// Writes what the engine did: the records (one multi-row upsert), the applied ids (one
    /// multi-row insert), the namespace row, the idempotency window, and a NOTIFY of the new head
    /// that PostgreSQL delivers to every node when the transaction commits.
    func write(_ state: PostgresNamespaceState, window: Int, channel: String) async throws {
        guard state.wroteAnything else { return }
        // One statement, one round trip (each costs a wake-up of both sides, which dominated a
        // push when they were four): the records and event ids (one multi-row `unnest` upsert
        // each), event ids past the retention window dropped (never one written here: a
        // statement must not touch a row twice), the namespace row, and the NOTIFY (sent at commit).
        let namespace = state.namespace.rawValue
        let records = Array(state.stored.values)
        let remembered = state.remembered
        let ids = remembered.map(\.id.uuid)
        let forget = state.appliedCount > Int64(window) ? state.appliedCount - Int64(window) : Int64(0)
        try await connection.query(
            """
            WITH stored AS (
                INSERT INTO records(ns, collection, id, seq, deleted, tombstone_ms, state)
                SELECT \(namespace), * FROM unnest(
                    \(records.map(\.collection.rawValue))::text[], \(records.map(\.id.rawValue))::text[],
                    \(records.map { Int64(bitPattern: $0.seq) })::int8[], \(records.map(\.deleted))::bool[],
                    \(records.map { Int64($0.deleted ? $0.tombstone?.wallMillis ?? 0 : 0) })::int8[],
                    \(records.map { ByteBuffer(bytes: ServerRecordCodec.encode($0)) })::bytea[])
                ON CONFLICT (ns, collection, id) DO UPDATE SET seq = excluded.seq, deleted = excluded.deleted,
                    tombstone_ms = excluded.tombstone_ms, state = excluded.state
                RETURNING 1
            ), remembered AS (
                INSERT INTO applied(ns, id, ord, result)
                SELECT \(namespace), * FROM unnest(
                    \(ids)::uuid[], \(remembered.map(\.ord))::int8[],
                    \(remembered.map { ByteBuffer(bytes: AppliedChangeCodec.encode($0.applied)) })::bytea[])
                ON CONFLICT (ns, id) DO UPDATE SET ord = excluded.ord, result = excluded.result
                RETURNING 1
            ), forgotten AS (
                DELETE FROM applied WHERE ns = \(namespace) AND ord <= \(forget) AND \(forget) > 0 AND id <> ALL(\(ids)::uuid[])
                RETURNING 1
            ), head AS (
                UPDATE namespaces SET head = \(Int64(bitPattern: state.head)), applied = \(state.appliedCount) WHERE ns = \(namespace)
                RETURNING 1
            )
            SELECT pg_notify(\(channel), \("\(namespace) \(state.head)")) WHERE \(state.headChanged)
            """,
            logger: logger
        )
    }

    /// Tells every node (at commit) the namespace's new head: `"<namespace> <head>"`.
    func notify(channel: String, namespace: Namespace, head: UInt64) async throws {
        try await connection.query("SELECT pg_notify(\(channel), \("\(namespace.rawValue) \(head)"))", logger: logger)
    }

    // MARK: Heads, epochs, tombstones

    func head(_ namespace: Namespace) async throws -> UInt64 {
        let rows = try await connection.query("SELECT head FROM namespaces WHERE ns = \(namespace.rawValue)", logger: logger)
        for try await head in rows.decode(Int64.self) { return UInt64(bitPattern: head) }
        return 0
    }

    /// The heads of the namespaces that have a row.
    func heads(_ namespaces: [Namespace]) async throws -> [Namespace: UInt64] {
        let rows = try await connection.query(
            "SELECT ns, head FROM namespaces WHERE ns = ANY(\(namespaces.map(\.rawValue)))", logger: logger
        )
        var heads: [Namespace: UInt64] = [:]
        for try await (name, head) in rows.decode((String, Int64).self) { heads[try Namespace(name)] = UInt64(bitPattern: head) }
        return heads
    }

    /// Each namespace's newest seq among the tombstones of deletes made before `cutoff` (Unix ms).
    func oldTombstones(before cutoff: UInt64) async throws -> [(Namespace, UInt64)] {
        let rows = try await connection.query(
            "SELECT ns, max(seq) FROM records WHERE deleted AND tombstone_ms < \(Int64(clamping: cutoff)) GROUP BY ns",
            logger: logger
        )
        var result: [(Namespace, UInt64)] = []
        for try await (name, seq) in rows.decode((String, Int64).self) { result.append((try Namespace(name), UInt64(bitPattern: seq))) }
        return result
    }

    /// Deletes the namespace's tombstones at or before `seq` and moves its horizon past them.
    func purgeTombstones(_ namespace: Namespace, through seq: UInt64) async throws {
        _ = try await lockNamespace(namespace)
        try await connection.query(
            "DELETE FROM records WHERE ns = \(namespace.rawValue) AND deleted AND seq <= \(Int64(bitPattern: seq))", logger: logger
        )
        try await connection.query(
            """
            UPDATE namespaces SET horizon = greatest(horizon, \(Int64(bitPattern: seq + 1))) WHERE ns = \(namespace.rawValue)
            """,
            logger: logger
        )
    }
}

extension EventID {
    /// The same 16 bytes as a UUID (the `applied.id` column).
    var uuid: UUID {
        let b = bytes
        return UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
    }

    init(uuid: UUID) {
        let u = uuid.uuid
        var high: UInt64 = 0
        var low: UInt64 = 0
        for byte in [u.0, u.1, u.2, u.3, u.4, u.5, u.6, u.7] { high = high << 8 | UInt64(byte) }
        for byte in [u.8, u.9, u.10, u.11, u.12, u.13, u.14, u.15] { low = low << 8 | UInt64(byte) }
        self.init(high: high, low: low)
    }
}
