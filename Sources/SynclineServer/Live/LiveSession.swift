import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import CoreMetrics
import ServiceLifecycle
import Syncline

/// One live WebSocket (`/v1/ns/{ns}/live`, DESIGN §5): `hello` → `welcome`, catch-up pages from the
/// device's cursor, then a page for every new commit; `push` batches answered with `ack`s.
///
/// Bounded memory with a slow reader: the session keeps only the position it has delivered and
/// reads the next page from the backend when the previous one was written (a write waits while
/// the socket is not writable), so nothing queues up in the server for a client that does not read.
///
/// A session opened with a JWT ends when the token does (its `exp` plus the leeway): the server
/// sends an `error` message (code `unauthorized`, the message starting with `token_expired`) and
/// closes with ``tokenExpiredCloseCode`` (4001) and the reason `token_expired`; the client
/// reconnects with a fresh token.
struct LiveSession: Sendable {
    /// The close code for a session whose token expired (4000–4999 is for applications, RFC 6455 §7.4.2).
    static let tokenExpiredCloseCode = WebSocketErrorCode(codeNumber: 4001)
    /// The close reason sent with ``tokenExpiredCloseCode``.
    static let tokenExpiredReason = "token_expired"

    let namespace: Namespace
    let backend: any ServerBackend
    let configuration: SyncServerConfiguration
    let metrics: ServerMetrics
    let logger: Logger
    /// Unix milliseconds when the token the socket was opened with stops being valid; `nil` for a
    /// token that does not expire.
    var expiresAt: UInt64?

    /// The client's frame kind, used for every answer.
    enum Framing: Sendable { case json, binary }

    private enum Part: Sendable { case reader, deliverer, timer }

    /// The error that ends a session whose token expired.
    static let tokenExpired = SyncError(
        .unauthorized, "token_expired: the token this connection was opened with expired; reconnect with a fresh one",
        reason: tokenExpiredReason
    )

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        metrics.liveConnections.increment(by: 1)
        defer { metrics.liveConnections.decrement(by: 1) }
        let sender = LiveSender(outbound: outbound, metrics: metrics)
        // On graceful shutdown the socket is closed with 1001 (going away); a push being applied
        // finishes first in the backend, and the client's retry of it is answered as a duplicate.
        await withGracefulShutdownHandler {
            await serve(sender: sender, inbound: inbound)
        } onGracefulShutdown: {
            Task { await sender.close(.goingAway, "the server is shutting down") }
        }
    }

    private func serve(sender: LiveSender, inbound: WebSocketInboundStream) async {
        // The reader hands the hello's cursor and epoch (and the client's framing) to the delivery loop.
        let (start, started) = AsyncStream<(UInt64, Epoch, Framing)>.makeStream()
        await withThrowingTaskGroup(of: Part.self) { group in
            group.addTask {
                defer { started.finish() }
                var messages = inbound.messages(maxSize: configuration.maxLiveMessageBytes).makeAsyncIterator()
                guard let first = try await messages.next() else { return .reader }
                let (framing, cursor, epoch) = try await hello(first, sender: sender)
                started.yield((cursor, epoch, framing))
                while let message = try await messages.next() {
                    try await handle(message, sender: sender)
                }
                return .reader
            }
            group.addTask {
                var iterator = start.makeAsyncIterator()
                guard let (cursor, epoch, framing) = await iterator.next() else { return .deliverer }
                let heads = await backend.subscribe(namespace: namespace)
                try await deliver(from: cursor, epoch: epoch, heads: heads, sender: sender, framing: framing)
                return .deliverer
            }
            group.addTask {
                try await Task.sleep(for: configuration.helloTimeout)
                if await !sender.greeted {
                    throw SyncError(.malformedInput, "no hello within \(configuration.helloTimeout)")
                }
                return .timer
            }
            if let expiresAt {
                group.addTask {
                    // In steps of at most a day, so a far-away exp never overflows a deadline.
                    while case let now = configuration.clock(), expiresAt > now {
                        try await Task.sleep(for: .milliseconds(min(expiresAt - now, 86_400_000)))
                    }
                    throw Self.tokenExpired
                }
            }
            // The reader ending (the client closed) or a failure ends the session. The socket is
            // closed before the group waits for its other parts, so a reader blocked on a
            // silent client ends too.
            do {
                while let part = try await group.next() {
                    if part != .timer { break }
                }
                await sender.close(.normalClosure, "bye")
            } catch {
                await end(after: error, sender: sender)
            }
            group.cancelAll()
        }
    }

    private func end(after error: any Error, sender: LiveSender) async {
        switch error {
        case let error as SyncError where error.reason == Self.tokenExpiredReason:
            await sender.fail(error, framing: await sender.framing, close: Self.tokenExpiredCloseCode, reason: Self.tokenExpiredReason)
        case let error as SyncError:
            let code: WebSocketErrorCode = error.code == .malformedInput ? .protocolError : .policyViolation
            await sender.fail(error, framing: await sender.framing, close: code)
        case is CancellationError:
            await sender.close(.goingAway, "the server is shutting down")
        default:
            logger.debug("live connection ended", metadata: ["syncline.error": "\(error)"])
            await sender.close(.unexpectedServerError, "the server failed")
        }
    }

    /// Checks the first message: a hello in the namespace's epoch (or none) with a cursor not
    /// beyond the head; answers welcome with the epoch. Another epoch ends the session with
    /// `resync_required` (the device pulls a snapshot, then says hello again).
    private func hello(_ message: WebSocketMessage, sender: LiveSender) async throws -> (Framing, UInt64, Epoch) {
        let (framing, hello) = try Self.decode(message)
        await sender.setFraming(framing)
        guard case .hello(let cursor, let known) = hello else { throw SyncError(.malformedInput, "the first message must be hello") }
        let epoch = try await backend.epoch(namespace: namespace)
        try ServerEngine.checkEpoch(known, current: epoch)
        let head = try await backend.head(namespace: namespace)
        guard cursor <= head else { throw SyncError(.invalidCursor, "cursor \(cursor) is beyond the head \(head)") }
        try await sender.send(.welcome(head: head, serverTime: configuration.clock(), epoch: epoch), framing: framing)
        await sender.markGreeted()
        return (framing, cursor, epoch)
    }

    /// Sends catch-up pages from `cursor`, then a page after each commit. `after` stays fixed while
    /// a catch-up spans several pages (see ``ServerEngine/pull(from:after:from:limit:collections:epoch:configuration:)``).
    private func deliver(
        from cursor: UInt64, epoch: Epoch, heads: AsyncStream<UInt64>, sender: LiveSender, framing: Framing
    ) async throws {
        var after = cursor
        var position = cursor
        var headIterator = heads.makeAsyncIterator()
        while !Task.isCancelled {
            var page: PullPage
            do {
                page = try await backend.pull(
                    namespace: namespace, after: after, from: position, limit: configuration.livePageSize, collections: nil,
                    epoch: epoch, configuration: configuration.engine
                )
            } catch let error as SyncError where error.code == .transportUnavailable {
                // The backend's database is away for a moment (PostgreSQL restarting): the socket
                // stays open and the page is read again after the Retry-After the backend gave.
                logger.debug("live delivery waits for the backend", metadata: ["syncline.error": "\(error)"])
                try await Task.sleep(for: .seconds(max(1, error.limit ?? 1)))
                continue
            }
            page.serverTime = configuration.clock()
            if !page.changes.isEmpty {
                try await sender.send(.changes(after: after, from: position, page), framing: framing)
                metrics.liveDeliveries.increment()
            }
            if page.hasMore {
                position = page.cursor
                continue
            }
            after = page.cursor
            position = after
            // Wait for a commit past what was delivered.
            while let head = await headIterator.next() {
                if head > after { break }
            }
            if Task.isCancelled { return }
        }
    }

    /// Answers one message after the hello. Garbage ends the connection (with an error message
    /// and a protocol-error close); other connections are not affected.
    private func handle(_ message: WebSocketMessage, sender: LiveSender) async throws {
        let (framing, decoded) = try Self.decode(message)
        switch decoded {
        case .push(let number, let batch):
            do {
                let response = try await backend.accept(batch, namespace: namespace, configuration: configuration, metrics: metrics)
                try await sender.send(.ack(batch: number, response), framing: framing)
            } catch let error as SyncError {
                // A refused batch is answered; the connection stays open.
                try await sender.send(.error(code: error.code.description, message: error.message, batch: number), framing: framing)
            }
        case .hello:
            try await sender.send(.error(code: SyncError.Code.malformedInput.description, message: "hello was already received", batch: nil), framing: framing)
        case .welcome, .ack, .changes, .error:
            try await sender.send(
                .error(code: SyncError.Code.malformedInput.description, message: "a client may send only hello and push", batch: nil),
                framing: framing
            )
        }
    }

    static func decode(_ message: WebSocketMessage) throws(SyncError) -> (Framing, LiveMessage) {
        switch message {
        case .text(let text): return (.json, try LiveMessage.decodeJSON(Array(text.utf8)))
        case .binary(let buffer): return (.binary, try LiveMessage.decodeBinary(Array(buffer.readableBytesView)))
        }
    }
}

