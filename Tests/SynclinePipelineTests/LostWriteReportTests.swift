import Synchronization
import Syncline
import SynclineTesting
import Testing

/// Issue 11 item 5 (invariant 7): a device whose write loses to a concurrent one is told once,
/// whichever device pushes first. Pushing second, it learns from the answer to its push; pushing
/// first, its write is applied and acknowledged, and it learns from the pull that brings the
/// winner (the entry carries the ``SupersededWrite``). Before the fix, the second order reported
/// nothing: the pull overwrote the write silently.
@Suite("Lost writes are reported whatever the push order", .timeLimit(.minutes(1)))
struct LostWriteReportTests {
    /// What each device does to the record the other edits concurrently.
    enum Race: String, CaseIterable, Sendable {
        /// Both set `title`; Bob's write is the later one.
        case editAgainstEdit
        /// Alice sets `title`; Bob deletes the record later.
        case editAgainstDelete
        /// Alice deletes the record; Bob sets `title` later (the record comes back).
        case deleteAgainstEdit
    }

    static let cases: [(Race, Bool)] = Race.allCases.flatMap { race in [(race, true), (race, false)] }

    /// Alice's write is the earlier one (so it loses under `lastWriterWins`); `aliceFirst` says
    /// whose push reaches the server first.
    @Test(arguments: cases)
    func theLosingDeviceIsToldOnce(_ race: Race, aliceFirst: Bool) async throws {
        let harness = Harness()
        let (alice, _, _) = try harness.device()
        let (bob, _, _) = try harness.device()
        let aliceReports = Reports(alice)
        let bobReports = Reports(bob)
        let key = Sample.key("t1")
        _ = try await alice.upsert(key, fields: ["title": "first", "done": false])
        try await alice.sync()
        try await bob.sync()

        let aliceChange: Change
        switch race {
        case .editAgainstEdit, .editAgainstDelete:
            aliceChange = try #require(try await alice.upsert(key, fields: ["title": "alice"]))
        case .deleteAgainstEdit:
            aliceChange = try #require(try await alice.delete(key))
        }
        try await Task.sleep(for: .milliseconds(3))  // Bob's write is later in real time: its HLC is greater
        switch race {
        case .editAgainstEdit, .deleteAgainstEdit:
            _ = try #require(try await bob.upsert(key, fields: ["title": "bob"]))
        case .editAgainstDelete:
            _ = try #require(try await bob.delete(key))
        }
        if aliceFirst {
            try await alice.sync()
            try await bob.sync()
        } else {
            try await bob.sync()
        }
        try await alice.sync()
        try await alice.sync()  // nothing left to report
        try await bob.sync()

        let reports = aliceReports.all
        #expect(reports.count == 1, "Alice's lost write is reported exactly once: \(reports)")
        let report = try #require(reports.first)
        #expect(report.changeID == aliceChange.id, "the report names Alice's change")
        #expect(report.key == key)
        switch race {
        case .editAgainstEdit:
            #expect(report.fields == ["title"] && report.local == ["title": "alice"] && report.server == ["title": "bob"])
            #expect(try await alice.fields(of: key) == ["title": "bob", "done": false])
        case .editAgainstDelete:
            #expect(report.fields == ["title"] && report.local == ["title": "alice"] && report.server.isEmpty)
            #expect(try await alice.fields(of: key) == nil)
        case .deleteAgainstEdit:
            #expect(report.fields == ["title"] && report.local.isEmpty && report.server == ["title": "bob"])
            #expect(try await alice.fields(of: key) == ["title": "bob"], "revived with only the field written after the delete")
        }
        #expect(bobReports.all.isEmpty, "Bob's write won: nothing to report to him")
        #expect(try await alice.fields(of: key) == (try await bob.fields(of: key)))
    }

