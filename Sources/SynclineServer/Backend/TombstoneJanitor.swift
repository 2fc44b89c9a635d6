public import Logging
public import ServiceLifecycle
import Syncline

/// Forgets tombstones older than the retention period, every `interval` (DESIGN §4): devices
/// whose cursor is older than a namespace's new horizon get 410 and pull a snapshot again.
/// Runs as a service next to the server; a graceful shutdown ends it.
public struct TombstoneJanitor: Service {
    let backend: any ServerBackend
    let retention: Duration
    let interval: Duration
    let clock: @Sendable () -> UInt64
    let logger: Logger

    public init(
        backend: any ServerBackend, retention: Duration, interval: Duration, clock: @escaping @Sendable () -> UInt64,
        logger: Logger
    ) {
        self.backend = backend
        self.retention = retention
        self.interval = interval
        self.clock = clock
        self.logger = logger
    }

    public func run() async throws {
        let retentionMillis = UInt64(retention.components.seconds) * 1_000 + UInt64(retention.components.attoseconds / 1_000_000_000_000_000)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let now = clock()
            let cutoff = now > retentionMillis ? now - retentionMillis : 0
            do {
                let horizons = try await backend.purgeTombstones(olderThan: cutoff)
                for (namespace, horizon) in horizons {
                    logger.debug("tombstones purged", metadata: ["syncline.ns": "\(namespace)", "syncline.horizon": "\(horizon)"])
                }
            } catch let error as SyncError where error.code == .transportUnavailable {
                // The backend's database is not reachable now (it says so on /healthz; at start it
                // may still be connecting): this sweep is skipped, the next one purges.
                logger.debug("tombstone purge skipped", metadata: ["syncline.error": "\(error)"])
            } catch {
                logger.error("tombstone purge failed", metadata: ["syncline.error": "\(error)"])
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return  // cancelled or shutting down
            }
        }
    }
}
