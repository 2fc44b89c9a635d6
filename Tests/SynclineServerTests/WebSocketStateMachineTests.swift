import NIOWebSocket
import Syncline
import SynclineNetwork
import SynclineTesting
import Testing

/// Every transition of the WebSocket transport's state machine, without a socket: the outbound
/// writer is a name ("s1"), a waiting push is a name ("p1"), the jitter comes from a seeded generator.
@Suite("WebSocket state machine")
struct WebSocketStateMachineTests {
    typealias Machine = WebSocketStateMachine<String, String, SeededRandom>
    typealias Action = Machine.Action

    static let initialBackoff = Duration.milliseconds(100)
    static let maxBackoff = Duration.milliseconds(1_000)
    static let ackTimeout = Duration.seconds(30)

    static func machine(seed: UInt64 = 7) -> Machine {
        Machine(ackTimeout: ackTimeout, initialBackoff: initialBackoff, maxBackoff: maxBackoff, random: SeededRandom(seed: seed))
    }

    static func page(cursor: UInt64, head: UInt64, epoch: Epoch? = nil, hasMore: Bool = false) -> PullPage {
        PullPage(changes: [], cursor: cursor, hasMore: hasMore, remaining: 0, head: head, epoch: epoch)
    }

    static func response(head: UInt64) -> PushResponse { PushResponse(results: [], head: head, serverTime: 1_000) }

    static let batch = ChangeBatch(changes: [])

    /// A machine welcomed on socket "s1", its reconciler at `cursor`.
    static func connected(cursor: UInt64 = 5, head: UInt64 = 5, epoch: Epoch? = nil, seed: UInt64 = 7) -> Machine {
        var machine = machine(seed: seed)
        _ = machine.pullRequested(after: cursor, from: cursor, epoch: epoch)
        _ = machine.connectRequested()
        _ = machine.connectionOpened("s1")
        _ = machine.welcomeReceived(head: head, serverTime: 1_000, epoch: epoch)
        return machine
    }

    /// The reconnect delay an action list schedules.
    static func reconnectDelay(_ actions: [Action]) -> Duration? {
        for case .scheduleReconnect(let delay) in actions { return delay }
        return nil
    }

    static func failure(_ actions: [Action], of waiter: String) -> SyncError? {
        for case .resume(let name, .failure(let error)) in actions where name == waiter { return error }
        return nil
    }

    // MARK: Connect

    @Test func theFirstRequestStartsTheRunLoopWhichWaitsForTheCursor() {
        var machine = Self.machine()
        #expect(machine.connectRequested() == [.startRunLoop])
        guard case .waitingForCursor = machine.connection else {
            Issue.record("expected waitingForCursor, got \(machine.connection)")
            return
        }
        #expect(machine.connectRequested() == [], "the run loop starts once")
        // A continuation page does not say where the device is.
        #expect(machine.pullRequested(after: 3, from: 4, epoch: nil) == [])
        #expect(machine.cursor == nil)
        // The first page of a pull does: the connection opens from there.
        #expect(machine.pullRequested(after: 3, from: 3, epoch: nil) == [.connect(renewToken: false)])
        #expect(machine.cursor == 3)
        guard case .connecting = machine.connection else {
            Issue.record("expected connecting, got \(machine.connection)")
            return
        }
    }

    @Test func aRequestAfterTheCursorIsKnownConnectsAtOnce() {
        var machine = Self.machine()
        #expect(machine.pullRequested(after: 9, from: 9, epoch: nil) == [], "no run loop yet: nothing to tell")
        #expect(machine.connectRequested() == [.startRunLoop, .connect(renewToken: false)])
        #expect(machine.connectRequested() == [])
    }

