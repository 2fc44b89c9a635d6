public import Syncline
import Synchronization

/// Wraps a backend and records, per event id, how many times it was applied, the fields on
/// which it lost, and whether it was rejected: the ground truth the simulator and the tests check
/// "nothing lost, nothing applied twice, every lost write reported" against. Memory grows with
/// the changes seen; meant for simulations and tests, not production.
public final class RecordingBackend: ServerBackend {
    private struct Record {
        var applications: [EventID: Int] = [:]
        var losses: [EventID: [String]] = [:]
        var rejected: Set<EventID> = []
    }

    public let base: any ServerBackend
    private let record = Mutex(Record())

    public init(_ base: any ServerBackend) { self.base = base }

    /// How many times each event id was applied.
    public var applications: [EventID: Int] { record.withLock { $0.applications } }
    /// Changes that lost on some fields (lww) or were rejected, with those fields.
    public var losses: [EventID: [String]] { record.withLock { $0.losses } }
    /// Changes the server answered with `rejected`: decided, not lost.
    public var rejected: Set<EventID> { record.withLock { $0.rejected } }

    public func applyValidated(_ batch: ChangeBatch, namespace: Namespace) async throws -> ServerEngine.PushOutcome {
        let outcome = try await base.applyValidated(batch, namespace: namespace)
        record.withLock { record in
            for (id, lost) in outcome.applied {
                record.applications[id, default: 0] += 1
                if !lost.isEmpty { record.losses[id] = lost }
            }
            for (id, conflicts) in outcome.rejected {
                record.losses[id] = conflicts
                record.rejected.insert(id)
            }
        }
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
