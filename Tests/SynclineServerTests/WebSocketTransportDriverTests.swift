import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization
import Syncline
import SynclineNetwork
import Testing

/// The transport's driver (its `run()` loop performing the state machine's actions) against a
/// scripted live server that welcomes and never acks: what the real server never does on purpose.
@Suite("WebSocket transport against a scripted server", .timeLimit(.minutes(1)))
struct WebSocketTransportDriverTests {
    @Test func closeWhilePushesWaitFailsEachOfThemAndNothingHangs() async throws {
        try await ScriptedLiveServer.with(.neverAck) { server in
            let transport = try server.transport(ackTimeout: .seconds(3_600))
            try await transport.openSocket()
            let pushes = Task {
                try await withThrowingTaskGroup(of: SyncError?.self) { group in
                    for _ in 0..<3 {
                        group.addTask {
                            do {
                                _ = try await transport.push(ChangeBatch(changes: []))
                                return nil
                            } catch let error as SyncError {
                                return error
                            }
                        }
                    }
                    return try await group.reduce(into: [SyncError?]()) { $0.append($1) }
                }
            }
            while server.log.withLock({ $0.pushes.count }) < 3 { try await Task.sleep(for: .milliseconds(5)) }
            transport.close()
            let errors = try await pushes.value
            #expect(errors.count == 3)
            #expect(errors.allSatisfy { $0?.code == .transportUnavailable }, "\(errors)")
            #expect(!transport.isConnected)
        }
    }

    @Test func aPushWithoutAnAckFailsAfterTheAckTimeout() async throws {
        try await ScriptedLiveServer.with(.neverAck) { server in
            let transport = try server.transport(ackTimeout: .milliseconds(100))
            defer { transport.close() }
            try await transport.openSocket()
            await #expect(throws: SyncError.self) { _ = try await transport.push(ChangeBatch(changes: [])) }
            // The frame was written; on a loaded machine the server may read it after the timeout.
            while server.log.withLock({ $0.pushes.isEmpty }) { try await Task.sleep(for: .milliseconds(5)) }
            #expect(server.log.withLock { $0.pushes } == [1])
            #expect(transport.isConnected, "a missing ack does not end the connection")
        }
    }

    @Test func aSocketClosedBecauseTheTokenExpiredReconnectsWithAFreshToken() async throws {
        try await ScriptedLiveServer.with(.expireFirstToken) { server in
            let tokens = Mutex(0)
            let transport = try server.transport(ackTimeout: .seconds(10)) {
                tokens.withLock { $0 += 1 }
                return "token"
            }
            defer { transport.close() }
            try await transport.openSocket(connections: 2)
            #expect(server.log.withLock { $0.hellos } == 2)
            #expect(tokens.withLock { $0 } >= 2, "the second connection asked the provider for a fresh token")
            #expect(transport.statistics.connections == 2)
        }
    }
}

/// A live endpoint that says welcome to every hello and otherwise follows its script; any plain
/// HTTP request (the REST fallback) gets 503.
final class ScriptedLiveServer: Sendable {
    enum Script: Sendable {
        /// Welcomes, records pushes, never acks.
        case neverAck
        /// Closes the first connection with 4001 (token expired) right after the welcome.
        case expireFirstToken
    }

    struct Log: Sendable {
        var hellos = 0
        var pushes: [UInt64] = []
    }

    /// What the server heard, shared with its connections' handlers.
    final class Recorder: Sendable {
        private let state = Mutex(Log())

        func withLock<T: Sendable>(_ body: (inout Log) -> T) -> T { state.withLock { body(&$0) } }
    }

    let log = Recorder()
    let script: Script
    private let channel: any Channel

    var baseURL: String { "http://127.0.0.1:\(channel.localAddress?.port ?? 0)" }

    private init(script: Script) async throws {
        self.script = script
        let log = self.log
        let upgrader = NIOWebSocketServerUpgrader(
            shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ScriptedLiveHandler(script: script, log: log))
                }
            }
        )
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(
                    withServerUpgrade: (
                        upgraders: [upgrader],
                        completionHandler: { context in context.pipeline.removeHandler(name: "rest", promise: nil) }
                    )
                ).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(UnavailableHTTPHandler(), name: "rest")
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    static func with<T>(_ script: Script, _ body: (ScriptedLiveServer) async throws -> T) async throws -> T {
        let server = try await ScriptedLiveServer(script: script)
        do {
            let result = try await body(server)
            try await server.channel.close()
            return result
        } catch {
            try await server.channel.close()
            throw error
        }
    }

    func transport(ackTimeout: Duration, token: @escaping TokenProvider = { "token" }) throws -> WebSocketTransport {
        WebSocketTransport(
            url: baseURL, namespace: try Namespace("team"), token: token,
            configuration: .init(ackTimeout: ackTimeout, initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(50))
        )
    }
}

extension WebSocketTransport {
    /// Tells the transport the device's cursor (a pull, which the scripted server refuses over
    /// REST) and waits until the server has welcomed `connections` sockets.
    fileprivate func openSocket(connections: Int = 1) async throws {
        do {
            _ = try await pull(after: 0, from: 0, limit: 1)
            Issue.record("the scripted server has no REST")
        } catch let error as SyncError {
            #expect(error.code != .resyncRequired, "\(error)")
        }
        while !(isConnected && statistics.connections >= connections) { try await Task.sleep(for: .milliseconds(5)) }
    }
}

private final class ScriptedLiveHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let script: ScriptedLiveServer.Script
    let log: ScriptedLiveServer.Recorder

    init(script: ScriptedLiveServer.Script, log: ScriptedLiveServer.Recorder) {
        self.script = script
        self.log = log
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary:
            let message: LiveMessage
            do {
                message = try LiveMessage.decodeBinary(Array(frame.unmaskedData.readableBytesView))
            } catch {
                close(context, code: .protocolError)
                return
            }
            switch message {
            case .hello:
                let number = log.withLock { log in
                    log.hellos += 1
                    return log.hellos
                }
                send(.welcome(head: 0, serverTime: 1), context)
                if case .expireFirstToken = script, number == 1 { close(context, code: WebSocketErrorCode(codeNumber: 4001)) }
            case .push(let batch, _):
                log.withLock { $0.pushes.append(batch) }
            default:
                close(context, code: .protocolError)
            }
        case .connectionClose:
            close(context, code: .normalClosure)
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        default:
            break
        }
    }

    private func send(_ message: LiveMessage, _ context: ChannelHandlerContext) {
        let frame = WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: message.encodeBinary()))
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    private func close(_ context: ChannelHandlerContext, code: WebSocketErrorCode) {
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// Answers every plain HTTP request with 503 (removed from the pipeline once a socket upgrades).
private final class UnavailableHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "0")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .serviceUnavailable, headers: headers))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
