import Foundation
import Syncline
import SynclineSQLite
import SynclineServer
import SynclineTesting
import Testing

/// Every SQL statement of the server's SQLite backend and of `SQLiteStore`, read from their
/// source files, is classified here by how it may reach its rows, and SQLite's plan for it
/// (`EXPLAIN QUERY PLAN`, on a database that a real workload filled) must match: a point lookup
/// on the whole key, a range on the delta's column (seq, ord), or a scan that is the answer
/// itself. A `SCAN` of a table, or a `SEARCH` on a key prefix that is not the delta's (the pull
/// count of issue 10: `SEARCH records USING PRIMARY KEY (ns=?)`), fails, and so does a new
/// statement that nobody classified. DESIGN §5: a pull costs what changed, never the history.
@Suite("Query plans", .timeLimit(.minutes(1)))
struct QueryPlanTests {
    /// How a statement may reach its rows.
    enum Access {
        /// Transaction control, inserts by key: the plan has no SCAN or SEARCH at all.
        case none
        /// Every step is a SEARCH with exactly these constraints, which are the whole key.
        case point(String)
        /// Every step is a SEARCH with exactly these constraints, ending in a range on the
        /// delta's column: cost follows the rows after the cursor.
        case delta(String)
        /// A SCAN of the table in key order, stopped by the statement's LIMIT (no sort).
        case keyOrderWithLimit
        /// Reads every row of a table or key prefix because every row is the answer; not on a
        /// per-write or per-pull path (the reason is given).
        case wholeAnswer(String)
        /// Reads only the named partial index (its rows are the work: the tombstones to forget).
        case partialIndex(String)
        /// Runs once when a file opens, never per request.
        case onOpen
    }

    struct Expectation {
        let access: Access
        let bindings: [SQLiteValue]
    }

    static let ns = SQLiteValue.text("team")
    static let collection = SQLiteValue.text("todos")

    /// The server backend's statements (Sources/SynclineServer/Backend/SQLite/SQLite*.swift).
    static let backend: [String: Expectation] = [
        "BEGIN": .init(access: .none, bindings: []),
        "BEGIN IMMEDIATE": .init(access: .none, bindings: []),
        "COMMIT": .init(access: .none, bindings: []),
        "ROLLBACK": .init(access: .none, bindings: []),
        "PRAGMA application_id": .init(access: .onOpen, bindings: []),
        "SELECT count(*) FROM sqlite_master": .init(access: .onOpen, bindings: []),
        "PRAGMA user_version": .init(access: .onOpen, bindings: []),
        "SELECT head, horizon, applied, epoch FROM namespaces WHERE ns = ?1": .init(access: .point("ns=?"), bindings: [ns]),
        "SELECT result FROM applied WHERE ns = ?1 AND id = ?2":
            .init(access: .point("ns=? AND id=?"), bindings: [ns, .blob(Array(repeating: 7, count: 16))]),
        "SELECT state FROM records WHERE ns = ?1 AND collection = ?2 AND id = ?3":
            .init(access: .point("ns=? AND collection=? AND id=?"), bindings: [ns, collection, .text("r1")]),
        "INSERT OR REPLACE INTO records(ns, collection, id, seq, deleted, tombstone_ms, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)":
            .init(access: .none, bindings: [ns, collection, .text("r1"), .integer(9), .integer(0), .integer(0), .blob([1])]),
        "INSERT OR REPLACE INTO applied(ns, id, ord, result) VALUES (?1, ?2, ?3, ?4)":
            .init(access: .none, bindings: [ns, .blob(Array(repeating: 7, count: 16)), .integer(9), .blob([1])]),
        "INSERT INTO namespaces(ns, head, horizon, applied, epoch) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(ns) DO UPDATE SET head = ?2, applied = ?4":
            .init(access: .none, bindings: [ns, .integer(9), .integer(0), .integer(9), .integer(77)]),
        "INSERT INTO namespaces(ns, head, horizon, applied, epoch) VALUES (?1, 0, ?2, 0, ?3) ON CONFLICT(ns) DO UPDATE SET horizon = max(horizon, ?2)":
            .init(access: .none, bindings: [ns, .integer(9), .integer(77)]),
        "SELECT value FROM server_meta WHERE name = ?1": .init(access: .point("name=?"), bindings: [.text("default_epoch")]),
        "INSERT OR REPLACE INTO server_meta(name, value) VALUES (?1, ?2)":
            .init(access: .none, bindings: [.text("default_epoch"), .integer(77)]),
        // The restore fence (with the server stopped, or once at start) and the schema upgrade.
        "SELECT ns, head, horizon FROM namespaces": .init(
            access: .wholeAnswer("the restore fence moves every namespace, once per restore"), bindings: []),
        "UPDATE namespaces SET head = ?2, horizon = ?3, epoch = ?4 WHERE ns = ?1":
            .init(access: .point("ns=?"), bindings: [ns, .integer(9), .integer(9), .integer(77)]),
        "SELECT count(*) FROM pragma_table_info('namespaces') WHERE name = 'epoch'": .init(access: .onOpen, bindings: []),
        "SELECT ns FROM namespaces WHERE epoch = 0": .init(access: .onOpen, bindings: []),
        "UPDATE namespaces SET epoch = ?2 WHERE ns = ?1": .init(access: .point("ns=?"), bindings: [ns, .integer(77)]),
        // Forgets the applied ids that fell out of the idempotency window: the oldest ones.
        "DELETE FROM applied WHERE ns = ?1 AND ord <= ?2": .init(access: .delta("ns=? AND ord<?"), bindings: [ns, .integer(3)]),
        // The pull: the page, and the count of what remains after it.
        "SELECT collection, id, deleted, state FROM records WHERE ns = ?1 AND seq > ?2 ORDER BY seq":
            .init(access: .delta("ns=? AND seq>?"), bindings: [ns, .integer(5_000)]),
        "SELECT collection, count(*) FROM records INDEXED BY records_by_seq WHERE ns = ?1 AND seq > ?2 GROUP BY collection":
            .init(access: .delta("ns=? AND seq>?"), bindings: [ns, .integer(5_000)]),
        // The tombstone janitor: reads the tombstone index only, never a live record.
        "SELECT ns, max(seq) FROM records WHERE deleted = 1 AND tombstone_ms < ?1 GROUP BY ns":
            .init(access: .partialIndex("records_tombstones"), bindings: [.integer(1_000)]),
        "DELETE FROM records WHERE ns = ?1 AND deleted = 1 AND seq <= ?2":
            .init(access: .delta("ns=? AND seq<?"), bindings: [ns, .integer(9)]),
    ]

