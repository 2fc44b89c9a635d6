/// Validates and commits local writes with group commit: writers that arrive while a commit is
/// running share the next store transaction. Each caller's `await` returns only after its own
/// write is durable.
package actor Ingest {
    private let local: LocalStore
    /// Writes waiting for the next transaction, each with the caller to resume (the leader's own
    /// write has none).
    private var pending: [(Mutation, CheckedContinuation<MutationOutcome, any Error>?)] = []
    private var flushing = false
    /// How many transactions were committed, and how many writes they carried.
    package private(set) var transactions = 0
    package private(set) var writes = 0

    package init(local: LocalStore) { self.local = local }

    /// Writes waiting for the next transaction.
    package var queued: Int { pending.count }

    package func submit(_ mutation: Mutation) async throws -> MutationOutcome {
        if flushing {
            return try await withCheckedThrowingContinuation { pending.append((mutation, $0)) }
        }
        // This caller commits its own write and, while it waits, everything that queues up
        // behind it; then it returns its own result.
        flushing = true
        defer { flushing = false }
        var own: Result<MutationOutcome, SyncError>?
        var batch: [(Mutation, CheckedContinuation<MutationOutcome, any Error>?)] = [(mutation, nil)]
        while !batch.isEmpty {
            let results = await local.commit(batch.map(\.0))
            transactions += 1
            writes += batch.count
            var waiters: [(CheckedContinuation<MutationOutcome, any Error>, Result<MutationOutcome, any Error>)] = []
            waiters.reserveCapacity(batch.count)
            for ((_, waiting), result) in zip(batch, results) {
                if let waiting { waiters.append((waiting, result.mapError { $0 as any Error })) } else { own = result }
            }
            if pending.isEmpty {
                for (waiting, result) in waiters { waiting.resume(with: result) }
            } else {
                // The next transaction starts at once; the writers of this one are resumed
                // meanwhile by a short task, in parallel with it (this halves the gap between commits).
                Task { for (waiting, result) in waiters { waiting.resume(with: result) } }
            }
            // The next batch takes the queue's storage; the queue reuses the finished batch's.
            swap(&batch, &pending)
            pending.removeAll(keepingCapacity: true)
        }
        return try own!.get()  // set by the first batch, which holds this caller's write
    }
}
