import Logging
import PostgresNIO
import Syncline

/// Syncline's tables in one PostgreSQL schema, created and upgraded by the server itself.
///
/// The version is the `schema_version` row of `syncline_meta`. Each upgrade is one transaction
/// under an advisory lock, so nodes starting together upgrade once. A schema holding other tables
/// (a foreign schema), or one of a newer version, is refused and left untouched.
enum PostgresSchema {
    /// The schema this build writes.
    static let version: Int64 = 1

    enum Found: Equatable {
        case empty
        case foreign(String)
        case version(Int64)
    }

    /// Brings the schema to ``version`` (creating it when missing).
    /// - Throws: ``SyncError`` `.notASynclineStore` for a foreign schema, `.newerSchema` for a newer one.
    static func prepare(_ connection: PostgresConnection, configuration: PostgresBackend.Configuration, logger: Logger) async throws {
        let schema = configuration.schema
        let place = "schema \(schema) of database \(configuration.database) at \(configuration.host):\(configuration.port)"
        while true {
            switch try await find(connection, schema: schema, logger: logger) {
            case .foreign(let what):
                throw SyncError(.notASynclineStore, "\(place) is not a Syncline server schema (\(what)); it was left untouched")
            case .version(let found) where found > version:
                throw SyncError(.newerSchema, "\(place) has server schema version \(found); this server knows up to \(version)")
            case .version(version):
                return
            case .empty, .version:
                let statements = PostgresStatements(connection: connection, logger: logger)
                try await statements.transaction { statements in
                    let connection = statements.connection
                    try await connection.query(
                        "SELECT pg_advisory_xact_lock(hashtext(\("syncline.schema." + schema)))", logger: logger
                    )
                    let found = try await find(connection, schema: schema, logger: logger)
                    switch found {
                    case .empty: try await create(connection, schema: schema, logger: logger)
                    case .version(let old) where old < version:
                        // Later versions add one step here each (old -> old + 1), each in its own transaction.
                        throw SyncError(.unsupportedVersion, "\(place) has server schema version \(old), which this server cannot upgrade")
                    default: return  // another node got there first (or it changed): look again
                    }
                    logger.info("PostgreSQL schema created", metadata: ["syncline.schema": "\(schema)", "syncline.version": "\(version)"])
                }
            }
        }
    }

    static func find(_ connection: PostgresConnection, schema: String, logger: Logger) async throws -> Found {
        let tables = try await connection.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = \(schema) ORDER BY tablename", logger: logger
        )
        var names: [String] = []
        for try await name in tables.decode(String.self) { names.append(name) }
        if names.isEmpty { return .empty }
        guard names.contains("syncline_meta") else {
            return .foreign("it holds \(names.prefix(5).joined(separator: ", "))\(names.count > 5 ? ", …" : "") and no syncline_meta")
        }
        let rows = try await connection.query(
            "SELECT value FROM \(unescaped: schema).syncline_meta WHERE name = 'schema_version'", logger: logger
        )
        for try await value in rows.decode(Int64.self) { return .version(value) }
        return .foreign("syncline_meta has no schema_version row")
    }

    /// Version 1, in the caller's transaction.
    private static func create(_ connection: PostgresConnection, schema: String, logger: Logger) async throws {
        let exists = try await connection.query("SELECT count(*) FROM pg_namespace WHERE nspname = \(schema)", logger: logger)
        var found: Int64 = 0
        for try await count in exists.decode(Int64.self) { found = count }
        if found == 0 { try await connection.query("CREATE SCHEMA \(unescaped: schema)", logger: logger) }
        let s = schema
        let statements: [String] = [
            "CREATE TABLE \(s).syncline_meta(name text COLLATE \"C\" PRIMARY KEY, value bigint NOT NULL)",
            """
            CREATE TABLE \(s).namespaces(ns text COLLATE "C" PRIMARY KEY, head bigint NOT NULL, horizon bigint NOT NULL,
                applied bigint NOT NULL, epoch bigint NOT NULL)
            """,
            """
            CREATE TABLE \(s).records(ns text COLLATE "C" NOT NULL, collection text COLLATE "C" NOT NULL,
                id text COLLATE "C" NOT NULL, seq bigint NOT NULL, deleted boolean NOT NULL, tombstone_ms bigint NOT NULL,
                state bytea NOT NULL, PRIMARY KEY(ns, collection, id))
            """,
            "CREATE UNIQUE INDEX records_by_seq ON \(s).records(ns, seq)",
            "CREATE INDEX records_tombstones ON \(s).records(ns, seq) WHERE deleted",
            """
            CREATE TABLE \(s).applied(ns text COLLATE "C" NOT NULL, id uuid NOT NULL, ord bigint NOT NULL,
                result bytea NOT NULL, PRIMARY KEY(ns, id))
            """,
            "CREATE INDEX applied_by_ord ON \(s).applied(ns, ord)",
        ]
        for statement in statements { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
        try await connection.query(
            """
            INSERT INTO \(unescaped: s).syncline_meta(name, value)
            VALUES ('schema_version', \(version)), ('default_epoch', \(Int64(bitPattern: Epoch.random().rawValue)))
            """,
            logger: logger
        )
    }
}
