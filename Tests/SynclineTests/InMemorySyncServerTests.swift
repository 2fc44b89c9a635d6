import Syncline
import SynclineTesting
import Testing

/// The reference server's semantics (DESIGN §4–§5): merge rules per mode, deletes and revivals,
/// idempotency, coalesced delta pulls, the tombstone horizon, namespace isolation.
@Suite("InMemorySyncServer")
struct InMemorySyncServerTests {
    let alice: UInt64 = 0xA
    let bob: UInt64 = 0xB
    let ns = try! Namespace("team")

    func change(
        _ number: UInt64, _ record: String = "t1", _ operation: ChangeOperation = .upsert, fields: [String: Value] = [:],
        millis: UInt64, node: UInt64, base: UInt64, mode: ConflictMode = .lww
    ) -> Change {
        Change(
            id: Sample.eventID(number), collection: Sample.collection(), record: Sample.id(record), operation: operation,
            fields: fields, hlc: try! HLC(wallMillis: millis, counter: 0, node: node), base: base, mode: mode
        )
    }

    func push(_ server: InMemorySyncServer, _ changes: Change...) async throws -> [PushResult] {
        try await server.push(ChangeBatch(changes: changes), namespace: ns).results
    }

    func fields(_ server: InMemorySyncServer, _ record: String = "t1") async -> [String: Value]? {
        guard let stored = await server.records(namespace: ns)[Sample.key(record)], !stored.deleted else { return nil }
        return stored.fields.mapValues(\.value)
    }

    @Test func lastWriterWinsPerConcurrentField() async throws {
        let server = InMemorySyncServer()
        _ = try await push(server, change(1, fields: ["title": "a", "done": false], millis: 100, node: alice, base: 0))
        // Bob saw seq 1 and edits title at 200; Alice, concurrently and without seeing it, edits title at 150 and done.
        _ = try await push(server, change(2, fields: ["title": "bob"], millis: 200, node: bob, base: 1))
        let results = try await push(server, change(3, fields: ["title": "alice", "done": true], millis: 150, node: alice, base: 1))
        guard case .applied(_, let seq, let resulting) = results[0] else {
            Issue.record("expected applied, got \(results)")
            return
        }
        #expect(seq == 3)
        #expect(resulting["title"]?.value == "bob", "Alice's older concurrent write loses")
        #expect(resulting["done"]?.value == true, "a field nobody else wrote takes the incoming value")
        #expect(await fields(server) == ["title": "bob", "done": true])
        // A later write by Bob's own device is not concurrent with Bob's own earlier write.
        _ = try await push(server, change(4, fields: ["title": "bob2"], millis: 120, node: bob, base: 1))
        #expect(await fields(server)?["title"] == "bob2")
    }

    @Test func rejectModeReturnsTheServersValuesAndChangesNothing() async throws {
        let server = InMemorySyncServer()
        _ = try await push(server, change(1, fields: ["done": false], millis: 100, node: alice, base: 0))
        _ = try await push(server, change(2, fields: ["done": true], millis: 200, node: bob, base: 1))
        let results = try await push(server, change(3, fields: ["done": false, "note": "x"], millis: 300, node: alice, base: 1, mode: .reject))
        guard case .rejected(_, let conflicts, let current) = results[0] else {
            Issue.record("expected rejected, got \(results)")
            return
        }
        #expect(conflicts == ["done"])
        #expect(current["done"]?.value == true && current["done"]?.seq == 2)
        #expect(await server.head(namespace: ns) == 2)
        #expect(await fields(server) == ["done": true])
        // With the new base the same edit goes through.
        let retry = try await push(server, change(4, fields: ["done": false], millis: 300, node: alice, base: 2, mode: .reject))
        guard case .applied(_, 3, _) = retry[0] else {
            Issue.record("expected applied at 3, got \(retry)")
            return
        }
    }

    @Test func forceModeTakesTheIncomingValue() async throws {
        let server = InMemorySyncServer()
        _ = try await push(server, change(1, fields: ["v": 1], millis: 500, node: bob, base: 0))
        _ = try await push(server, change(2, fields: ["v": 2], millis: 100, node: alice, base: 0, mode: .force))
        #expect(await fields(server) == ["v": 2])
    }

    @Test func deletesAndRevivals() async throws {
        let server = InMemorySyncServer()
        _ = try await push(server, change(1, fields: ["a": 1, "b": 1], millis: 100, node: alice, base: 0))
        _ = try await push(server, change(2, "t1", .delete, millis: 200, node: bob, base: 1))
        #expect(await fields(server) == nil)
        // Alice, not having seen the delete, writes b at 150 (older than the delete): it loses.
        let lost = try await push(server, change(3, fields: ["b": 2], millis: 150, node: alice, base: 1))
        guard case .applied(_, _, let none) = lost[0] else { Issue.record("\(lost)"); return }
        #expect(none.isEmpty)
        #expect(await fields(server) == nil)
        // ...and at 300 (newer than the delete): the record comes back with only that field.
        _ = try await push(server, change(4, fields: ["b": 3], millis: 300, node: alice, base: 1))
        #expect(await fields(server) == ["b": 3])
        // A device whose cursor predates the delete gets the whole record with reset.
        let page = try await server.pull(namespace: ns, after: 1, limit: 10)
        #expect(page.changes.count == 1 && page.changes[0].reset && page.changes[0].fields.keys.sorted() == ["b"])
    }

