import Synchronization

/// Runs work on PostgreSQL with a deadline that holds even when the work does not end on
/// cancellation (a query on a connection the server dropped can wait for an answer that never
/// comes): past the deadline the caller gets `nil` at once and the work is cancelled and left to
/// end by itself. A task group cannot do this: it waits for every child, cancelled or not.
enum PostgresDeadline {
    /// `operation`'s result, or `nil` when `timeout` passed first.
    static func run<Result: Sendable>(
        within timeout: Duration, _ operation: @escaping @Sendable () async throws -> Result
    ) async throws -> Result? {
        let race = Race<Result>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result?, any Error>) in
                race.waiter.withLock { $0 = continuation }
                // Both tasks end soon after the answer: the work when it returns or is cancelled,
                // the timer when its sleep is cancelled.
                let timer = Task {
                    do {
                        try await Task.sleep(for: timeout)
                    } catch {
                        return  // the work answered first
                    }
                    guard let continuation = race.waiter.withLock({ $0.take() }) else { return }
                    race.work.withLock { $0?.cancel() }
                    continuation.resume(returning: nil)
                }
                let task = Task {
                    let result: Swift.Result<Result?, any Error>
                    do {
                        result = .success(try await operation())
                    } catch {
                        result = .failure(error)
                    }
                    // The answer is taken before the timer is stopped, so a stopped timer finds nothing to answer.
                    let continuation = race.waiter.withLock { $0.take() }
                    timer.cancel()
                    continuation?.resume(with: result)
                }
                race.work.withLock { $0 = task }
            }
        } onCancel: {
            race.work.withLock { $0?.cancel() }
            race.waiter.withLock { $0.take() }?.resume(throwing: CancellationError())
        }
    }

    /// Who answers first: the work or the timer.
    private final class Race<Result: Sendable>: Sendable {
        let waiter = Mutex<CheckedContinuation<Result?, any Error>?>(nil)
        let work = Mutex<Task<Void, Never>?>(nil)
    }
}
