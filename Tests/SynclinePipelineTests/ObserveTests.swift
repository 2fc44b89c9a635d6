import Synchronization
import Syncline
import SynclineTesting
import Testing

/// `observe()` keeps a snapshot and applies each committed change to it (issue 12 §6): every kind
/// of change lands in its place, in id order, local or remote, filtered or not.
@Suite("Live queries", .timeLimit(.minutes(2)))
struct ObserveTests {
    @Test(arguments: [StoreKind.inMemory, .sqlite])
    func everyKindOfChangeLandsInThePreviousSnapshot(_ kind: StoreKind) async throws {
        let harness = Harness()
        let (alice, _, _) = try harness.device(kind)
        let (bob, _, _) = try harness.device()
        let todos = try alice.collection(Todo.self, named: "todos")
        let bobTodos = try bob.collection(Todo.self, named: "todos")
        for id in ["b", "d"] { _ = try await todos.upsert(Todo(id: id, title: id, done: false)) }
        var snapshots = todos.observe().makeAsyncIterator()
        #expect(await snapshots.next()?.map(\.id) == ["b", "d"])

        _ = try await todos.upsert(Todo(id: "c", title: "c", done: false))
        #expect(await snapshots.next()?.map(\.id) == ["b", "c", "d"], "a new record goes in its id's place")
        _ = try await todos.update(id: "b") { $0.done = true }
        #expect(await snapshots.next() == [Todo(id: "b", title: "b", done: true), Todo(id: "c", title: "c", done: false), Todo(id: "d", title: "d", done: false)])
        _ = try await todos.delete(id: "c")
        #expect(await snapshots.next()?.map(\.id) == ["b", "d"], "a deleted record leaves")

        // Remote: Bob adds one before all and edits one; Alice's pull applies both.
        try await alice.sync()
        try await bob.sync()
        _ = try await bobTodos.upsert(Todo(id: "a", title: "from bob", done: false))
        _ = try await bobTodos.update(id: "d") { $0.title = "edited by bob" }
        try await bob.sync()
        try await alice.sync()
        var last = await snapshots.next()
        while last?.count != 3 || last?.last?.title != "edited by bob" { last = await snapshots.next() }
        #expect(last == [Todo(id: "a", title: "from bob", done: false), Todo(id: "b", title: "b", done: true), Todo(id: "d", title: "edited by bob", done: false)])
        #expect(try await todos.all() == last, "the kept snapshot is what a full read gives")
    }

    /// `observe(where:)`: a record enters the snapshot when a change makes it match and leaves when
    /// one makes it stop matching.
    @Test func aFilteredQueryFollowsRecordsInAndOut() async throws {
        let harness = Harness()
        let (alice, _, _) = try harness.device()
        let todos = try alice.collection(Todo.self, named: "todos")
        _ = try await todos.upsert(Todo(id: "t1", title: "one", done: false))
        _ = try await todos.upsert(Todo(id: "t2", title: "two", done: true))
        var open = todos.observe(where: { !$0.done }).makeAsyncIterator()
        #expect(await open.next()?.map(\.id) == ["t1"])
        _ = try await todos.update(id: "t2") { $0.done = false }
        #expect(await open.next()?.map(\.id) == ["t1", "t2"], "t2 now matches")
        _ = try await todos.update(id: "t1") { $0.done = true }
        #expect(await open.next()?.map(\.id) == ["t2"], "t1 no longer matches")
        _ = try await todos.upsert(Todo(id: "t3", title: "three", done: true))
        _ = try await todos.upsert(Todo(id: "t4", title: "four", done: false))
        var last = await open.next()
        while last?.count != 2 { last = await open.next() }
        #expect(last?.map(\.id) == ["t2", "t4"], "a new record that does not match stays out")
    }

    /// Many writers at once: changes that arrive while a snapshot is being made are gathered into
    /// the next one, and none is lost (the last snapshot equals a full read).
    @Test func concurrentWritesAllReachTheSnapshot() async throws {
        let harness = Harness()
        let (alice, _, _) = try harness.device(.sqlite)
        let todos = try alice.collection(Todo.self, named: "todos")
        var snapshots = todos.observe().makeAsyncIterator()
        #expect(await snapshots.next() == [])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    for index in 0..<50 {
                        let id = "w\(writer)-\(1000 + index)"
                        _ = try await todos.upsert(Todo(id: id, title: id, done: index % 2 == 0))
                        if index % 5 == 0 { _ = try await todos.update(id: id) { $0.title = "edited" } }
                        if index % 7 == 0 { _ = try await todos.delete(id: id) }
                    }
                }
            }
            try await group.waitForAll()
        }
        let expected = try await todos.all()
        #expect(expected.count == 8 * (50 - 8), "8 deleted per writer (0, 7, …, 49)")
        var last = await snapshots.next()
        while last != expected { last = await snapshots.next() }
        #expect(last?.filter { $0.title == "edited" }.count == expected.filter { $0.title == "edited" }.count)
    }

    /// A record that does not decode is left out of the snapshot and reported once; when a later
    /// change makes it decode, it comes in.
    @Test func aRecordThatStopsDecodingLeavesAndComesBack() async throws {
        let harness = Harness()
        let (alice, _, _) = try harness.device()
        let todos = try alice.collection(Todo.self, named: "todos")
        let reports = Mutex<[SyncErrorEvent]>([])
        alice.observeEvents { event in
            if case .error(let report) = event { reports.withLock { $0.append(report) } }
        }
        _ = try await todos.upsert(Todo(id: "t1", title: "one", done: false))
        var snapshots = todos.observe().makeAsyncIterator()
        #expect(await snapshots.next()?.map(\.id) == ["t1"])
        _ = try await alice.upsert(Sample.key("t1"), fields: ["title": .int(7)])  // not a String
        #expect(await snapshots.next() == [], "it no longer decodes as Todo")
        #expect(reports.withLock { $0.first?.key } == Sample.key("t1"))
        _ = try await alice.upsert(Sample.key("t1"), fields: ["title": "one again"])
        #expect(await snapshots.next() == [Todo(id: "t1", title: "one again", done: false)])
    }
}

/// The event bus drops the oldest events of a subscriber that does not keep up, and says so.
@Suite("Event bus losses")
struct EventBusLossTests {
    @Test func aSlowSubscriberIsToldHowManyEventsItLost() async {
        let bus = EventBus(bufferSize: 4)
        var events = bus.subscribe().makeAsyncIterator()
        for number in 0..<10 { bus.emit(.outboxStalled(reason: "\(number)")) }  // nobody reads: 6 or more lost
        var seen: [SyncEvent] = []
        for _ in 0..<4 { if let event = await events.next() { seen.append(event) } }  // what the buffer held
        bus.emit(.outboxStalled(reason: "10"))  // after a loss, the notice comes first
        for _ in 0..<2 { if let event = await events.next() { seen.append(event) } }
        var received: [String] = []
        var lost = 0
        for event in seen {
            switch event {
            case .outboxStalled(let reason): received.append(reason)
            case .eventsDropped(let total): lost = max(lost, total)
            default: Issue.record("an event nobody emitted: \(event)")
            }
        }
        #expect(received.last == "10")
        #expect(lost > 0, "told of the losses")
        #expect(received.count + lost == 11, "every event emitted was either received or counted lost: \(received), \(lost)")
        #expect(received == received.sorted { Int($0)! < Int($1)! }, "in order, the newest kept")
    }
}
