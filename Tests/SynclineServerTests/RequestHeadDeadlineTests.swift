@testable import SynclineServer
import Testing

/// The request-head timeout's state machine, step by step (the live behaviour is in
/// ``ConnectionLimitTests``).
@Suite struct RequestHeadDeadlineTests {
    typealias Machine = RequestHeadTimeoutHandler.StateMachine

    @Test func aNewConnectionMustSendItsHeadBeforeTheDeadline() {
        var machine = Machine()
        #expect(machine.connectionOpened() == .startDeadline)
        #expect(machine.bytesRead() == .none, "bytes of the head do not restart the deadline")
        #expect(machine.deadlinePassed() == .close)
    }

    @Test func aCompleteHeadStopsTheDeadlineUntilTheNextRequestStarts() {
        var machine = Machine()
        _ = machine.connectionOpened()
        #expect(machine.headReceived() == .cancelDeadline)
        #expect(machine.deadlinePassed() == .none, "a request being read or answered is never cut by the header timeout")
        machine.responseFinished()
        #expect(machine.state == .idle)
        #expect(machine.deadlinePassed() == .none, "between requests only the idle timeout applies")
        #expect(machine.bytesRead() == .startDeadline, "the next request's first byte starts its deadline")
        #expect(machine.deadlinePassed() == .close)
    }

    @Test func theServerAnsweringEndsTheWaitAsForAWebSocketUpgrade() {
        var machine = Machine()
        _ = machine.connectionOpened()
        #expect(machine.responseWritten() == .cancelDeadline)
        // After an upgrade no HTTP answer ends, so the connection is never timed again.
        #expect(machine.bytesRead() == .none)
        #expect(machine.deadlinePassed() == .none)
        #expect(machine.state == .inRequest)
    }
}
