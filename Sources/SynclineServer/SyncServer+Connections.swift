import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import NIOCore

extension SyncServer {
    /// HTTP/1.1 with the WebSocket upgrade, wrapped with TLS (when configured), the connection
    /// cap and the request-head timeout; the idle timeout is Hummingbird's own (HTTP only: a
    /// live WebSocket session is kept by its ping/pong, never by the idle timeout).
    static func server(router: Router<BasicWebSocketRequestContext>, configuration: SyncServerConfiguration) -> HTTPServerBuilder {
        let webSocketResponder = router.buildResponder()
        let counter = ConnectionCounter(limit: configuration.maxConnections)
        let tls = configuration.tls
        let headerTimeout = configuration.headerTimeout
        let channelConfiguration = HTTP1WebSocketUpgradeChannel.Configuration(
            http1: .init(
                additionalChannelHandlers: [RequestHeadTimeoutSignalHandler()],
                idleTimeout: configuration.idleTimeout.map { TimeAmount($0) }
            ),
            ws: .init(
                maxFrameSize: configuration.maxLiveMessageBytes, autoPing: .enabled(timePeriod: configuration.pingInterval)
            )
        )
        return HTTPServerBuilder { responder in
            GuardedChildChannel(
                base: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder, configuration: channelConfiguration
                ),
                tls: tls, headerTimeout: headerTimeout, counter: counter
            )
        }
    }
}
