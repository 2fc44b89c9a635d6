import HummingbirdCore
import Logging
import NIOCore
import NIOSSL

/// Wraps the server's HTTP/WebSocket child channel with what every accepted connection gets
/// before HTTP: TLS (with the certificate current at accept time), the connection cap, and the
/// request-head timeout.
///
/// Pipeline: `[NIOSSLServerHandler] [ConnectionRefusalHandler] [RequestHeadTimeoutHandler] HTTP…`.
/// Hummingbird's own `.tls(...)` builder fixes its certificate when the server starts; this one
/// reads ``ServerTLS`` per connection so a reload reaches new connections.
struct GuardedChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    let base: Base
    let tls: ServerTLS?
    let headerTimeout: Duration?
    let counter: ConnectionCounter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let admission = counter.open()
            channel.closeFuture.whenComplete { [counter] _ in counter.close() }
            let pipeline = channel.pipeline.syncOperations
            if let tls { try pipeline.addHandler(NIOSSLServerHandler(context: tls.context)) }
            if case .refused(let first) = admission, let limit = counter.limit {
                let metadata: Logger.Metadata = [
                    "syncline.connections.limit": "\(limit)", "syncline.remote": "\(channel.remoteAddress?.description ?? "?")",
                ]
                if first {
                    logger.warning("connection limit reached: refusing new connections with 503", metadata: metadata)
                } else {
                    logger.debug("connection refused: over the connection limit", metadata: metadata)
                }
                try pipeline.addHandler(ConnectionRefusalHandler(limit: limit))
            }
            try pipeline.addHandler(RequestHeadTimeoutHandler(timeout: headerTimeout, logger: logger))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
