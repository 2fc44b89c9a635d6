import NIOCore
import NIOPosix

/// A plain TCP connection to a test server, for clients that misbehave below HTTP: connect and
/// say nothing, send half a request, drip bytes.
struct RawConnection {
    /// What the server sent before the connection ended, and whether the server ended it (`false`:
    /// it was still open at the deadline and the test closed it).
    struct Ending: Sendable {
        var received: [UInt8]
        var closedByServer: Bool
        var text: String { String(decoding: received, as: UTF8.self) }
    }

    /// Connects to `127.0.0.1:port`, runs `body` (sends), then reads until the server closes the
    /// connection or `deadline` passes.
    static func run(
        port: Int, deadline: Duration,
        _ body: (NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> Void = { _ in }
    ) async throws -> Ending {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        // Fires (and closes the connection) only if the server has not closed it by then.
        let timer = channel.channel.eventLoop.scheduleTask(in: TimeAmount(deadline)) { [channel = channel.channel] in
            channel.close(promise: nil)
        }
        var received: [UInt8] = []
        try await channel.executeThenClose { inbound, outbound in
            do {
                try await body(outbound)
            } catch where !channel.channel.isActive {
                // The server closed the connection before the test finished sending (on a loaded
                // machine its timeout can pass first): the connection ended either way.
            }
            do {
                for try await buffer in inbound { received += buffer.readableBytesView }
            } catch {
                // a reset, or the deadline's close: the connection ended either way (the timer says who ended it)
            }
        }
        timer.cancel()
        let timedOut: Bool
        do {
            try await timer.futureResult.get()
            timedOut = true
        } catch {
            timedOut = false  // cancelled: the server closed first
        }
        return Ending(received: received, closedByServer: !timedOut)
    }
}

extension NIOAsyncChannelOutboundWriter<ByteBuffer> {
    func send(_ text: String) async throws { try await write(ByteBuffer(string: text)) }
}
