import Foundation
import NIOSSL
import PostgresNIO
public import Syncline

extension PostgresBackend {
    /// Where the PostgreSQL database is and how the backend uses it.
    ///
    /// ```swift
    /// var configuration = try PostgresBackend.Configuration(url: "postgres://syncline@db.internal:5432/syncline")
    /// configuration.poolSize = 40
    /// ```
    public struct Configuration: Sendable {
        /// How the connections are encrypted (libpq's `sslmode`).
        public enum TLSMode: String, Sendable {
            /// Plain TCP.
            case disable
            /// TLS when the server offers it (libpq's default).
            case prefer
            /// TLS or no connection.
            case require
        }

        public var host: String
        public var port: Int
        public var username: String
        public var password: String?
        public var database: String
        /// The PostgreSQL schema that holds Syncline's tables (created when missing). Several
        /// clusters of nodes may share one database with a schema each. Default `public`.
        public var schema: String
        public var tls: TLSMode
        /// Connections in each node's pool (the LISTEN connection is one more). Default 20.
        public var poolSize: Int
        /// How long opening one connection may take. Default 5 s.
        public var connectTimeout: Duration
        /// How long a request may wait for PostgreSQL (a pooled connection and its statements)
        /// before it is answered `503` with `Retry-After`. Default 10 s.
        public var operationTimeout: Duration
        /// The `Retry-After` (seconds) of a `503` while PostgreSQL is unreachable. Default 2.
        public var retryAfterSeconds: Int
        /// The LISTEN connection reconnects after this, doubling (jittered) up to `maxReconnectDelay`. Default 100 ms.
        public var initialReconnectDelay: Duration
        /// Default 5 s.
        public var maxReconnectDelay: Duration
        /// Applied event ids remembered per namespace for idempotency (as ``SQLiteBackend``). Default 1,000,000.
        public var idempotencyWindow: Int

        public init(
            host: String = "127.0.0.1", port: Int = 5432, username: String = "postgres", password: String? = nil,
            database: String = "syncline", schema: String = "public", tls: TLSMode = .prefer, poolSize: Int = 20,
            connectTimeout: Duration = .seconds(5), operationTimeout: Duration = .seconds(10), retryAfterSeconds: Int = 2,
            initialReconnectDelay: Duration = .milliseconds(100), maxReconnectDelay: Duration = .seconds(5),
            idempotencyWindow: Int = 1_000_000
        ) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.schema = schema
            self.tls = tls
            self.poolSize = poolSize
            self.connectTimeout = connectTimeout
            self.operationTimeout = operationTimeout
            self.retryAfterSeconds = retryAfterSeconds
            self.initialReconnectDelay = initialReconnectDelay
            self.maxReconnectDelay = maxReconnectDelay
            self.idempotencyWindow = idempotencyWindow
        }

        /// Reads `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?schema=NAME&sslmode=disable|prefer|require]`
        /// (`postgresql://` too); the other settings keep their defaults.
        /// - Throws: ``SyncError`` `.invalidParameter` naming what is wrong.
        public init(url: String) throws(SyncError) {
            self.init()
            guard let components = URLComponents(string: url), let scheme = components.scheme,
                scheme == "postgres" || scheme == "postgresql"
            else {
                throw SyncError(.invalidParameter, "a database URL is postgres://USER@HOST:PORT/DB, not \(Self.redacted(url))")
            }
            guard let host = components.host, !host.isEmpty else {
                throw SyncError(.invalidParameter, "the database URL \(Self.redacted(url)) names no host")
            }
            self.host = host
            port = components.port ?? 5432
            guard let user = components.user, !user.isEmpty else {
                throw SyncError(.invalidParameter, "the database URL \(Self.redacted(url)) names no user (postgres://USER@HOST/DB)")
            }
            username = user.removingPercentEncoding ?? user
            password = components.password.map { $0.removingPercentEncoding ?? $0 }
            let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
            guard !path.isEmpty, !path.contains("/") else {
                throw SyncError(.invalidParameter, "the database URL \(Self.redacted(url)) names no database (postgres://USER@HOST/DB)")
            }
            database = path.removingPercentEncoding ?? path
            for item in components.queryItems ?? [] {
                switch item.name {
                case "schema", "search_path":
                    guard let value = item.value, Self.isPlainIdentifier(value) else {
                        throw SyncError(.invalidParameter, "schema must be [a-z_][a-z0-9_]* (at most 63 characters)")
                    }
                    schema = value
                case "sslmode":
                    guard let mode = item.value.flatMap(TLSMode.init(rawValue:)) else {
                        throw SyncError(.invalidParameter, "sslmode must be disable, prefer or require")
                    }
                    tls = mode
                default:
                    throw SyncError(.invalidParameter, "the database URL parameter \(item.name) is not supported (schema, sslmode)")
                }
            }
        }

        /// The URL without its password, for logs and errors.
        public var description: String { "postgres://\(username)@\(host):\(port)/\(database)?schema=\(schema)" }

        /// A lower-case SQL identifier that needs no quoting (schema names are used in statements).
        static func isPlainIdentifier(_ name: String) -> Bool {
            guard let first = name.first, name.count <= 63, !first.isNumber else { return false }
            return name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }
        }

        static func redacted(_ url: String) -> String {
            guard var components = URLComponents(string: url), components.password != nil else { return url }
            components.password = "***"
            return components.string ?? "(unreadable URL)"
        }

        /// The pool's configuration: the schema is the connections' `search_path`.
        func client() -> PostgresClient.Configuration {
            let tls: PostgresClient.Configuration.TLS
            switch self.tls {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(TLSConfiguration.makeClientConfiguration())
            case .require: tls = .require(TLSConfiguration.makeClientConfiguration())
            }
            var configuration = PostgresClient.Configuration(
                host: host, port: port, username: username, password: password, database: database, tls: tls
            )
            configuration.options.maximumConnections = poolSize
            configuration.options.connectTimeout = connectTimeout
            configuration.options.additionalStartupParameters = [("search_path", schema), ("application_name", "syncline:\(schema)")]
            return configuration
        }

        /// A single connection's configuration (the LISTEN connection, schema upgrades).
        func connection() throws -> PostgresConnection.Configuration {
            let tls: PostgresConnection.Configuration.TLS
            switch self.tls {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(try NIOSSLContext(configuration: TLSConfiguration.makeClientConfiguration()))
            case .require: tls = .require(try NIOSSLContext(configuration: TLSConfiguration.makeClientConfiguration()))
            }
            var configuration = PostgresConnection.Configuration(
                host: host, port: port, username: username, password: password, database: database, tls: tls
            )
            configuration.options.connectTimeout = .nanoseconds(
                connectTimeout.components.seconds * 1_000_000_000 + connectTimeout.components.attoseconds / 1_000_000_000
            )
            configuration.options.additionalStartupParameters = [
                ("search_path", schema), ("application_name", "syncline-listen:\(schema)"),
            ]
            return configuration
        }
    }
}