    @Test func theHelloResumesFromTheCursorAndEpochTheReconcilerLastPulledFrom() {
        let epoch = Epoch(rawValue: 42)
        var machine = Self.machine()
        _ = machine.pullRequested(after: 5, from: 5, epoch: epoch)
        _ = machine.connectRequested()
        _ = machine.pullRequested(after: 8, from: 8, epoch: epoch)
        _ = machine.pullRequested(after: 8, from: 11, epoch: epoch)  // a continuation moves nothing
        #expect(machine.connectionOpened("s1") == [.send(.hello(cursor: 8, epoch: epoch), on: "s1", batch: nil)])
        #expect(machine.outbound == nil, "not welcomed yet")
        // After a reconnect, from wherever the reconciler got to meanwhile.
        _ = machine.welcomeReceived(head: 8, serverTime: 1, epoch: epoch)
        _ = machine.pullRequested(after: 20, from: 20, epoch: epoch)
        _ = machine.connectionEnded(.closed(code: .goingAway))
        #expect(machine.backoffElapsed() == [.connect(renewToken: false)])
        #expect(machine.connectionOpened("s2") == [.send(.hello(cursor: 20, epoch: epoch), on: "s2", batch: nil)])
    }

    /// The reconciler says where to resume (it owns the cursor): a run loop waiting for it
    /// connects, the hello carries it, and from then on pulls no longer move it (a pull's first
    /// page is not taken for the device's cursor).
    @Test func theReconcilerSaysWhereToResumeAndPullsNoLongerMoveIt() {
        let epoch = Epoch(rawValue: 7)
        var machine = Self.machine()
        #expect(machine.connectRequested() == [.startRunLoop], "no cursor yet: it waits")
        #expect(machine.resumeRequested(from: 12, epoch: epoch) == [.connect(renewToken: false)])
        _ = machine.pullRequested(after: 3, from: 3, epoch: nil)  // a pull from elsewhere moves nothing
        #expect(machine.connectionOpened("s1") == [.send(.hello(cursor: 12, epoch: epoch), on: "s1", batch: nil)])
        _ = machine.welcomeReceived(head: 12, serverTime: 1, epoch: epoch)
        #expect(machine.resumeRequested(from: 30, epoch: epoch) == [], "an open socket keeps its session")
        _ = machine.connectionEnded(.closed(code: .goingAway))
        #expect(machine.backoffElapsed() == [.connect(renewToken: false)])
        #expect(machine.connectionOpened("s2") == [.send(.hello(cursor: 30, epoch: epoch), on: "s2", batch: nil)])
    }

    @Test func anOpenedSocketIsIgnoredUnlessConnecting() {
        var machine = Self.machine()
        #expect(machine.connectionOpened("s1") == [])
        _ = machine.close()
        #expect(machine.connectionOpened("s1") == [])
    }

    // MARK: Welcome

    @Test func theWelcomeConnectsPublishesTheHeadAndCounts() {
        var machine = Self.machine()
        _ = machine.pullRequested(after: 0, from: 0, epoch: nil)
        _ = machine.connectRequested()
        _ = machine.connectionOpened("s1")
        #expect(machine.pushRequested() == .rest, "before the welcome, pushes go over REST")
        #expect(machine.welcomeReceived(head: 12, serverTime: 1, epoch: nil) == [.publishHead(12, notify: true)])
        #expect(machine.outbound == "s1")
        #expect(machine.connections == 1)
        #expect(machine.newestHead == 12)
        // A second welcome on the same socket publishes its head but is not a new connection.
        #expect(machine.welcomeReceived(head: 13, serverTime: 1, epoch: nil) == [.publishHead(13, notify: true)])
        #expect(machine.connections == 1)
    }

    @Test func aWelcomeWithoutAnOpenSocketIsIgnored() {
        var machine = Self.machine()
        #expect(machine.welcomeReceived(head: 3, serverTime: 1, epoch: nil) == [])
        #expect(machine.connections == 0 && machine.newestHead == nil)
    }

    // MARK: Pages