    /// `SQLiteStore`'s statements (Sources/SynclineSQLite/SQLiteStore.swift).
    static let store: [String: Expectation] = [
        "BEGIN DEFERRED": .init(access: .none, bindings: []),
        "BEGIN IMMEDIATE": .init(access: .none, bindings: []),
        "COMMIT": .init(access: .none, bindings: []),
        "ROLLBACK": .init(access: .none, bindings: []),
        "PRAGMA application_id": .init(access: .onOpen, bindings: []),
        "PRAGMA user_version": .init(access: .onOpen, bindings: []),
        "SELECT count(*) FROM sqlite_master": .init(access: .onOpen, bindings: []),
        // Loads the in-memory outbox index once, when the store opens.
        "SELECT position, entry FROM outbox": .init(access: .onOpen, bindings: []),
        "SELECT state FROM records WHERE collection = ?1 AND id = ?2":
            .init(access: .point("collection=? AND id=?"), bindings: [collection, .text("r1")]),
        "SELECT state FROM records": .init(
            access: .wholeAnswer("only a resync from a snapshot compares every stored record"), bindings: []),
        "SELECT state FROM records WHERE collection = ?1 ORDER BY id": .init(
            access: .wholeAnswer("a collection's records are the answer of all()"), bindings: [collection]),
        "INSERT OR REPLACE INTO records(collection, id, state) VALUES (?1, ?2, ?3)":
            .init(access: .none, bindings: [collection, .text("r1"), .blob([1])]),
        "INSERT OR IGNORE INTO records(collection, id, state) VALUES (?1, ?2, ?3)":
            .init(access: .none, bindings: [collection, .text("r1"), .blob([1])]),
        "DELETE FROM records WHERE collection = ?1 AND id = ?2":
            .init(access: .point("collection=? AND id=?"), bindings: [collection, .text("r1")]),
        "SELECT entry FROM outbox ORDER BY position LIMIT ?1": .init(access: .keyOrderWithLimit, bindings: [.integer(500)]),
        "SELECT entry FROM outbox WHERE position = ?1": .init(access: .point("rowid=?"), bindings: [.integer(3)]),
        "INSERT OR REPLACE INTO outbox(position, entry) VALUES (?1, ?2)": .init(access: .none, bindings: [.integer(3), .blob([1])]),
        "DELETE FROM outbox WHERE position = ?1": .init(access: .point("rowid=?"), bindings: [.integer(3)]),
        "SELECT value FROM meta WHERE name = ?1": .init(access: .point("name=?"), bindings: [.text("cursor")]),
        "INSERT OR REPLACE INTO meta(name, value) VALUES (?1, ?2)": .init(access: .none, bindings: [.text("cursor"), .blob([1])]),
        "DELETE FROM meta WHERE name = ?1": .init(access: .point("name=?"), bindings: [.text("cursor")]),
        "SELECT state FROM conflicts WHERE id = ?1": .init(access: .point("id=?"), bindings: [.blob(Array(repeating: 7, count: 16))]),
        "SELECT state FROM conflicts ORDER BY id": .init(
            access: .wholeAnswer("the unresolved conflicts are the answer; resolving one removes it"), bindings: []),
        "INSERT OR REPLACE INTO conflicts(id, state) VALUES (?1, ?2)":
            .init(access: .none, bindings: [.blob(Array(repeating: 7, count: 16)), .blob([1])]),
        "DELETE FROM conflicts WHERE id = ?1": .init(access: .point("id=?"), bindings: [.blob(Array(repeating: 7, count: 16))]),
    ]

