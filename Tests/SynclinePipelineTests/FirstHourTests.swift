import Synchronization
import Syncline
import SynclineTesting
import Testing

/// What an app developer hit in the first hour (issue 11), one regression test per item.
@Suite("First-hour regressions", .timeLimit(.minutes(2)))
struct FirstHourTests {
    /// Item 1: an app going to the background stops the client and starts it again on return;
    /// the restarted loop must still sync each new write (before the fix, its trigger stream was
    /// finished for good and the next write never left the device).
    @Test(arguments: [StoreKind.inMemory, .sqlite])
    func backgroundSyncSurvivesStopThenStart(_ kind: StoreKind) async throws {
        let harness = Harness()
        let (client, _, _) = try harness.device(kind)
        client.start()
        _ = try await client.upsert(Sample.key("before"), fields: ["n": 1])
        #expect(try await eventually { await harness.server.head(namespace: harness.namespace) == 1 })
        await client.stop()
        client.start()
        _ = try await client.upsert(Sample.key("after"), fields: ["n": 2])
        #expect(
            try await eventually { await harness.server.head(namespace: harness.namespace) == 2 },
            "the write after stop() and start() reached the server without sync() (syncInterval is 30 s)"
        )
        #expect(try await client.pendingCount() == 0)
        await client.stop()
    }

    /// Item 6: resolving a kept conflict queues a change; the background loop must push it at
    /// once, not at the next `syncInterval` tick (30 s here).
    @Test func resolvingAConflictWakesTheBackgroundLoop() async throws {
        let harness = Harness()
        let (alice, _, _) = try harness.device()
        let (bob, _, _) = try harness.device()
        let key = Sample.key("t1")
        alice.setPolicy(.manual, for: key.collection)
        _ = try await bob.upsert(key, fields: ["title": "bob"])
        try await bob.sync()
        _ = try await alice.upsert(key, fields: ["title": "alice"])
        try await alice.sync()
        let conflict = try #require(try await alice.conflicts().first, "a concurrent edit under .manual is kept")
        let head = await harness.server.head(namespace: harness.namespace)

        let idle = Mutex(false)
        alice.observeEvents { event in
            if case .syncFinished = event { idle.withLock { $0 = true } }
        }
        alice.start()
        #expect(try await eventually { idle.withLock { $0 } }, "the loop's first sync ran")
        try await alice.resolveConflict(conflict.id, with: ["title": "both"])
        #expect(
            try await eventually { await harness.server.head(namespace: harness.namespace) > head },
            "the resolution reached the server without sync()"
        )
        try await bob.sync()
        #expect(try await bob.fields(of: key) == ["title": "both"])
        await alice.stop()
    }

    /// Item 4: a field written after a delete revives the record with only that field (the
    /// documented rule). The record's id must fill the model's id, and a record that does not
    /// decode (a required field is missing) must not break `all()` or `observe()`: it is skipped
    /// and reported once, with its key, on the event bus.
    @Test func onePartialRecordDoesNotBreakATypedCollection() async throws {
        let harness = Harness()
        let (alice, _, _) = try harness.device()
        let (bob, _, _) = try harness.device()
        let aliceTodos = try alice.collection(Todo.self, named: "todos")
        let bobTodos = try bob.collection(Todo.self, named: "todos")
        _ = try await aliceTodos.upsert(Todo(id: "t1", title: "Buy milk", done: false))
        try await alice.sync()
        try await bob.sync()
        _ = try await bobTodos.delete(id: "t1")
        try await bob.sync()
        // Alice's write of one field after the delete revives the record with only that field.
        try await alice.sync()
        _ = try await alice.upsert(Sample.key("t1"), fields: ["done": true])
        try await alice.sync()
        try await bob.sync()
        #expect(try await bob.fields(of: Sample.key("t1")) == ["done": true], "revived with only the field written after the delete")

        let reports = Mutex<[SyncErrorEvent]>([])
        bob.observeEvents { event in
            if case .error(let report) = event { reports.withLock { $0.append(report) } }
        }
        // A model whose other fields may be missing reads it, with the id from the record id.
        struct Flag: Codable, Identifiable, Sendable, Equatable {
            var id: String
            var done: Bool?
            var title: String?
        }
        let flags = try bob.collection(Flag.self, named: "todos")
        #expect(try await flags.get(id: "t1") == Flag(id: "t1", done: true, title: nil))
        #expect(try await flags.all() == [Flag(id: "t1", done: true, title: nil)])

        // `Todo` needs a title: the record is skipped, the others still read.
        _ = try await bobTodos.upsert(Todo(id: "t2", title: "Bread", done: false))
        #expect(try await bobTodos.all() == [Todo(id: "t2", title: "Bread", done: false)])
        #expect(try await bobTodos.all().count == 1, "a second read skips it again")
        let reported = reports.withLock { $0 }
        #expect(reported.count == 1, "reported once, not on every read: \(reported)")
        #expect(reported.first?.key == Sample.key("t1"))
        #expect(reported.first?.error.message.contains("title") == true, "the decoding error names the field")

        // observe() keeps updating: a snapshot without the broken record, then one more after a write.
        var snapshots = bobTodos.observe().makeAsyncIterator()
        #expect(await snapshots.next() == [Todo(id: "t2", title: "Bread", done: false)])
        _ = try await bobTodos.upsert(Todo(id: "t3", title: "Eggs", done: true))
        #expect(await snapshots.next()?.map(\.id) == ["t2", "t3"])
    }

    /// Item 8: the device's own acknowledged write is not a remote change. It was reported once,
    /// as local, when written; its acknowledgement changes nothing the app sees. An answer that
    /// does change what the app sees (its write refused for a concurrent one) is reported as remote.
    @Test func ownAcknowledgedWritesAreNotReportedAsRemote() async throws {
        let harness = Harness()
        let (alice, _, _) = try harness.device()
        let (bob, _, _) = try harness.device()
        let changes = Mutex<[(keys: [RecordKey], origin: ChangeOrigin)]>([])
        alice.observeEvents { event in
            if case .recordsChanged(let keys, let origin) = event { changes.withLock { $0.append((keys, origin)) } }
        }
        let key = Sample.key("t1")
        _ = try await alice.upsert(key, fields: ["title": "mine"])
        try await alice.sync()
        var seen = changes.withLock { $0 }
        #expect(seen.count == 1 && seen.first?.origin == .local, "one local change for the write, none for its ack: \(seen)")

        // Under serverWins, Bob's concurrent write stands and Alice's is refused: her answer
        // changes what she sees.
        alice.setPolicy(.serverWins, for: key.collection)
        try await bob.sync()
        _ = try await bob.upsert(key, fields: ["title": "bob"])
        try await bob.sync()
        _ = try await alice.upsert(key, fields: ["title": "refused"])
        changes.withLock { $0.removeAll() }
        try await alice.sync()
        seen = changes.withLock { $0 }
        #expect(seen.contains { $0.origin == .remote && $0.keys == [key] }, "the lost write's answer is a remote change: \(seen)")
        #expect(try await alice.fields(of: key) == ["title": "bob"])
    }

    /// Item 8: `pushProgress.bytesTotal` always equalled `bytesDone`. It is the binary size of
    /// the changes queued when the push began, like `total` for counts: constant through the
    /// push, with `bytesDone` climbing to it. Tried: 50 changes of growing size in batches of 8,
    /// on every store.
    @Test(arguments: StoreKind.allCases)
    func pushProgressGivesTheRealByteTotal(_ kind: StoreKind) async throws {
        let harness = Harness()
        let fixture = try StoreFixture(kind)
        let client = try SyncClient(
            namespace: harness.namespace, store: try fixture.open(), transport: InMemoryTransport(server: harness.server, namespace: harness.namespace),
            configuration: .init(maxBatchChanges: 8)
        )
        var queued = 0
        for number in 0..<50 {
            let change = try #require(try await client.upsert(Sample.key("t\(number)"), fields: ["text": .string(String(repeating: "x", count: number * 10))]))
            var writer = BinaryWriter()
            writer.write(change)
            queued += writer.bytes.count
        }
        let progress = Mutex<[(done: Int, total: Int, bytesDone: Int, bytesTotal: Int)]>([])
        client.observeEvents { event in
            if case .pushProgress(let done, let total, let bytesDone, let bytesTotal) = event {
                progress.withLock { $0.append((done, total, bytesDone, bytesTotal)) }
            }
        }
        try await client.sync()
        let seen = progress.withLock { $0 }
        #expect(seen.count == 7, "50 changes in batches of 8")
        #expect(seen.allSatisfy { $0.bytesTotal == queued && $0.total == 50 }, "the total is the queued changes' size throughout: \(seen)")
        #expect(seen.first.map { $0.bytesDone > 0 && $0.bytesDone < queued } == true)
        #expect(zip(seen, seen.dropFirst()).allSatisfy { $0.bytesDone < $1.bytesDone })
        #expect(seen.last?.bytesDone == queued && seen.last?.done == 50)
        client.close()
    }

    /// Item 8: a token that is always refused made an error event every few seconds, forever.
    /// After `maxUnauthorized` refusals in a row the client reports `.connectivity(.unauthorized)`
    /// once, in its status too, and stops trying until the app calls `start()` again. Tried: a
    /// transport whose server refuses every token, and a backoff of 1 to 5 ms, so a loop that
    /// kept retrying would make hundreds of attempts while the test waits.
    @Test func anAlwaysRefusedTokenEndsInOneUnauthorizedStateUntilTheAppStartsAgain() async throws {
        let harness = Harness()
        let transport = RefusingTransport(InMemoryTransport(server: harness.server, namespace: harness.namespace))
        let client = try SyncClient(
            namespace: harness.namespace, store: InMemoryStore(), transport: transport,
            configuration: .init(initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(5), syncInterval: .milliseconds(20))
        )
        let unauthorized = Mutex(0)
        let errors = Mutex(0)
        client.observeEvents { event in
            if case .connectivity(.unauthorized) = event { unauthorized.withLock { $0 += 1 } }
            if case .error = event { errors.withLock { $0 += 1 } }
        }
        _ = try await client.upsert(Sample.key("t1"), fields: ["n": 1])
        client.start()
        #expect(try await eventually { await client.status.connectivity == .unauthorized })
        let attempts = transport.refusals
        let errorEvents = errors.withLock { $0 }
        #expect(attempts == 3, "three refusals in a row, then it waits (\(attempts))")
        // It waits: writes and 20 ms ticks during half a second bring no new attempt.
        _ = try await client.upsert(Sample.key("t2"), fields: ["n": 2])
        try await Task.sleep(for: .milliseconds(500))
        #expect(transport.refusals == attempts, "no attempt while waiting for credentials")
        #expect(errors.withLock { $0 } == errorEvents, "no error event while waiting")
        #expect(unauthorized.withLock { $0 } == 1, "reported once")

        // The app fixes its credentials and starts again: the writes go through.
        transport.accept()
        client.start()
        #expect(try await eventually { await harness.server.head(namespace: harness.namespace) == 2 })
        // The server has the writes before the device has its answer: online once that sync ends.
        #expect(try await eventually { await client.status.connectivity == .online })
        await client.stop()
    }

    /// Item 7: cancelling `sync()` is neither an error event nor a sign of being offline; it
    /// throws `CancellationError`. Tried: a push held by the transport for 60 s, cancelled.
    @Test func cancellingSyncIsNotAnErrorNorOffline() async throws {
        let harness = Harness()
        let (client, transport, _) = try harness.device(faults: TransportFaults(delay: 1, delayDuration: .seconds(60)))
        _ = try await client.upsert(Sample.key("t1"), fields: ["n": 1])
        let events = Mutex<[SyncEvent]>([])
        let started = AsyncStream<Void>.makeStream()
        client.observeEvents { event in
            events.withLock { $0.append(event) }
            if case .syncStarted = event { started.continuation.yield() }
        }
        let sync = Task { try await client.sync() }
        for await _ in started.stream { break }
        sync.cancel()
        let result = await sync.result
        #expect(throws: CancellationError.self) { try result.get() }
        let seen = events.withLock { $0 }
        #expect(!seen.contains { if case .error = $0 { true } else { false } }, "no error event: \(seen)")
        #expect(!seen.contains { if case .connectivity(.offline) = $0 { true } else { false } }, "not offline: \(seen)")
        #expect(await client.status.connectivity != .offline)
        #expect(await client.status.lastError == nil)
        // Nothing was lost: the change is still queued and goes through once the delay is gone.
        transport.setFaults(.none)
        try await client.sync()
        #expect(await harness.server.head(namespace: harness.namespace) == 1)
    }
}