    @Test func aDeleteKeepsConcurrentNewerFields() async throws {
        let server = InMemorySyncServer()
        _ = try await push(server, change(1, fields: ["a": 1, "b": 1], millis: 100, node: alice, base: 0))
        _ = try await push(server, change(2, fields: ["b": 2], millis: 500, node: bob, base: 1))
        // Alice deletes at 300 without having seen Bob's write at 500: b survives, a goes.
        let results = try await push(server, change(3, "t1", .delete, millis: 300, node: alice, base: 1))
        guard case .applied(_, 3, let survivors) = results[0] else { Issue.record("\(results)"); return }
        #expect(survivors.keys.sorted() == ["b"])
        #expect(await fields(server) == ["b": 2])
        let page = try await server.pull(namespace: ns, after: 2, limit: 10)
        #expect(page.changes.first?.reset == true && page.changes.first?.fields.keys.sorted() == ["b"])
        // In reject mode the same delete is refused.
        let server2 = InMemorySyncServer()
        _ = try await push(server2, change(1, fields: ["a": 1], millis: 100, node: alice, base: 0))
        _ = try await push(server2, change(2, fields: ["a": 2], millis: 500, node: bob, base: 1))
        let refused = try await push(server2, change(3, "t1", .delete, millis: 300, node: alice, base: 1, mode: .reject))
        guard case .rejected(_, ["a"], _) = refused[0] else { Issue.record("\(refused)"); return }
    }

    @Test func pushesAreIdempotent() async throws {
        let server = InMemorySyncServer()
        let batch = ChangeBatch(changes: [
            change(1, "x", fields: ["v": 1], millis: 100, node: alice, base: 0),
            change(2, "y", fields: ["v": 2], millis: 101, node: alice, base: 0),
        ])
        let first = try await server.push(batch, namespace: ns)
        // Tried: the same batch three more times (a lost acknowledgement, retried).
        for _ in 0..<3 {
            let again = try await server.push(batch, namespace: ns)
            #expect(again.head == first.head)
            for (original, repeated) in zip(first.results, again.results) {
                guard case .applied(let id, let seq, let fields) = original,
                    case .duplicate(id, seq, fields) = repeated
                else {
                    Issue.record("expected a duplicate of \(original), got \(repeated)")
                    continue
                }
            }
        }
        #expect(await server.head(namespace: ns) == 2)
    }

    @Test func pullsAreCoalescedDeltasInSeqOrder() async throws {
        let server = InMemorySyncServer()
        for number in 1...5 as ClosedRange<UInt64> {
            _ = try await push(server, change(number, "r\(number)", fields: ["v": .int(Int64(number)), "w": 0], millis: number, node: alice, base: 0))
        }
        // r2 changes twice more; only its latest entry, with only the field written after the cursor.
        _ = try await push(server, change(6, "r2", fields: ["v": 20], millis: 6, node: alice, base: 2))
        _ = try await push(server, change(7, "r2", fields: ["v": 21], millis: 7, node: alice, base: 6))
        _ = try await push(server, change(8, "r4", .delete, millis: 8, node: bob, base: 4))
        let page = try await server.pull(namespace: ns, after: 5, limit: 10)
        #expect(page.changes.map(\.record.rawValue) == ["r2", "r4"])
        #expect(page.changes[0].seq == 7 && page.changes[0].fields.keys.sorted() == ["v"] && page.changes[0].fields["v"]?.value == 21)
        #expect(page.changes[1].deleted && page.changes[1].hlc?.node == bob)
        #expect(page.cursor == 8 && !page.hasMore && page.remaining == 0 && page.head == 8)

        // Paging a snapshot (after 0, limit 2): live records only, `from` moves, `after` stays.
        var position: UInt64 = 0
        var seen: [String] = []
        var remainingSeen: [UInt64] = []
        repeat {
            let part = try await server.pull(namespace: ns, after: 0, from: position, limit: 2)
            seen += part.changes.map(\.record.rawValue)
            remainingSeen.append(part.remaining)
            position = part.cursor
            if !part.hasMore { break }
        } while true
        #expect(seen == ["r1", "r3", "r5", "r2"])
        #expect(remainingSeen == [2, 0])
        #expect(position == 8)
        // Collections filter.
        let none = try await server.pull(namespace: ns, after: 0, limit: 10, collections: [Sample.collection("notes")])
        #expect(none.changes.isEmpty && none.cursor == 8)
    }

