import Synchronization

/// Outbox positions pushed whose answer the ``Reconciler`` has not applied yet. The outbox adds a
/// batch's positions when it cuts it and does not cut them again; the reconciler removes them once
/// their answer is in the store. It is how the outbox goes on with the next batch while the last
/// answer is applied, without a reply travelling back the way the data went.
package final class InFlight: Sendable {
    private struct State {
        var positions: Set<UInt64> = []
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    package init() {}

    package var positions: Set<UInt64> { state.withLock { $0.positions } }
    package var isEmpty: Bool { state.withLock { $0.positions.isEmpty } }

    package func insert(_ positions: some Sequence<UInt64>) {
        state.withLock { $0.positions.formUnion(positions) }
    }

    package func remove(_ positions: some Sequence<UInt64>) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.positions.subtract(positions)
            guard state.positions.isEmpty else { return [] }
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in woken { waiter.resume() }
    }

    /// Returns when nothing is in flight, or when the calling task is cancelled.
    package func waitUntilEmpty() async {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    if state.positions.isEmpty || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
