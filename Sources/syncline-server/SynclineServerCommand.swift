import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import UnixSignals
import Syncline
import SynclineServer

/// `syncline-server`: the reference sync server with the embedded SQLite backend.
///
/// ```
/// syncline-server --host 127.0.0.1 --port 8080 --data ./syncline-data --tokens tokens.json
/// syncline-server --dev-token secret:alice,team      # grant a token on the command line
/// syncline-server --tls-cert server.pem --tls-key server.key   # HTTPS and WSS
/// ```
@main
struct SynclineServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "syncline-server",
        abstract: "The Syncline sync server (protocol v1: REST + live WebSocket) with an embedded SQLite backend."
    )

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one; the chosen port is printed).")
    var port = 8080

    @Option(help: "Directory for the database (created if missing).")
    var data = "./syncline-data"

    @Option(help: "A JSON file mapping each token to the namespaces it may use: {\"<token>\": [\"alice\", \"*\"]}.")
    var tokens: String?

    @Option(name: .customLong("dev-token"), help: "Grant a token on the command line (development): TOKEN:ns1,ns2 or TOKEN:*. Repeatable.")
    var devTokens: [String] = []

    @Option(help: "Requests per second per token (0 turns rate limiting off).")
    var rateLimit: Double = 200

    @Option(help: "Most changes per pushed batch.")
    var maxBatch = 5_000

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Flag(help: "fsync every push (survives power loss).")
    var durable = false

    @Option(help: "Days tombstones are kept; devices whose cursor is older pull a snapshot again (0 keeps them forever).")
    var tombstoneRetentionDays = 30

    @Option(help: "Seconds a graceful shutdown (SIGTERM, SIGINT) may take before open connections are cut.")
    var shutdownTimeout: Int = 10

    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain (server certificate first): serve HTTPS and WSS. Needs --tls-key.")
    var tlsCertificate: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key for --tls-cert.")
    var tlsKey: String?

    @Option(help: "Seconds an HTTP connection may stay idle (no request, or a stalled one) before it is closed (0: never).")
    var idleTimeout: Double = 60

    @Option(help: "Seconds a client has to finish sending a request's line and headers (0: no limit).")
    var headerTimeout: Double = 10

    @Option(help: "Most connections open at once; more are answered 503 and closed (0: no cap).")
    var maxConnections = 10_000

    func validate() throws {
        guard (tlsCertificate == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
        guard (0...86_400).contains(idleTimeout), (0...86_400).contains(headerTimeout) else {
            throw ValidationError("--idle-timeout and --header-timeout are seconds from 0 (off) to 86400")
        }
        guard maxConnections >= 0 else { throw ValidationError("--max-connections cannot be negative (0: no cap)") }
    }

    func run() async throws {
        var logger = Logger(label: "syncline-server")
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown log level \(logLevel)") }
        logger.logLevel = level

        var store = TokenStore()
        if let tokens {
            guard let bytes = FileManager.default.contents(atPath: tokens) else {
                throw ValidationError("cannot read the tokens file \(tokens)")
            }
            store = try TokenStore(json: [UInt8](bytes))
        }
        for grant in devTokens {
            let parts = grant.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--dev-token must be TOKEN:ns1,ns2, not \(grant)") }
            let namespaces = parts[1].split(separator: ",").map(String.init)
            for name in namespaces where name != "*" { _ = try Namespace(name) }
            store.grant(String(parts[0]), namespaces: namespaces)
        }
        if tokens == nil && devTokens.isEmpty {
            logger.warning("no tokens configured: every request will get 401 (use --tokens or --dev-token)")
        }

        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let path = URL(fileURLWithPath: data).appendingPathComponent("syncline.sqlite").path
        let backend = try SQLiteBackend(path: path, configuration: .init(durability: durable ? .power : .app))
        var configuration = SyncServerConfiguration(
            engine: .init(maxBatchChanges: maxBatch), tokens: store,
            rateLimit: rateLimit > 0 ? .init(perSecond: rateLimit, burst: rateLimit * 2) : nil,
            tombstoneRetention: tombstoneRetentionDays > 0 ? .seconds(tombstoneRetentionDays * 86_400) : nil
        )
        if let tlsCertificate, let tlsKey {
            // ServerTLS.reload() re-reads both files (for SIGHUP).
            configuration.tls = try ServerTLS(certificatePath: tlsCertificate, keyPath: tlsKey, logger: logger)
        }
        configuration.idleTimeout = idleTimeout > 0 ? .milliseconds(Int64(idleTimeout * 1_000)) : nil
        configuration.headerTimeout = headerTimeout > 0 ? .milliseconds(Int64(headerTimeout * 1_000)) : nil
        configuration.maxConnections = maxConnections > 0 ? maxConnections : nil
        let app = SyncServer.application(
            backend: backend, configuration: configuration, host: host, port: port, logger: logger
        ) { port in
            // One line on standard output that scripts and tests wait for.
            FileHandle.standardOutput.write(Data("syncline-server listening on \(host):\(port)\n".utf8))
        }
        logger.info("starting", metadata: ["syncline.data": "\(path)"])
        // SIGTERM/SIGINT: stop accepting, finish in-flight requests, close live sockets; after the
        // timeout whatever is still open is cancelled.
        var groupConfiguration = ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(shutdownTimeout)
        groupConfiguration.maximumCancellationDuration = .seconds(5)
        try await ServiceGroup(configuration: groupConfiguration).run()
    }
}
