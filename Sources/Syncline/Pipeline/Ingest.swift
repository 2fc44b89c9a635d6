import Synchronization

/// Queues local writes for group commit: writers that arrive while a commit is running share the
/// next store transaction. Each caller's `await` returns only after its own write is durable.
///
/// The queue is guarded by a lock rather than being an actor of its own (a departure from
/// DESIGN §3, see the README's Decisions): a writer queues without an executor hop, and the
/// commit loop runs on the ``LocalStore`` actor from one transaction to the next without leaving
/// it, so the store never waits for the writers' hops between commits.
package final class Ingest: Sendable {
    /// A queued write and the caller to resume with its outcome.
    package typealias Waiter = (mutation: Mutation, continuation: CheckedContinuation<MutationOutcome?, any Error>)

    private struct State {
        var pending: [Waiter] = []
        /// Whether a commit loop is running; writers that find one running queue behind it.
        var flushing = false
        var transactions = 0
        var writes = 0
    }

    private let local: LocalStore
    private let state = Mutex(State())

    package init(local: LocalStore) { self.local = local }

    /// Writes waiting for the next transaction.
    package var queued: Int { state.withLock { $0.pending.count } }
    /// How many transactions were committed, and how many writes they carried.
    package var transactions: Int { state.withLock { $0.transactions } }
    package var writes: Int { state.withLock { $0.writes } }

    package func submit(_ mutation: Mutation) async throws -> MutationOutcome {
        while true {
            let leads = state.withLock { state in
                if state.flushing { return false }
                state.flushing = true
                return true
            }
            if leads {
                // This caller commits its own write and everything that queues up behind it, on
                // the store's actor, then returns its own result.
                return try await local.commitQueued(mutation, from: self).get()
            }
            // The continuation is queued under the same lock that ends a commit loop, so either a
            // running loop takes it, or (the loop ended meanwhile) it is resumed with nil at once
            // and this caller leads.
            let outcome: MutationOutcome? = try await withCheckedThrowingContinuation { continuation in
                let queued = state.withLock { state in
                    guard state.flushing else { return false }
                    state.pending.append((mutation, continuation))
                    return true
                }
                if !queued { continuation.resume(returning: nil) }
            }
            if let outcome { return outcome }
        }
    }

    /// Moves every queued write into `batch` (empty on entry; the queue takes over its storage),
    /// counting the transaction that just committed `committed` writes. When none is queued, the
    /// commit loop ends here.
    /// - Returns: whether `batch` holds writes to commit.
    func next(committed: Int, into batch: inout [Waiter]) -> Bool {
        state.withLock { state in
            state.transactions += 1
            state.writes += committed
            guard !state.pending.isEmpty else {
                state.flushing = false
                return false
            }
            swap(&batch, &state.pending)
            return true
        }
    }
}

extension LocalStore {
    /// How many transactions one turn of the group-commit loop commits before it lets other work
    /// on the store (reads, pulls) run.
    static let transactionsPerTurn = 8

    /// The group-commit loop: commits `first` in one transaction, then whatever ``Ingest`` queued
    /// meanwhile in the next, and so on. It stays on this actor between commits, so the store
    /// does not wait for the writers. After a few transactions a task takes the loop over: the
    /// caller gets its result, and work queued on the actor meanwhile runs first.
    /// - Returns: the outcome of `first`.
    func commitQueued(_ first: Mutation, from ingest: Ingest) -> Result<MutationOutcome, SyncError> {
        let own = commit([first])[0]
        var batch: [Ingest.Waiter] = []
        if ingest.next(committed: 1, into: &batch) { commitTurn(batch, from: ingest) }
        return own
    }

    /// Commits `batch` and the ones queued after it, for up to ``transactionsPerTurn``
    /// transactions, then hands what is queued to a new turn.
    private func commitTurn(_ first: [Ingest.Waiter], from ingest: Ingest) {
        var batch = first
        for _ in 0..<Self.transactionsPerTurn {
            let results = commit(batch.map(\.mutation))
            let resumptions = zip(batch.lazy.map(\.continuation), results).map { continuation, result in
                (continuation, result.map(Optional.some).mapError { $0 as any Error })
            }
            batch.removeAll(keepingCapacity: true)
            let more = ingest.next(committed: results.count, into: &batch)
            if resumptions.count <= 4 {
                for (continuation, result) in resumptions { continuation.resume(with: result) }
            } else {
                // A short task resumes the writers of this transaction, in parallel with the next
                // one (or with a new leader's first).
                Task { for (continuation, result) in resumptions { continuation.resume(with: result) } }
            }
            guard more else { return }
        }
        Task { [batch] in self.commitTurn(batch, from: ingest) }
    }
}
