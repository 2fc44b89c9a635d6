import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import CoreMetrics
import Prometheus
import ServiceLifecycle
import Syncline

/// Protocol v1's routes (DESIGN §5): authentication, limits, codecs and compression around the
/// backend. Every refusal is `{"error": {"code", "message"[, "limit"]}}` with a fitting status.
struct ProtocolHandler: Sendable {
    let backend: any ServerBackend
    let configuration: SyncServerConfiguration
    let metrics: ServerMetrics
    let limiter: RateLimiter?
    let logger: Logger

    init(backend: any ServerBackend, configuration: SyncServerConfiguration, metrics: ServerMetrics, logger: Logger) {
        self.backend = backend
        self.configuration = configuration
        self.metrics = metrics
        self.limiter = configuration.rateLimit.map(RateLimiter.init(configuration:))
        self.logger = logger
    }

    /// The HTTP routes (DESIGN §5). `GET …/live` is here too: the HTTP router answers every
    /// request to it that was not upgraded (a refused token, a plain GET, an incomplete handshake).
    var routes: RouteTable<SyncRequestContext> {
        var table = RouteTable<SyncRequestContext>()
        table.add(.get, "/healthz") { _, _ in
            guard let reason = await backend.outage() else {
                return Response(
                    status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}"))
                )
            }
            // The node is up but cannot serve: a load balancer should send requests elsewhere.
            return Response(
                status: .serviceUnavailable, headers: [.contentType: "application/json", .retryAfter: "1"],
                body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"unavailable\",\"reason\":\(Self.quoted(reason))}"))
            )
        }
        table.add(.get, "/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer()))
            )
        }
        table.add(.post, "/v1/ns/:ns/push") { request, context in
            await respond(request, context) { namespace in try await push(request, namespace: namespace) }
        }
        table.add(.get, "/v1/ns/:ns/changes") { request, context in
            await respond(request, context) { namespace in try await changes(request, namespace: namespace) }
        }
        table.add(.get, "/v1/ns/:ns/live") { request, context in
            let upgrade = request.headers[.upgrade]?.lowercased() == "websocket"
            var response = await respond(request, context) { _ in
                guard upgrade else { throw SyncError(.upgradeRequired, "this route is a WebSocket: send Upgrade: websocket") }
                throw SyncError(.malformedInput, Self.handshakeProblem(request.headers) ?? "the WebSocket upgrade failed")
            }
            // A refused upgrade ends its connection (LiveUpgradeChannel closes it after this answer).
            if upgrade { response.headers[.connection] = "close" }
            return response
        }
        return table
    }

    func addRoutes(to router: Router<SyncRequestContext>) {
        routes.register(on: router, refuse: errorResponse)
    }

    /// The live WebSocket route, on the router that decides upgrades: a request is upgraded only
    /// when it is authorized; any other is left to the HTTP router, which answers it like REST.
    func addLiveRoute(to router: Router<SyncRequestContext>) {
        router.get("/v1/ns/:ns/live") { request, context -> HTTPResponse.Status in
            let namespace: Namespace
            let grant: AccessGrant
            do {
                (namespace, grant) = try authorization(request, context)
            } catch {
                return .forbidden  // not upgraded: the HTTP router answers with the reason
            }
            guard Self.handshakeProblem(request.headers) == nil else { return .badRequest }
            // The session ends when the token it was opened with expires (a JWT's `exp`).
            let expiresAt = grant.expiresAt
            context.liveUpgrade.accept { inbound, outbound, socket in
                let session = LiveSession(
                    namespace: namespace, backend: backend, configuration: configuration, metrics: metrics, logger: socket.logger,
                    expiresAt: expiresAt
                )
                await session.run(inbound: inbound, outbound: outbound)
            }
            return .ok
        }
    }

    /// What makes a WebSocket handshake invalid (RFC 6455 §4.2.1), or nil when it is complete.
    static func handshakeProblem(_ headers: HTTPFields) -> String? {
        let base64 = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        let connection = headers[values: .connection].flatMap { $0.split(separator: ",") }
        guard connection.contains(where: { $0.lowercased().split(whereSeparator: { $0 == " " || $0 == "\t" }) == ["upgrade"] }) else {
            return "the WebSocket handshake needs Connection: Upgrade"
        }
        guard headers[values: .secWebSocketVersion] == ["13"] else { return "the WebSocket handshake needs Sec-WebSocket-Version: 13" }
        let keys = headers[values: .secWebSocketKey]
        guard keys.count == 1, let key = keys.first, key.count == 24, key.hasSuffix("=="), key.prefix(22).allSatisfy(base64.contains) else {
            return "the WebSocket handshake needs one Sec-WebSocket-Key: 16 bytes in base64"
        }
        return nil
    }

    // MARK: Requests

    /// Authenticates, rate-limits and runs `body`, turning every error into a protocol error answer.
    private func respond(
        _ request: Request, _ context: SyncRequestContext, _ body: (Namespace) async throws -> Response
    ) async -> Response {
        do {
            let namespace = try authorize(request, context)
            return try await body(namespace)
        } catch let error as SyncError {
            metrics.rejectedRequests.increment()
            if error.code == .storage { logger.error("request failed", metadata: ["syncline.error": "\(error)"]) }
            return errorResponse(error)
        } catch {
            logger.error("request failed", metadata: ["syncline.error": "\(error)"])
            return errorResponse(SyncError(.storage, "the server failed: \(error)"))
        }
    }

    private func authorize(_ request: Request, _ context: SyncRequestContext) throws(SyncError) -> Namespace {
        try authorization(request, context).namespace
    }

    /// The request's namespace and what its token grants, rate-limited.
    private func authorization(
        _ request: Request, _ context: SyncRequestContext
    ) throws(SyncError) -> (namespace: Namespace, grant: AccessGrant) {
        let name = context.parameters.get("ns") ?? ""
        let namespace = try Namespace(name)
        let grant = try configuration.authenticator.authenticate(
            request.headers[.authorization], namespace: namespace, now: configuration.clock()
        )
        if let limiter, let wait = limiter.take(grant.rateKey) {
            throw SyncError(.rateLimited, "too many requests for this token; retry in \(wait) s", limit: wait)
        }
        return (namespace, grant)
    }

    private func push(_ request: Request, namespace: Namespace) async throws -> Response {
        metrics.pushRequests.increment()
        let body = try await readBody(request)
        let batch = try configuration.wire.decodeChangeBatch(body)
        let response = try await backend.accept(batch, namespace: namespace, configuration: configuration, metrics: metrics)
        return answer(try answerCodec(request, default: body.format).encode(response))
    }

    private func changes(_ request: Request, namespace: Namespace) async throws -> Response {
        metrics.pullRequests.increment()
        let query = request.uri.queryParameters
        let after = try Self.unsigned(Self.single(query, "after"), name: "after") ?? 0
        let from = try Self.unsigned(Self.single(query, "from"), name: "from") ?? after
        let limit = try Self.unsigned(Self.single(query, "limit"), name: "limit") ?? 500
        guard limit >= 1 else { throw SyncError(.invalidParameter, "limit must be at least 1, not 0") }
        var filter: Set<CollectionName>?
        if let list = try Self.single(query, "collections"), !list.isEmpty {
            // Every name between commas must be valid: `a,,b` and a trailing comma are refused.
            let names = list.split(separator: ",", omittingEmptySubsequences: false)
            filter = Set(try names.map { name throws(SyncError) in try CollectionName(String(name)) })
        }
        let collections = filter
        // The epoch the device's cursor belongs to (absent: served as it is, DESIGN §5).
        let epoch = try Self.single(query, "epoch").map { text throws(SyncError) in try Epoch(parsing: text) }
        let wait = try Self.unsigned(Self.single(query, "wait"), name: "wait") ?? 0
        // The asking device (DESIGN §5, `device`): entries carrying only its own writes are left
        // out, except in a snapshot (after 0), which carries everything.
        let device = try Self.single(query, "device").map { text throws(SyncError) in
            guard let node = HLC.node(parsing: text) else {
                throw SyncError(.invalidParameter, "device must be a node id of 1 to 16 hex digits, not \(text.prefix(40))")
            }
            return node
        }
        let read = { @Sendable [backend, configuration] in
            var page = try await backend.pull(
                namespace: namespace, after: after, from: from, limit: Int(clamping: limit), collections: collections,
                epoch: epoch, configuration: configuration.engine
            )
            if let device, after > 0 { page.leaveOut(writesOf: device) }
            return page
        }
        var page = wait == 0
            ? try await read()
            : try await longPoll(namespace, read, for: min(.seconds(Int64(clamping: wait)), configuration.maxLongPoll))
        page.serverTime = configuration.clock()
        return answer(try answerCodec(request, default: .json).encode(page))
    }

    /// A pull held until it has something to answer (DESIGN §5, `wait`): the page is read at once
    /// and answered when it has entries; otherwise the request waits for the next commit in the
    /// namespace (any node: the backend's head stream) and reads again, until `limit` has passed,
    /// when the (empty) page is answered. Subscribing before the first read means a commit
    /// between the read and the wait is not missed.
    private func longPoll(_ namespace: Namespace, _ read: @escaping @Sendable () async throws -> PullPage, for limit: Duration) async throws -> PullPage {
        let heads = await backend.subscribe(namespace: namespace)
        let first = try await read()
        guard first.changes.isEmpty && !first.hasMore else { return first }
        let deadline = ContinuousClock.now + limit
        // A server shutting down answers what it has at once rather than hold the poll.
        return try await cancelWhenGracefulShutdown { try await Self.wait(for: first, heads: heads, read, until: deadline) }
    }

    private static func wait(
        for first: PullPage, heads: AsyncStream<UInt64>, _ read: @escaping @Sendable () async throws -> PullPage,
        until deadline: ContinuousClock.Instant
    ) async throws -> PullPage {
        try await withThrowingTaskGroup(of: PullPage?.self) { group in
            group.addTask {
                try? await Task.sleep(until: deadline)  // cancelled when a commit brings something first
                return nil
            }
            group.addTask {
                var page = first
                for await head in heads where head > page.head {
                    page = try await read()
                    // Empty still: the commit was in collections the request leaves out.
                    if !page.changes.isEmpty || page.hasMore { return page }
                }
                return page  // the backend is shutting down: answer what there is
            }
            let answered = try await group.next() ?? nil
            group.cancelAll()
            return answered ?? first
        }
    }

    // MARK: Bodies

    private func readBody(_ request: Request) async throws -> WireCodec.Body {
        let contentType = request.headers[.contentType] ?? "application/json"
        guard let format = WireCodec.Format(contentType: contentType) else {
            throw SyncError(
                .unsupportedMediaType, "Content-Type \(contentType) is neither application/json nor application/vnd.syncline+binary"
            )
        }
        let deflated: Bool
        switch request.headers[.contentEncoding]?.lowercased() {
        case nil, "identity": deflated = false
        case "deflate": deflated = true
        case let other?: throw SyncError(.unsupportedMediaType, "Content-Encoding \(other) is not supported; use deflate")
        }
        let limit = configuration.maxRequestBytes
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw SyncError(.decompressionLimit, "a body of \(length) bytes is over the limit of \(limit) bytes", limit: limit)
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch {
            throw SyncError(.decompressionLimit, "the body is over the limit of \(limit) bytes", limit: limit)
        }
        metrics.bytesIn.increment(by: Int64(buffer.readableBytes))
        return WireCodec.Body(bytes: Array(buffer.readableBytesView), format: format, deflated: deflated)
    }

    /// The codec for an answer: the format `Accept` asks for (else `fallback`), deflated above
    /// the threshold only when the client accepts deflate, so nothing is compressed in vain.
    private func answerCodec(_ request: Request, default fallback: WireCodec.Format) -> WireCodec {
        var wire = configuration.wire
        wire.format = Self.answerFormat(request, default: fallback)
        if !(request.headers[.acceptEncoding]?.lowercased().contains("deflate") ?? false) { wire.compressionThreshold = .max }
        return wire
    }

    private func answer(_ body: WireCodec.Body) -> Response {
        var headers: HTTPFields = [.contentType: body.format.contentType]
        if body.deflated { headers[.contentEncoding] = "deflate" }
        metrics.bytesOut.increment(by: Int64(body.bytes.count))
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body.bytes)))
    }

    /// The format asked for by `Accept`, else `fallback`.
    static func answerFormat(_ request: Request, default fallback: WireCodec.Format) -> WireCodec.Format {
        guard let accept = request.headers[.accept]?.lowercased() else { return fallback }
        if accept.contains("application/vnd.syncline+binary") { return .binary }
        if accept.contains("application/json") { return .json }
        return fallback
    }

    /// A query parameter given at most once (`after=1&after=2` is ambiguous: refused).
    static func single(_ query: Parameters, _ name: String) throws(SyncError) -> String? {
        let values = query.getAll(name)
        guard values.count <= 1 else { throw SyncError(.invalidParameter, "\(name) is given \(values.count) times; give it once") }
        return values.first
    }

    static func unsigned(_ text: String?, name: String) throws(SyncError) -> UInt64? {
        guard let text else { return nil }
        guard let value = UInt64(text) else {
            throw SyncError(.invalidParameter, "\(name) must be a non-negative integer, not \(text.prefix(40))")
        }
        return value
    }

    // MARK: Errors

    func errorResponse(_ error: SyncError) -> Response {
        var json = "{\"error\":{\"code\":\(Self.quoted(error.code.description)),\"message\":\(Self.quoted(error.message))"
        if let limit = error.limit { json += ",\"limit\":\(limit)" }
        if let reason = error.reason { json += ",\"reason\":\(Self.quoted(reason))" }
        if error.code == .clockSkew { json += ",\"serverTime\":\(configuration.clock())" }
        json += "}}"
        var headers: HTTPFields = [.contentType: "application/json"]
        if error.code == .rateLimited, let wait = error.limit { headers[.retryAfter] = String(wait) }
        if error.code == .transportUnavailable { headers[.retryAfter] = String(error.limit ?? 1) }
        if error.code == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        if error.code == .upgradeRequired { headers[.upgrade] = "websocket" }
        return Response(status: Self.status(of: error), headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
    }

    static func status(of error: SyncError) -> HTTPResponse.Status {
        switch error.code {
        case .unauthorized: return .unauthorized
        case .forbidden: return .forbidden
        case .batchTooLarge, .decompressionLimit: return .contentTooLarge
        case .resyncRequired: return .gone
        // The request is well formed but does not fit the server's state: a cursor beyond the
        // head, an HLC ahead of the server's clock. The device re-reads or re-stamps.
        case .invalidCursor, .clockSkew: return .conflict
        case .rateLimited: return .tooManyRequests
        case .unsupportedMediaType: return .unsupportedMediaType
        case .upgradeRequired: return .upgradeRequired
        case .methodNotAllowed: return .methodNotAllowed
        case .notFound: return .notFound
        case .storage, .storeClosed, .compressionFailed: return .internalServerError
        // The backend's database is unreachable (PostgreSQL down): retry after Retry-After.
        case .transportUnavailable: return .serviceUnavailable
        default: return .badRequest
        }
    }

    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}

extension ServerEngine.PushOutcome {
    var summary: ServerEngineOutcomeSummary {
        var summary = ServerEngineOutcomeSummary()
        for result in results {
            switch result {
            case .applied: summary.applied += 1
            case .duplicate: summary.duplicates += 1
            case .rejected: summary.conflicts += 1
            }
        }
        summary.conflicts += applied.filter { !$0.lost.isEmpty }.count
        return summary
    }
}
