public import Syncline

/// Where a sync server keeps its namespaces (DESIGN §6). Every backend runs the shared
/// ``ServerEngine`` (merge rules, idempotency, coalesced pulls), so they cannot disagree; a
/// backend only stores and finds records.
public protocol ServerBackend: Sendable {
    /// Applies, as one transaction, a batch that passed ``ServerEngine/validate(_:configuration:serverTime:)``.
    func applyValidated(_ batch: ChangeBatch, namespace: Namespace) async throws -> ServerEngine.PushOutcome
    /// A page of changes after `cursor`, starting past `position`; `.resyncRequired` when `epoch`
    /// is given and is not the namespace's.
    func pull(
        namespace: Namespace, after cursor: UInt64, from position: UInt64, limit: Int, collections: Set<CollectionName>?,
        epoch: Epoch?, configuration: ServerEngine.Configuration
    ) async throws -> PullPage
    /// The namespace's head seq (0 for a namespace never written).
    func head(namespace: Namespace) async throws -> UInt64
    /// The namespace's epoch (see ``Epoch``).
    func epoch(namespace: Namespace) async throws -> Epoch
    /// Forgets tombstones written at or before `seq`; cursors older than that must resync (410).
    func purgeTombstones(namespace: Namespace, through seq: UInt64) async throws
    /// Forgets, in every namespace, the tombstones of deletes made before `cutoff` (Unix ms, by
    /// the delete's HLC); returns each namespace's new horizon.
    func purgeTombstones(olderThan cutoff: UInt64) async throws -> [Namespace: UInt64]
    /// The namespace's head after each commit on this backend, for live connections (the newest
    /// only when the reader is slow).
    func subscribe(namespace: Namespace) async -> AsyncStream<UInt64>
    /// Why the backend cannot serve requests now (its database is unreachable, say), or `nil`
    /// when it can: requests are then answered `503` with `Retry-After`, and `/healthz` says why.
    func outage() async -> String?
}

extension ServerBackend {
    /// An embedded backend is always there.
    public func outage() async -> String? { nil }
}

extension ServerBackend {
    /// One push as the server answers it, over REST or the live socket: checked against the
    /// limits and the clock, applied, counted in the metrics.
    func accept(
        _ batch: ChangeBatch, namespace: Namespace, configuration: SyncServerConfiguration, metrics: ServerMetrics
    ) async throws -> PushResponse {
        let serverTime = configuration.clock()
        try ServerEngine.validate(batch, configuration: configuration.engine, serverTime: serverTime)
        let outcome = try await applyValidated(batch, namespace: namespace)
        metrics.record(push: outcome.summary)
        return PushResponse(results: outcome.results, head: outcome.head, serverTime: serverTime, epoch: outcome.epoch)
    }
}

extension InMemorySyncServer: ServerBackend {
    public func purgeTombstones(olderThan cutoff: UInt64) async throws -> [Namespace: UInt64] {
        var horizons: [Namespace: UInt64] = [:]
        for namespace in namespaceNames {
            let old = records(namespace: namespace).values.filter { $0.deleted && ($0.tombstone?.wallMillis ?? 0) < cutoff }
            guard let through = old.map(\.seq).max() else { continue }
            purgeTombstones(namespace: namespace, through: through)
            horizons[namespace] = through + 1
        }
        return horizons
    }

    public func pull(
        namespace: Namespace, after cursor: UInt64, from position: UInt64, limit: Int, collections: Set<CollectionName>?,
        epoch: Epoch?, configuration: ServerEngine.Configuration
    ) async throws -> PullPage {
        try pull(namespace: namespace, after: cursor, from: position, limit: limit, collections: collections, epoch: epoch)
    }
}
