public import Hummingbird
import HummingbirdWebSocket
public import Logging
import NIOCore
public import ServiceLifecycle
public import Syncline

/// How a sync server behaves: limits, tokens, live-connection settings.
public struct SyncServerConfiguration: Sendable {
    /// Batch, page, size and clock-skew limits (shared with the in-memory reference server).
    public var engine: ServerEngine.Configuration
    /// Who may use which namespace: static bearer tokens and, with a JWKS, JWTs. A reference: a
    /// reload (SIGHUP) swaps the credentials every request sees. `tokens:` in `init` is shorthand
    /// for `Authenticator(tokens:)`.
    public var authenticator: Authenticator
    /// The largest request body accepted as received (before inflation). Default 16 MiB.
    public var maxRequestBytes: Int
    /// Inflation limits for request bodies and the compression threshold for answers.
    public var wire: WireCodec
    /// Requests per token; `nil` turns rate limiting off. Default 200/s with bursts of 400.
    public var rateLimit: RateLimiter.Configuration?
    /// Entries per page on live connections. Default 500.
    public var livePageSize: Int
    /// The largest WebSocket message, both ways. Default 16 MiB.
    public var maxLiveMessageBytes: Int
    /// How often live connections are pinged. Default 30 s.
    public var pingInterval: Duration
    /// How long a new live connection may take to say hello. Default 10 s.
    public var helloTimeout: Duration
    /// How long tombstones are kept; `nil` keeps them forever. Default 30 days.
    public var tombstoneRetention: Duration?
    /// How often old tombstones are purged. Default 1 hour.
    public var tombstoneSweepInterval: Duration
    /// Unix milliseconds (injected so tests control it).
    public var clock: @Sendable () -> UInt64

    // Connections (README: "TLS and connection limits").
    /// The certificate and key to serve HTTPS and WSS with; `nil` (default) serves plain HTTP.
    public var tls: ServerTLS? = nil
    /// Closes an HTTP connection with no request for this long, or one whose request stalls (no
    /// complete part) for this long. Not applied to live WebSocket sessions (ping/pong keeps
    /// those). `nil` never closes. Default 60 s.
    public var idleTimeout: Duration? = .seconds(60)
    /// Closes a connection whose request head is not complete this long after it connected (or
    /// after the first byte of a later request on it). `nil` never closes. Default 10 s.
    public var headerTimeout: Duration? = .seconds(10)
    /// The most connections open at once; more are answered `503` and closed. `nil`: no cap.
    /// Default 10,000 (keep it well under the process's open-file limit).
    public var maxConnections: Int? = 10_000
    /// The longest a long poll (`GET …/changes?wait=S`) is held with nothing to answer; a larger
    /// `wait` is cut to it. Keep it under ``idleTimeout``. Default 30 s.
    public var maxLongPoll: Duration = .seconds(30)

    public init(
        engine: ServerEngine.Configuration = .init(), tokens: TokenStore = TokenStore(), authenticator: Authenticator? = nil,
        maxRequestBytes: Int = 16 << 20,
        wire: WireCodec = WireCodec(format: .json), rateLimit: RateLimiter.Configuration? = .init(), livePageSize: Int = 500,
        maxLiveMessageBytes: Int = 16 << 20, pingInterval: Duration = .seconds(30), helloTimeout: Duration = .seconds(10),
        tombstoneRetention: Duration? = .seconds(30 * 86_400), tombstoneSweepInterval: Duration = .seconds(3_600),
        clock: @escaping @Sendable () -> UInt64 = { WallClock.nowMillis() }
    ) {
        self.tombstoneRetention = tombstoneRetention
        self.tombstoneSweepInterval = tombstoneSweepInterval
        self.engine = engine
        self.authenticator = authenticator ?? Authenticator(tokens: tokens)
        self.maxRequestBytes = maxRequestBytes
        self.wire = wire
        self.rateLimit = rateLimit
        self.livePageSize = livePageSize
        self.maxLiveMessageBytes = maxLiveMessageBytes
        self.pingInterval = pingInterval
        self.helloTimeout = helloTimeout
        self.clock = clock
    }
}

