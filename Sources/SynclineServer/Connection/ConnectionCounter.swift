import Synchronization

/// Counts the server's open connections against its cap (``SyncServerConfiguration/maxConnections``).
///
/// Every accepted connection is counted until it closes, refused ones too (they hold a file
/// descriptor until the refusal is sent).
final class ConnectionCounter: Sendable {
    enum Admission: Equatable {
        case admitted
        /// Over the cap; `first` when the connection before it was admitted (log once per episode).
        case refused(first: Bool)
    }

    let limit: Int?
    private let state = Mutex(State())

    private struct State {
        var open = 0
        var refusing = false
    }

    init(limit: Int?) {
        self.limit = limit
    }

    /// Counts a new connection and says whether it is within the cap.
    func open() -> Admission {
        state.withLock { state in
            state.open += 1
            guard let limit, state.open > limit else {
                state.refusing = false
                return .admitted
            }
            defer { state.refusing = true }
            return .refused(first: !state.refusing)
        }
    }

    func close() {
        state.withLock { $0.open -= 1 }
    }

    /// Connections open now.
    var openConnections: Int { state.withLock { $0.open } }
}
