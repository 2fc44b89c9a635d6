import Dispatch
import Synchronization
import Syncline
import SynclineTesting
import Testing

struct Todo: Codable, Identifiable, Sendable, Equatable {
    var id: String
    var title: String
    var done: Bool
    var note: String?
}

/// Devices on one in-memory server.
struct Harness {
    let server = InMemorySyncServer()
    let namespace = try! Namespace("team")

    func device(_ kind: StoreKind = .inMemory, faults: InMemoryTransport.Faults = .none, seed: UInt64 = 1) throws
        -> (SyncClient, InMemoryTransport, StoreFixture)
    {
        let fixture = try StoreFixture(kind)
        let transport = InMemoryTransport(server: server, namespace: namespace, faults: faults, seed: seed)
        let client = try SyncClient(
            namespace: namespace, store: try fixture.open(), transport: transport,
            configuration: .init(initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(5), eventBufferSize: 100_000)
        )
        return (client, transport, fixture)
    }
}

@Suite("Pipeline", .timeLimit(.minutes(1)))
struct PipelineTests {
    @Test(arguments: StoreKind.allCases)
    func twoDevicesExchangeChanges(_ kind: StoreKind) async throws {
        let harness = Harness()
        let (alice, _, _) = try harness.device(kind)
        let (bob, _, _) = try harness.device(kind)
        let aliceTodos = try alice.collection(Todo.self, named: "todos")
        let bobTodos = try bob.collection(Todo.self, named: "todos")

        let first = try #require(try await aliceTodos.upsert(Todo(id: "1", title: "Buy milk", done: false)))
        #expect(try await aliceTodos.get(id: "1")?.title == "Buy milk", "local reads see the write at once")
        #expect(try await alice.pendingCount() == 1)
        let pushed = try await alice.sync()
        #expect(pushed.pushed == 1)
        #expect(pushed.bytesUp == BinaryCodec.encode(ChangeBatch(changes: [first])).count, "bytes up are the batch's binary size")
        #expect(try await alice.pendingCount() == 0)

        let pulled = try await bob.sync()
        #expect(pulled.pulled == 1)
        #expect(try await bobTodos.get(id: "1") == Todo(id: "1", title: "Buy milk", done: false))

        // update sends only the changed field.
        let change = try await bobTodos.update(id: "1") { $0.done = true }
        #expect(change?.fields == ["done": true])
        try await bob.sync()
        try await alice.sync()
        #expect(try await aliceTodos.get(id: "1")?.done == true)

        try await aliceTodos.delete(id: "1")
        #expect(try await aliceTodos.get(id: "1") == nil)
        try await alice.sync()
        try await bob.sync()
        #expect(try await bobTodos.all().isEmpty)
    }

