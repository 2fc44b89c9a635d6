public import Logging
public import ServiceLifecycle
public import UnixSignals

/// Reloads credentials on `SIGHUP` without dropping a connection (DESIGN §6): each
/// ``Action`` (the tokens file, the JWKS, a TLS certificate…) rereads its file and swaps the result
/// in atomically. A file that fails to load keeps what was loaded before and logs an error; the
/// other actions still run.
///
/// ```swift
/// var reloads: [CredentialReloader.Action] = []
/// reloads.append(.init("JWKS jwks.json") { try await authenticator.replaceKeys(JSONWebKeySet(json: read("jwks.json"))) })
/// let reloader = await CredentialReloader(actions: reloads, logger: logger)   // SIGHUP is trapped from here on
/// // add `reloader` to the ServiceGroup; it ends on graceful shutdown
/// ```
public struct CredentialReloader: Service {
    /// One thing to reload: a name for the logs and the work.
    public struct Action: Sendable {
        public var name: String
        public var reload: @Sendable () async throws -> Void

        public init(_ name: String, reload: @escaping @Sendable () async throws -> Void) {
            self.name = name
            self.reload = reload
        }
    }

    public let actions: [Action]
    private let logger: Logger
    private let signals: UnixSignalsSequence

    /// Traps `signal` (SIGHUP by default) before it returns, so a signal sent once this returned
    /// reloads instead of ending the process.
    public init(actions: [Action], signal: UnixSignal = .sighup, logger: Logger) async {
        self.actions = actions
        self.logger = logger
        self.signals = await UnixSignalsSequence(trapping: signal)
    }

    /// Reloads on every signal until graceful shutdown.
    public func run() async throws {
        for await _ in signals.cancelOnGracefulShutdown() {
            await reloadAll()
        }
    }

    /// Runs every action once, as a signal does.
    /// - Returns: the names of the actions that failed (they keep their old credentials).
    @discardableResult
    public func reloadAll() async -> [String] {
        var failed: [String] = []
        for action in actions {
            do {
                try await action.reload()
                logger.info("reloaded", metadata: ["syncline.reload": "\(action.name)"])
            } catch {
                failed.append(action.name)
                logger.error(
                    "reload failed; keeping the previous credentials",
                    metadata: ["syncline.reload": "\(action.name)", "syncline.error": "\(error)"]
                )
            }
        }
        return failed
    }
}