    /// A device that resyncs from a snapshot (here: its cursor reset, as after a restore) after
    /// it was told does not hear of the same loss again; one that had not pulled yet hears of it
    /// from the snapshot.
    @Test func aSnapshotDoesNotReportAgain() async throws {
        let harness = Harness()
        let (alice, _, _) = try harness.device()
        let (bob, _, _) = try harness.device()
        let aliceReports = Reports(alice)
        let key = Sample.key("t1")
        _ = try await alice.upsert(key, fields: ["title": "first"])
        try await alice.sync()
        try await bob.sync()
        _ = try await alice.upsert(key, fields: ["title": "alice"])
        try await Task.sleep(for: .milliseconds(3))
        _ = try await bob.upsert(key, fields: ["title": "bob"])
        try await alice.sync()
        try await bob.sync()
        try await alice.sync()
        #expect(aliceReports.all.count == 1)
        try await alice.local.resetCursor()
        try await alice.sync()
        #expect(aliceReports.all.count == 1, "the snapshot carries the same superseded write; Alice already holds the winner")
    }

    /// The acknowledgement of Alice's applied write is lost; before she sends it again, a pull
    /// brings Bob's concurrent write that replaced it. The resend is answered `duplicate` with
    /// the original result (her write won then): she is told once, with her change's id.
    @Test func aLostAcknowledgementStillReportsOnce() async throws {
        let harness = Harness()
        let transport = AckDroppingTransport(InMemoryTransport(server: harness.server, namespace: harness.namespace))
        let alice = try SyncClient(namespace: harness.namespace, store: InMemoryStore(), transport: transport)
        let (bob, _, _) = try harness.device()
        let aliceReports = Reports(alice)
        let key = Sample.key("t1")
        _ = try await alice.upsert(key, fields: ["title": "first"])
        try await alice.sync()
        try await bob.sync()
        let change = try #require(try await alice.upsert(key, fields: ["title": "alice"]))
        try await Task.sleep(for: .milliseconds(3))
        _ = try await bob.upsert(key, fields: ["title": "bob"])
        transport.dropNextAcknowledgement()
        await #expect(throws: SyncError.self) { try await alice.sync() }
        try await bob.sync()
        // The pull comes first here, as it may after a reconnect.
        let cursor = try await alice.pullCursor()
        let page = try await harness.server.pull(namespace: harness.namespace, after: cursor, limit: 100)
        #expect(page.changes.first?.superseded.first?.hlc == change.hlc, "the page says Alice's write was replaced")
        let applied = try await alice.local.applyPage(page, after: cursor, from: cursor)
        #expect(applied.detected.isEmpty, "not yet: the change is still waiting for its acknowledgement")
        try await alice.sync()
        try await alice.sync()
        let reports = aliceReports.all
        #expect(reports.count == 1, "told once: \(reports)")
        #expect(reports.first?.changeID == change.id && reports.first?.fields == ["title"])
        #expect(try await alice.fields(of: key) == ["title": "bob"])
    }
}

/// The conflicts a client reports.
final class Reports: Sendable {
    private let reports = Mutex<[ConflictReport]>([])

    init(_ client: SyncClient) {
        client.observeEvents { event in
            if case .conflictDetected(let report) = event { self.reports.withLock { $0.append(report) } }
        }
    }

    var all: [ConflictReport] { reports.withLock { $0 } }
}

/// A transport that applies a push on the server but loses its answer, once when asked.
final class AckDroppingTransport: SyncTransport {
    private let inner: InMemoryTransport
    private let dropping = Mutex(false)

    init(_ inner: InMemoryTransport) { self.inner = inner }

    func dropNextAcknowledgement() { dropping.withLock { $0 = true } }

    func push(_ batch: ChangeBatch) async throws -> PushResponse {
        let response = try await inner.push(batch)
        if dropping.withLock({ flag in defer { flag = false }; return flag }) {
            throw SyncError(.transportUnavailable, "the connection closed before the answer came")
        }
        return response
    }

    func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
        try await inner.pull(after: cursor, from: position, limit: limit, epoch: epoch)
    }

    func liveHeads() async -> AsyncStream<UInt64> { await inner.liveHeads() }
}
