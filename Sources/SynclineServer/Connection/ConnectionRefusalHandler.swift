import NIOCore

/// Answers a connection over the cap with `503` and a protocol error, then closes it.
///
/// It waits for the client's first bytes (so the answer does not race the request) and passes
/// nothing on; a client that sends nothing is closed by the request-head timeout.
final class ConnectionRefusalHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limit: Int
    private var answered = false

    init(limit: Int) {
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        answered = true
        let json =
            "{\"error\":{\"code\":\"transport_unavailable\",\"message\":"
            + ProtocolHandler.quoted("the server has reached its limit of \(limit) open connections; try again later")
            + ",\"limit\":\(limit)}}"
        let head =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n"
            + "Retry-After: 1\r\nConnection: close\r\n\r\n"
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: head + json))).whenComplete { _ in
            RequestHeadTimeoutHandler.endBeforeRequest(loopBound.value)
        }
    }
}