/// Item 9: a page and its cursor are one transaction. A store that fails at each write of the
/// page's transaction in turn (the first, one in the middle, the last) must leave the device's
/// cursor and records exactly as they were, for every store; the next sync then applies it all.
@Suite("Page and cursor atomicity", .timeLimit(.minutes(1)))
struct PageAtomicityTests {
    @Test(arguments: StoreKind.allCases)
    func aFailedPageWriteLeavesCursorAndRecordsUnchanged(_ kind: StoreKind) async throws {
        // How many writes one page's transaction makes, learned from a run without faults.
        let writesPerPage = try await Self.run(kind, failing: nil)
        #expect(writesPerPage >= 4, "three records and a cursor: at least four writes (\(writesPerPage))")
        for failing in 1...writesPerPage {
            _ = try await Self.run(kind, failing: failing)
        }
    }

    /// Alice writes three records; Bob, who had pulled once, pulls them into a store that fails at
    /// write `failing` of the page. Returns the page's write count.
    static func run(_ kind: StoreKind, failing: Int?) async throws -> Int {
        let harness = Harness()
        let (alice, _, _) = try harness.device()
        let fixture = try StoreFixture(kind)
        let store = FaultInjectingStore(try fixture.open())
        let bob = try SyncClient(
            namespace: harness.namespace, store: store, transport: InMemoryTransport(server: harness.server, namespace: harness.namespace)
        )
        _ = try await alice.upsert(Sample.key("first"), fields: ["n": 0])
        try await alice.sync()
        try await bob.sync()
        let cursor = try await bob.pullCursor()
        let keys = ["a", "b", "c"].map { Sample.key($0) }
        for (number, key) in keys.enumerated() { _ = try await alice.upsert(key, fields: ["n": .int(Int64(number))]) }
        try await alice.sync()

        let before = store.writes
        if let failing {
            store.failWrite(failing)
            await #expect(throws: SyncError.self, "write \(failing) of the page fails") { try await bob.sync() }
            #expect(store.failures == 1)
            #expect(try await bob.pullCursor() == cursor, "write \(failing) failed: the cursor did not move")
            for key in keys {
                #expect(try await bob.record(key) == nil, "write \(failing) failed: \(key) was not applied")
            }
            store.disarm()
        }
        let counted = store.writes
        try await bob.sync()
        #expect(try await bob.pullCursor() > cursor)
        for (number, key) in keys.enumerated() { #expect(try await bob.fields(of: key) == ["n": .int(Int64(number))]) }
        bob.close()
        return failing == nil ? counted == before ? store.writes - before : 0 : 0
    }
}

/// A transport whose server refuses every token until `accept()` (counting the refusals).
final class RefusingTransport: SyncTransport {
    private let inner: InMemoryTransport
    private let state = Mutex((accepting: false, refusals: 0))

    init(_ inner: InMemoryTransport) { self.inner = inner }

    var refusals: Int { state.withLock { $0.refusals } }
    func accept() { state.withLock { $0.accepting = true } }

    private func check() throws {
        try state.withLock { state in
            guard state.accepting else {
                state.refusals += 1
                throw SyncError(.unauthorized, "HTTP 401: the token was refused")
            }
        }
    }

    func push(_ batch: ChangeBatch) async throws -> PushResponse {
        try check()
        return try await inner.push(batch)
    }

    func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
        try check()
        return try await inner.pull(after: cursor, from: position, limit: limit, epoch: epoch)
    }

    func liveHeads() async -> AsyncStream<UInt64> { await inner.liveHeads() }
}