    /// A page the server pushes goes to the reconciler at once (nothing is kept for a later pull;
    /// whether it continues the device's cursor is the reconciler's to decide). Its head is
    /// recorded without waking the sync loop: the page itself is the news.
    @Test func aPageIsDeliveredAsItComes() {
        var machine = Self.connected()
        let page = Self.page(cursor: 7, head: 7)
        #expect(
            machine.pageReceived(after: 5, from: 5, page)
                == [.publishHead(7, notify: false), .deliver(LivePage(after: 5, from: 5, page: page))]
        )
        #expect(machine.pagesDelivered == 1)
        #expect(machine.newestHead == 7)
        #expect(machine.pullRequested(after: 5, from: 5, epoch: nil) == [], "a pull asks the server: nothing to serve it from")
    }

    /// Every page is delivered, in the order it arrived, whatever its cursor, epoch or freshness:
    /// a catch-up of several pages, a page for another cursor, a page of another epoch.
    @Test func everyPageIsDeliveredInArrivalOrder() {
        var machine = Self.connected(epoch: Epoch(rawValue: 1))
        let pages = [
            LivePage(after: 5, from: 5, page: Self.page(cursor: 10, head: 20, hasMore: true)),
            LivePage(after: 5, from: 10, page: Self.page(cursor: 20, head: 20)),
            LivePage(after: 3, from: 3, page: Self.page(cursor: 4, head: 20)),
            LivePage(after: 20, from: 20, page: Self.page(cursor: 21, head: 21, epoch: Epoch(rawValue: 2))),
        ]
        var delivered: [LivePage] = []
        for live in pages {
            for case .deliver(let page) in machine.pageReceived(after: live.after, from: live.from, live.page) { delivered.append(page) }
        }
        #expect(delivered == pages)
        #expect(machine.pagesDelivered == 4 && machine.newestHead == 21)
    }

    /// Pages arrive on a connected socket only; one that comes after the socket ended (a frame
    /// read late) is still delivered, and the reconciler decides.
    @Test func aPageReadAfterTheSocketEndedIsStillDelivered() {
        var machine = Self.connected()
        _ = machine.connectionEnded(.closed(code: nil))
        let page = Self.page(cursor: 7, head: 7)
        #expect(machine.pageReceived(after: 5, from: 5, page).contains(.deliver(LivePage(after: 5, from: 5, page: page))))
    }

    // MARK: Acks

    @Test func aPushOverTheSocketIsSentTimedAndAnsweredByItsAck() {
        var machine = Self.connected()
        #expect(machine.pushRequested() == .socket(batch: 1))
        #expect(machine.pushRequested() == .socket(batch: 2))
        #expect(
            machine.pushWaiting(1, Self.batch, waiter: "p1") == [
                .send(.push(batch: 1, Self.batch), on: "s1", batch: 1), .scheduleAckTimeout(batch: 1, after: Self.ackTimeout),
            ]
        )
        _ = machine.pushWaiting(2, Self.batch, waiter: "p2")
        #expect(machine.pushesInFlight == 2)
        let response = Self.response(head: 9)
        #expect(machine.ackReceived(2, response) == [.publishHead(9, notify: false), .resume("p2", .success(response))])
        #expect(machine.pushesInFlight == 1)
        #expect(machine.newestHead == 9)
    }

    @Test func anAckForAnUnknownBatchOnlyRecordsItsHead() {
        var machine = Self.connected()
        _ = machine.pushRequested()
        _ = machine.pushWaiting(1, Self.batch, waiter: "p1")
        #expect(machine.ackReceived(7, Self.response(head: 9)) == [.publishHead(9, notify: false)])
        #expect(machine.pushesInFlight == 1, "the waiting push still waits")
    }

    @Test func anAckThatTimedOutFailsItsPushAndALateAckIsIgnored() {
        var machine = Self.connected()
        _ = machine.pushRequested()
        _ = machine.pushWaiting(1, Self.batch, waiter: "p1")
        let actions = machine.ackTimedOut(1)
        #expect(Self.failure(actions, of: "p1")?.code == .transportUnavailable)
        #expect(machine.pushesInFlight == 0)
        #expect(machine.ackTimedOut(1) == [])
        #expect(machine.ackReceived(1, Self.response(head: 9)) == [.publishHead(9, notify: false)])
    }

    @Test func aPushWhoseFrameCouldNotBeWrittenFails() {
        var machine = Self.connected()
        _ = machine.pushRequested()
        _ = machine.pushWaiting(1, Self.batch, waiter: "p1")
        let error = Self.failure(machine.sendFailed(1, SyncError(.transportUnavailable, "broken pipe")), of: "p1")
        #expect(error?.code == .transportUnavailable)
        #expect(error?.message.contains("broken pipe") == true)
    }

    @Test func anErrorForABatchFailsThatPushWithTheServersCode() {
        var machine = Self.connected()
        _ = machine.pushRequested()
        _ = machine.pushRequested()
        _ = machine.pushWaiting(1, Self.batch, waiter: "p1")
        _ = machine.pushWaiting(2, Self.batch, waiter: "p2")
        let tooLarge = Self.failure(machine.messageReceived(.error(code: "batch_too_large", message: "big", batch: 1), bytes: 10), of: "p1")
        #expect(tooLarge == SyncError(.batchTooLarge, "big"))
        let unknown = Self.failure(machine.errorReceived(code: "no_such_code", message: "?", batch: 2), of: "p2")
        #expect(unknown?.code == .transportUnavailable)
        #expect(machine.outbound == "s1", "a batch's error does not end the connection")
    }

    // MARK: Connection-level errors and close codes

    @Test func resyncRequiredEndsTheConnectionAndTheNextHelloAsksForASnapshot() {
        var machine = Self.connected(cursor: 30, epoch: Epoch(rawValue: 1))
        let actions = machine.messageReceived(.error(code: "resync_required", message: "restored", batch: nil), bytes: 10)
        #expect(actions == [.endConnection(SyncError(.resyncRequired, "restored"))])
        #expect(machine.cursor == 0 && machine.epoch == nil)
        _ = machine.connectionEnded(.failed(SyncError(.resyncRequired, "restored")))
        #expect(!machine.renewToken)
        _ = machine.backoffElapsed()
        #expect(machine.connectionOpened("s2") == [.send(.hello(cursor: 0, epoch: nil), on: "s2", batch: nil)])
    }

    @Test func aClientMessageFromTheServerEndsTheConnection() {
        var machine = Self.connected()
        let actions = machine.messageReceived(.hello(cursor: 1), bytes: 3)
        guard case .endConnection(let error) = actions.first else {
            Issue.record("expected endConnection, got \(actions)")
            return
        }
        #expect(error.code == .malformedInput)
        #expect(machine.traffic.bytesReceived == 3)
    }

    @Test func anUnauthorizedErrorGetsAFreshTokenOnTheNextAttemptOnly() {
        var machine = Self.connected()
        let actions = machine.errorReceived(code: "unauthorized", message: "expired", batch: nil)
        #expect(actions == [.endConnection(SyncError(.unauthorized, "expired"))])
        _ = machine.connectionEnded(.failed(SyncError(.unauthorized, "expired")))
        #expect(machine.renewToken)
        #expect(machine.backoffElapsed() == [.connect(renewToken: true)])
        #expect(!machine.renewToken)
        _ = machine.connectionEnded(.failed(SyncError(.transportUnavailable, "connection refused")))
        #expect(machine.backoffElapsed() == [.connect(renewToken: false)], "an unreachable server does not make us ask for a token")
    }

    @Test(arguments: [
        (WebSocketErrorCode?.some(.normalClosure), false),
        (.some(.goingAway), false),
        (.some(.policyViolation), false),
        (.some(.unexpectedServerError), false),
        (.some(WebSocketErrorCode(codeNumber: 4001)), true),
        (nil, false),  // abnormal: no close frame
    ])
    func everyCloseReconnectsAndOnlyAnExpiredTokenRenewsIt(_ code: WebSocketErrorCode?, _ renews: Bool) {
        var machine = Self.connected()
        let actions = machine.connectionEnded(.closed(code: code))
        #expect(Self.reconnectDelay(actions) != nil)
        #expect(machine.outbound == nil)
        #expect(machine.pushRequested() == .rest)
        #expect(machine.renewToken == renews)
        #expect(machine.backoffElapsed() == [.connect(renewToken: renews)])
    }

    @Test func aRefusedUpgradeRenewsTheToken() {
        var machine = Self.machine()
        _ = machine.pullRequested(after: 0, from: 0, epoch: nil)
        _ = machine.connectRequested()
        _ = machine.connectionEnded(.refused)
        #expect(machine.backoffElapsed() == [.connect(renewToken: true)])
    }

    @Test func theEndOfAConnectionFailsEveryWaitingPush() {
        var machine = Self.connected()
        for number in UInt64(1)...3 {
            #expect(machine.pushRequested() == .socket(batch: number))
            _ = machine.pushWaiting(number, Self.batch, waiter: "p\(number)")
        }
        let actions = machine.connectionEnded(.closed(code: .goingAway))
        for number in 1...3 { #expect(Self.failure(actions, of: "p\(number)")?.code == .transportUnavailable) }
        #expect(machine.pushesInFlight == 0)
        #expect(machine.ackReceived(2, Self.response(head: 9)) == [.publishHead(9, notify: false)], "a late ack answers nobody")
    }

    /// Bug in the transport before the state machine: a push that found the socket open and then
    /// lost it before registering its continuation waited for the whole ack timeout (30 s by
    /// default), because the disconnect had already failed the continuations it knew of.
    @Test func aPushRacingTheEndOfItsConnectionFailsAtOnceInsteadOfWaitingForTheAckTimeout() {
        var machine = Self.connected()
        #expect(machine.pushRequested() == .socket(batch: 1))
        _ = machine.connectionEnded(.closed(code: nil))
        let actions = machine.pushWaiting(1, Self.batch, waiter: "p1")
        #expect(Self.failure(actions, of: "p1")?.code == .transportUnavailable)
        #expect(actions.count == 1, "nothing is sent and no timer is started: \(actions)")
        #expect(machine.pushesInFlight == 0)
    }

    @Test func anEndedConnectionIsIgnoredWhenNoneIsOpen() {
        var machine = Self.machine()
        #expect(machine.connectionEnded(.closed(code: nil)) == [])
        var down = Self.connected()
        _ = down.connectionEnded(.closed(code: nil))
        #expect(down.connectionEnded(.closed(code: nil)) == [], "one reconnect per end")
        #expect(down.backoffElapsed() == [.connect(renewToken: false)])
        #expect(down.backoffElapsed() == [], "one connect per delay")
    }

    // MARK: Backoff

    /// The delays a machine schedules for `failures` attempts in a row that are never welcomed.
    static func delays(seed: UInt64, failures: Int) -> [Duration] {
        var machine = Self.machine(seed: seed)
        _ = machine.pullRequested(after: 0, from: 0, epoch: nil)
        _ = machine.connectRequested()
        var delays: [Duration] = []
        for _ in 0..<failures {
            guard let delay = reconnectDelay(machine.connectionEnded(.failed(SyncError(.transportUnavailable, "refused")))) else {
                return delays
            }
            delays.append(delay)
            _ = machine.backoffElapsed()
        }
        return delays
    }

    @Test func reconnectDelaysGrowAreCappedAndJittered() {
        let delays = Self.delays(seed: 7, failures: 8)
        #expect(delays.count == 8)
        // Step i is 100 ms · 2^i capped at 1 s; each delay is drawn from [step/2, step].
        let steps: [Duration] = [100, 200, 400, 800, 1_000, 1_000, 1_000, 1_000].map { .milliseconds($0) }
        for (delay, step) in zip(delays, steps) {
            #expect(delay >= step / 2 && delay <= step, "\(delay) within [\(step / 2), \(step)]")
        }
        #expect(delays.max()! <= Self.maxBackoff)
        #expect(delays[3] > delays[0], "they grow")
        #expect(Set(delays.suffix(4)).count > 1, "capped delays are still jittered")
    }

    @Test func theJitterIsDeterministicForASeed() {
        #expect(Self.delays(seed: 7, failures: 6) == Self.delays(seed: 7, failures: 6))
        #expect(Self.delays(seed: 7, failures: 6) != Self.delays(seed: 8, failures: 6))
        // The same draws as the shared Backoff with the same generator.
        var backoff = Backoff(initial: Self.initialBackoff, maximum: Self.maxBackoff)
        var random = SeededRandom(seed: 7)
        #expect(Self.delays(seed: 7, failures: 6) == (0..<6).map { _ in backoff.next(using: &random) })
    }

    @Test func aWelcomedConnectionStartsTheBackoffAgain() {
        var machine = Self.machine()
        _ = machine.pullRequested(after: 0, from: 0, epoch: nil)
        _ = machine.connectRequested()
        for _ in 0..<5 {
            _ = machine.connectionEnded(.failed(SyncError(.transportUnavailable, "refused")))
            _ = machine.backoffElapsed()
        }
        #expect(machine.backoff.step == Self.maxBackoff)
        _ = machine.connectionOpened("s1")
        _ = machine.welcomeReceived(head: 1, serverTime: 1, epoch: nil)
        let delay = Self.reconnectDelay(machine.connectionEnded(.closed(code: .goingAway)))
        #expect(delay.map { $0 <= Self.initialBackoff } == true, "\(String(describing: delay))")
        // An attempt that is not welcomed keeps growing it.
        _ = machine.backoffElapsed()
        _ = machine.connectionOpened("s2")
        _ = machine.connectionEnded(.closed(code: nil))
        #expect(machine.backoff.step == Self.initialBackoff * 4)
    }

    // MARK: REST while down

    @Test func whileDownPushesGoOverREST() {
        var machine = Self.machine()
        #expect(machine.pushRequested() == .rest, "never connected")
        _ = machine.resumeRequested(from: 0, epoch: nil)
        _ = machine.connectRequested()
        #expect(machine.pushRequested() == .rest, "connecting")
        _ = machine.connectionOpened("s1")
        #expect(machine.pushRequested() == .rest, "open, not welcomed")
        _ = machine.welcomeReceived(head: 0, serverTime: 1, epoch: nil)
        #expect(machine.pushRequested() == .socket(batch: 1))
        _ = machine.connectionEnded(.closed(code: nil))
        #expect(machine.pushRequested() == .rest, "backing off")
    }

    // MARK: close()

    @Test func closeFailsEveryWaitingPushAndFinishes() {
        var machine = Self.connected()
        for number in UInt64(1)...3 {
            _ = machine.pushRequested()
            _ = machine.pushWaiting(number, Self.batch, waiter: "p\(number)")
        }
        #expect(machine.pushRequested() == .socket(batch: 4))  // reserved, not yet waiting
        let actions = machine.close()
        #expect(actions.last == .finish)
        for number in 1...3 { #expect(Self.failure(actions, of: "p\(number)")?.code == .transportUnavailable) }
        #expect(actions.count == 4)
        #expect(Self.failure(machine.pushWaiting(4, Self.batch, waiter: "p4"), of: "p4") != nil, "the reserved push is answered too")
        #expect(machine.pushesInFlight == 0)
        #expect(machine.close() == [], "once")
    }

    @Test func afterCloseNothingConnectsAgain() {
        var machine = Self.connected()
        _ = machine.close()
        #expect(machine.outbound == nil)
        #expect(machine.pushRequested() == .rest)
        #expect(machine.connectRequested() == [])
        #expect(machine.connectionEnded(.closed(code: .normalClosure)) == [], "no reconnect")
        #expect(machine.backoffElapsed() == [])
        #expect(machine.welcomeReceived(head: 9, serverTime: 1, epoch: nil) == [])
        #expect(machine.pageReceived(after: 5, from: 5, Self.page(cursor: 9, head: 9)) == [])
    }

    /// Bug in the transport before the state machine: closed before its first pull, its
    /// connection task waited for a cursor forever (and kept the transport alive).
    @Test func closeBeforeTheCursorIsKnownEndsTheRunLoop() {
        var machine = Self.machine()
        _ = machine.connectRequested()
        #expect(machine.close() == [.finish])
        #expect(machine.pullRequested(after: 0, from: 0, epoch: nil) == [], "a later pull does not connect")
    }

    // MARK: Accounting

    @Test func trafficCountsBothWays() {
        var machine = Self.connected()
        machine.sent(bytes: 10)
        machine.sent(bytes: 5)
        _ = machine.messageReceived(.changes(after: 5, from: 5, Self.page(cursor: 6, head: 6)), bytes: 40)
        #expect(machine.traffic == TransportTraffic(bytesSent: 15, bytesReceived: 40))
    }
}
