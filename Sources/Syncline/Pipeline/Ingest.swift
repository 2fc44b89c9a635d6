import Synchronization

/// Validates and commits local writes with group commit: writers that arrive while a commit is
/// running share the next store transaction. Each caller's `await` returns only after its own
/// write is durable.
package actor Ingest {
    private let local: LocalStore
    private var pending: [(Mutation, Ticket<MutationOutcome>)] = []
    private var flushing = false
    /// How many transactions were committed, and how many writes they carried.
    package private(set) var transactions = 0
    package private(set) var writes = 0

    package init(local: LocalStore) { self.local = local }

    /// Writes waiting for the next transaction.
    package var queued: Int { pending.count }

    package func submit(_ mutation: Mutation) async throws -> MutationOutcome {
        let ticket = Ticket<MutationOutcome>()
        pending.append((mutation, ticket))
        if !flushing {
            // This caller commits for everyone who queues up meanwhile, then returns.
            flushing = true
            while !pending.isEmpty {
                let batch = pending
                pending = []
                let results = await local.commit(batch.map(\.0))
                transactions += 1
                writes += batch.count
                for ((_, waiting), result) in zip(batch, results) { waiting.complete(result) }
            }
            flushing = false
        }
        return try await ticket.value()
    }
}

/// A one-shot result that one task completes and another awaits.
final class Ticket<Value: Sendable>: Sendable {
    private let state = Mutex<(result: Result<Value, SyncError>?, waiter: CheckedContinuation<Value, any Error>?)>((nil, nil))

    func complete(_ result: Result<Value, SyncError>) {
        let waiter = state.withLock { state -> CheckedContinuation<Value, any Error>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.result = result
            return nil
        }
        waiter?.resume(with: result.mapError { $0 as any Error })
    }

    func value() async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<Value, SyncError>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready.mapError { $0 as any Error }) }
        }
    }
}
