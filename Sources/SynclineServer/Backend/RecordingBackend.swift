public import Syncline
import Synchronization

/// Wraps a backend and keeps a ``LossLedger`` of what it applied: the ground truth the simulator
/// and the tests check "nothing lost, nothing applied twice, every lost write reported" against.
/// Memory grows with the changes seen; meant for simulations and tests, not production.
public final class RecordingBackend: ServerBackend {
    public let base: any ServerBackend
    private let ledger = Mutex(LossLedger())

    public init(_ base: any ServerBackend) { self.base = base }

    /// How many times each event id was applied.
    public var applications: [EventID: Int] { ledger.withLock { $0.applications } }
    /// Changes that lost on some fields (at their push or replaced later) or were rejected, with those fields.
    public var losses: [EventID: LossLedger.Loss] { ledger.withLock { $0.losses } }
    /// Changes the server answered with `rejected`: decided, not lost.
    public var rejected: Set<EventID> { ledger.withLock { $0.rejected } }

    public func applyValidated(_ batch: ChangeBatch, namespace: Namespace) async throws -> ServerEngine.PushOutcome {
        let outcome = try await base.applyValidated(batch, namespace: namespace)
        ledger.withLock { $0.record(batch, outcome) }
        return outcome
    }

    public func pull(
        namespace: Namespace, after cursor: UInt64, from position: UInt64, limit: Int, collections: Set<CollectionName>?,
        epoch: Epoch?, configuration: ServerEngine.Configuration
    ) async throws -> PullPage {
        try await base.pull(
            namespace: namespace, after: cursor, from: position, limit: limit, collections: collections, epoch: epoch,
            configuration: configuration
        )
    }

    public func head(namespace: Namespace) async throws -> UInt64 { try await base.head(namespace: namespace) }

    public func epoch(namespace: Namespace) async throws -> Epoch { try await base.epoch(namespace: namespace) }

    public func purgeTombstones(namespace: Namespace, through seq: UInt64) async throws {
        try await base.purgeTombstones(namespace: namespace, through: seq)
    }

    public func purgeTombstones(olderThan cutoff: UInt64) async throws -> [Namespace: UInt64] {
        try await base.purgeTombstones(olderThan: cutoff)
    }

    public func subscribe(namespace: Namespace) async -> AsyncStream<UInt64> { await base.subscribe(namespace: namespace) }

    public func outage() async -> String? { await base.outage() }
}
