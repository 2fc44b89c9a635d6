import Synchronization
import Syncline
import SynclineTesting
import Testing

/// The reconciler applies a page the server pushed as it comes, when it continues the device's
/// cursor, and asks for a pull otherwise (issue 12 §2: the transport keeps nothing to be fetched
/// again). Pages are real ones, read from an in-memory server; the transport only records where
/// the reconciler tells it to resume.
@Suite("Live pages")
struct LivePageTests {
    final class ResumeLog: SyncTransport {
        let base: InMemoryTransport
        let resumed = Mutex<[UInt64]>([])
        init(_ base: InMemoryTransport) { self.base = base }
        func push(_ batch: ChangeBatch) async throws -> PushResponse { try await base.push(batch) }
        func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
            try await base.pull(after: cursor, from: position, limit: limit, epoch: epoch)
        }
        func resume(from cursor: UInt64, epoch: Epoch?) async { resumed.withLock { $0.append(cursor) } }
        func liveHeads() async -> AsyncStream<UInt64> { AsyncStream { $0.finish() } }
    }

    struct Device {
        let server: InMemorySyncServer
        let namespace: Namespace
        let local: LocalStore
        let reconciler: Reconciler
        let transport: ResumeLog

        init() throws {
            server = InMemorySyncServer()
            namespace = try Namespace("live")
            local = try LocalStore(store: InMemoryStore(), wallClock: { WallClock.nowMillis() })
            transport = ResumeLog(InMemoryTransport(server: server, namespace: namespace))
            reconciler = Reconciler(local: local, transport: transport, bus: EventBus(), pageSize: 100)
        }

        /// Another device writes `records`; returns the head.
        @discardableResult
        func written(_ records: [String], from number: UInt64) async throws -> UInt64 {
            let changes = records.enumerated().map { Sample.change(number + UInt64($0.offset), record: $0.element, fields: ["n": .int(Int64($0.offset))]) }
            return try await server.push(ChangeBatch(changes: changes), namespace: namespace).head
        }

        /// The page a live session from `after` would send, starting at `from`.
        func live(after: UInt64, from: UInt64, limit: Int = 100) async throws -> LivePage {
            LivePage(after: after, from: from, page: try await server.pull(namespace: namespace, after: after, from: from, limit: limit))
        }

        func pulled() async throws {
            var stats = SyncStats()
            try await reconciler.pullAll(policy: { _ in .lastWriterWins }, stats: &stats)
        }

        func apply(_ live: LivePage) async throws -> Bool { try await reconciler.applyLive(live, policy: { _ in .lastWriterWins }) }
    }

    @Test func aPageThatContinuesTheCursorIsAppliedAndTheTransportResumesAfterIt() async throws {
        let device = try Device()
        try await device.written(["a"], from: 1)
        try await device.pulled()
        let cursor = try await device.local.pullCursor()
        let head = try await device.written(["b", "c"], from: 10)
        #expect(try await device.apply(try await device.live(after: cursor, from: cursor)))
        #expect(try await device.local.pullCursor() == head, "the page's cursor is stored with its records")
        #expect(try await device.local.record(Sample.key("c"))?.fields["n"]?.value == 1)
        #expect(device.transport.resumed.withLock { $0.last } == head)
    }

    @Test func aCatchUpOfSeveralPagesStoresTheCursorWithItsLastPage() async throws {
        let device = try Device()
        try await device.written(["a"], from: 1)
        try await device.pulled()
        let cursor = try await device.local.pullCursor()
        let head = try await device.written(["b", "c", "d"], from: 10)
        let first = try await device.live(after: cursor, from: cursor, limit: 2)
        #expect(first.page.hasMore)
        #expect(try await device.apply(first))
        #expect(try await device.local.pullCursor() == cursor, "mid catch-up: the cursor stays")
        #expect(try await device.local.record(Sample.key("c")) != nil)
        #expect(try await device.apply(try await device.live(after: cursor, from: first.page.cursor, limit: 2)))
        #expect(try await device.local.pullCursor() == head)
        #expect(try await device.local.record(Sample.key("d")) != nil)
    }

    /// A page that does not continue the cursor: a gap (a page lost on the way), a session ahead
    /// of the device, a snapshot (cursor 0), or another epoch. Nothing is applied; the caller pulls.
    @Test func aPageThatDoesNotContinueTheCursorAsksForAPull() async throws {
        let device = try Device()
        try await device.written(["a"], from: 1)
        #expect(try await !device.apply(try await device.live(after: 0, from: 0)), "cursor 0: a snapshot is a pull's")
        try await device.pulled()
        let cursor = try await device.local.pullCursor()
        let middle = try await device.written(["b"], from: 10)
        try await device.written(["c"], from: 20)
        #expect(try await !device.apply(try await device.live(after: middle, from: middle)), "a gap: b was never applied")
        var other = try await device.live(after: cursor, from: cursor)
        other.page.epoch = Epoch(rawValue: 999)
        #expect(try await !device.apply(other), "another epoch")
        #expect(try await device.local.pullCursor() == cursor, "nothing applied")
        #expect(try await device.local.record(Sample.key("b")) == nil)
        #expect(try await device.apply(try await device.live(after: cursor, from: cursor)), "the page that continues it")
        #expect(try await device.local.record(Sample.key("c")) != nil)
    }

    /// A page the device already has (it pulled past it meanwhile) is ignored without a pull.
    @Test func aPageTheDeviceAlreadyHasIsIgnored() async throws {
        let device = try Device()
        try await device.written(["a"], from: 1)
        try await device.pulled()
        let cursor = try await device.local.pullCursor()
        try await device.written(["b"], from: 10)
        let late = try await device.live(after: cursor, from: cursor)
        try await device.pulled()  // over REST meanwhile
        let now = try await device.local.pullCursor()
        #expect(try await device.apply(late), "nothing new: no pull")
        #expect(try await device.local.pullCursor() == now)
    }

    /// The device's own writes are left out of a live page as out of a pull.
    @Test func ownWritesAreLeftOutOfALivePage() async throws {
        let device = try Device()
        try await device.written(["a"], from: 1)
        try await device.pulled()
        let cursor = try await device.local.pullCursor()
        let mine = Change(
            id: Sample.eventID(50), collection: Sample.collection(), record: Sample.id("mine"), operation: .upsert,
            fields: ["n": 1], hlc: HLC(packed: (WallClock.nowMillis() << 16), node: device.local.node), base: 0
        )
        _ = try await device.server.push(ChangeBatch(changes: [mine]), namespace: device.namespace)
        #expect(try await device.apply(try await device.live(after: cursor, from: cursor)))
        #expect(try await device.local.record(Sample.key("mine")) == nil, "its own write is not applied from the page")
    }
}