/// The sync server (DESIGN §5–§6): protocol v1 over Hummingbird 2, in front of a ``ServerBackend``.
///
/// ```swift
/// let backend = try SQLiteBackend(path: "data/syncline.sqlite")
/// let app = SyncServer.application(backend: backend, configuration: .init(tokens: TokenStore(["t0k3n": ["alice"]])),
///                                  host: "127.0.0.1", port: 8080, logger: logger)
/// try await app.runService()      // SIGTERM/SIGINT shut it down gracefully
/// ```
public enum SyncServer {
    /// Builds the application: REST routes, the live WebSocket, `/healthz` and `/metrics`.
    /// - Parameters:
    ///   - services: what the backend needs running (``PostgresBackend`` is one), run before the
    ///     server and stopped after it.
    ///   - onServerRunning: called with the bound port once the server listens (port 0 binds a free one).
    public static func application(
        backend: any ServerBackend, configuration: SyncServerConfiguration, metrics: ServerMetrics = ServerMetrics(),
        host: String = "127.0.0.1", port: Int = 8080, logger: Logger, services backendServices: [any Service] = [],
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let protocolHandler = ProtocolHandler(backend: backend, configuration: configuration, metrics: metrics, logger: logger)
        let router = Router(context: SyncRequestContext.self)
        protocolHandler.addRoutes(to: router)
        // Only the live route decides upgrades; a refused one is answered by `router` (see LiveUpgradeChannel).
        let webSocketRouter = Router(context: SyncRequestContext.self)
        protocolHandler.addLiveRoute(to: webSocketRouter)
        let webSocketResponder = webSocketRouter.buildResponder()
        // The backend's own services first: a graceful shutdown stops them last.
        var services: [any Service] = backendServices
        if let retention = configuration.tombstoneRetention {
            services.append(
                TombstoneJanitor(
                    backend: backend, retention: retention, interval: configuration.tombstoneSweepInterval, clock: configuration.clock,
                    logger: logger
                )
            )
        }
        return Application(
            router: router,
            server: connectionGuarded(configuration) { responder, channelConfiguration in
                LiveUpgradeChannel(responder: responder, webSocketResponder: webSocketResponder, configuration: channelConfiguration)
            },
            configuration: .init(address: .hostname(host, port: port), serverName: "syncline"),
            services: services,
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
    }
}

/// A server running in this process, started with ``SyncServer/start(backend:configuration:metrics:host:port:logger:shutdownTimeout:)``
/// (tests, the simulator's embedded server, benchmarks).
public struct RunningSyncServer: Sendable {
    /// The bound port (the one asked for, or the one the system chose for port 0).
    public let port: Int
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    fileprivate init(port: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.group = group
        self.task = task
    }

    /// A graceful shutdown, as on SIGTERM: live sockets close (1001), requests in flight finish.
    /// - Throws: what ended the server, when it was not the shutdown.
    public func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

extension SyncServer {
    /// Starts a server as a service of its own and returns once it listens.
    /// - Throws: ``SyncError`` `.transportUnavailable` when it stops before listening (the port
    ///   is taken, say).
    public static func start(
        backend: any ServerBackend, configuration: SyncServerConfiguration, metrics: ServerMetrics = ServerMetrics(),
        host: String = "127.0.0.1", port: Int = 0, logger: Logger, shutdownTimeout: Duration = .seconds(10),
        services: [any Service] = []
    ) async throws -> RunningSyncServer {
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = application(
            backend: backend, configuration: configuration, metrics: metrics, host: host, port: port, logger: logger,
            services: services
        ) { portContinuation.yield($0) }
        var groupConfiguration = ServiceGroupConfiguration(services: [app], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = shutdownTimeout
        let group = ServiceGroup(configuration: groupConfiguration)
        let task = Task {
            defer { portContinuation.finish() }  // a server that fails to start ends the wait below
            try await group.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next() else {
            let reason: String
            do {
                try await task.value
                reason = "it stopped"
            } catch {
                reason = "\(error)"
            }
            throw SyncError(.transportUnavailable, "the server on \(host):\(port) did not start: \(reason)")
        }
        return RunningSyncServer(port: bound, group: group, task: task)
    }
}