    @Test func aRecordWrittenWhilePagingKeepsEveryField() async throws {
        // r1 gets field a at seq 1; r2..r4 follow; then, between two pages, r1 gets field b.
        let server = InMemorySyncServer()
        _ = try await push(server, change(1, "r1", fields: ["a": 1], millis: 1, node: alice, base: 0))
        for number in 2...4 as ClosedRange<UInt64> {
            _ = try await push(server, change(number, "r\(number)", fields: ["v": 1], millis: number, node: alice, base: 0))
        }
        _ = try await push(server, change(5, "r1", fields: ["c": 1], millis: 5, node: alice, base: 1))
        // A device at cursor 0 pages with limit 2: r2, r3 first (r1 moved to seq 5).
        let first = try await server.pull(namespace: ns, after: 0, limit: 2)
        #expect(first.changes.map(\.record.rawValue) == ["r2", "r3"] && first.hasMore)
        _ = try await push(server, change(6, "r1", fields: ["b": 2], millis: 6, node: bob, base: 5))
        let second = try await server.pull(namespace: ns, after: 0, from: first.cursor, limit: 2)
        let r1 = try #require(second.changes.first { $0.record.rawValue == "r1" })
        #expect(r1.fields.keys.sorted() == ["a", "b", "c"], "fields written before the page cursor are not lost")
        // Tried: a position before the cursor, and beyond the head.
        await #expect(throws: SyncError.self) { _ = try await server.pull(namespace: ns, after: 3, from: 2, limit: 2) }
        await #expect(throws: SyncError.self) { _ = try await server.pull(namespace: ns, after: 0, from: 99, limit: 2) }
    }

    @Test func badCursorsAndTheHorizon() async throws {
        let server = InMemorySyncServer()
        _ = try await push(server, change(1, "a", fields: ["v": 1], millis: 1, node: alice, base: 0))
        _ = try await push(server, change(2, "a", .delete, millis: 2, node: alice, base: 1))
        _ = try await push(server, change(3, "b", fields: ["v": 1], millis: 3, node: alice, base: 0))
        // Tried: a cursor beyond the head.
        await #expect {
            _ = try await server.pull(namespace: ns, after: 99, limit: 10)
        } throws: { error in
            (error as? SyncError)?.code == .invalidCursor
        }
        await server.purgeTombstones(namespace: ns, through: 2)
        // Tried: a cursor older than the horizon.
        await #expect {
            _ = try await server.pull(namespace: ns, after: 1, limit: 10)
        } throws: { error in
            (error as? SyncError)?.code == .resyncRequired
        }
        let snapshot = try await server.pull(namespace: ns, after: 0, limit: 10)
        #expect(snapshot.changes.map(\.record.rawValue) == ["b"])
        #expect(try await server.pull(namespace: ns, after: 3, limit: 10).changes.isEmpty)
    }

    @Test func namespacesAreIsolated() async throws {
        let server = InMemorySyncServer()
        let other = try Namespace("other")
        _ = try await push(server, change(1, fields: ["v": 1], millis: 1, node: alice, base: 0))
        #expect(await server.head(namespace: other) == 0)
        #expect(try await server.pull(namespace: other, after: 0, limit: 10).changes.isEmpty)
        let results = try await server.push(ChangeBatch(changes: [change(1, fields: ["v": 9], millis: 1, node: alice, base: 0)]), namespace: other)
        guard case .applied(_, 1, _) = results.results[0] else {
            Issue.record("the same event id in another namespace is a new change: \(results)")
            return
        }
        #expect(await fields(server) == ["v": 1])
    }

    @Test func oversizedBatchesAreRefused() async throws {
        let server = InMemorySyncServer(configuration: .init(maxBatchChanges: 3))
        let changes = (1...4 as ClosedRange<UInt64>).map { change($0, "r\($0)", fields: ["v": 1], millis: $0, node: alice, base: 0) }
        // Tried: 4 changes against a limit of 3.
        await #expect {
            _ = try await server.push(ChangeBatch(changes: changes), namespace: ns)
        } throws: { error in
            (error as? SyncError)?.code == .batchTooLarge && (error as? SyncError)?.message.contains("3") == true
        }
        #expect(await server.head(namespace: ns) == 0)
    }

    @Test func liveSubscribersSeeTheHead() async throws {
        let server = InMemorySyncServer()
        let stream = await server.subscribe(namespace: ns)
        var iterator = stream.makeAsyncIterator()
        #expect(await iterator.next() == 0)
        _ = try await push(server, change(1, fields: ["v": 1], millis: 1, node: alice, base: 0))
        #expect(await iterator.next() == 1)
    }
}