    @Test(arguments: WireCodec.Format.allCases)
    func batchesAreCompressedOnTheWireAboveTheThreshold(_ format: WireCodec.Format) async throws {
        let server = InMemorySyncServer()
        let namespace = try Namespace("team")
        let wire = WireCodec(format: format, compressionThreshold: 1_024)
        func device() throws -> SyncClient {
            try SyncClient(namespace: namespace, store: InMemoryStore(), transport: InMemoryTransport(server: server, namespace: namespace, wire: wire))
        }
        let alice = try device()
        let bob = try device()
        let todos = try alice.collection(Todo.self, named: "todos")
        var written: [Change] = []
        for index in 0..<300 {
            written.append(try #require(try await todos.upsert(Todo(id: "t\(index)", title: "water the plants, pot \(index)", done: false))))
        }
        let raw = format == .binary
            ? BinaryCodec.encode(ChangeBatch(changes: written)).count : try JSONCodec.encode(ChangeBatch(changes: written)).count
        let pushed = try await alice.sync()
        #expect(pushed.pushed == 300)
        #expect(pushed.bytesUp * 3 < raw, "300 changes (\(raw) bytes in \(format)) travel deflated: \(pushed.bytesUp) bytes")
        let pulled = try await bob.sync()
        #expect(pulled.pulled == 300)
        #expect(pulled.bytesDown > 0 && pulled.bytesDown * 2 < raw, "the page comes deflated too: \(pulled.bytesDown) bytes")
        #expect(try await bob.collection(Todo.self, named: "todos").get(id: "t299")?.title == "water the plants, pot 299")

        // One small change stays under the threshold: sent as is.
        let small = try #require(try await todos.update(id: "t1") { $0.done = true })
        let plainBytes = format == .binary ? BinaryCodec.encode(ChangeBatch(changes: [small])).count : try JSONCodec.encode(ChangeBatch(changes: [small])).count
        #expect(try await alice.sync().bytesUp == plainBytes)
    }

    @Test func invalidInputIsATypedErrorAndWritesNothing() async throws {
        let harness = Harness()
        let (client, _, _) = try harness.device()
        let todos = try client.collection(Todo.self, named: "todos")
        // Tried: an id longer than 256 bytes.
        await #expect {
            try await todos.upsert(Todo(id: String(repeating: "x", count: 300), title: "t", done: false))
        } throws: { error in
            (error as? SyncError)?.code == .invalidRecordID
        }
        // Tried: a field name starting with $, and a 300 KiB field.
        let key = Sample.key("r")
        await #expect(throws: SyncError.self) { try await client.upsert(key, fields: ["$x": 1]) }
        await #expect {
            try await client.upsert(key, fields: ["big": .string(String(repeating: "y", count: 300 * 1024))])
        } throws: { error in
            (error as? SyncError)?.code == .fieldTooLarge
        }
        // Tried: a collection name with a space; a model that is not an object.
        #expect(throws: SyncError.self) { _ = try client.collection(Todo.self, named: "my todos") }
        #expect(try await client.pendingCount() == 0)
        #expect(try await client.fields(of: key) == nil)
    }

    @Test func concurrentWritersShareTransactions() async throws {
        // The first transaction is held open until every other writer has queued behind it, so
        // the test does not depend on timing: all 63 must then share the second transaction.
        let gate = GatedStore(InMemoryStore())
        let client = try SyncClient(
            namespace: try Namespace("team"), store: gate,
            transport: InMemoryTransport(server: InMemorySyncServer(), namespace: try Namespace("team"))
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<64 {
                group.addTask { try await client.upsert(Sample.key("w\(writer)"), fields: ["v": .int(Int64(writer))]) }
            }
            while client.ingest.queued < 63 { try await Task.sleep(for: .milliseconds(1)) }
            gate.open()
            try await group.waitForAll()
        }
        #expect(try await client.pendingCount() == 64)
        #expect(client.ingest.transactions == 2)
        #expect(client.ingest.writes == 64)
        for writer in 0..<64 { #expect(try await client.fields(of: Sample.key("w\(writer)")) == ["v": .int(Int64(writer))]) }
    }

    @Test func aLongStreamOfGroupedWritesLosesNothingWhileReadsRun() async throws {
        // 64 writers each await 40 writes in turn, so there are at least 40 transactions: the
        // commit loop hands over to a new turn (every 8 transactions) many times. Reads of a
        // record being written run meanwhile on the same store actor and see it whole or not at all.
        let fixture = try StoreFixture(.sqlite)
        let client = try SyncClient(
            namespace: try Namespace("team"), store: try fixture.open(),
            transport: InMemoryTransport(server: InMemorySyncServer(), namespace: try Namespace("team"))
        )
        defer { client.close() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<64 {
                group.addTask {
                    for round in 0..<40 {
                        try await client.upsert(Sample.key("w\(writer)-\(round)"), fields: ["v": .int(Int64(round)), "w": .int(Int64(writer))])
                    }
                }
            }
            group.addTask {
                while client.ingest.writes < 64 * 40, !Task.isCancelled {  // a failed writer cancels the group
                    let seen = try await client.fields(of: Sample.key("w63-39"))
                    #expect(seen == nil || seen == ["v": 39, "w": 63])
                    await Task.yield()
                }
            }
            try await group.waitForAll()
        }
        #expect(client.ingest.writes == 64 * 40)
        #expect(client.ingest.transactions >= 40)
        #expect(try await client.pendingCount() == 64 * 40)
        for writer in 0..<64 {
            for round in 0..<40 {
                #expect(try await client.fields(of: Sample.key("w\(writer)-\(round)")) == ["v": .int(Int64(round)), "w": .int(Int64(writer))])
            }
        }
    }
}

