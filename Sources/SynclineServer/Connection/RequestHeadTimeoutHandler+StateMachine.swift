extension RequestHeadTimeoutHandler {
    /// When a request head is due: from the moment a connection opens, and from the first byte of
    /// each later request on it, until that request's head is complete (or the server starts
    /// answering, as it does for a WebSocket upgrade). Between requests the idle timeout governs.
    struct StateMachine: Equatable {
        enum State: Equatable {
            /// A request head is due: the deadline runs.
            case awaitingHead
            /// A request is being read or answered.
            case inRequest
            /// Between requests on a kept-alive connection.
            case idle
        }

        enum Action: Equatable {
            case startDeadline
            case cancelDeadline
            case close
            case none
        }

        private(set) var state: State = .awaitingHead

        /// The connection opened: its first request head is due.
        mutating func connectionOpened() -> Action {
            state = .awaitingHead
            return .startDeadline
        }

        /// Bytes arrived: between requests they start the next head's deadline.
        mutating func bytesRead() -> Action {
            guard state == .idle else { return .none }
            state = .awaitingHead
            return .startDeadline
        }

        /// The HTTP decoder completed a request head.
        mutating func headReceived() -> Action {
            let wasDue = state == .awaitingHead
            state = .inRequest
            return wasDue ? .cancelDeadline : .none
        }

        /// The server writes: it read a request (an upgrade's `101` or an early answer).
        mutating func responseWritten() -> Action {
            guard state == .awaitingHead else { return .none }
            state = .inRequest
            return .cancelDeadline
        }

        /// The answer to the request in progress is complete.
        mutating func responseFinished() {
            if state == .inRequest { state = .idle }
        }

        /// The deadline passed.
        mutating func deadlinePassed() -> Action {
            state == .awaitingHead ? .close : .none
        }
    }
}