    @Test("every statement of the server's SQLite backend reads only its key or its delta")
    func serverBackend() async throws {
        let fixture = try StoreFixture(.sqlite)  // a fresh temporary directory
        let backend = try SQLiteBackend(path: fixture.directory.appendingPathComponent("server.sqlite").path)
        let namespace = try Namespace("team")
        // A real history: 2,000 records written, a quarter rewritten, some deleted, some replays.
        for round in 0..<4 {
            var changes: [Change] = []
            for number in 0..<500 {
                let serial = UInt64(round * 500 + number + 1)
                changes.append(
                    Sample.change(serial, record: "r\(number % 400)", number % 50 == 7 ? .delete : .upsert, fields: number % 50 == 7 ? [:] : ["n": .int(Int64(serial))])
                )
            }
            _ = try await backend.applyValidated(ChangeBatch(changes: changes), namespace: namespace)
        }
        _ = try await backend.applyValidated(ChangeBatch(changes: [Sample.change(1, record: "r0", fields: ["n": 1])]), namespace: namespace)
        let epoch = try await backend.epoch(namespace: namespace)
        for (after, position) in [(UInt64(0), UInt64(0)), (1_000, 1_000), (1_000, 1_500)] {
            for collections in [nil, Set([Sample.collection()])] {
                _ = try await backend.pull(
                    namespace: namespace, after: after, from: position, limit: 100, collections: collections, epoch: epoch,
                    configuration: .init()
                )
            }
        }
        _ = try await backend.head(namespace: namespace)
        _ = try await backend.purgeTombstones(olderThan: 1_700_000_000_100)

        let source = try Self.statements(in: "Sources/SynclineServer/Backend/SQLite", filesStartingWith: "SQLite")
        let prepared = await backend.preparedSQL()
        try await Self.check(
            source: source, prepared: prepared, expectations: Self.backend,
            plan: { sql, bindings in try await backend.queryPlan(sql, bindings: bindings) }
        )
    }

    @Test("every statement of SQLiteStore reads only its key, its delta or its answer")
    func clientStore() async throws {
        let fixture = try StoreFixture(.sqlite)
        let path = fixture.directory.appendingPathComponent("alice.sqlite").path
        let server = InMemorySyncServer()
        let namespace = try Namespace("team")
        let store = try SQLiteStore(path: path)
        let otherStore = try SQLiteStore(path: fixture.directory.appendingPathComponent("bob.sqlite").path)
        let alice = try SyncClient(namespace: namespace, store: store, transport: InMemoryTransport(server: server, namespace: namespace))
        let bob = try SyncClient(namespace: namespace, store: otherStore, transport: InMemoryTransport(server: server, namespace: namespace))
        let todos = Sample.collection()
        alice.setPolicy(.manual, for: todos)
        for number in 0..<300 {
            _ = try await alice.upsert(Sample.key("r\(number)"), fields: ["n": .int(Int64(number))])
        }
        _ = try await alice.delete(Sample.key("r7"))
        try await alice.sync()
        try await bob.sync()
        // A concurrent edit: Bob's wins at the server, Alice's is held as a manual conflict.
        _ = try await bob.upsert(Sample.key("r1"), fields: ["n": "bob"])
        try await bob.sync()
        _ = try await alice.upsert(Sample.key("r1"), fields: ["n": "alice"])
        try await alice.sync()
        let conflicts = try await alice.conflicts()
        #expect(conflicts.count == 1, "the workload must reach the conflict statements")
        if let conflict = conflicts.first {
            try await alice.resolveConflict(conflict.id, with: ["n": "both"])
        }
        try await alice.sync()
        _ = try await alice.visibleRecords(in: todos)
        _ = try await alice.record(Sample.key("r2"))
        let prepared = try store.preparedSQL()
        #expect(prepared.contains("SELECT entry FROM outbox ORDER BY position LIMIT ?1"), "the workload drained the outbox")
        alice.close()
        bob.close()

        let reopened = try SQLiteStore(path: path)
        let source = try Self.statements(in: "Sources/SynclineSQLite", filesStartingWith: "SQLiteStore")
        try await Self.check(
            source: source, prepared: prepared, expectations: Self.store,
            plan: { sql, bindings in try reopened.queryPlan(sql, bindings: bindings) }
        )
    }

