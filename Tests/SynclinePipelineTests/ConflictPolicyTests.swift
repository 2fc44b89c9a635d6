import Synchronization
import Syncline
import SynclineTesting
import Testing

/// Each policy of DESIGN §4 end to end, with two or three devices on one server.
@Suite("Conflict policies", .timeLimit(.minutes(1)))
struct ConflictPolicyTests {
    /// Alice and Bob both have t1 at seq 1; both edit `title` without syncing in between; Bob's
    /// edit reaches the server first.
    func concurrentTitleEdits(
        policy: ConflictPolicy, aliceFirstInTime: Bool = true, kind: StoreKind = .inMemory
    ) async throws -> (alice: SyncClient, bob: SyncClient, aliceEvents: EventLog, harness: Harness, aliceFixture: StoreFixture) {
        let harness = Harness()
        let (alice, _, aliceFixture) = try harness.device(kind)
        let (bob, _, _) = try harness.device(kind)
        let aliceTodos = try alice.collection(Todo.self, named: "todos", conflicts: policy)
        let bobTodos = try bob.collection(Todo.self, named: "todos", conflicts: policy)
        let log = EventLog(alice)
        try await aliceTodos.upsert(Todo(id: "t1", title: "start", done: false))
        try await alice.sync()
        try await bob.sync()
        if aliceFirstInTime {
            try await aliceTodos.update(id: "t1") { $0.title = "alice" }
            try await Task.sleep(for: .milliseconds(3))
            try await bobTodos.update(id: "t1") { $0.title = "bob" }
        } else {
            try await bobTodos.update(id: "t1") { $0.title = "bob" }
            try await Task.sleep(for: .milliseconds(3))
            try await aliceTodos.update(id: "t1") { $0.title = "alice" }
        }
        try await bob.sync()
        try await alice.sync()
        try await bob.sync()
        return (alice, bob, log, harness, aliceFixture)
    }

    func title(_ client: SyncClient) async throws -> Value? {
        try await client.fields(of: Sample.key("t1"))?["title"]
    }

    @Test func lastWriterWinsKeepsTheNewerWriteAndReportsTheLoser() async throws {
        let run = try await concurrentTitleEdits(policy: .lastWriterWins)
        #expect(try await title(run.alice) == "bob")
        #expect(try await title(run.bob) == "bob")
        let reports = run.aliceEvents.conflicts()
        #expect(reports.count == 1)
        #expect(reports.first?.fields == ["title"] && reports.first?.local["title"] == "alice" && reports.first?.server["title"] == "bob")
        // When Alice's write is the newer one, it wins even though it arrives second.
        let second = try await concurrentTitleEdits(policy: .lastWriterWins, aliceFirstInTime: false)
        #expect(try await title(second.alice) == "alice")
        #expect(try await title(second.bob) == "alice")
        #expect(second.aliceEvents.conflicts().isEmpty)
    }

    @Test func serverWinsDropsTheLocalEdit() async throws {
        let run = try await concurrentTitleEdits(policy: .serverWins, aliceFirstInTime: false)
        #expect(try await title(run.alice) == "bob")
        #expect(try await title(run.bob) == "bob")
        #expect(try await run.alice.pendingCount() == 0)
        #expect(run.aliceEvents.conflicts().map(\.policy) == ["serverWins"])
    }

    @Test func clientWinsForcesTheLocalValue() async throws {
        let run = try await concurrentTitleEdits(policy: .clientWins)
        #expect(try await title(run.alice) == "alice")
        #expect(try await title(run.bob) == "alice")
    }

    @Test func mergeCallsTheResolverAndPushesTheResult() async throws {
        let run = try await concurrentTitleEdits(
            policy: .merge { local, server in
                ["title": .string("\(server["title"]?.description ?? "") + \(local["title"]?.description ?? "")")]
            }
        )
        try await run.alice.sync()
        try await run.bob.sync()
        let merged = Value.string("\"bob\" + \"alice\"")
        #expect(try await title(run.alice) == merged)
        #expect(try await title(run.bob) == merged)
        #expect(run.aliceEvents.resolved().count == 1)
    }

    @Test(arguments: StoreKind.persistent)
    func manualConflictSurvivesARestartAndResolves(_ kind: StoreKind) async throws {
        let run = try await concurrentTitleEdits(policy: .manual, kind: kind)
        let kept = try await run.alice.conflicts()
        #expect(kept.count == 1 && kept.first?.fieldNames == ["title"])
        #expect(try await title(run.alice) == "alice", "the local edit stays visible while unresolved")
        #expect(try await run.alice.record(Sample.key("t1"))?.conflicted == true)

        // Restart Alice from her store: the conflict is still there.
        run.alice.close()
        let transport = InMemoryTransport(server: run.harness.server, namespace: run.harness.namespace)
        let restarted = try SyncClient(namespace: run.harness.namespace, store: try run.aliceFixture.open(), transport: transport)
        restarted.setPolicy(.manual, for: Sample.collection())
        let afterRestart = try await restarted.conflicts()
        #expect(afterRestart == kept)

        try await restarted.resolveConflict(kept[0].id, with: ["title": "resolved"])
        #expect(try await restarted.conflicts().isEmpty)
        #expect(try await restarted.record(Sample.key("t1"))?.conflicted == false)
        try await restarted.sync()
        try await run.bob.sync()
        #expect(try await title(restarted) == "resolved")
        #expect(try await title(run.bob) == "resolved")
        // Tried: resolving an id that is not a kept conflict.
        await #expect {
            try await restarted.resolveConflict(Sample.eventID(424_242), with: nil)
        } throws: { error in
            (error as? SyncError)?.code == .notFound
        }
    }
}

/// Collects a client's events synchronously as they are emitted, so what a test reads does not
/// depend on task scheduling.
final class EventLog: Sendable {
    private let events = Mutex<[SyncEvent]>([])

    init(_ client: SyncClient) {
        client.observeEvents { [self] event in self.events.withLock { $0.append(event) } }
    }

    func conflicts() -> [ConflictReport] {
        events.withLock { $0.compactMap { if case .conflictDetected(let report) = $0 { return report } else { return nil } } }
    }

    func connectivity() -> [Connectivity] {
        events.withLock { $0.compactMap { if case .connectivity(let state) = $0 { return state } else { return nil } } }
    }

    func errors() -> [SyncErrorEvent] {
        events.withLock { $0.compactMap { if case .error(let error) = $0 { return error } else { return nil } } }
    }

    func resolved() -> [ConflictReport] {
        events.withLock { $0.compactMap { if case .conflictResolved(let report) = $0 { return report } else { return nil } } }
    }
}
