import NIOCore
import NIOHTTPTypes

/// Sits after the HTTP codec and tells the connection's ``RequestHeadTimeoutHandler`` when a
/// request head is complete and when its answer ends.
final class RequestHeadTimeoutSignalHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var timeoutHandler: RequestHeadTimeoutHandler?

    func handlerAdded(context: ChannelHandlerContext) {
        timeoutHandler = try? context.pipeline.syncOperations.handler(type: RequestHeadTimeoutHandler.self)
        // Added once the first head was read (after the WebSocket upgrade check): that head is complete.
        timeoutHandler?.headReceived()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeoutHandler = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { timeoutHandler?.headReceived() }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { timeoutHandler?.responseFinished() }
        context.write(data, promise: promise)
    }
}
