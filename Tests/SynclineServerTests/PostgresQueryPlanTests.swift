import Foundation
import Logging
import ServiceLifecycle
import Syncline
import SynclineServer
import SynclineTesting
import Testing

/// PostgreSQL's plans (`EXPLAIN`) for the push's reads (one index lookup per key) and the pull's
/// statements, on a schema that a workload filled and `ANALYZE` described, as in production: the page and the count read the `(ns, seq)` index
/// (`records_by_seq`) from the cursor on, never a sequential scan of `records` (DESIGN §5: a pull
/// costs what changed, not the namespace's size or history).
@Suite("PostgreSQL query plans", .timeLimit(.minutes(2)))
struct PostgresQueryPlanTests {
    @Test func pullStatementsReadTheSeqIndexFromTheCursor() async throws {
        let backend = PostgresBackend(configuration: try PostgresTestDatabase.configuration(), logger: PostgresTestDatabase.logger())
        let group = ServiceGroup(services: [backend], logger: PostgresTestDatabase.logger())
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            defer { tasks.cancelAll() }
            try await PostgresTestDatabase.waitUntilAvailable(backend)
            let team = try Namespace("team")
            var number: UInt64 = 0
            // 20,000 records in two collections, some written twice and some deleted; another namespace beside it.
            for (namespace, count) in [(team, 20_000), (try Namespace("other"), 5_000)] {
                for start in stride(from: 0, to: count, by: 5_000) {
                    let changes = (start..<start + 5_000).map { index -> Change in
                        number += 1
                        return Change(
                            id: Sample.eventID(number), collection: Sample.collection(index % 2 == 0 ? "todos" : "notes"),
                            record: Sample.id("r\(index)"), operation: index % 97 == 0 ? .delete : .upsert,
                            fields: index % 97 == 0 ? [:] : ["title": .string("record \(index)"), "n": .int(Int64(index))],
                            hlc: try! HLC(wallMillis: 1_000 + number, counter: 0, node: 0xA), base: 0, mode: .lww
                        )
                    }
                    _ = try await backend.applyValidated(ChangeBatch(changes: changes), namespace: namespace)
                }
            }
            // A push's reads: one index lookup per event id and per record, with or without
            // statistics (as a join, without them, PostgreSQL hashed the namespace's whole table).
            let ids = (0..<500).map { Sample.eventID(UInt64($0 * 40 + 1)) } + (0..<20).map { Sample.eventID(1_000_000 + UInt64($0)) }
            let keys = (0..<500).map { RecordKey(collection: Sample.collection($0 % 2 == 0 ? "todos" : "notes"), id: Sample.id("r\($0 * 37)")) }
            for analyzed in [false, true] {
                if analyzed { try await backend.analyze() }
                let plan = try await backend.explainPushReads(namespace: team, ids: ids, keys: keys).joined(separator: "\n")
                #expect(plan.contains("Index Cond: ((ns = 'team'::text) AND (id = i.id))"), "applied by its primary key (analyzed: \(analyzed)):\n\(plan)")
                #expect(
                    plan.contains("Index Cond: ((ns = 'team'::text) AND (collection = k.collection) AND (id = k.id))"),
                    "records by their primary key (analyzed: \(analyzed)):\n\(plan)"
                )
                #expect(!plan.contains("Seq Scan on records") && !plan.contains("Seq Scan on applied"), "no sequential scan:\n\(plan)")
                #expect(!plan.contains("Hash"), "no hash of a table (analyzed: \(analyzed)):\n\(plan)")
            }
            let head = try await backend.head(namespace: team)
            #expect(head > 19_000, "a delete of a record never written consumes no seq")
            for (position, collections, liveOnly) in [
                (head - 50, nil, false), (head - 50, Set([Sample.collection("todos")]), false), (UInt64(0), nil, true),
                (UInt64(0), Set([Sample.collection("notes")]), true), (head - 2_000, nil, false),
            ] as [(UInt64, Set<CollectionName>?, Bool)] {
                let plans = try await backend.explainPull(
                    namespace: team, after: position, collections: collections, liveOnly: liveOnly, limit: 500
                )
                let page = plans.page.joined(separator: "\n")
                #expect(page.contains("records_by_seq"), "the page after \(position) reads the (ns, seq) index:\n\(page)")
                // A small delta may be read as a bitmap of the index and sorted: still only the delta.
                #expect(page.contains("Index Cond: ((ns = 'team'::text) AND (seq > "), "a range on seq:\n\(page)")
                #expect(!page.contains("Seq Scan"), "no sequential scan for the page:\n\(page)")
                // The count is asked after a full page: the rest of the delta, from the cursor on.
                // (A snapshot's count reads the whole namespace: that is its answer.)
                if position > 0 {
                    let count = plans.count.joined(separator: "\n")
                    #expect(count.contains("records_by_seq"), "the count after \(position) reads the (ns, seq) index:\n\(count)")
                    #expect(!count.contains("Seq Scan"), "no sequential scan for the count:\n\(count)")
                }
            }
        }
    }
}
