import Foundation
public import Logging
import NIOCore
import NIOSSL
import NIOWebSocket
public import Syncline
import Synchronization
import HTTPTypes
import WSClient

/// A ``SyncTransport`` over the live WebSocket (`/v1/ns/{ns}/live`, DESIGN §5) with
/// swift-websocket's client: pushes travel over the socket and are answered with acks; the server
/// streams a page for every commit, which the reconciler's next pull takes from memory instead of
/// asking the server. The socket reconnects with exponential backoff and jitter and resumes from the
/// device's cursor.
///
/// While the socket is down, pushes and pulls go over REST to the same server, so nothing waits
/// for the socket. The connection starts once the device's cursor is known (its first pull) and
/// ends with ``close()``.
///
/// ```swift
/// let transport = WebSocketTransport(url: "http://127.0.0.1:8080", namespace: ns, token: { "t0k3n" })
/// let client = try SyncClient(namespace: ns, store: store, transport: transport)
/// client.start()                 // pages arrive as other devices commit
/// ```
public final class WebSocketTransport: SyncTransport {
    public struct Configuration: Sendable {
        /// Frames: `.binary` (default) or `.json` text frames; also the REST fallback's codec.
        public var wire: WireCodec
        /// The largest message either way. Default 16 MiB (the server's default too).
        public var maxMessageBytes: Int
        /// How long a push waits for its ack. Default 30 s.
        public var ackTimeout: Duration
        /// Reconnection backoff: from `initialBackoff`, doubled, jittered, capped at `maxBackoff`.
        public var initialBackoff: Duration
        public var maxBackoff: Duration
        /// Pages kept for the reconciler; older ones are dropped (it then pulls over REST). Default 16.
        public var bufferedPages: Int
        /// The certificates trusted for `https://` (`wss://`), the socket and the REST fallback alike.
        /// Default: the system's.
        public var trust: ServerTrust

        public init(
            wire: WireCodec = WireCodec(), maxMessageBytes: Int = 16 << 20, ackTimeout: Duration = .seconds(30),
            initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(30), bufferedPages: Int = 16,
            trust: ServerTrust = .system
        ) {
            self.trust = trust
            self.wire = wire
            self.maxMessageBytes = maxMessageBytes
            self.ackTimeout = ackTimeout
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
            self.bufferedPages = bufferedPages
        }
    }

    private struct BufferedPage {
        var after: UInt64
        var from: UInt64
        var page: PullPage
        /// Arrival order: within a connection, pages are computed in the order they arrive.
        var arrival = 0
    }

    private struct State {
        var outbound: WebSocketOutboundWriter?
        var cursor: UInt64?
        /// The namespace epoch the cursor belongs to (sent with the hello).
        var epoch: Epoch?
        var cursorKnown: [CheckedContinuation<Void, Never>] = []
        var nextBatch: UInt64 = 1
        var acks: [UInt64: CheckedContinuation<PushResponse, any Error>] = [:]
        var pages: [BufferedPage] = []
        var connection: Task<Void, Never>?
        var closed = false
        var traffic = TransportTraffic()
        var connections = 0
        var pagesServedFromSocket = 0
        var nextArrival = 0
        /// The last page a pull got from the buffer; a pull's next page may come from the buffer
        /// only if it continues that one and arrived after it (so it was computed after it).
        var lastServed: (after: UInt64, cursor: UInt64, arrival: Int)?
    }

    public let namespace: Namespace
    public let configuration: Configuration
    /// The REST transport used while the socket is down (and for the token).
    public let rest: RESTTransport
    private let liveURL: String
    private let logger: Logger
    private let state = Mutex(State())
    /// The newest head heard (a welcome, a page, or this device's own acknowledged push), given to
    /// `liveHeads()` subscribers.
    private let heads = HeadBroadcaster()