/// A store whose first write transaction waits until the test opens the gate (for the
/// group-commit test only; everything else goes straight to the wrapped store).
final class GatedStore: SyncStore {
    private let base: any SyncStore
    private let gate = DispatchSemaphore(value: 0)
    private let firstWrite = Mutex(true)

    init(_ base: any SyncStore) { self.base = base }

    func open() { gate.signal() }

    func read<Result: Sendable>(_ body: (any StoreReader) throws -> Result) throws -> Result { try base.read(body) }

    func write<Result: Sendable>(_ body: (any StoreWriter) throws -> Result) throws -> Result {
        try base.write { tx in
            let isFirst = firstWrite.withLock { first in
                defer { first = false }
                return first
            }
            let result = try body(tx)
            // The first write is the device metadata of a new store; the second is the first batch.
            if !isFirst, gateArmed.withLock({ armed in defer { armed = false }; return armed }) { gate.wait() }
            return result
        }
    }

    private let gateArmed = Mutex(true)

    func close() { base.close() }
}

@Suite("Background sync and events", .timeLimit(.minutes(1)))
struct BackgroundSyncTests {
    @Test func runningClientsExchangeChangesWithoutCallingSync() async throws {
        let harness = Harness()
        let (alice, _, _) = try harness.device(.sqlite)
        let (bob, _, _) = try harness.device(.leveldb)
        let bobTodos = try bob.collection(Todo.self, named: "todos")
        let snapshots = bobTodos.observe()
        alice.start()
        bob.start()
        let aliceTodos = try alice.collection(Todo.self, named: "todos")
        try await aliceTodos.upsert(Todo(id: "live", title: "arrives by itself", done: false))
        var arrived = false
        for await snapshot in snapshots where snapshot.contains(where: { $0.id == "live" }) {
            arrived = true
            break
        }
        #expect(arrived)
        // Alice's own background sync may still be finishing its pull: wait for it.
        while await alice.status.lastSync == nil { try await Task.sleep(for: .milliseconds(1)) }
        let status = await alice.status
        #expect(status.pending == 0 && status.connectivity == .online && status.lastSync != nil && status.lastError == nil)
        await alice.stop()
        await bob.stop()
        // Writes after stop stay queued, durable, for the next sync.
        try await aliceTodos.upsert(Todo(id: "later", title: "queued", done: false))
        #expect(try await alice.pendingCount() == 1)
    }

    @Test func offlineIsReportedAndRecovers() async throws {
        let harness = Harness()
        let (client, transport, _) = try harness.device()
        let log = EventLog(client)
        transport.setConnected(false)
        try await client.upsert(Sample.key("x"), fields: ["v": 1])
        await #expect {
            try await client.sync()
        } throws: { error in
            (error as? SyncError)?.code == .transportUnavailable
        }
        let offline = await client.status
        #expect(offline.connectivity == .offline && offline.lastError?.code == .transportUnavailable && offline.pending == 1)
        transport.setConnected(true)
        try await client.sync()
        let online = await client.status
        #expect(online.connectivity == .online && online.pending == 0)
        let connectivity = log.connectivity()
        #expect(connectivity == [.offline, .online])
    }

    @Test func aHostilePageIsRefusedAndTheClientKeepsRunning() async throws {
        // Tried: a page whose entries go backwards in seq, and one whose cursor is behind its entries.
        let server = InMemorySyncServer()
        let namespace = try Namespace("team")
        let hostile = HostileTransport(InMemoryTransport(server: server, namespace: namespace))
        let client = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: hostile)
        let log = EventLog(client)
        for page in HostileTransport.badPages {
            hostile.next.withLock { $0 = page }
            await #expect {
                try await client.sync()
            } throws: { error in
                (error as? SyncError)?.code == .invalidPage
            }
            #expect(try await client.fields(of: Sample.key("evil")) == nil, "nothing of the page was applied")
        }
        // Tried: an answer that does not decode (the transport reports it as malformed input).
        hostile.failure.withLock { $0 = SyncError(.malformedInput, "JSON at byte 3: unexpected character") }
        await #expect {
            try await client.sync()
        } throws: { error in
            (error as? SyncError)?.code == .malformedInput
        }
        hostile.failure.withLock { $0 = nil }
        #expect(log.errors().count == HostileTransport.badPages.count + 1)
        // With an honest server again, the client works.
        hostile.next.withLock { $0 = nil }
        try await client.upsert(Sample.key("ok"), fields: ["v": 1])
        try await client.sync()
        #expect(try await client.pendingCount() == 0)
    }
}

