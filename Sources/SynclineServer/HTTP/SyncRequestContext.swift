import Hummingbird
import Logging
import Synchronization
import WSCore

/// The request context of the server's routers: Hummingbird's core context, plus the place where
/// the live route leaves its WebSocket handler when it accepts an upgrade (see ``LiveUpgradeChannel``).
struct SyncRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let liveUpgrade = LiveUpgrade()

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// What runs on an accepted WebSocket.
    typealias SocketHandler = WebSocketDataHandler<SocketContext>

    /// The context a live WebSocket handler gets.
    struct SocketContext: WebSocketContext {
        let logger: Logger
    }

    /// The handler of an accepted upgrade, set by the route that accepts it (one per request).
    final class LiveUpgrade: Sendable {
        private let handler = Mutex<SocketHandler?>(nil)

        func accept(_ handler: @escaping SocketHandler) { self.handler.withLock { $0 = handler } }

        var accepted: SocketHandler? { handler.withLock { $0 } }
    }
}