    /// - Parameter url: the server's base URL (`http://host:port`, or `ws://host:port`); the socket
    ///   goes to `ws://host:port/v1/ns/{ns}/live` and REST to `http://host:port`. `https://` (or
    ///   `wss://`) goes over TLS both ways, trusting ``Configuration/trust``.
    public init(
        url: String, namespace: Namespace, token: @escaping TokenProvider, configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "syncline.websocket")
    ) {
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.namespace = namespace
        self.configuration = configuration
        self.logger = logger
        var hostPart = base
        var secure = false
        for (prefix, isSecure) in [("https://", true), ("wss://", true), ("http://", false), ("ws://", false)] where base.hasPrefix(prefix) {
            hostPart = String(base.dropFirst(prefix.count))
            secure = isSecure
            break
        }
        rest = RESTTransport(
            url: (secure ? "https://" : "http://") + hostPart, namespace: namespace, token: token,
            configuration: .init(wire: configuration.wire, trust: configuration.trust)
        )
        let scheme = secure ? "wss://" : "ws://"
        liveURL = "\(scheme)\(hostPart)/v1/ns/\(namespace.rawValue)/live"
        if scheme == "wss://" && Self.isIPAddress(authority: hostPart) {
            // The WebSocket client always sends the host as SNI, which cannot be an IP address.
            logger.warning(
                "wss:// cannot reach a server by IP address: the live socket will not open and this transport uses REST only; use the host name in the server's certificate",
                metadata: ["syncline.url": "\(base)"]
            )
        }
    }

    /// Whether a URL's `host[:port][/path]` names the host by an IPv4 or (bracketed) IPv6 address.
    static func isIPAddress(authority: String) -> Bool {
        let host = authority.prefix { $0 != "/" }
        if host.hasPrefix("[") { return true }
        let name = host.prefix { $0 != ":" }
        return !name.isEmpty && name.allSatisfy { $0.isNumber || $0 == "." } && name.split(separator: ".").count == 4
    }

    deinit {
        state.withLock { $0.connection?.cancel() }
    }

    /// Ends the connection; later calls go over REST.
    public func close() {
        let task = state.withLock { state in
            state.closed = true
            return state.connection
        }
        task?.cancel()
        heads.finish()
    }

    /// Whether the socket is open now.
    public var isConnected: Bool { state.withLock { $0.outbound != nil } }

    /// How many times the socket was opened, and how many pulls were answered from it (for tests
    /// and diagnostics).
    public var statistics: (connections: Int, pagesFromSocket: Int) {
        state.withLock { ($0.connections, $0.pagesServedFromSocket) }
    }

    public var traffic: TransportTraffic? {
        let own = state.withLock { $0.traffic }
        let viaREST = rest.traffic ?? TransportTraffic()
        return TransportTraffic(bytesSent: own.bytesSent + viaREST.bytesSent, bytesReceived: own.bytesReceived + viaREST.bytesReceived)
    }

    // MARK: SyncTransport

    public func push(_ batch: ChangeBatch) async throws -> PushResponse {
        startIfNeeded()
        guard let (outbound, number) = state.withLock({ state -> (WebSocketOutboundWriter, UInt64)? in
            guard let outbound = state.outbound else { return nil }
            defer { state.nextBatch += 1 }
            return (outbound, state.nextBatch)
        }) else {
            return try await rest.push(batch)
        }
        let timeout = configuration.ackTimeout
        let timer = Task {
            try await Task.sleep(for: timeout)
            self.failAck(number, SyncError(.transportUnavailable, "no ack for batch \(number) within \(timeout)"))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            state.withLock { $0.acks[number] = continuation }
            Task {
                do {
                    try await self.send(.push(batch: number, batch), on: outbound)
                } catch {
                    self.failAck(number, SyncError(.transportUnavailable, "the push could not be sent: \(error)"))
                }
            }
        }
    }

    public func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
        let newestHead = heads.latest(namespace: namespace)
        let buffered = state.withLock { state -> PullPage? in
            if cursor == position {
                state.cursor = cursor
                state.epoch = epoch
                for waiting in state.cursorKnown { waiting.resume() }
                state.cursorKnown = []
            }
            // Pages older than what the device asks for will never be asked for.
            state.pages.removeAll { $0.after < cursor || ($0.after == cursor && $0.from < position) }
            // Paging keeps `after` fixed and is safe only when each page is read after the one
            // before it: a continuation comes from the buffer only after a buffered page it
            // continues, and only if it arrived later.
            let continuing = state.lastServed
            guard
                let index = state.pages.firstIndex(where: { page in
                    guard page.after == cursor && page.from == position else { return false }
                    // A page of another epoch is left to the server's answer (410).
                    if let epoch, let pageEpoch = page.page.epoch, pageEpoch != epoch { return false }
                    // Only a page as fresh as anything heard since (a newer commit, or this
                    // device's own acknowledged push) answers a pull: sync() means "up to now".
                    guard page.page.head >= (newestHead ?? 0) else { return false }
                    if cursor == position { return true }
                    guard let continuing else { return false }
                    return continuing.after == cursor && continuing.cursor == position && page.arrival > continuing.arrival
                })
            else {
                state.lastServed = nil
                return nil
            }
            let served = state.pages.remove(at: index)
            state.lastServed = (cursor, served.page.cursor, served.arrival)
            state.pagesServedFromSocket += 1
            return served.page
        }
        startIfNeeded()
        if let buffered { return buffered }
        return try await rest.pull(after: cursor, from: position, limit: limit, epoch: epoch)
    }

    public func liveHeads() async -> AsyncStream<UInt64> {
        startIfNeeded()
        return heads.subscribe(namespace: namespace)
    }

    // MARK: Connection

    private func startIfNeeded() {
        state.withLock { state in
            guard state.connection == nil, !state.closed else { return }
            state.connection = Task { [weak self] in await self?.maintainConnection() }
        }
    }

    /// Connects, reads until the socket ends, and reconnects with backoff, until closed.
    private func maintainConnection() async {
        // Wait until the device's cursor is known (its first pull), so the hello resumes from it.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let known = state.withLock { state in
                if state.cursor != nil { return true }
                state.cursorKnown.append(continuation)
                return false
            }
            if known { continuation.resume() }
        }
        var backoff = Backoff(initial: configuration.initialBackoff, maximum: configuration.maxBackoff)
        var renewToken = false
        while !Task.isCancelled {
            var greeted = false
            do {
                let token = try await rest.token(renew: renewToken)
                renewToken = false
                let session = await connectOnce(token: token)
                greeted = session.greeted  // also when the session then ended with an error
                if let error = session.error { throw error }
            } catch {
                logger.debug("live connection failed", metadata: ["syncline.error": "\(error)"])
                // An upgrade the server refused (as for a stale token), or a socket it closed because
                // the token expired (4001 token_expired), gets one fresh token on the next attempt; a
                // server that cannot be reached does not make us ask for one.
                renewToken =
                    (error as? WebSocketClientError) == .webSocketUpgradeFailed || (error as? SyncError)?.code == .unauthorized
            }
            disconnected()
            if greeted { backoff.reset() }
            do {
                try await backoff.wait()
            } catch {
                return
            }
        }
    }

    /// One connection: hello, then messages until it ends.
    /// - Returns: whether the server welcomed it, and the error that ended it, if any.
    private func connectOnce(token: String) async -> (greeted: Bool, error: (any Error)?) {
        let greeted = Mutex(false)
        var clientConfiguration = WebSocketClientConfiguration(maxFrameSize: configuration.maxMessageBytes)
        clientConfiguration.additionalHeaders[.authorization] = "Bearer \(token)"
        let closeFrame: WebSocketCloseFrame?
        do {
            closeFrame = try await WebSocketClient.connect(
                url: liveURL, configuration: clientConfiguration,
                tlsConfiguration: configuration.trust == .system ? nil : configuration.trust.tlsConfiguration, logger: logger
            ) { inbound, outbound, _ in
                let (cursor, epoch) = self.state.withLock { ($0.cursor ?? 0, $0.epoch) }
                try await self.send(.hello(cursor: cursor, epoch: epoch), on: outbound)
                for try await message in inbound.messages(maxSize: self.configuration.maxMessageBytes) {
                    let decoded: LiveMessage
                    switch message {
                    case .text(let text):
                        self.count(received: text.utf8.count)
                        decoded = try LiveMessage.decodeJSON(Array(text.utf8))
                    case .binary(let buffer):
                        self.count(received: buffer.readableBytes)
                        decoded = try LiveMessage.decodeBinary(Array(buffer.readableBytesView))
                    }
                    switch decoded {
                    case .welcome(let head, _, _):
                        greeted.withLock { $0 = true }
                        self.connected(outbound, head: head)
                    case .ack(let number, let response):
                        self.resolveAck(number, .success(response))
                    case .changes(let after, let from, let page):
                        self.buffer(BufferedPage(after: after, from: from, page: page))
                    case .error(let code, let message, let batch):
                        let error = SyncError(SyncError.Code(description: code) ?? .transportUnavailable, message)
                        if let batch {
                            self.resolveAck(batch, .failure(error))
                        } else {
                            if error.code == .resyncRequired {
                                // The hello's epoch is stale (the server was restored): the next
                                // hello asks for a snapshot, which the reconciler's resync takes.
                                self.state.withLock { state in
                                    state.cursor = 0
                                    state.epoch = nil
                                }
                            }
                            throw error  // the server closes after a connection-level error
                        }
                    case .hello, .push:
                        throw SyncError(.malformedInput, "the server sent a client message")
                    }
                }
            }
        } catch {
            return (greeted.withLock { $0 }, error)
        }
        if closeFrame?.closeCode == Self.tokenExpiredCloseCode {
            return (greeted.withLock { $0 }, SyncError(.unauthorized, "the server closed the live socket: the token expired"))
        }
        return (greeted.withLock { $0 }, nil)
    }

    /// The close code the server ends a live socket with when its token expired (reason `token_expired`).
    static let tokenExpiredCloseCode = WebSocketErrorCode(codeNumber: 4001)

    private func send(_ message: LiveMessage, on outbound: WebSocketOutboundWriter) async throws {
        switch configuration.wire.format {
        case .json:
            let bytes = try message.encodeJSON()
            count(sent: bytes.count)
            try await outbound.write(.text(String(decoding: bytes, as: UTF8.self)))
        case .binary:
            let bytes = message.encodeBinary()
            count(sent: bytes.count)
            try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
        }
    }

    private func connected(_ outbound: WebSocketOutboundWriter, head: UInt64) {
        state.withLock { state in
            state.outbound = outbound
            state.connections += 1
        }
        heads.publish(head, namespace: namespace)
    }

    private func disconnected() {
        let waiting = state.withLock { state -> [CheckedContinuation<PushResponse, any Error>] in
            state.outbound = nil
            defer { state.acks = [:] }
            return Array(state.acks.values)
        }
        for continuation in waiting {
            continuation.resume(throwing: SyncError(.transportUnavailable, "the live connection closed before the ack"))
        }
    }

    private func buffer(_ page: BufferedPage) {
        state.withLock { state in
            var page = page
            page.arrival = state.nextArrival
            state.nextArrival += 1
            state.pages.append(page)
            if state.pages.count > configuration.bufferedPages { state.pages.removeFirst(state.pages.count - configuration.bufferedPages) }
        }
        heads.publish(page.page.head, namespace: namespace)
    }

    private func resolveAck(_ number: UInt64, _ result: Result<PushResponse, any Error>) {
        // The own push's head makes older pages stale, without waking the sync loop again.
        if case .success(let response) = result { heads.publish(response.head, namespace: namespace, notify: false) }
        let waiting = state.withLock { $0.acks.removeValue(forKey: number) }
        waiting?.resume(with: result)
    }

    private func failAck(_ number: UInt64, _ error: SyncError) {
        resolveAck(number, .failure(error))
    }

    private func count(sent: Int = 0, received: Int = 0) {
        state.withLock {
            $0.traffic.bytesSent += sent
            $0.traffic.bytesReceived += received
        }
    }
}
