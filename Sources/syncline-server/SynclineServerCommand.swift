import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import UnixSignals
import Syncline
import SynclineServer

/// `syncline-server serve` (the default subcommand): the reference sync server with the embedded
/// SQLite backend, or with PostgreSQL shared by several nodes (`--database`).
///
/// ```
/// syncline-server --host 127.0.0.1 --port 8080 --data ./syncline-data --tokens tokens.json
/// syncline-server --database postgres://syncline@db:5432/syncline --tokens tokens.json   # one node of many
/// syncline-server --dev-token secret:alice,team      # grant a token on the command line
/// syncline-server --jwks jwks.json --jwt-issuer https://auth.example --jwt-audience syncline
/// kill -HUP <pid>                                    # reread --tokens and --jwks (key rotation)
/// syncline-server --tls-cert server.pem --tls-key server.key   # HTTPS and WSS
/// ```
struct SynclineServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the Syncline sync server (protocol v1: REST + live WebSocket) with an embedded SQLite backend or a shared PostgreSQL."
    )

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one; the chosen port is printed).")
    var port = 8080

    @Option(help: "Directory for the embedded SQLite database (created if missing; default ./syncline-data).")
    var data: String?

    @Option(help: "A PostgreSQL database shared by any number of server nodes, instead of --data: postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?schema=NAME&sslmode=disable|prefer|require].")
    var database: String?

    @Option(name: .customLong("pool-size"), help: "PostgreSQL connections per node (with --database).")
    var poolSize = 20

    @Option(name: .customLong("database-timeout"), help: "Seconds a request may wait for PostgreSQL before it is answered 503 (with --database).")
    var databaseTimeout: Double = 10

    @Option(name: .customLong("database-connect-timeout"), help: "Seconds to open one PostgreSQL connection (with --database).")
    var databaseConnectTimeout: Double = 5

    @Option(help: "A JSON file mapping each token to the namespaces it may use: {\"<token>\": [\"alice\", \"*\"]}.")
    var tokens: String?

    @Option(name: .customLong("dev-token"), help: "Grant a token on the command line (development): TOKEN:ns1,ns2 or TOKEN:*. Repeatable.")
    var devTokens: [String] = []

    @Option(help: "A JWKS file (RFC 7517) whose oct (HS256), RSA (RS256) and EC P-256 (ES256) keys verify JWT bearer tokens.")
    var jwks: String?

    @Option(name: .customLong("jwt-namespaces-claim"), help: "The JWT claim naming the namespaces a token may use (a string or an array; \"*\" is all).")
    var jwtNamespacesClaim = "ns"

    @Option(name: .customLong("jwt-issuer"), help: "When given, a JWT's iss must equal it.")
    var jwtIssuer: String?

    @Option(name: .customLong("jwt-audience"), help: "When given, a JWT's aud must contain it.")
    var jwtAudience: String?

    @Option(name: .customLong("jwt-leeway"), help: "Seconds of clock skew allowed for a JWT's exp and nbf.")
    var jwtLeeway = 60

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

    @Option(help: "Seconds a long poll (GET …/changes?wait=S) may be held at most; a larger wait is cut to it. Below --idle-timeout.")
    var maxLongPoll = 30

    func validate() throws {
        guard (tlsCertificate == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
        guard (0...86_400).contains(idleTimeout), (0...86_400).contains(headerTimeout) else {
            throw ValidationError("--idle-timeout and --header-timeout are seconds from 0 (off) to 86400")
        }
        guard maxConnections >= 0 else { throw ValidationError("--max-connections cannot be negative (0: no cap)") }
        guard maxLongPoll >= 0, idleTimeout == 0 || Double(maxLongPoll) < idleTimeout else {
            throw ValidationError("--max-long-poll is seconds from 0 (no holding) to below --idle-timeout (\(idleTimeout))")
        }
        if database != nil {
            guard data == nil else { throw ValidationError("--data (SQLite) and --database (PostgreSQL) are two backends: give one") }
            guard !durable else {
                throw ValidationError("--durable is for SQLite; PostgreSQL's durability is its own synchronous_commit setting")
            }
        }
        guard (1...10_000).contains(poolSize) else { throw ValidationError("--pool-size is 1 to 10000 connections") }
        guard databaseTimeout > 0, databaseTimeout <= 3_600, databaseConnectTimeout > 0, databaseConnectTimeout <= 3_600 else {
            throw ValidationError("--database-timeout and --database-connect-timeout are seconds above 0, at most 3600")
        }
    }

    func run() async throws {
        var logger = Logger(label: "syncline-server")
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("unknown log level \(logLevel)") }
        logger.logLevel = level

        guard jwtLeeway >= 0 else { throw ValidationError("--jwt-leeway must not be negative") }
        guard jwks != nil || (jwtIssuer == nil && jwtAudience == nil) else {
            throw ValidationError("--jwt-issuer and --jwt-audience need --jwks")
        }
        var jwt: JWTVerifier?
        if let jwks {
            let keys = try await JSONWebKeySet(json: try Self.read(jwks, what: "JWKS"))
            for skipped in keys.skipped { logger.warning("JWKS key skipped", metadata: ["syncline.key": "\(skipped)"]) }
            let rules = JWTVerifier.Rules(
                namespacesClaim: jwtNamespacesClaim, issuer: jwtIssuer, audience: jwtAudience, leeway: .seconds(jwtLeeway)
            )
            jwt = JWTVerifier(keys: keys, rules: rules)
        }
        let devTokens = devTokens
        let authenticator = Authenticator(tokens: try Self.loadTokens(file: tokens, devTokens: devTokens), jwt: jwt)
        if tokens == nil && devTokens.isEmpty && jwks == nil {
            logger.warning("no tokens configured: every request will get 401 (use --tokens, --dev-token or --jwks)")
        }
        // SIGHUP rereads these files; one that fails to load keeps what was loaded before.
        var reloads: [CredentialReloader.Action] = []
        if let tokens {
            reloads.append(.init("tokens file \(tokens)") {
                authenticator.replaceTokens(try Self.loadTokens(file: tokens, devTokens: devTokens))
            })
        }
        if let jwks {
            reloads.append(.init("JWKS \(jwks)") { [logger] in
                let keys = try await JSONWebKeySet(json: try Self.read(jwks, what: "JWKS"))
                for skipped in keys.skipped { logger.warning("JWKS key skipped", metadata: ["syncline.key": "\(skipped)"]) }
                try authenticator.replaceKeys(keys)
            })
        }
        var tls: ServerTLS?
        if let tlsCertificate, let tlsKey {
            let certificate = try ServerTLS(certificatePath: tlsCertificate, keyPath: tlsKey, logger: logger)
            // New connections get the reloaded certificate; open ones keep theirs.
            reloads.append(.init("TLS certificate \(tlsCertificate)") { try certificate.reload() })
            tls = certificate
        }
        let reloader = await CredentialReloader(actions: reloads, logger: logger)

        let backend: any ServerBackend
        var backendServices: [any Service] = []
        var lock: DataDirectoryLock?
        let location: String
        if let database {
            var postgres = try PostgresBackend.Configuration(url: database)
            postgres.poolSize = poolSize
            postgres.operationTimeout = .milliseconds(Int64(databaseTimeout * 1_000))
            postgres.connectTimeout = .milliseconds(Int64(databaseConnectTimeout * 1_000))
            let node = PostgresBackend(configuration: postgres, logger: logger)
            backend = node
            backendServices = [node]
            location = postgres.description
        } else {
            // Held while serving: `restore` and `restore-fence` refuse to touch a running server's data.
            let directory = ServerDataDirectory(path: data ?? "./syncline-data")
            lock = try directory.lock()
            location = directory.databasePath
            // Fences first when the database was put back from a backup (README "Backup and restore").
            backend = try await directory.openBackend(configuration: .init(durability: durable ? .power : .app), logger: logger)
        }
        defer { withExtendedLifetime(lock) {} }
        var configuration = SyncServerConfiguration(
            engine: .init(maxBatchChanges: maxBatch), authenticator: authenticator,
            rateLimit: rateLimit > 0 ? .init(perSecond: rateLimit, burst: rateLimit * 2) : nil,
            tombstoneRetention: tombstoneRetentionDays > 0 ? .seconds(tombstoneRetentionDays * 86_400) : nil
        )
        configuration.tls = tls
        configuration.idleTimeout = idleTimeout > 0 ? .milliseconds(Int64(idleTimeout * 1_000)) : nil
        configuration.headerTimeout = headerTimeout > 0 ? .milliseconds(Int64(headerTimeout * 1_000)) : nil
        configuration.maxConnections = maxConnections > 0 ? maxConnections : nil
        configuration.maxLongPoll = .seconds(maxLongPoll)
        let app = SyncServer.application(
            backend: backend, configuration: configuration, host: host, port: port, logger: logger, services: backendServices
        ) { port in
            // One line on standard output that scripts and tests wait for.
            FileHandle.standardOutput.write(Data("syncline-server listening on \(host):\(port)\n".utf8))
        }
        logger.info("starting", metadata: ["syncline.data": "\(location)"])
        // SIGTERM/SIGINT: stop accepting, finish in-flight requests, close live sockets; after the
        // timeout whatever is still open is cancelled.
        var groupConfiguration = ServiceGroupConfiguration(services: [app, reloader], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(shutdownTimeout)
        groupConfiguration.maximumCancellationDuration = .seconds(5)
        try await ServiceGroup(configuration: groupConfiguration).run()
    }

    /// The tokens file (when given) plus the `--dev-token` grants.
    private static func loadTokens(file: String?, devTokens: [String]) throws -> TokenStore {
        var store = TokenStore()
        if let file { store = try TokenStore(json: try read(file, what: "tokens file")) }
        for grant in devTokens {
            let parts = grant.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--dev-token must be TOKEN:ns1,ns2, not \(grant)") }
            let namespaces = parts[1].split(separator: ",").map(String.init)
            for name in namespaces where name != "*" { _ = try Namespace(name) }
            store.grant(String(parts[0]), namespaces: namespaces)
        }
        return store
    }

    private static func read(_ path: String, what: String) throws -> [UInt8] {
        guard let bytes = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read the \(what) \(path)") }
        return [UInt8](bytes)
    }
}
