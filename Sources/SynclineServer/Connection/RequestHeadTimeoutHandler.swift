import Logging
import NIOCore

/// Closes a connection whose request head (request line and headers) is not complete within the
/// header timeout (``SyncServerConfiguration/headerTimeout``): clients that connect and send
/// nothing, half a request line, or drip the headers byte by byte.
///
/// It sits at the front of the pipeline (right after TLS, so a handshake that never finishes
/// counts too) and sees raw bytes; ``RequestHeadTimeoutSignalHandler``, after the HTTP codec,
/// tells it when a head is complete and when an answer ends. A WebSocket session is never timed
/// after its upgrade: the server's `101` ends the wait and no later request comes.
///
/// It also ends quietly a connection that fails before its first request head (a plain-HTTP
/// client on a TLS port): see ``endBeforeRequest(_:)``.
final class RequestHeadTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// `nil`: no deadline (the handler still ends failed connections quietly).
    private let timeout: TimeAmount?
    private let logger: Logger
    private var machine = StateMachine()
    private var deadline: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(timeout: Duration?, logger: Logger) {
        self.timeout = timeout.map { TimeAmount($0) }
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        perform(machine.connectionOpened(), context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        perform(machine.bytesRead(), context: context)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        perform(machine.responseWritten(), context: context)
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard machine.state == .awaitingHead else {
            context.fireErrorCaught(error)
            return
        }
        // Before any request: a failed TLS handshake (plain HTTP on the TLS port, an untrusted
        // client certificate chain, garbage), or a reset. Nothing to answer; the client's fault.
        logger.debug(
            "closing a connection that failed before its first request",
            metadata: ["syncline.remote": "\(context.remoteAddress?.description ?? "?")", "syncline.error": "\(error)"]
        )
        Self.endBeforeRequest(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    // MARK: Signals from the HTTP side (same event loop)

    func headReceived() {
        guard let context else { return }
        perform(machine.headReceived(), context: context)
    }

    func responseFinished() {
        machine.responseFinished()
    }

    private func perform(_ action: StateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .startDeadline:
            deadline?.cancel()
            guard let timeout else { return }
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: timeout) {
                handler.value.deadlinePassed()
            }
        case .cancelDeadline:
            deadline?.cancel()
            deadline = nil
        case .close:
            logger.debug(
                "closing a connection that did not send a request head in time",
                metadata: ["syncline.remote": "\(context.remoteAddress?.description ?? "?")"]
            )
            Self.endBeforeRequest(context)
        case .none:
            break
        }
    }

    /// Closes a connection that has not sent a complete request head, as if the client had
    /// closed its side first: the HTTP upgrade handler then ends its wait for a request as it does
    /// for a client that goes away (Hummingbird logs that at trace) instead of failing it (logged
    /// as an error for every such connection).
    static func endBeforeRequest(_ context: ChannelHandlerContext) {
        context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        context.close(promise: nil)
    }

    private func deadlinePassed() {
        deadline = nil
        guard let context else { return }
        perform(machine.deadlinePassed(), context: context)
    }
}
