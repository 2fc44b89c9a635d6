import Synchronization

/// Something that happened in the pipeline, for the app's UI and logs.
public enum SyncEvent: Sendable {
    case syncStarted
    case syncFinished(SyncStats)
    /// Changes pushed so far out of the outbox's size when the push began, in changes and in
    /// their binary-encoded bytes (before compression; changes queued during the push raise
    /// `total` and `bytesTotal` only as they are pushed).
    case pushProgress(done: Int, total: Int, bytesDone: Int, bytesTotal: Int)
    /// Entries pulled so far out of what the server said remained.
    case pullProgress(done: Int, total: Int)
    case connectivity(Connectivity)
    case conflictDetected(ConflictReport)
    case conflictResolved(ConflictReport)
    /// Nothing drained for the configured time while changes were pending.
    case outboxStalled(reason: String)
    case error(SyncErrorEvent)
    /// Records whose visible state changed, by a local write or a remote one.
    case recordsChanged([RecordKey], origin: ChangeOrigin)
    /// This subscriber's buffer was full and it lost its oldest events: `total` lost since it
    /// subscribed. (Live queries do not depend on the stream: they miss nothing.)
    case eventsDropped(total: Int)
}

public enum ChangeOrigin: Sendable, Hashable {
    case local
    case remote
}

public enum Connectivity: Sendable, Hashable {
    case online
    case offline
    /// The server refused the token ``SyncClient/Configuration/maxUnauthorized`` times in a row
    /// (the transport asked its token provider for a fresh one each time): the background loop
    /// stops trying and waits for the app to fix its credentials and call ``SyncClient/start()``
    /// (or ``SyncClient/sync()``).
    case unauthorized
}

/// A conflict in which a local write did not (entirely) win.
public struct ConflictReport: Sendable, Hashable {
    /// The id of the local change that met the conflict.
    public var changeID: EventID
    public var key: RecordKey
    /// The fields in conflict.
    public var fields: [String]
    /// The policy that handled it (its name).
    public var policy: String
    /// What this device wrote for those fields.
    public var local: [String: Value]
    /// What the server holds for them (empty when the record is deleted there).
    public var server: [String: Value]
}

/// An error with the record and change it concerns, when known.
public struct SyncErrorEvent: Sendable {
    public var error: SyncError
    public var key: RecordKey?
    public var changeID: EventID?
}

/// What one `sync()` did.
public struct SyncStats: Sendable, Hashable {
    public var pushed = 0
    public var pulled = 0
    public var conflicts = 0
    public var resolved = 0
    public var errors = 0
    public var bytesUp = 0
    public var bytesDown = 0
    public var duration: Duration = .zero

    public init() {}

    /// Adds the counts of another part of the same sync (the duration is the caller's).
    package mutating func add(_ other: SyncStats) {
        pushed += other.pushed
        pulled += other.pulled
        conflicts += other.conflicts
        resolved += other.resolved
        errors += other.errors
        bytesUp += other.bytesUp
        bytesDown += other.bytesDown
    }
}

/// A change the server refused for good, kept out of the outbox until the app retries or
/// discards it.
public struct DeadLetter: Sendable, Hashable {
    public var change: Change
    public var priority: Priority
    /// What the server said.
    public var error: SyncError
    /// Unix milliseconds when it was set aside.
    public var failedAt: UInt64

    public init(change: Change, priority: Priority, error: SyncError, failedAt: UInt64) {
        self.change = change
        self.priority = priority
        self.error = error
        self.failedAt = failedAt
    }
}
