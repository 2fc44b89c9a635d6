public import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
public import Syncline
import Synchronization

/// Asks for a bearer token; called once at first use and again after the server refused one.
public typealias TokenProvider = @Sendable () async throws -> String

/// A ``SyncTransport`` over protocol v1's REST endpoints (DESIGN §5) with AsyncHTTPClient:
/// binary codec by default (JSON selectable), bodies deflated above the codec's threshold both
/// ways, timeouts, and token renewal: on a 401 the transport asks its token provider for a fresh
/// token once and retries once; a second 401 is an `.unauthorized` error (never a loop).
///
/// ```swift
/// let transport = RESTTransport(url: "http://127.0.0.1:8080", namespace: ns, token: { "t0k3n" })
/// let client = try SyncClient(namespace: ns, store: store, transport: transport)
/// ```
public final class RESTTransport: SyncTransport {
    public struct Configuration: Sendable {
        /// Codec and compression threshold for requests; answers come in the same format.
        public var wire: WireCodec
        /// Per-request deadline. Default 30 s.
        public var timeout: Duration
        /// The largest answer accepted, as received. Default 64 MiB.
        public var maxResponseBytes: Int
        /// The certificates trusted for an `https://` URL. Default: the system's.
        public var trust: ServerTrust
        /// How long each long poll asks the server to hold it (``RESTTransport/liveHeads()``);
        /// `nil`: no long polling (the device hears of others' changes when it syncs). Default
        /// 25 s (servers cap it, 30 s by default).
        public var longPoll: Duration?

        public init(
            wire: WireCodec = WireCodec(), timeout: Duration = .seconds(30), maxResponseBytes: Int = 64 << 20,
            trust: ServerTrust = .system, longPoll: Duration? = .seconds(25)
        ) {
            self.wire = wire
            self.timeout = timeout
            self.maxResponseBytes = maxResponseBytes
            self.trust = trust
            self.longPoll = longPoll
        }
    }

    public let baseURL: String
    public let namespace: Namespace
    public let configuration: Configuration
    private let tokenProvider: TokenProvider
    private let httpClient: HTTPClient
    /// Per request, for a custom trust root (`nil`: the client's own, with the system's roots).
    private let tlsConfiguration: TLSConfiguration?
    private let state = Mutex(State())

    private struct State {
        var token: String?
        var traffic = TransportTraffic()
    }

    /// The process-wide client the transports share by default. Unlike `HTTPClient.shared` it does
    /// not inflate answers itself: the transport does, within its codec's limits, and counts the
    /// bytes as they crossed the wire. Like `HTTPClient.shared`, it lives as long as the process.
    public static let sharedHTTPClient = HTTPClient(
        eventLoopGroupProvider: .singleton, configuration: RESTTransport.httpClientConfiguration
    )

