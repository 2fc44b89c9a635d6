import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import NIOCore

extension SyncServer {
    /// The server's HTTP/1.1 + WebSocket child channel (`makeChannel`, given the HTTP and
    /// WebSocket settings from `configuration`), wrapped with TLS when configured, the connection
    /// cap and the request-head timeout. The idle timeout is Hummingbird's own (HTTP only: a live
    /// WebSocket session is kept by its ping/pong, never by the idle timeout).
    static func connectionGuarded<Base: ServerChildChannel>(
        _ configuration: SyncServerConfiguration,
        _ makeChannel: @escaping @Sendable (@escaping HTTPChannelHandler.Responder, HTTP1WebSocketUpgradeChannel.Configuration) -> Base
    ) -> HTTPServerBuilder {
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
                base: makeChannel(responder, channelConfiguration), tls: tls, headerTimeout: headerTimeout, counter: counter
            )
        }
    }
}
