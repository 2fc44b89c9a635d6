import Syncline
import SynclineServer
import SynclineTesting
import Testing

/// The server's semantics (DESIGN §4–§5), run against the in-memory reference server and against
/// the real server (SQLite backend on loopback) through REST and WebSocket, in both codecs: merge
/// rules per mode, deletes and revivals, idempotency, coalesced delta pulls, the tombstone
/// horizon, namespace isolation, limits. Both servers call the same ``ServerEngine``; this suite
/// is what shows they answer the same.
@Suite("Server semantics", .timeLimit(.minutes(2)))
struct ServerSemanticsTests {
    let alice: UInt64 = 0xA
    let bob: UInt64 = 0xB

    func change(
        _ number: UInt64, _ record: String = "t1", _ operation: ChangeOperation = .upsert, fields: [String: Value] = [:],
        millis: UInt64, node: UInt64, base: UInt64, mode: ConflictMode = .lww
    ) -> Change {
        Change(
            id: Sample.eventID(number), collection: Sample.collection(), record: Sample.id(record), operation: operation,
            fields: fields, hlc: try! HLC(wallMillis: millis, counter: 0, node: node), base: base, mode: mode
        )
    }

    @Test(arguments: ServerKind.allCases)
    func lastWriterWinsPerConcurrentField(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind) { server in
            _ = try await server.push(change(1, fields: ["title": "a", "done": false], millis: 100, node: alice, base: 0))
            // Bob saw seq 1 and edits title at 200; Alice, concurrently and without seeing it, edits title at 150 and done.
            _ = try await server.push(change(2, fields: ["title": "bob"], millis: 200, node: bob, base: 1))
            let results = try await server.push(change(3, fields: ["title": "alice", "done": true], millis: 150, node: alice, base: 1))
            guard case .applied(_, let seq, let resulting) = results[0] else {
                Issue.record("expected applied, got \(results)")
                return
            }
            #expect(seq == 3)
            #expect(resulting["title"]?.value == "bob", "Alice's older concurrent write loses")
            #expect(resulting["done"]?.value == true, "a field nobody else wrote takes the incoming value")
            #expect(try await server.fields() == ["title": "bob", "done": true])
            // A later write by Bob's own device is not concurrent with Bob's own earlier write.
            _ = try await server.push(change(4, fields: ["title": "bob2"], millis: 120, node: bob, base: 1))
            #expect(try await server.fields()?["title"] == "bob2")
        }
    }

    @Test(arguments: ServerKind.allCases)
    func rejectModeReturnsTheServersValuesAndChangesNothing(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind) { server in
            _ = try await server.push(change(1, fields: ["done": false], millis: 100, node: alice, base: 0))
            _ = try await server.push(change(2, fields: ["done": true], millis: 200, node: bob, base: 1))
            let results = try await server.push(change(3, fields: ["done": false, "note": "x"], millis: 300, node: alice, base: 1, mode: .reject))
            guard case .rejected(_, let conflicts, let current) = results[0] else {
                Issue.record("expected rejected, got \(results)")
                return
            }
            #expect(conflicts == ["done"])
            #expect(current["done"]?.value == true && current["done"]?.seq == 2)
            #expect(try await server.head() == 2)
            #expect(try await server.fields() == ["done": true])
            // With the new base the same edit goes through.
            let retry = try await server.push(change(4, fields: ["done": false], millis: 300, node: alice, base: 2, mode: .reject))
            guard case .applied(_, 3, _) = retry[0] else {
                Issue.record("expected applied at 3, got \(retry)")
                return
            }
        }
    }

    @Test(arguments: ServerKind.allCases)
    func forceModeTakesTheIncomingValue(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind) { server in
            _ = try await server.push(change(1, fields: ["v": 1], millis: 500, node: bob, base: 0))
            _ = try await server.push(change(2, fields: ["v": 2], millis: 100, node: alice, base: 0, mode: .force))
            #expect(try await server.fields() == ["v": 2])
        }
    }

    @Test(arguments: ServerKind.allCases)
    func deletesAndRevivals(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind) { server in
            _ = try await server.push(change(1, fields: ["a": 1, "b": 1], millis: 100, node: alice, base: 0))
            _ = try await server.push(change(2, "t1", .delete, millis: 200, node: bob, base: 1))
            #expect(try await server.fields() == nil)
            // Alice, not having seen the delete, writes b at 150 (older than the delete): it loses.
            let lost = try await server.push(change(3, fields: ["b": 2], millis: 150, node: alice, base: 1))
            guard case .applied(_, _, let none) = lost[0] else { Issue.record("\(lost)"); return }
            #expect(none.isEmpty)
            #expect(try await server.fields() == nil)
            // ...and at 300 (newer than the delete): the record comes back with only that field.
            _ = try await server.push(change(4, fields: ["b": 3], millis: 300, node: alice, base: 1))
            #expect(try await server.fields() == ["b": 3])
            // A device whose cursor predates the delete gets the whole record with reset.
            let page = try await server.pull(after: 1, limit: 10)
            #expect(page.changes.count == 1 && page.changes[0].reset && page.changes[0].fields.keys.sorted() == ["b"])
        }
    }

    @Test(arguments: ServerKind.allCases)
    func aDeleteKeepsConcurrentNewerFields(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind) { server in
            _ = try await server.push(change(1, fields: ["a": 1, "b": 1], millis: 100, node: alice, base: 0))
            _ = try await server.push(change(2, fields: ["b": 2], millis: 500, node: bob, base: 1))
            // Alice deletes at 300 without having seen Bob's write at 500: b survives, a goes.
            let results = try await server.push(change(3, "t1", .delete, millis: 300, node: alice, base: 1))
            guard case .applied(_, 3, let survivors) = results[0] else { Issue.record("\(results)"); return }
            #expect(survivors.keys.sorted() == ["b"])
            #expect(try await server.fields() == ["b": 2])
            let page = try await server.pull(after: 2, limit: 10)
            #expect(page.changes.first?.reset == true && page.changes.first?.fields.keys.sorted() == ["b"])
            // In reject mode the same delete is refused.
            try await ServerUnderTest.with(kind) { second in
                _ = try await second.push(change(1, fields: ["a": 1], millis: 100, node: alice, base: 0))
                _ = try await second.push(change(2, fields: ["a": 2], millis: 500, node: bob, base: 1))
                let refused = try await second.push(change(3, "t1", .delete, millis: 300, node: alice, base: 1, mode: .reject))
                guard case .rejected(_, ["a"], _) = refused[0] else { Issue.record("\(refused)"); return }
            }
        }
    }

    @Test(arguments: ServerKind.allCases)
    func pushesAreIdempotent(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind) { server in
            let batch = ChangeBatch(changes: [
                change(1, "x", fields: ["v": 1], millis: 100, node: alice, base: 0),
                change(2, "y", fields: ["v": 2], millis: 101, node: alice, base: 0),
            ])
            let first = try await server.push(batch)
            // Tried: the same batch three more times (a lost acknowledgement, retried).
            for _ in 0..<3 {
                let again = try await server.push(batch)
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
            #expect(try await server.head() == 2)
        }
    }

    @Test(arguments: ServerKind.allCases)
    func pullsAreCoalescedDeltasInSeqOrder(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind) { server in
            for number in 1...5 as ClosedRange<UInt64> {
                _ = try await server.push(change(number, "r\(number)", fields: ["v": .int(Int64(number)), "w": 0], millis: number, node: alice, base: 0))
            }
            // r2 changes twice more; only its latest entry, with only the field written after the cursor.
            _ = try await server.push(change(6, "r2", fields: ["v": 20], millis: 6, node: alice, base: 2))
            _ = try await server.push(change(7, "r2", fields: ["v": 21], millis: 7, node: alice, base: 6))
            _ = try await server.push(change(8, "r4", .delete, millis: 8, node: bob, base: 4))
            let page = try await server.pull(after: 5, limit: 10)
            #expect(page.changes.map(\.record.rawValue) == ["r2", "r4"])
            #expect(page.changes[0].seq == 7 && page.changes[0].fields.keys.sorted() == ["v"] && page.changes[0].fields["v"]?.value == 21)
            #expect(page.changes[1].deleted && page.changes[1].hlc?.node == bob)
            #expect(page.cursor == 8 && !page.hasMore && page.remaining == 0 && page.head == 8)

            // Paging a snapshot (after 0, limit 2): the first page holds live records only, later
            // pages also the tombstones of records deleted after it (r4); `from` moves, `after` stays;
            // the first page's `remaining` counts what the later pages will hold.
            var position: UInt64 = 0
            var seen: [String] = []
            var deleted: [String] = []
            var remainingSeen: [UInt64] = []
            repeat {
                let part = try await server.pull(after: 0, from: position, limit: 2)
                seen += part.changes.map(\.record.rawValue)
                deleted += part.changes.filter(\.deleted).map(\.record.rawValue)
                remainingSeen.append(part.remaining)
                position = part.cursor
                if !part.hasMore { break }
            } while true
            #expect(seen == ["r1", "r3", "r5", "r2", "r4"])
            #expect(deleted == ["r4"])
            #expect(remainingSeen == [3, 1, 0])
            #expect(position == 8)
            // A later page only bounds `remaining` by the seqs after it (counting the rest on every
            // page would make a large pull quadratic): pages of one, r2's stale seqs 2 and 6 make
            // the bound exceed the exact [4, 3, 2, 1, 0]; the first page and the last are exact.
            position = 0
            var bounds: [UInt64] = []
            var exact: [UInt64] = []
            repeat {
                let part = try await server.pull(after: 0, from: position, limit: 1)
                bounds.append(part.remaining)
                exact.append(UInt64(seen.count - exact.count - 1))
                position = part.cursor
                if !part.hasMore { break }
            } while true
            #expect(bounds == [4, 5, 3, 1, 0])
            #expect(zip(bounds, exact).allSatisfy { $0 >= $1 } && exact == [4, 3, 2, 1, 0])
            // Collections filter.
            let none = try await server.pull(after: 0, limit: 10, collections: [Sample.collection("notes")])
            #expect(none.changes.isEmpty && none.cursor == 8)
        }
    }

    @Test(arguments: ServerKind.allCases)
    func aRecordWrittenWhilePagingKeepsEveryField(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind) { server in
            // r1 gets field a at seq 1; r2..r4 follow; then, between two pages, r1 gets field b.
            _ = try await server.push(change(1, "r1", fields: ["a": 1], millis: 1, node: alice, base: 0))
            for number in 2...4 as ClosedRange<UInt64> {
                _ = try await server.push(change(number, "r\(number)", fields: ["v": 1], millis: number, node: alice, base: 0))
            }
            _ = try await server.push(change(5, "r1", fields: ["c": 1], millis: 5, node: alice, base: 1))
            // A device at cursor 0 pages with limit 2: r2, r3 first (r1 moved to seq 5).
            let first = try await server.pull(after: 0, limit: 2)
            #expect(first.changes.map(\.record.rawValue) == ["r2", "r3"] && first.hasMore)
            _ = try await server.push(change(6, "r1", fields: ["b": 2], millis: 6, node: bob, base: 5))
            let second = try await server.pull(after: 0, from: first.cursor, limit: 2)
            let r1 = try #require(second.changes.first { $0.record.rawValue == "r1" })
            #expect(r1.fields.keys.sorted() == ["a", "b", "c"], "fields written before the page cursor are not lost")
            // Tried: a position before the cursor, and beyond the head.
            await #expect(throws: SyncError.self) { _ = try await server.pull(after: 3, from: 2, limit: 2) }
            await #expect(throws: SyncError.self) { _ = try await server.pull(after: 0, from: 99, limit: 2) }
        }
    }

    @Test(arguments: ServerKind.allCases)
    func badCursorsAndTheHorizon(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind) { server in
            _ = try await server.push(change(1, "a", fields: ["v": 1], millis: 1, node: alice, base: 0))
            _ = try await server.push(change(2, "a", .delete, millis: 2, node: alice, base: 1))
            _ = try await server.push(change(3, "b", fields: ["v": 1], millis: 3, node: alice, base: 0))
            // Tried: a cursor beyond the head.
            await #expect {
                _ = try await server.pull(after: 99, limit: 10)
            } throws: { error in
                (error as? SyncError)?.code == .invalidCursor
            }
            try await server.purgeTombstones(through: 2)
            // Tried: a cursor older than the horizon.
            await #expect {
                _ = try await server.pull(after: 1, limit: 10)
            } throws: { error in
                (error as? SyncError)?.code == .resyncRequired
            }
            let snapshot = try await server.pull(after: 0, limit: 10)
            #expect(snapshot.changes.map(\.record.rawValue) == ["b"])
            #expect(try await server.pull(after: 3, limit: 10).changes.isEmpty)
        }
    }

    @Test(arguments: ServerKind.allCases)
    func namespacesAreIsolated(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind) { server in
            let other = try await server.other(try Namespace("other"))
            _ = try await server.push(change(1, fields: ["v": 1], millis: 1, node: alice, base: 0))
            #expect(try await other.head() == 0)
            #expect(try await other.pull(after: 0, limit: 10).changes.isEmpty)
            let results = try await other.push(ChangeBatch(changes: [change(1, fields: ["v": 9], millis: 1, node: alice, base: 0)]))
            guard case .applied(_, 1, _) = results.results[0] else {
                Issue.record("the same event id in another namespace is a new change: \(results)")
                return
            }
            #expect(try await server.fields() == ["v": 1])
        }
    }

    @Test(arguments: ServerKind.allCases)
    func oversizedBatchesAreRefused(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind, engine: .init(maxBatchChanges: 3)) { server in
            let changes = (1...4 as ClosedRange<UInt64>).map { change($0, "r\($0)", fields: ["v": 1], millis: $0, node: alice, base: 0) }
            // Tried: 4 changes against a limit of 3.
            await #expect {
                _ = try await server.push(ChangeBatch(changes: changes))
            } throws: { error in
                (error as? SyncError)?.code == .batchTooLarge && (error as? SyncError)?.message.contains("3") == true
            }
            let head = try await server.head()
            #expect(head == 0, "nothing of the refused batch was applied")
        }
    }

    @Test(arguments: ServerKind.live)
    func liveSubscribersSeeTheHead(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind) { server in
            let stream = await server.headsVia()
            var iterator = stream.makeAsyncIterator()
            #expect(await iterator.next() == 0)
            _ = try await server.push(change(1, fields: ["v": 1], millis: 1, node: alice, base: 0))
            #expect(await iterator.next() == 1)
        }
    }
}
