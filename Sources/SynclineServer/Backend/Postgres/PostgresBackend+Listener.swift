import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Syncline
import Synchronization

extension PostgresBackend {
    /// Keeps one connection LISTENing on the schema's channel: each notification publishes its
    /// namespace's head to this node's live connections. On the first connection it creates or
    /// upgrades the schema. When the connection is lost (or cannot be opened) the node refuses
    /// requests with `503` and says why on `/healthz`, reconnects with backoff (jittered, doubling
    /// up to ``Configuration/maxReconnectDelay``), reads again the heads of the namespaces it has
    /// live subscribers for, and serves again.
    func listen() async throws {
        var delay = configuration.initialReconnectDelay
        var schemaReady = false
        var attempt = 0
        while !Task.isCancelled {
            attempt += 1
            let connection: PostgresConnection
            do {
                connection = try await PostgresConnection.connect(
                    configuration: try configuration.connection(), id: attempt, logger: logger
                )
            } catch {
                if Task.isCancelled { return }
                setOutage("PostgreSQL at \(configuration.host):\(configuration.port) is unreachable: \(Self.describe(error))")
                guard await Self.pause(Self.jittered(delay)) else { return }
                delay = min(delay * 2, configuration.maxReconnectDelay)
                continue
            }
            do {
                if !schemaReady {
                    try await PostgresSchema.prepare(connection, configuration: configuration, logger: logger)
                    schemaReady = true
                }
                try await connection.listen(on: channel) { notifications in
                    // Heads read once listening, so a commit is either in them or notified after;
                    // published once requests are served again (a live connection woken by one pulls at once).
                    let missed = try await self.watchedHeads(connection)
                    setOutage(nil)
                    for (namespace, head) in missed { heads.publish(head, namespace: namespace) }
                    delay = configuration.initialReconnectDelay
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await self.consume(notifications) }
                        group.addTask { try await self.heartbeat(connection) }
                        defer { group.cancelAll() }
                        try await group.next()
                    }
                }
            } catch let error as SyncError where [.notASynclineStore, .newerSchema, .unsupportedVersion].contains(error.code) {
                setOutage(error.message)
                Self.close(connection, logger: logger)
                throw error
            } catch {
                if Task.isCancelled {
                    Self.close(connection, logger: logger)
                    return
                }
                logger.warning("lost the PostgreSQL LISTEN connection", metadata: ["syncline.error": "\(Self.describe(error))"])
            }
            Self.close(connection, logger: logger)
            if Task.isCancelled { return }
            setOutage("lost the connection to PostgreSQL at \(configuration.host):\(configuration.port); reconnecting")
            guard await Self.pause(Self.jittered(delay)) else { return }
            delay = min(delay * 2, configuration.maxReconnectDelay)
        }
    }

    private func consume(_ notifications: PostgresNotificationSequence) async throws {
        for try await notification in notifications {
            let parts = notification.payload.split(separator: " ")
            guard parts.count == 2, let namespace = try? Namespace(String(parts[0])), let head = UInt64(parts[1]) else {
                logger.debug("unreadable head notification", metadata: ["syncline.payload": "\(notification.payload)"])
                continue
            }
            heads.publish(head, namespace: namespace)
        }
        throw SyncError(.transportUnavailable, "the LISTEN connection ended")
    }

    /// A connection can die without a word (a server killed, a network cut): a query every
    /// second finds out, bounded by the operation timeout (a busy node may answer late).
    private func heartbeat(_ connection: PostgresConnection) async throws {
        while true {
            try await Task.sleep(for: .seconds(1))
            let answered = try await PostgresDeadline.run(within: configuration.operationTimeout) {
                try await connection.query("SELECT 1", logger: self.logger)
                return true
            }
            guard answered == true else { throw SyncError(.transportUnavailable, "PostgreSQL did not answer a heartbeat") }
        }
    }

    /// The heads of the namespaces with live subscribers on this node (read again after a reconnect).
    private func watchedHeads(_ connection: PostgresConnection) async throws -> [Namespace: UInt64] {
        let namespaces = Array(watched.withLock { $0 })
        guard !namespaces.isEmpty else { return [:] }
        return try await PostgresStatements(connection: connection, logger: logger).heads(namespaces)
    }

    func setOutage(_ reason: String?) {
        let changed = outageReason.withLock { current -> Bool in
            defer { current = reason }
            return current != reason
        }
        guard changed else { return }
        if let reason {
            logger.warning("PostgreSQL unavailable: requests get 503", metadata: ["syncline.reason": "\(reason)"])
        } else {
            logger.info("PostgreSQL available", metadata: ["syncline.schema": "\(configuration.schema)"])
        }
    }

    /// Closes without waiting: awaiting the close of a connection the server already dropped can
    /// hang (seen when a backend was terminated and the node shut down right after).
    static func close(_ connection: PostgresConnection, logger: Logger) {
        let closed: EventLoopFuture<Void> = connection.close()
        closed.whenComplete { result in
            // The connection lives until it is closed (postgres-nio asserts that it is at deinit).
            withExtendedLifetime(connection) {}
            if case .failure(let error) = result {
                logger.debug("closing a PostgreSQL connection failed", metadata: ["syncline.error": "\(describe(error))"])
            }
        }
    }

    /// Waits `delay`; false when cancelled (a shutdown) instead.
    static func pause(_ delay: Duration) async -> Bool {
        do {
            try await Task.sleep(for: delay)
            return true
        } catch {
            return false
        }
    }

    static func jittered(_ delay: Duration) -> Duration {
        delay * Double.random(in: 0.5...1.0)
    }

    // MARK: Errors

    /// The `503` answer: PostgreSQL cannot be used now.
    func unavailable(_ reason: String) -> SyncError {
        SyncError(.transportUnavailable, "the database is unavailable: \(reason); retry later", limit: configuration.retryAfterSeconds)
    }

    /// A PostgreSQL failure as the protocol answers it: lost or refused connections, timeouts and
    /// server shutdowns are `503` (retry), other server errors `500` with their SQLSTATE.
    func translate(_ error: any Error) -> any Error {
        switch error {
        case is SyncError, is CancellationError:
            return error
        case let error as PSQLError:
            if error.code == .server {
                let state = error.serverInfo?[.sqlState] ?? "?"
                let message = error.serverInfo?[.message] ?? "no message"
                // 08: connection exceptions; 57P: operator intervention (shutdown); 53: resources.
                if state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53") {
                    return unavailable("PostgreSQL \(state): \(message)")
                }
                return SyncError(.storage, "PostgreSQL \(state): \(message)")
            }
            return unavailable("PostgreSQL connection: \(error.code)")
        default:
            // The pool's own errors (no connection could be made, the pool is shutting down).
            return unavailable(Self.describe(error))
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return "\(error.code): \(message)" }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }
}