/// Serializes writes to one socket (the delivery loop and push acks share it).
actor LiveSender {
    let outbound: WebSocketOutboundWriter
    let metrics: ServerMetrics
    /// The client's framing once known (errors before it are JSON).
    private(set) var framing: LiveSession.Framing = .json
    /// Whether the hello was answered.
    private(set) var greeted = false
    private var closed = false

    func setFraming(_ framing: LiveSession.Framing) { self.framing = framing }
    func markGreeted() { greeted = true }

    init(outbound: WebSocketOutboundWriter, metrics: ServerMetrics) {
        self.outbound = outbound
        self.metrics = metrics
    }

    func send(_ message: LiveMessage, framing: LiveSession.Framing) async throws {
        switch framing {
        case .json:
            let bytes = try message.encodeJSON()
            metrics.bytesOut.increment(by: Int64(bytes.count))
            try await outbound.write(.text(String(decoding: bytes, as: UTF8.self)))
        case .binary:
            let bytes = message.encodeBinary()
            metrics.bytesOut.increment(by: Int64(bytes.count))
            try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
        }
    }

    /// Reports an error to the client and closes with `code` and `reason` (the error's message by default).
    func fail(_ error: SyncError, framing: LiveSession.Framing, close code: WebSocketErrorCode, reason: String? = nil) async {
        do {
            try await send(.error(code: error.code.description, message: error.message, batch: nil), framing: framing)
        } catch {
            // The socket is already gone: nothing to report to.
        }
        await close(code, reason ?? error.message)
    }

    func close(_ code: WebSocketErrorCode, _ reason: String) async {
        guard !closed else { return }
        closed = true
        do {
            try await outbound.close(code, reason: String(reason.prefix(120)))
        } catch {
            // Already closed by the peer.
        }
    }
}