/// Serves a prepared hostile page instead of the server's answer to a pull.
final class HostileTransport: SyncTransport {
    let base: InMemoryTransport
    let next = Mutex<PullPage?>(nil)
    let failure = Mutex<SyncError?>(nil)

    static let badPages: [PullPage] = {
        let field = FieldState(value: 1, hlc: Sample.hlc(1), seq: 5)
        let evil = RemoteChange(seq: 5, collection: Sample.collection(), record: Sample.id("evil"), deleted: false, fields: ["v": field])
        let earlier = RemoteChange(seq: 3, collection: Sample.collection(), record: Sample.id("other"), deleted: false, fields: [:])
        return [
            PullPage(changes: [evil, earlier], cursor: 5, hasMore: false, remaining: 0, head: 5),
            PullPage(changes: [evil], cursor: 2, hasMore: false, remaining: 0, head: 5),
        ]
    }()

    init(_ base: InMemoryTransport) { self.base = base }

    func push(_ batch: ChangeBatch) async throws -> PushResponse { try await base.push(batch) }

    func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
        if let failure = failure.withLock({ $0 }) { throw failure }
        if let page = next.withLock({ $0 }) { return page }
        return try await base.pull(after: cursor, from: position, limit: limit, epoch: epoch)
    }

    func liveHeads() async -> AsyncStream<UInt64> { await base.liveHeads() }
}

@Suite("Dead letters", .timeLimit(.minutes(1)))
struct DeadLetterTests {
    @Test(arguments: StoreKind.allCases)
    func aRefusedChangeIsSetAsideAndTheRestFlow(_ kind: StoreKind) async throws {
        // The server accepts fields up to 1,000 bytes; the device's own limit is larger.
        let server = InMemorySyncServer(configuration: .init(limits: Limits(maxFieldBytes: 1_000)))
        let namespace = try Namespace("team")
        let fixture = try StoreFixture(kind)
        let client = try SyncClient(
            namespace: namespace, store: try fixture.open(), transport: InMemoryTransport(server: server, namespace: namespace)
        )
        let log = EventLog(client)
        // Tried: a 2,000-byte field among six good changes in one batch.
        for index in 0..<3 { try await client.upsert(Sample.key("good\(index)"), fields: ["v": .int(Int64(index))]) }
        let poison = try #require(try await client.upsert(Sample.key("poison"), fields: ["blob": .string(String(repeating: "x", count: 2_000))]))
        for index in 3..<6 { try await client.upsert(Sample.key("good\(index)"), fields: ["v": .int(Int64(index))]) }
        try await client.sync()

        #expect(try await client.pendingCount() == 0)
        #expect(await server.records(namespace: namespace).count == 6, "the six good changes went through")
        let letters = try await client.deadLetters()
        #expect(letters.map(\.change.id) == [poison.id])
        #expect(letters.first?.error.code == .fieldTooLarge)
        let errors = log.errors()
        #expect(errors.contains { $0.changeID == poison.id && $0.key == Sample.key("poison") && $0.error.code == .fieldTooLarge })
        #expect(try await client.fields(of: Sample.key("poison")) != nil, "the local value stays until discarded")

        // Retry: it fails again and comes back to the list; discard: it is gone, locally too.
        try await client.retryDeadLetter(poison.id)
        #expect(try await client.pendingCount() == 1)
        try await client.sync()
        #expect(try await client.deadLetters().count == 1)
        try await client.discardDeadLetter(poison.id)
        #expect(try await client.deadLetters().isEmpty)
        #expect(try await client.fields(of: Sample.key("poison")) == nil)
        // Tried: discarding an id that is not dead-lettered.
        await #expect {
            try await client.discardDeadLetter(poison.id)
        } throws: { error in
            (error as? SyncError)?.code == .notFound
        }
    }
}

