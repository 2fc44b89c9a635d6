import Synchronization

/// Delivers events to any number of subscribers, each with a bounded buffer: a subscriber that
/// does not keep up loses its oldest undelivered events, never blocks the pipeline, and is told:
/// after a loss, an ``SyncEvent/eventsDropped(total:)`` with the number lost so far comes before
/// the next event.
public final class EventBus: Sendable {
    private struct Subscriber {
        var continuation: AsyncStream<SyncEvent>.Continuation
        /// Events this subscriber lost (its buffer was full), and the total it was last told.
        var dropped = 0
        var told = 0

        /// Yields `event`, first telling the subscriber how many events it lost when that grew.
        mutating func deliver(_ event: SyncEvent) {
            if dropped > told {
                told = dropped
                count(continuation.yield(.eventsDropped(total: told)))
            }
            count(continuation.yield(event))
        }

        /// Counts an event the buffer let go to make room (an older notice of losses is not one).
        private mutating func count(_ result: AsyncStream<SyncEvent>.Continuation.YieldResult) {
            guard case .dropped(let lost) = result else { return }
            if case .eventsDropped = lost { return }
            dropped += 1
        }
    }

    private let subscribers = Mutex<[Int: Subscriber]>([:])
    /// Synchronous observers, called inside `emit` (for tests that must not depend on scheduling).
    private let observers = Mutex<[Int: @Sendable (SyncEvent) -> Void]>([:])
    private let nextID = Atomic<Int>(0)
    public let bufferSize: Int

    public init(bufferSize: Int = 256) { self.bufferSize = bufferSize }

    /// A new subscription; it ends when the stream is dropped or the bus finishes.
    public func subscribe() -> AsyncStream<SyncEvent> {
        let (stream, continuation) = AsyncStream<SyncEvent>.makeStream(bufferingPolicy: .bufferingNewest(bufferSize))
        let id = nextID.add(1, ordering: .relaxed).newValue
        subscribers.withLock { $0[id] = Subscriber(continuation: continuation) }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        return stream
    }

    public func emit(_ event: SyncEvent) {
        subscribers.withLock { subscribers in
            for index in subscribers.indices { subscribers.values[index].deliver(event) }
        }
        for observer in observers.withLock({ $0.values }) { observer(event) }
    }

    /// Calls `handler` with every event, synchronously, as it is emitted. Keep it short.
    /// - Returns: what ``removeObserver(_:)`` takes to stop the calls.
    @discardableResult
    package func observe(_ handler: @escaping @Sendable (SyncEvent) -> Void) -> Int {
        let id = nextID.add(1, ordering: .relaxed).newValue
        observers.withLock { $0[id] = handler }
        return id
    }

    package func removeObserver(_ id: Int) {
        _ = observers.withLock { $0.removeValue(forKey: id) }
    }

    public func finish() {
        let current = subscribers.withLock { subscribers in
            defer { subscribers.removeAll() }
            return subscribers.values.map(\.continuation)
        }
        for continuation in current { continuation.finish() }
    }
}
