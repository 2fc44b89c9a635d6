package import NIOWebSocket
package import Syncline

/// Everything a ``WebSocketTransport`` knows about its live connection, as a value: every event
/// (a request of the app, a frame from the server, a timer that fired, the socket ending) is a
/// `mutating` method that updates the state and returns the actions the transport then performs
/// (send a frame, resume a waiting push, deliver a page, schedule a reconnect…). It does no I/O,
/// reads no clock and starts no task, so every transition is unit-tested without a socket
/// (`WebSocketStateMachineTests`). In the style of swift-websocket's `WebSocketStateMachine`.
///
/// Five concerns live here, each a few fields:
/// - **supervision**: ``Connection`` (idle → waiting for the cursor → connecting → open →
///   connected → backing off → connecting …, and closed for good), with ``Backoff`` drawing its
///   jitter from the injected `Random` generator, and whether the next attempt needs a new token;
/// - **ack correlation**: batch numbers → the push waiting for each (its `Waiter`);
/// - **live pages**: each page the server pushes is delivered at once, for the reconciler to apply
///   (nothing is kept to be fetched again: a pull always asks the server);
/// - **the resume point**: where the reconciler says the device stands, sent with the hello;
/// - **accounting**: bytes on the socket, connections opened, pages delivered.
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
        /// Hand a page the server pushed to the `livePages()` reader.
        case deliver(LivePage)
        /// End the current connection with this error (the server closes after a connection-level
        /// error anyway); ``connectionEnded(_:)`` follows.
        case endConnection(SyncError)
        /// Call ``backoffElapsed()`` after `after`.
        case scheduleReconnect(after: Duration)
        /// Closed: end the run loop (cancelling the socket and the timers) and the head streams.
        case finish
    }

    /// Where a push goes.
    package enum PushRoute: Equatable {
        /// Over the socket, as this batch number: call ``pushWaiting(_:_:waiter:)`` next.
        case socket(batch: UInt64)
        /// Over REST (the socket is not connected).
        case rest
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
    /// The newest head heard: a welcome, a page, or this device's own acknowledged push.
    package private(set) var newestHead: UInt64?
    package private(set) var traffic = TransportTraffic()
    /// How many times the server welcomed a socket.
    package private(set) var connections = 0
    /// Pages the server pushed and the machine delivered.
    package private(set) var pagesDelivered = 0

    private var random: Random
    private var nextBatch: UInt64 = 1
    private var acks: [UInt64: AckSlot] = [:]

    package init(ackTimeout: Duration, initialBackoff: Duration, maxBackoff: Duration, random: Random) {
        self.ackTimeout = ackTimeout
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

    /// A pull of the reconciler: always asked of the server (over REST; nothing is kept to answer
    /// it). Until the reconciler has said where to resume, a pull's first page (`cursor ==
    /// position`) tells where the device is, and a run loop waiting for it connects.
    package mutating func pullRequested(after cursor: UInt64, from position: UInt64, epoch: Epoch?) -> [Action] {
        guard cursor == position && !resumeGiven else { return [] }
        self.cursor = cursor
        self.epoch = epoch
        guard case .waitingForCursor = connection else { return [] }
        connection = .connecting
        return [.connect(renewToken: false)]
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

    /// A page the server pushed (the catch-up from the hello's cursor, or a new commit): delivered
    /// to the reconciler as it is (it applies it when it continues the device's cursor).
    package mutating func pageReceived(after: UInt64, from: UInt64, _ page: PullPage) -> [Action] {
        if case .closed = connection { return [] }
        pagesDelivered += 1
        // The page itself goes to the reconciler: its head wakes nobody.
        return heard(page.head, notify: false) + [.deliver(LivePage(after: after, from: from, page: page))]
    }

    /// An ack: its push gets the response. Its head is recorded, without
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