@Suite("Failure classification", .timeLimit(.minutes(1)))
struct FailureClassificationTests {
    /// Refuses every push with a given error and counts the attempts.
    final class RefusingTransport: SyncTransport {
        let error: SyncError
        let attempts = Mutex(0)
        init(_ error: SyncError) { self.error = error }
        func push(_ batch: ChangeBatch) async throws -> PushResponse {
            attempts.withLock { $0 += 1 }
            throw error
        }
        func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
            PullPage(changes: [], cursor: cursor, hasMore: false, remaining: 0, head: cursor)
        }
        func liveHeads() async -> AsyncStream<UInt64> { AsyncStream { $0.finish() } }
    }

    @Test func aRefusedTokenIsNotRetriedInALoop() async throws {
        // Tried: a server that answers every push with 401.
        let transport = RefusingTransport(SyncError(.unauthorized, "token expired"))
        let client = try SyncClient(
            namespace: try Namespace("team"), store: InMemoryStore(), transport: transport,
            configuration: .init(pushAttempts: 5, initialBackoff: .milliseconds(1))
        )
        let log = EventLog(client)
        try await client.upsert(Sample.key("a"), fields: ["v": 1])
        await #expect {
            try await client.sync()
        } throws: { error in
            (error as? SyncError)?.code == .unauthorized
        }
        #expect(transport.attempts.withLock { $0 } == 1, "one attempt per sync: the transport renews tokens, the loop backs off")
        #expect(log.errors().map(\.error.code) == [.unauthorized])
        #expect(try await client.pendingCount() == 1, "nothing is lost")
        #expect(try await client.deadLetters().isEmpty, "an auth failure is not the change's fault")
    }

    @Test func transientFailuresAreRetriedWithBackoff() async throws {
        // Tried: a server that is unreachable for every push.
        let transport = RefusingTransport(SyncError(.transportUnavailable, "connection refused"))
        let client = try SyncClient(
            namespace: try Namespace("team"), store: InMemoryStore(), transport: transport,
            configuration: .init(pushAttempts: 4, initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(2))
        )
        try await client.upsert(Sample.key("a"), fields: ["v": 1])
        await #expect(throws: SyncError.self) { try await client.sync() }
        #expect(transport.attempts.withLock { $0 } == 4)
        #expect(try await client.pendingCount() == 1)
    }

    @Test func aStalledOutboxIsReported() async throws {
        let transport = RefusingTransport(SyncError(.transportUnavailable, "connection refused"))
        let client = try SyncClient(
            namespace: try Namespace("team"), store: InMemoryStore(), transport: transport,
            configuration: .init(
                pushAttempts: 1, initialBackoff: .milliseconds(5), maxBackoff: .milliseconds(10),
                stallTimeout: .milliseconds(30)
            )
        )
        let events = client.events
        try await client.upsert(Sample.key("a"), fields: ["v": 1])
        client.start()
        var reason: String?
        for await event in events {
            if case .outboxStalled(let why) = event {
                reason = why
                break
            }
        }
        await client.stop()
        #expect(reason?.contains("1 changes pending") == true)
        #expect(reason?.contains("connection refused") == true)
    }
}
