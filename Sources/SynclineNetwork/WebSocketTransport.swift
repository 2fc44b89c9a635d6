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
/// All the connection's state is a ``WebSocketStateMachine`` (a value whose transitions return
/// actions); this class only performs them: it answers pushes and pulls at once, and hands what
/// takes time (connecting, writing frames, the ack and reconnect timers) to one `run()` loop,
/// whose task group holds them all.
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
        /// Live pages kept for a `livePages()` reader that is behind; older ones are dropped (the
        /// gap makes the reconciler pull over REST). Default 16.
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

    private typealias Machine = WebSocketStateMachine<
        WebSocketOutboundWriter, CheckedContinuation<PushResponse, any Error>, SystemRandomNumberGenerator
    >

    public let namespace: Namespace
    public let configuration: Configuration
    /// The REST transport used while the socket is down (and for the token).
    public let rest: RESTTransport
    private let liveURL: String
    private let logger: Logger
    /// All the connection's state; its transitions return what to do, which this class does.
    private let machine: Mutex<Machine>
    /// The actions that take time (connecting, writing a push's frame, the reconnect timer),
    /// performed by `run()` as child tasks of one task group. Not bounded by a policy: each stands
    /// for a push that waits for it, or is the one connection or reconnect of the moment.
    private let commands: AsyncStream<Machine.Action>
    private let commandQueue: AsyncStream<Machine.Action>.Continuation
    /// The pushes waiting for an ack, with when they time out, in send order (as many as pushes wait).
    private let ackDeadlines: AsyncStream<(UInt64, ContinuousClock.Instant)>
    private let ackDeadlineQueue: AsyncStream<(UInt64, ContinuousClock.Instant)>.Continuation
    /// The newest head heard (a welcome, a page, or this device's own acknowledged push), given to
    /// `liveHeads()` subscribers.
    private let heads = HeadBroadcaster()
    /// The `livePages()` reader, when there is one, with the number of its call.
    private let liveReader = Mutex<(call: Int, continuation: AsyncStream<LivePage>.Continuation)?>(nil)
    private let liveCalls = Atomic<Int>(0)

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
        machine = Mutex(
            Machine(
                ackTimeout: configuration.ackTimeout, initialBackoff: configuration.initialBackoff,
                maxBackoff: configuration.maxBackoff, random: SystemRandomNumberGenerator()
            )
        )
        (commands, commandQueue) = AsyncStream.makeStream()
        (ackDeadlines, ackDeadlineQueue) = AsyncStream.makeStream()
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
        commandQueue.finish()
        ackDeadlineQueue.finish()
    }

    /// Ends the connection; later calls go over REST.
    public func close() {
        perform(machine.withLock { $0.close() })
    }

    /// Whether the socket is open now.
    public var isConnected: Bool { machine.withLock { $0.outbound != nil } }

    /// How many times the socket was opened, and how many pulls were answered from it (for tests
    /// and diagnostics).
    public var statistics: (connections: Int, pagesFromSocket: Int) {
        machine.withLock { ($0.connections, $0.pagesDelivered) }
    }

    public var traffic: TransportTraffic? {
        let own = machine.withLock { $0.traffic }
        let viaREST = rest.traffic ?? TransportTraffic()
        return TransportTraffic(bytesSent: own.bytesSent + viaREST.bytesSent, bytesReceived: own.bytesReceived + viaREST.bytesReceived)
    }

    // MARK: SyncTransport

    public func push(_ batch: ChangeBatch) async throws -> PushResponse {
        startIfNeeded()
        guard case .socket(let number) = machine.withLock({ $0.pushRequested() }) else {
            return try await rest.push(batch)
        }
        return try await withCheckedThrowingContinuation { continuation in
            perform(machine.withLock { $0.pushWaiting(number, batch, waiter: continuation) })
        }
    }

    public func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
        try await pull(after: cursor, from: position, limit: limit, epoch: epoch, leavingOut: nil)
    }

    /// A page asked of the server over REST (pages the socket brings go to `livePages()`),
    /// without the entries that carry only `device`'s own writes when it is given.
    public func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?, leavingOut device: UInt64?) async throws -> PullPage {
        perform(machine.withLock { $0.pullRequested(after: cursor, from: position, epoch: epoch) })
        startIfNeeded()
        return try await rest.pull(after: cursor, from: position, limit: limit, collections: nil, epoch: epoch, leavingOut: device)
    }

    /// The pages the server pushes on the socket, as they come (one reader: a new call ends the
    /// previous stream). The newest ``Configuration/bufferedPages`` are kept for a reader that is
    /// behind.
    public func livePages() async -> AsyncStream<LivePage> {
        let (stream, continuation) = AsyncStream<LivePage>.makeStream(bufferingPolicy: .bufferingNewest(max(1, configuration.bufferedPages)))
        let call = liveCalls.add(1, ordering: .relaxed).newValue
        let previous = liveReader.withLock { reader in
            defer { reader = (call, continuation) }
            return reader?.continuation
        }
        previous?.finish()
        continuation.onTermination = { [weak self] _ in
            self?.liveReader.withLock { reader in
                if reader?.call == call { reader = nil }
            }
        }
        startIfNeeded()
        return stream
    }

    /// Where the next hello resumes, as the reconciler says (see ``SyncTransport/resume(from:epoch:)``).
    public func resume(from cursor: UInt64, epoch: Epoch?) async {
        perform(machine.withLock { $0.resumeRequested(from: cursor, epoch: epoch) })
    }

    public func liveHeads() async -> AsyncStream<UInt64> {
        startIfNeeded()
        return heads.subscribe(namespace: namespace)
    }

    // MARK: Driving the state machine

    private func startIfNeeded() {
        perform(machine.withLock { $0.connectRequested() })
    }

    /// Performs actions that take no time here, and hands the others to `run()`.
    private func perform(_ actions: [Machine.Action]) {
        for action in actions {
            switch action {
            case .startRunLoop:
                // The one task of the transport: SyncTransport has no lifecycle of its own, so the
                // first request starts it and close() (or deinit) ends it, with everything in it.
                let commands = self.commands
                Task { await self.run(commands) }
            case .resume(let waiter, let result):
                switch result {
                case .success(let response): waiter.resume(returning: response)
                case .failure(let error): waiter.resume(throwing: error)
                }
            case .publishHead(let head, let notify):
                heads.publish(head, namespace: namespace, notify: notify)
            case .deliver(let live):
                // No reader (the pipeline is not running, or a wrapper does not pass pages on):
                // the head wakes a pull instead.
                let delivered = liveReader.withLock { reader -> Bool in
                    guard let current = reader else { return false }
                    if case .terminated = current.continuation.yield(live) {
                        reader = nil
                        return false
                    }
                    return true
                }
                if !delivered { heads.publish(live.page.head, namespace: namespace, notify: true) }
            case .finish:
                liveReader.withLock { $0?.continuation.finish() }
                heads.finish()
                commandQueue.finish()
                ackDeadlineQueue.finish()
            case .scheduleAckTimeout(let batch, let delay):
                ackDeadlineQueue.yield((batch, ContinuousClock.now + delay))
            case .connect, .send, .scheduleReconnect:
                commandQueue.yield(action)
            case .endConnection(let error):
                // Only returned while a connection reads its frames, which handles it itself.
                logger.debug("live connection ended", metadata: ["syncline.error": "\(error)"])
            }
        }
    }

    /// The connection's lifecycle: connects, reconnects with backoff, writes pushes and times their
    /// acks, each a child task of one group, until ``close()`` finishes the command stream, which
    /// cancels them all.
    private func run(_ commands: AsyncStream<Machine.Action>) async {
        await withDiscardingTaskGroup { group in
            // Every ack timeout has the same length and is scheduled in send order, so one timer
            // takes them in turn (a push answered meanwhile makes its timeout a no-op).
            group.addTask {
                for await (batch, deadline) in self.ackDeadlines {
                    do {
                        try await Task.sleep(until: deadline, clock: .continuous)
                    } catch {
                        return  // closed
                    }
                    self.perform(self.machine.withLock { $0.ackTimedOut(batch) })
                }
            }
            for await command in commands {
                switch command {
                case .connect(let renewToken):
                    group.addTask { await self.connection(renewToken: renewToken) }
                case .send(let message, let outbound, let batch):
                    group.addTask {
                        do {
                            try await self.send(message, on: outbound)
                        } catch {
                            guard let batch else { return }
                            self.perform(self.machine.withLock { $0.sendFailed(batch, Self.syncError(error)) })
                        }
                    }
                case .scheduleReconnect(let delay):
                    group.addTask {
                        do {
                            try await Task.sleep(for: delay)
                        } catch {
                            return  // closed
                        }
                        self.perform(self.machine.withLock { $0.backoffElapsed() })
                    }
                case .startRunLoop, .resume, .publishHead, .deliver, .scheduleAckTimeout, .endConnection, .finish:
                    perform([command])
                }
            }
            group.cancelAll()
        }
    }

    /// One connection: a token, the socket, the hello, then frames until it ends.
    private func connection(renewToken: Bool) async {
        let end: Machine.ConnectionEnd
        do {
            let token = try await rest.token(renew: renewToken)
            end = try await session(token: token)
        } catch let error as WebSocketClientError where error == .webSocketUpgradeFailed {
            end = .refused
        } catch {
            end = .failed(Self.syncError(error))
        }
        if case .failed(let error) = end {
            logger.debug("live connection failed", metadata: ["syncline.error": "\(error)"])
        }
        perform(machine.withLock { $0.connectionEnded(end) })
    }

    private func session(token: String) async throws -> Machine.ConnectionEnd {
        var clientConfiguration = WebSocketClientConfiguration(maxFrameSize: configuration.maxMessageBytes)
        clientConfiguration.additionalHeaders[.authorization] = "Bearer \(token)"
        let closeFrame = try await WebSocketClient.connect(
            url: liveURL, configuration: clientConfiguration,
            tlsConfiguration: configuration.trust == .system ? nil : configuration.trust.tlsConfiguration, logger: logger
        ) { inbound, outbound, _ in
            try await self.performInConnection(self.machine.withLock { $0.connectionOpened(outbound) })
            for try await message in inbound.messages(maxSize: self.configuration.maxMessageBytes) {
                let decoded: LiveMessage
                let bytes: Int
                switch message {
                case .text(let text):
                    bytes = text.utf8.count
                    decoded = try LiveMessage.decodeJSON(Array(text.utf8))
                case .binary(let buffer):
                    bytes = buffer.readableBytes
                    decoded = try LiveMessage.decodeBinary(Array(buffer.readableBytesView))
                }
                try await self.performInConnection(self.machine.withLock { $0.messageReceived(decoded, bytes: bytes) })
            }
        }
        return .closed(code: closeFrame?.closeCode)
    }

    /// Actions returned while a connection reads: its own frames (the hello) are written here, and
    /// `endConnection` ends it.
    private func performInConnection(_ actions: [Machine.Action]) async throws {
        for action in actions {
            switch action {
            case .send(let message, let outbound, .none):
                try await send(message, on: outbound)
            case .endConnection(let error):
                throw error
            default:
                perform([action])
            }
        }
    }

    /// The close code the server ends a live socket with when its token expired (reason `token_expired`).
    static let tokenExpiredCloseCode = Machine.tokenExpiredCloseCode

    private static func syncError(_ error: any Error) -> SyncError {
        error as? SyncError ?? SyncError(.transportUnavailable, "\(error)")
    }

    private func send(_ message: LiveMessage, on outbound: WebSocketOutboundWriter) async throws {
        switch configuration.wire.format {
        case .json:
            let bytes = try message.encodeJSON()
            machine.withLock { $0.sent(bytes: bytes.count) }
            try await outbound.write(.text(String(decoding: bytes, as: UTF8.self)))
        case .binary:
            let bytes = message.encodeBinary()
            machine.withLock { $0.sent(bytes: bytes.count) }
            try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
        }
    }
}
