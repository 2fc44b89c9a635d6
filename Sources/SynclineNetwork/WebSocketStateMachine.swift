package import NIOWebSocket
package import Syncline

/// Everything a ``WebSocketTransport`` knows about its live connection, as a value: every event
/// (a request of the app, a frame from the server, a timer that fired, the socket ending) is a
/// `mutating` method that updates the state and returns the actions the transport then performs
/// (send a frame, resume a waiting push, serve a page, schedule a reconnect…). It does no I/O,
/// reads no clock and starts no task, so every transition is unit-tested without a socket
/// (`WebSocketStateMachineTests`). In the style of swift-websocket's `WebSocketStateMachine`.
///
/// Five concerns live here, each a few fields:
/// - **supervision**: ``Connection`` (idle → waiting for the cursor → connecting → open →
///   connected → backing off → connecting …, and closed for good), with ``Backoff`` drawing its
///   jitter from the injected `Random` generator, and whether the next attempt needs a new token;
/// - **ack correlation**: batch numbers → the push waiting for each (its `Waiter`);
/// - **the page cache**: live pages kept until the reconciler's pull asks for them, with the
///   freshness rules of ``pullRequested(after:from:epoch:)``;
/// - **the resume point**: the cursor and epoch the reconciler last pulled from, sent with the hello;
/// - **accounting**: bytes on the socket, connections opened, pulls answered from the cache.
///
/// - `Outbound`: what frames are written to (the socket's writer; anything in tests).
/// - `Waiter`: what a push waits on (a continuation; anything in tests).
package struct WebSocketStateMachine<Outbound, Waiter, Random: RandomNumberGenerator> {
    /// Where the connection is.
    package enum Connection {
        /// Nothing has asked for the socket yet.
        case idle
        /// Started, but the device's cursor is not known yet (its first pull tells it): the hello
        /// must resume from it.
        case waitingForCursor
        /// Getting a token and opening the socket.
        case connecting
        /// The socket is open and the hello is sent; no welcome yet (pushes still go over REST).
        case open(Outbound)
        /// Welcomed: pushes go over the socket.
        case connected(Outbound)
        /// Down; a reconnect is scheduled.
        case backingOff
        /// ``close()`` was called: nothing opens again.
        case closed
    }

    /// How a connection ended.
    package enum ConnectionEnd {
        /// The socket closed, with the server's close code (`nil`: no close frame, an abnormal end).
        case closed(code: WebSocketErrorCode?)
        /// The server refused the upgrade (as it does for a stale token).
        case refused
        /// It could not be opened (unreachable, no token), or ended with an error: a read error,
        /// an undecodable frame, or the server's connection-level `error` message.
        case failed(SyncError)
    }

    /// What the transport does next. Actions are performed in the order returned.
    package enum Action {
        /// Start the transport's `run()` loop (once).
        case startRunLoop
        /// Get a token (a fresh one with `renewToken`) and open the socket.
        case connect(renewToken: Bool)
        /// Write a frame; `batch` names the push it carries (its failure fails that push).
        case send(LiveMessage, on: Outbound, batch: UInt64?)
        /// Call ``ackTimedOut(_:)`` for `batch` after `after`.
        case scheduleAckTimeout(batch: UInt64, after: Duration)
        /// Resume a waiting push.
        case resume(Waiter, Result<PushResponse, SyncError>)
        /// Tell `liveHeads()` subscribers (only the newest value is kept there; `notify: false`
        /// records it without waking them).
        case publishHead(UInt64, notify: Bool)
        /// End the current connection with this error (the server closes after a connection-level
        /// error anyway); ``connectionEnded(_:)`` follows.
        case endConnection(SyncError)
        /// Call ``backoffElapsed()`` after `after`.
        case scheduleReconnect(after: Duration)
        /// Closed: end the run loop (cancelling the socket and the timers) and the head streams.
        case finish
    }

    /// Where a pull is answered from.
    package enum PullRoute: Equatable {
        /// A page the server pushed on the socket.
        case serve(PullPage)
        /// Nothing fresh enough buffered: ask the server over REST.
        case rest
    }

    /// Where a push goes.
    package enum PushRoute: Equatable {
        /// Over the socket, as this batch number: call ``pushWaiting(_:_:waiter:)`` next.
        case socket(batch: UInt64)
        /// Over REST (the socket is not connected).
        case rest
    }

    package struct BufferedPage {
        package var after: UInt64
        package var from: UInt64
        package var page: PullPage
        /// Arrival order: within a connection, pages are computed in the order they arrive.
        package var arrival: Int
    }

    private enum AckSlot {
        /// A batch number was given out; the push has not registered its waiter yet.
        case reserved
        case waiting(Waiter)
        /// Settled before the push registered its waiter (the connection ended in between).
        case settled(Result<PushResponse, SyncError>)
    }

    /// The close code the server ends a live socket with when its token expired (reason `token_expired`).
    package static var tokenExpiredCloseCode: WebSocketErrorCode { WebSocketErrorCode(codeNumber: 4001) }

    package let ackTimeout: Duration
    /// Pages kept for the reconciler; older ones are dropped.
    package let bufferedPages: Int

    package private(set) var connection = Connection.idle
    /// Where the hello resumes: what the reconciler last said with ``resumeRequested(from:epoch:)``,
    /// or, until it says it, the cursor and epoch it last started a pull from.
    package private(set) var cursor: UInt64?
    package private(set) var epoch: Epoch?
    /// Whether the reconciler said where to resume (pulls then no longer move the resume point).
    private var resumeGiven = false
    package private(set) var backoff: Backoff
    /// Whether the next attempt asks the token provider for a fresh token.
    package private(set) var renewToken = false
    package private(set) var pages: [BufferedPage] = []
    /// The newest head heard: a welcome, a page, or this device's own acknowledged push.
    package private(set) var newestHead: UInt64?
    package private(set) var traffic = TransportTraffic()
    /// How many times the server welcomed a socket.
    package private(set) var connections = 0
    package private(set) var pagesServedFromSocket = 0

    private var random: Random
    private var nextBatch: UInt64 = 1
    private var acks: [UInt64: AckSlot] = [:]
    private var nextArrival = 0
    /// The last page a pull got from the buffer; a pull's next page may come from the buffer
    /// only if it continues that one and arrived after it (so it was computed after it).
    private var lastServed: (after: UInt64, cursor: UInt64, arrival: Int)?

    package init(ackTimeout: Duration, initialBackoff: Duration, maxBackoff: Duration, bufferedPages: Int, random: Random) {
        self.ackTimeout = ackTimeout
        self.bufferedPages = bufferedPages
        self.random = random
        backoff = Backoff(initial: initialBackoff, maximum: maxBackoff)
    }

    /// The socket pushes go to, once welcomed.
    package var outbound: Outbound? {
        if case .connected(let outbound) = connection { return outbound }
        return nil
    }

    /// How many pushes wait for an ack.
    package var pushesInFlight: Int { acks.count }

    // MARK: Requests of the app

    /// A push, a pull or a head subscription wants the socket: the first one starts the run loop,
    /// which connects once the cursor is known.
    package mutating func connectRequested() -> [Action] {
        guard case .idle = connection else { return [] }
        guard cursor != nil else {
            connection = .waitingForCursor
            return [.startRunLoop]
        }
        connection = .connecting
        return [.startRunLoop, .connect(renewToken: false)]
    }

    /// The reconciler says where the device's applied state stands (DESIGN §3: it owns the
    /// cursor): the next hello resumes there, and a run loop waiting for it connects. A socket
    /// already open keeps its session (the server goes on from where it was).
    package mutating func resumeRequested(from cursor: UInt64, epoch: Epoch?) -> [Action] {
        self.cursor = cursor
        self.epoch = epoch
        resumeGiven = true
        guard case .waitingForCursor = connection else { return [] }
        connection = .connecting
        return [.connect(renewToken: false)]
    }

    /// A push: over the socket when welcomed (a batch number is reserved for it), else over REST.
    package mutating func pushRequested() -> PushRoute {
        guard case .connected = connection else { return .rest }
        defer { nextBatch += 1 }
        acks[nextBatch] = .reserved
        return .socket(batch: nextBatch)
    }

    /// The push of `number` waits for its ack: the frame is sent and its timeout scheduled, or,
    /// when the connection ended since ``pushRequested()``, the push is answered at once.
    package mutating func pushWaiting(_ number: UInt64, _ batch: ChangeBatch, waiter: Waiter) -> [Action] {
        switch acks[number] {
        case .reserved:
            guard case .connected(let outbound) = connection else {
                acks[number] = nil
                return [.resume(waiter, .failure(Self.connectionLost))]
            }
            acks[number] = .waiting(waiter)
            return [.send(.push(batch: number, batch), on: outbound, batch: number), .scheduleAckTimeout(batch: number, after: ackTimeout)]
        case .settled(let result):
            acks[number] = nil
            return [.resume(waiter, result)]
        case .waiting, nil:
            return [.resume(waiter, .failure(SyncError(.transportUnavailable, "batch \(number) was not reserved for this push")))]
        }
    }

    /// A pull of the reconciler. A first page (`cursor == position`) tells where the device is: the
    /// hello resumes from it, and a run loop waiting for it connects. Buffered pages answer when
    /// fresh enough:
    /// - pages older than what the device asks for are dropped (they will never be asked for);
    /// - a page of another epoch is left to the server's answer (410);
    /// - only a page as fresh as anything heard since (a newer commit, or this device's own
    ///   acknowledged push) answers a pull: sync() means "up to now";
    /// - paging keeps `after` fixed and is safe only when each page is read after the one before
    ///   it: a continuation comes from the buffer only after a buffered page it continues, and
    ///   only if it arrived later.
    package mutating func pullRequested(after cursor: UInt64, from position: UInt64, epoch: Epoch?) -> (PullRoute, [Action]) {
        var actions: [Action] = []
        if cursor == position && !resumeGiven {
            self.cursor = cursor
            self.epoch = epoch
            if case .waitingForCursor = connection {
                connection = .connecting
                actions.append(.connect(renewToken: false))
            }
        }
        pages.removeAll { $0.after < cursor || ($0.after == cursor && $0.from < position) }
        let continuing = lastServed
        let newestHead = self.newestHead ?? 0
        guard
            let index = pages.firstIndex(where: { page in
                guard page.after == cursor && page.from == position else { return false }
                if let epoch, let pageEpoch = page.page.epoch, pageEpoch != epoch { return false }
                guard page.page.head >= newestHead else { return false }
                if cursor == position { return true }
                guard let continuing else { return false }
                return continuing.after == cursor && continuing.cursor == position && page.arrival > continuing.arrival
            })
        else {
            lastServed = nil
            return (.rest, actions)
        }
        let served = pages.remove(at: index)
        lastServed = (cursor, served.page.cursor, served.arrival)
        pagesServedFromSocket += 1
        return (.serve(served.page), actions)
    }

    /// ``WebSocketTransport/close()``: every waiting push gets an error, nothing opens again.
    package mutating func close() -> [Action] {
        if case .closed = connection { return [] }
        connection = .closed
        return failPushes(SyncError(.transportUnavailable, "the transport was closed before the ack")) + [.finish]
    }

    // MARK: The socket

    /// The socket opened: say hello from the reconciler's cursor.
    package mutating func connectionOpened(_ outbound: Outbound) -> [Action] {
        guard case .connecting = connection else { return [] }
        connection = .open(outbound)
        return [.send(.hello(cursor: cursor ?? 0, epoch: epoch), on: outbound, batch: nil)]
    }

    /// A frame from the server (`bytes` on the wire).
    package mutating func messageReceived(_ message: LiveMessage, bytes: Int) -> [Action] {
        traffic.bytesReceived += bytes
        switch message {
        case .welcome(let head, let serverTime, let epoch):
            return welcomeReceived(head: head, serverTime: serverTime, epoch: epoch)
        case .changes(let after, let from, let page):
            return pageReceived(after: after, from: from, page)
        case .ack(let batch, let response):
            return ackReceived(batch, response)
        case .error(let code, let message, let batch):
            return errorReceived(code: code, message: message, batch: batch)
        case .hello, .push:
            return [.endConnection(SyncError(.malformedInput, "the server sent a client message"))]
        }
    }

    /// The server's welcome: pushes go over the socket from now on.
    package mutating func welcomeReceived(head: UInt64, serverTime: UInt64, epoch: Epoch?) -> [Action] {
        switch connection {
        case .open(let outbound):
            connection = .connected(outbound)
            connections += 1
        case .connected:
            break
        case .idle, .waitingForCursor, .connecting, .backingOff, .closed:
            return []
        }
        return heard(head, notify: true)
    }

    /// A page the server pushed (the catch-up from the hello's cursor, or a new commit): kept for
    /// the reconciler's next pull; the oldest is dropped beyond ``bufferedPages``.
    package mutating func pageReceived(after: UInt64, from: UInt64, _ page: PullPage) -> [Action] {
        if case .closed = connection { return [] }
        pages.append(BufferedPage(after: after, from: from, page: page, arrival: nextArrival))
        nextArrival += 1
        if pages.count > bufferedPages { pages.removeFirst(pages.count - bufferedPages) }
        return heard(page.head, notify: true)
    }

    /// An ack: its push gets the response. The push's head makes older pages stale, without
    /// waking the sync loop again.
    package mutating func ackReceived(_ batch: UInt64, _ response: PushResponse) -> [Action] {
        heard(response.head, notify: false) + settle(batch, .success(response))
    }

    /// The server's `error` message: for a batch, that push fails; otherwise the connection ends
    /// (the server closes after it). `resync_required` means the hello's epoch is stale (the
    /// server was restored): the next hello asks for a snapshot, which the reconciler's resync takes.
    package mutating func errorReceived(code: String, message: String, batch: UInt64?) -> [Action] {
        let error = SyncError(SyncError.Code(description: code) ?? .transportUnavailable, message)
        if let batch { return settle(batch, .failure(error)) }
        if error.code == .resyncRequired {
            cursor = 0
            epoch = nil
        }
        return [.endConnection(error)]
    }

    /// No ack came within ``ackTimeout``.
    package mutating func ackTimedOut(_ batch: UInt64) -> [Action] {
        settle(batch, .failure(SyncError(.transportUnavailable, "no ack for batch \(batch) within \(ackTimeout)")))
    }

    /// A push's frame could not be written.
    package mutating func sendFailed(_ batch: UInt64, _ error: SyncError) -> [Action] {
        settle(batch, .failure(SyncError(.transportUnavailable, "the push could not be sent: \(error)")))
    }

    /// Bytes written on the socket.
    package mutating func sent(bytes: Int) {
        traffic.bytesSent += bytes
    }

    /// The connection ended (or could not be opened): waiting pushes fail (they are sent again by
    /// the outbox), and a reconnect is scheduled after the backoff's next delay, which starts
    /// again from the initial step when the server had welcomed this connection. A refused
    /// upgrade, a socket closed because the token expired (4001) or an `unauthorized` error get
    /// one fresh token on the next attempt; a server that cannot be reached does not make us ask
    /// for one.
    package mutating func connectionEnded(_ end: ConnectionEnd) -> [Action] {
        let greeted: Bool
        switch connection {
        case .connecting, .open:
            greeted = false
        case .connected:
            greeted = true
        case .idle, .waitingForCursor, .backingOff, .closed:
            return []
        }
        switch end {
        case .refused:
            renewToken = true
        case .closed(let code):
            renewToken = code == Self.tokenExpiredCloseCode
        case .failed(let error):
            renewToken = error.code == .unauthorized
        }
        let failed = failPushes(Self.connectionLost)
        if greeted { backoff.reset() }
        let delay = backoff.next(using: &random)
        connection = .backingOff
        return failed + [.scheduleReconnect(after: delay)]
    }

    /// The backoff's delay passed: connect again.
    package mutating func backoffElapsed() -> [Action] {
        guard case .backingOff = connection else { return [] }
        connection = .connecting
        defer { renewToken = false }
        return [.connect(renewToken: renewToken)]
    }

    // MARK: Helpers

    private static var connectionLost: SyncError {
        SyncError(.transportUnavailable, "the live connection closed before the ack")
    }

    private mutating func heard(_ head: UInt64, notify: Bool) -> [Action] {
        newestHead = max(newestHead ?? 0, head)
        return [.publishHead(head, notify: notify)]
    }

    private mutating func settle(_ batch: UInt64, _ result: Result<PushResponse, SyncError>) -> [Action] {
        switch acks[batch] {
        case .waiting(let waiter):
            acks[batch] = nil
            return [.resume(waiter, result)]
        case .reserved:
            acks[batch] = .settled(result)
            return []
        case .settled, nil:
            // An ack for a batch already answered (timed out, or the connection ended): ignored.
            return []
        }
    }

    private mutating func failPushes(_ error: SyncError) -> [Action] {
        var actions: [Action] = []
        for (number, slot) in acks.sorted(by: { $0.key < $1.key }) {
            switch slot {
            case .waiting(let waiter):
                acks[number] = nil
                actions.append(.resume(waiter, .failure(error)))
            case .reserved:
                acks[number] = .settled(.failure(error))
            case .settled:
                break
            }
        }
        return actions
    }
}

extension WebSocketStateMachine.Action: Sendable where Outbound: Sendable, Waiter: Sendable {}
extension WebSocketStateMachine.Action: Equatable where Outbound: Equatable, Waiter: Equatable {}
