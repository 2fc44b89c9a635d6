import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
import Synchronization
// `WebSocketHandler.handle` runs a server WebSocket over an upgraded channel. It is what
// Hummingbird's own upgrade channel calls, published to the Hummingbird packages as SPI; we
// need it because that channel cannot answer a refused upgrade with a response of our own.
@_spi(WSInternal) import WSCore

/// The server's HTTP/1 channel: Hummingbird's `HTTP1WebSocketUpgradeChannel` (same pipeline,
/// same WebSocket handling), except for a refused upgrade.
///
/// Hummingbird answers every refused upgrade with a bare `400` and an empty body. Here the
/// WebSocket router only decides whether to upgrade; a request it does not upgrade is answered
/// by the application's HTTP router like any REST request (DESIGN §5: 401 with
/// `WWW-Authenticate: Bearer` and the JSON error for a missing or unknown token, 403 for another
/// namespace), and the connection is closed after that answer, as Hummingbird does.
struct LiveUpgradeChannel: ServerChildChannel, HTTPChannelHandler {
    typealias WebSocketChannelHandler = @Sendable (NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, Logger) async -> Void

    enum UpgradeResult: Sendable {
        case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, WebSocketChannelHandler, Logger)
        /// Plain HTTP: the first request did not ask for an upgrade.
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        /// The first request asked for an upgrade and was not upgraded (NIO's upgrade handler
        /// consumed its head, which is kept here).
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, HTTPRequestHead)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    /// The application's responder (its router and middleware).
    private(set) var responder: HTTPChannelHandler.Responder
    let configuration: HTTP1WebSocketUpgradeChannel.Configuration
    /// The upgrade's response headers and WebSocket handler, or nil when the request is not upgraded.
    private let shouldUpgrade: @Sendable (HTTPRequest, any Channel, Logger) -> EventLoopFuture<(HTTPFields, WebSocketChannelHandler)?>

    /// - Parameters:
    ///   - responder: the application's HTTP responder; it answers every request that is not upgraded.
    ///   - webSocketResponder: decides whether a request is upgraded: a route that accepts it sets
    ///     the context's ``SyncRequestContext/LiveUpgrade`` handler.
    init(
        responder: @escaping HTTPChannelHandler.Responder, webSocketResponder: some HTTPResponder<SyncRequestContext>,
        configuration: HTTP1WebSocketUpgradeChannel.Configuration
    ) {
        self.responder = responder
        self.configuration = configuration
        self.shouldUpgrade = { head, channel, logger in
            let promise = channel.eventLoop.makePromise(of: (HTTPFields, WebSocketChannelHandler)?.self)
            promise.completeWithTask {
                let request = Request(head: head, body: .init(buffer: .init()))
                let context = SyncRequestContext(source: .init(channel: channel, logger: logger))
                let response: Response
                do {
                    response = try await webSocketResponder.respond(to: request, context: context)
                } catch {
                    return nil  // the HTTP router answers it
                }
                guard response.status == .ok, let handler = context.liveUpgrade.accepted else { return nil }
                let (headers, extensions) = try Self.negotiateExtensions(
                    configuration.ws.extensions, requestHeaders: head.headerFields, responseHeaders: response.headers
                )
                let webSocketConfiguration = WebSocketHandler.Configuration(
                    extensions: extensions, autoPing: configuration.ws.autoPing, closeTimeout: configuration.ws.closeTimeout,
                    validateUTF8: configuration.ws.validateUTF8, maxFrameSize: configuration.ws.maxFrameSize
                )
                return (headers, { asyncChannel, logger in
                    do {
                        _ = try await WebSocketHandler.handle(
                            type: .server, configuration: webSocketConfiguration, asyncChannel: asyncChannel,
                            context: SyncRequestContext.SocketContext(logger: logger), handler: handler
                        )
                    } catch {
                        logger.debug("live connection failed", metadata: ["syncline.error": "\(error)"])
                    }
                })
            }
            return promise.futureResult
        }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let logger = logger.with(requestID: RequestID())
            let attempt = UpgradeAttempt()
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: configuration.ws.maxFrameSize,
                shouldUpgrade: { channel, head in
                    let request: HTTPRequest
                    do {
                        request = try HTTPRequest(head, secure: false, splitCookie: false)
                    } catch {
                        return channel.eventLoop.makeFailedFuture(error)
                    }
                    return shouldUpgrade(request, channel, logger).map { result in
                        guard let (headers, handler) = result else { return nil }
                        attempt.handler.withLock { $0 = handler }
                        return HTTPHeaders(headers)
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        // NIO runs this only after `shouldUpgrade` accepted, which set the handler.
                        guard let handler = attempt.handler.withLock({ $0 }) else { throw ChannelError.inappropriateOperationForState }
                        let asyncChannel = try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true)
                        )
                        return UpgradeResult.websocket(asyncChannel, handler, logger)
                    }
                }
            )
            let http1 = configuration.http1
            let upgradeConfiguration = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandlers(http1.additionalChannelHandlers())
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionStateHandler(idleTimeout: http1.idleTimeout.map { .init($0) }, logger: logger)
                        )
                        let http = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true)
                        )
                        if let head = attempt.head.withLock({ $0 }) { return UpgradeResult.refused(http, head) }
                        return UpgradeResult.http(http)
                    }
                }
            )
            var pipeline = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(upgradeConfiguration: upgradeConfiguration)
            pipeline.enablePipelining = false  // NIOAsyncChannel serializes requests
            pipeline.enableErrorHandling = false  // Hummingbird's handler answers parse errors
            pipeline.enableResponseHeaderValidation = false  // HTTPTypes validates headers
            pipeline.decoderConfiguration.maxHeaderFieldSize = http1.httpDecoder.maxHeaderFieldSize
            pipeline.decoderConfiguration.maxHeaderListSize = http1.httpDecoder.maxHeaderListSize
            pipeline.decoderConfiguration.maxHeaderFieldCount = http1.httpDecoder.maxHeaderFieldCount
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: pipeline)
            let upgradeHandler = try channel.pipeline.syncOperations.handler(type: NIOTypedHTTPServerUpgradeHandler<UpgradeResult>.self)
            try channel.pipeline.syncOperations.addHandler(UpgradeHeadRecorder(attempt: attempt), position: .before(upgradeHandler))
            return Value(upgradeResult: result, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .http(let http1):
                await connection().handleHTTP(asyncChannel: http1, logger: logger)
            case .refused(let http1, let head):
                try await answerRefusedUpgrade(head, on: http1)
            case .websocket(let asyncChannel, let handler, let logger):
                await handler(asyncChannel, logger)
            }
        } catch let error as ChannelError where error == .inputClosed {
            logger.trace("the connection closed before its first request")
        } catch {
            logger.debug("the connection failed", metadata: ["syncline.error": "\(error)"])
        }
    }

    /// Answers a refused upgrade with the HTTP router (which says why: 401, 403, 400, 429, or 404
    /// for a path it does not serve), then closes the connection.
    private func answerRefusedUpgrade(_ head: HTTPRequestHead, on http1: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>) async throws {
        try await http1.executeThenClose { _, outbound in
            let request = Request(head: try HTTPRequest(head, secure: false, splitCookie: false), body: .init(buffer: .init()))
            try await responder(request, ResponseWriter(outbound: outbound), http1.channel)
        }
    }

    /// This channel for a plain-HTTP connection: a later request that asks for a WebSocket is
    /// redirected to the same URI on a new connection (as Hummingbird does), because NIO upgrades
    /// only a connection's first request.
    private func connection() -> LiveUpgradeChannel {
        let application = responder
        var connection = self
        connection.responder = { request, writer, channel in
            guard request.headers[.upgrade] != nil else { return try await application(request, writer, channel) }
            let location = request.uri.query.map { "\(request.uri.path)?\($0)" } ?? request.uri.path
            try await writer.writeResponse(HTTPResponse(status: .temporaryRedirect, headerFields: [.connection: "close", .location: location]))
            throw ConnectionClosedAfterAnswer()
        }
        return connection
    }

    /// Ends a connection after its answer (Hummingbird's HTTP handler closes it on a thrown error).
    private struct ConnectionClosedAfterAnswer: Error {}

    /// One connection's upgrade attempt: its request head, and the WebSocket handler when accepted.
    private final class UpgradeAttempt: Sendable {
        let head = Mutex<HTTPRequestHead?>(nil)
        let handler = Mutex<WebSocketChannelHandler?>(nil)
    }

    /// Keeps the connection's first request head when it asks for an upgrade (NIO's upgrade
    /// handler consumes it; a refused upgrade still needs its answer), then leaves the pipeline.
    private final class UpgradeHeadRecorder: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias InboundOut = HTTPServerRequestPart

        let attempt: UpgradeAttempt

        init(attempt: UpgradeAttempt) { self.attempt = attempt }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .head(let head) = unwrapInboundIn(data), head.headers.contains(name: "upgrade") {
                attempt.head.withLock { $0 = head }
            }
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    /// permessage-deflate and other extensions, as Hummingbird negotiates them.
    private static func negotiateExtensions(
        _ builders: [any WebSocketExtensionBuilder], requestHeaders: HTTPFields, responseHeaders: HTTPFields
    ) throws -> (HTTPFields, [any WebSocketExtension]) {
        var headers = responseHeaders
        let requested = WebSocketExtensionHTTPParameters.parseHeaders(requestHeaders)
        headers.append(contentsOf: builders.compactMap { $0.serverResponseHeader(to: requested) }.map { .init(name: .secWebSocketExtensions, value: $0) })
        return (headers, try builders.compactMap { try $0.serverExtension(from: requested) })
    }
}

extension Logger {
    fileprivate func with(requestID: RequestID) -> Logger {
        var logger = self
        logger[metadataKey: "hb.request.id"] = .stringConvertible(requestID)
        return logger
    }
}
