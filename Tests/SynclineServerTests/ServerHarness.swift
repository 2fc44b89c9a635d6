import Foundation
import Hummingbird
import ServiceLifecycle
import Logging
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Synchronization
import Testing

/// A real sync server on a random loopback port, in this process, for the length of `body`.
struct LiveServer: Sendable {
    let port: Int
    let backend: any ServerBackend
    let metrics: ServerMetrics
    /// Whether it serves TLS (`https`/`wss`), and the roots its clients trust.
    var secure = false
    var trust = ServerTrust.system
    /// How long its devices wait for an answer. A PostgreSQL backend makes about ten round trips
    /// per push; when the whole suite runs on two cores its continuations wait for a thread, so
    /// its devices wait longer (as production devices would under that load).
    var patience: Duration = .seconds(10)
    /// Over TLS by name: the WebSocket client sends SNI, which cannot carry an IP address.
    var host: String { secure ? "localhost" : "127.0.0.1" }
    var baseURL: String { "\(secure ? "https" : "http")://\(host):\(port)" }
    var liveURL: String { "\(secure ? "wss" : "ws")://\(host):\(port)" }

    static let token = "test-token"
    static let otherToken = "other-token"

    static func configuration(
        engine: ServerEngine.Configuration = .init(), rateLimit: RateLimiter.Configuration? = nil
    ) -> SyncServerConfiguration {
        SyncServerConfiguration(
            engine: engine, tokens: TokenStore([token: ["*"], otherToken: ["other"]]), rateLimit: rateLimit,
            pingInterval: .seconds(5), helloTimeout: .seconds(2)
        )
    }

    /// Runs `body` with a server over `backend` (a new SQLite backend in a temporary directory by
    /// default; with `postgres`, a PostgreSQL backend in a new schema, or in `postgresSchema`).
    static func with<Result: Sendable>(
        backend given: (any ServerBackend)? = nil, services givenServices: [any Service] = [], postgres: Bool = false,
        postgresSchema: String? = nil,
        configuration: SyncServerConfiguration = LiveServer.configuration(),
        trust: ServerTrust = .system, _ body: @Sendable (LiveServer) async throws -> Result
    ) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("syncline-server-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }  // temporary files only
        var services: [any Service] = []
        var waitForBackend = false
        let backend: any ServerBackend
        if let given {
            backend = given
            services = givenServices
        } else if postgres || postgresSchema != nil {
            let configuration = try PostgresTestDatabase.configuration(schema: postgresSchema ?? PostgresTestDatabase.freshSchema())
            let node = PostgresBackend(configuration: configuration, logger: PostgresTestDatabase.logger())
            services = [node]
            backend = node
            waitForBackend = true
        } else {
            backend = try SQLiteBackend(path: directory.appendingPathComponent("server.sqlite").path)
        }
        let metrics = ServerMetrics()
        var logger = Logger(label: "test-server")
        logger.logLevel = .warning
        // Run as a service so the end of the test is a graceful shutdown, as on SIGTERM.
        let running = try await SyncServer.start(
            backend: backend, configuration: configuration, metrics: metrics, logger: logger, services: services
        )
        if waitForBackend {
            do {
                try await PostgresTestDatabase.waitUntilAvailable(backend)
            } catch {
                try await running.stop()
                throw error
            }
        }
        var server = LiveServer(port: running.port, backend: backend, metrics: metrics, secure: configuration.tls != nil, trust: trust)
        if backend is PostgresBackend { server.patience = .seconds(45) }
        let result: Result
        do {
            result = try await body(server)
        } catch {
            try await running.stop()
            throw error
        }
        try await running.stop()
        return result
    }

    func rest(_ namespace: Namespace, format: WireCodec.Format = .binary, token: String = LiveServer.token) -> RESTTransport {
        RESTTransport(
            url: baseURL, namespace: namespace, token: { token },
            configuration: .init(wire: WireCodec(format: format), timeout: patience, trust: trust)
        )
    }
}

extension LiveServer {
    func webSocket(_ namespace: Namespace, format: WireCodec.Format = .binary, token: String = LiveServer.token) -> WebSocketTransport {
        WebSocketTransport(
            url: baseURL, namespace: namespace, token: { token },
            configuration: .init(
                wire: WireCodec(format: format), ackTimeout: patience, initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(200),
                trust: trust
            )
        )
    }
}

extension WebSocketTransport {
    /// Waits for the socket to open (it opens once the device's cursor is known: its first pull).
    func waitUntilConnected(within limit: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + limit
        while !isConnected {
            guard ContinuousClock.now < deadline else { throw SyncError(.transportUnavailable, "the socket did not open") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}