    // MARK: Checking

    /// Compares the source's statements with the table and each plan with its expectation.
    static func check(
        source: Set<String>, prepared: [String], expectations: [String: Expectation],
        plan: (String, [SQLiteValue]) async throws -> [String]
    ) async throws {
        for sql in source.subtracting(expectations.keys).sorted() {
            Issue.record("unclassified statement (say how it reaches its rows in QueryPlanTests): \(sql)")
        }
        for sql in Set(expectations.keys).subtracting(source).sorted() {
            Issue.record("classified statement no longer in the source (remove it from QueryPlanTests): \(sql)")
        }
        for sql in Set(prepared).subtracting(source).sorted() {
            Issue.record("a statement ran that the source scan did not find: \(sql)")
        }
        for (sql, expectation) in expectations.sorted(by: { $0.key < $1.key }) where source.contains(sql) {
            let steps = try await plan(sql, expectation.bindings)
            if let problem = Self.problem(with: steps, sql: sql, access: expectation.access) {
                Issue.record("\(problem)\n  statement: \(sql)\n  plan: \(steps)")
            }
        }
    }

    /// Why `steps` do not fit `access`, or nil when they do.
    static func problem(with steps: [String], sql: String, access: Access) -> String? {
        let scans = steps.filter { $0.hasPrefix("SCAN ") && !$0.hasPrefix("SCAN CONSTANT ROW") }
        let searches = steps.filter { $0.hasPrefix("SEARCH ") }
        func constraints(_ step: String) -> String? {
            guard let open = step.lastIndex(of: "("), step.hasSuffix(")") else { return nil }
            return String(step[step.index(after: open)..<step.index(before: step.endIndex)])
        }
        switch access {
        case .none:
            return scans.isEmpty && searches.isEmpty ? nil : "expected no table access"
        case .point(let expected), .delta(let expected):
            if !scans.isEmpty { return "scans a table" }
            if searches.isEmpty { return "expected a SEARCH on (\(expected))" }
            if let wrong = searches.first(where: { constraints($0) != expected }) {
                return "searches a key prefix that is not (\(expected)): \(wrong)"
            }
            if case .delta = access, !(expected.hasSuffix(">?") || expected.hasSuffix("<?")) {
                return "a delta ends in a range"
            }
            return nil
        case .keyOrderWithLimit:
            if steps.contains(where: { $0.contains("TEMP B-TREE") }) { return "sorts instead of reading in key order" }
            if !sql.contains("LIMIT") { return "a key-order scan needs a LIMIT" }
            return scans.count == 1 && searches.isEmpty ? nil : "expected one scan in key order"
        case .partialIndex(let index):
            let outside = (scans + searches).filter { !$0.contains("INDEX \(index)") }
            return outside.isEmpty && !(scans + searches).isEmpty ? nil : "reads rows outside the index \(index)"
        case .wholeAnswer:
            return steps.contains(where: { $0.contains("TEMP B-TREE") }) ? "sorts its answer instead of reading it in key order" : nil
        case .onOpen:
            return nil
        }
    }

    /// The SQL literals passed to `statement(…)` or `integer(…)` in the Swift files of a folder
    /// of the package whose names start with `prefix` (a type and its extensions).
    static func statements(in folder: String, filesStartingWith prefix: String) throws -> Set<String> {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = root.appendingPathComponent(folder)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasPrefix(prefix) && $0.hasSuffix(".swift") }
        #expect(!files.isEmpty, "no \(prefix)*.swift in \(folder)")
        let pattern = try NSRegularExpression(pattern: #"\b(?:statement|integer)\(\s*(?://[^\n]*\n\s*)*"((?:[^"\\]|\\.)*)""#)
        var found: Set<String> = []
        for file in files {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            let matches = pattern.matches(in: text, range: NSRange(text.startIndex..., in: text))
            found.formUnion(matches.compactMap { Range($0.range(at: 1), in: text).map { String(text[$0]) } })
        }
        return found
    }
}
