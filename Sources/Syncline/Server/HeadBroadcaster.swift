import Synchronization

/// Announces each namespace's newest head seq to any number of subscribers: the in-memory
/// server, the server backends (for live connections) and the WebSocket transport (for its
/// client) all use it. Each stream holds only the newest value, so a slow reader never makes
/// anything queue up.
public final class HeadBroadcaster: Sendable {
    private struct State {
        var subscribers: [Namespace: [Int: AsyncStream<UInt64>.Continuation]] = [:]
        var latest: [Namespace: UInt64] = [:]
        /// The newest head subscribers were told.
        var announced: [Namespace: UInt64] = [:]
        var next = 0
        var finished = false
    }

    private let state = Mutex(State())

    public init() {}

    /// A stream of the namespace's head after each publish; it starts with `current`, or else
    /// with the newest head published so far, if any. After ``finish()`` it ends at once.
    public func subscribe(namespace: Namespace, current: UInt64? = nil) -> AsyncStream<UInt64> {
        let (stream, continuation) = AsyncStream<UInt64>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id: Int? = state.withLock { state in
            guard !state.finished else { return nil }
            defer { state.next += 1 }
            state.subscribers[namespace, default: [:]][state.next] = continuation
            if let first = current ?? state.latest[namespace] { continuation.yield(first) }
            return state.next
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers[namespace]?.removeValue(forKey: id) }
        }
        return stream
    }

    /// Records a head (the newest wins) and, with `notify`, tells every subscriber when it is newer
    /// than any head they were told (a push of duplicates, or a stale page, announces nothing).
    public func publish(_ head: UInt64, namespace: Namespace, notify: Bool = true) {
        let continuations = state.withLock { state -> [AsyncStream<UInt64>.Continuation] in
            state.latest[namespace] = max(state.latest[namespace] ?? 0, head)
            guard notify, state.announced[namespace].map({ head > $0 }) ?? true else { return [] }
            state.announced[namespace] = head
            return Array(state.subscribers[namespace, default: [:]].values)
        }
        for continuation in continuations { continuation.yield(head) }
    }

    /// The newest head published for the namespace.
    public func latest(namespace: Namespace) -> UInt64? { state.withLock { $0.latest[namespace] } }

    /// Ends every stream; later subscriptions end at once.
    public func finish() {
        let all = state.withLock { state -> [AsyncStream<UInt64>.Continuation] in
            state.finished = true
            defer { state.subscribers = [:] }
            return state.subscribers.values.flatMap(\.values)
        }
        for continuation in all { continuation.finish() }
    }
}