    /// How the shared client connects, for a device that must know soon that it is offline:
    /// a refused connection fails at once (AsyncHTTPClient would otherwise retry it until the
    /// connect timeout), a connection nobody answers fails after 2 s, and pooled connections
    /// are dropped after 30 s idle, before the server's idle timeout (60 s by default) closes
    /// them under a request about to be sent. Retrying is the outbox's job, with backoff. Up to
    /// 256 connections per server: every transport started in the background holds one for its
    /// long poll (a process running many devices, like the simulator, holds many), and pushes and
    /// pulls must not wait behind them for a connection.
    public static var httpClientConfiguration: HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration(
            timeout: .init(connect: .seconds(2)),
            connectionPool: .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 256), decompression: .disabled
        )
        configuration.connectionPool.retryConnectionEstablishment = false
        return configuration
    }

    /// - Parameters:
    ///   - url: the server's base URL (`http://host:port`, or `https://host:port` with
    ///     ``Configuration/trust`` naming the certificates to trust when not the system's).
    ///   - httpClient: a client that does not decompress answers (``sharedHTTPClient`` by
    ///     default); the transport never shuts it down.
    public init(
        url: String, namespace: Namespace, token: @escaping TokenProvider, configuration: Configuration = Configuration(),
        httpClient: HTTPClient = RESTTransport.sharedHTTPClient
    ) {
        self.baseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.namespace = namespace
        self.tokenProvider = token
        self.configuration = configuration
        self.httpClient = httpClient
        tlsConfiguration = configuration.trust == .system ? nil : configuration.trust.tlsConfiguration
    }

    public var traffic: TransportTraffic? { state.withLock { $0.traffic } }

    public func push(_ batch: ChangeBatch) async throws -> PushResponse {
        let body = try configuration.wire.encode(batch)
        let answer = try await send(method: .POST, path: "/push", body: body)
        return try configuration.wire.decodePushResponse(answer)
    }

    public func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
        try await pull(after: cursor, from: position, limit: limit, collections: nil, epoch: epoch)
    }

    public func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?, leavingOut device: UInt64?) async throws -> PullPage {
        try await pull(after: cursor, from: position, limit: limit, collections: nil, epoch: epoch, leavingOut: device)
    }

    /// A page of the given collections only (all when `nil`), sending `epoch` when there is one,
    /// and without the entries that carry only `device`'s own writes when it is given.
    public func pull(
        after cursor: UInt64, from position: UInt64, limit: Int, collections: Set<CollectionName>?, epoch: Epoch? = nil,
        leavingOut device: UInt64? = nil
    ) async throws -> PullPage {
        var path = "/changes?after=\(cursor)&from=\(position)&limit=\(limit)"
        if let collections { path += "&collections=" + collections.map(\.rawValue).sorted().joined(separator: ",") }
        if let epoch { path += "&epoch=\(epoch)" }
        if let device { path += "&device=" + HLC.nodeHex(device) }
        let answer = try await send(method: .GET, path: path, body: nil)
        return try configuration.wire.decodePullPage(answer)
    }

    /// The server's head after each commit in the namespace, heard through long polls (DESIGN §5,
    /// `wait`): one request at a time, `GET …/changes?after=H&limit=1&wait=S` from the last head
    /// heard, answered at once when the head moved past it and otherwise held by the server until
    /// a commit (on any node) or `S` seconds. The stream yields each new head (the first answer
    /// gives the current one); the client then syncs from its own cursor, so the at most one entry
    /// a poll's page carries is not applied. Failed polls are retried with ``Backoff``; a cursor
    /// the server no longer knows (a restore, a purge) starts again from 0. Runs in the task that
    /// iterates the stream: cancelling it cancels the poll in flight.
    public func liveHeads() async -> AsyncStream<UInt64> {
        guard let wait = configuration.longPoll, wait > .zero else { return AsyncStream { $0.finish() } }
        let heard = LastHead()
        let seconds = max(1, wait.components.seconds)
        return AsyncStream(unfolding: { [self] in
            var backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(30))
            while !Task.isCancelled {
                let last = heard.value
                do {
                    let path = "/changes?after=\(last ?? 0)&from=\(last ?? 0)&limit=1&wait=\(seconds)"
                    let page = try configuration.wire.decodePullPage(
                        try await send(method: .GET, path: path, body: nil, timeout: wait + configuration.timeout)
                    )
                    heard.value = page.head
                    if last.map({ page.head > $0 }) ?? true { return page.head }
                    backoff.reset()
                } catch let error as SyncError where error.code == .resyncRequired || error.code == .invalidCursor {
                    heard.value = nil
                } catch {
                    do { try await backoff.wait() } catch { return nil }
                }
            }
            return nil
        })
    }

    // MARK: HTTP

    private func send(method: HTTPMethod, path: String, body: WireCodec.Body?, timeout: Duration? = nil) async throws -> WireCodec.Body {
        var renewed = false
        while true {
            let token = try await currentToken(renew: renewed)
            do {
                return try await exchange(method: method, path: path, body: body, token: token, timeout: timeout ?? configuration.timeout)
            } catch let error as SyncError where error.code == .unauthorized && !renewed {
                renewed = true  // ask the provider once for a fresh token, then retry once
            }
        }
    }

    /// The cached token, or a fresh one from the provider (`renew`, or none cached yet).
    package func token(renew: Bool = false) async throws -> String { try await currentToken(renew: renew) }

    private func currentToken(renew: Bool) async throws -> String {
        if !renew, let token = state.withLock({ $0.token }) { return token }
        let token: String
        do {
            token = try await tokenProvider()
        } catch {
            throw SyncError(.unauthorized, "the token provider failed: \(error)")
        }
        state.withLock { $0.token = token }
        return token
    }

    private func exchange(
        method: HTTPMethod, path: String, body: WireCodec.Body?, token: String, timeout: Duration
    ) async throws -> WireCodec.Body {
        let format = configuration.wire.format
        var request = HTTPClientRequest(url: "\(baseURL)/v1/ns/\(namespace.rawValue)\(path)")
        request.method = method
        request.tlsConfiguration = tlsConfiguration
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Accept", value: format.contentType)
        request.headers.add(name: "Accept-Encoding", value: "deflate")
        if let body {
            request.headers.add(name: "Content-Type", value: body.format.contentType)
            if body.deflated { request.headers.add(name: "Content-Encoding", value: "deflate") }
            request.body = .bytes(ByteBuffer(bytes: body.bytes))
        }
        var attempt = 1
        let (response, bytes): (HTTPClientResponse, [UInt8])
        while true {
            do {
                let answer = try await httpClient.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
                (response, bytes) = (answer, Array(try await answer.body.collect(upTo: configuration.maxResponseBytes).readableBytesView))
                break
            } catch let error as SyncError {
                throw error
            } catch where Self.isStaleConnection(error) && attempt == 1 && !Task.isCancelled {
                // A pooled keep-alive connection the server closed (its idle timeout) just as this
                // request was sent on it: sent again once, at once, on a new connection. Safe for
                // every request here: pulls are reads and pushes are idempotent by event id.
                attempt += 1
            } catch {
                throw SyncError(.transportUnavailable, "\(method) \(path) failed: \(error)")
            }
        }
        let sentHead = Self.headBytes(request, bodyBytes: body?.bytes.count)
        let receivedHead = Self.headBytes(response)
        state.withLock {
            $0.traffic.bytesSent += body?.bytes.count ?? 0
            $0.traffic.bytesReceived += bytes.count
            $0.traffic.headBytesSent += sentHead
            $0.traffic.headBytesReceived += receivedHead
        }
        guard response.status == .ok else { throw Self.error(status: response.status.code, bytes) }
        let contentType = response.headers.first(name: "Content-Type") ?? format.contentType
        guard let answerFormat = WireCodec.Format(contentType: contentType) else {
            throw SyncError(.malformedInput, "the server answered with Content-Type \(contentType)")
        }
        let deflated = response.headers.first(name: "Content-Encoding")?.lowercased() == "deflate"
        return WireCodec.Body(bytes: bytes, format: answerFormat, deflated: deflated)
    }

    /// The bytes of a request's HTTP/1.1 head as sent: the request line, the headers the transport
    /// set, and those AsyncHTTPClient adds (`Host`, `Content-Length`).
    static func headBytes(_ request: HTTPClientRequest, bodyBytes: Int?) -> Int {
        var count = request.method.rawValue.utf8.count + 1 + " HTTP/1.1\r\n".utf8.count
        if let url = URL(string: request.url) {
            count += url.path.utf8.count + (url.query.map { $0.utf8.count + 1 } ?? 0)
            let host = url.host ?? ""
            count += "Host: \r\n".utf8.count + host.utf8.count + (url.port.map { String($0).utf8.count + 1 } ?? 0)
        }
        for header in request.headers { count += header.name.utf8.count + header.value.utf8.count + 4 }
        if let bodyBytes { count += "Content-Length: \r\n".utf8.count + String(bodyBytes).utf8.count }
        return count + 2
    }

    /// The bytes of a response's HTTP/1.1 head as received: the status line and the headers.
    static func headBytes(_ response: HTTPClientResponse) -> Int {
        var count = "HTTP/1.1 \r\n".utf8.count + String(response.status.code).utf8.count + 1 + response.status.reasonPhrase.utf8.count
        for header in response.headers { count += header.name.utf8.count + header.value.utf8.count + 4 }
        return count + 2
    }

    /// Whether a request failed because its pooled connection had just been closed by the server.
    static func isStaleConnection(_ error: any Error) -> Bool {
        (error as? HTTPClientError) == .remoteConnectionClosed || (error as? ChannelError) == .ioOnClosedChannel
    }

    /// The protocol error in an answer (`{"error": {"code", "message", "limit"}}`), or one made
    /// from the status when the body is not one.
    static func error(status: UInt, _ bytes: [UInt8]) -> SyncError {
        if case .object(let root)? = try? JSONCodec.decodeValue(bytes),  // a body that is not JSON falls back to the status
            case .object(let error)? = root["error"], case .string(let text)? = error["code"],
            let code = SyncError.Code(description: text)
        {
            let message: String
            if case .string(let text)? = error["message"] { message = text } else { message = "HTTP \(status)" }
            var limit: Int?
            if case .int(let value)? = error["limit"] { limit = Int(clamping: value) }
            var serverTime: UInt64?
            if case .int(let value)? = error["serverTime"], value >= 0 { serverTime = UInt64(value) }
            // Server failures are worth retrying: they are not about the content.
            if status >= 500 { return SyncError(.transportUnavailable, "HTTP \(status): \(code): \(message)") }
            return SyncError(code, message, limit: limit, serverTime: serverTime)
        }
        switch status {
        case 401: return SyncError(.unauthorized, "HTTP 401")
        case 403: return SyncError(.forbidden, "HTTP 403")
        case 410: return SyncError(.resyncRequired, "HTTP 410")
        case 413: return SyncError(.batchTooLarge, "HTTP 413")
        case 429: return SyncError(.rateLimited, "HTTP 429")
        default: return SyncError(.transportUnavailable, "HTTP \(status)")
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// The last head a long poll heard (`nil`: none yet); one poll runs at a time, the lock only
/// makes the handoff between polls safe to share.
private final class LastHead: Sendable {
    private let head = Mutex<UInt64?>(nil)

    var value: UInt64? {
        get { head.withLock { $0 } }
        set { head.withLock { $0 = newValue } }
    }
}
