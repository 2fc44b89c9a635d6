/// How changes travel between a device and a server (DESIGN §3): push a batch, pull a page, and
/// hear about new commits. `InMemoryTransport` talks to an ``InMemorySyncServer``; the network
/// transports live in `SynclineNetwork`. Any other backend can be plugged in by implementing this.
///
/// Errors are ``SyncError``s the outbox classifies: `.transportUnavailable` (retry with backoff),
/// `.unauthorized` (ask for a new token, then back off), `.resyncRequired` (pull again from 0),
/// anything else about a whole batch is treated as transient too.
public protocol SyncTransport: Sendable {
    func push(_ batch: ChangeBatch) async throws -> PushResponse
    /// A page of remote changes: records changed after `cursor`, starting past `position`
    /// (where the previous page of the same pull ended; `cursor` for the first page). `epoch` is
    /// the namespace epoch the cursor belongs to (`nil` before the device knows one); a server
    /// whose epoch differs answers `.resyncRequired`.
    func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage
    /// The same, leaving out the entries that carry only `device`'s own writes (the device knows
    /// them from its acknowledgements; see ``PullPage/leaveOut(writesOf:)``). The default sends
    /// everything, which is always correct, only more.
    func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?, leavingOut device: UInt64?) async throws -> PullPage
    /// Where the device's applied state stands: the reconciler says it (it owns the cursor) when a
    /// pull begins and ends and when live updates start, and a transport with a live channel
    /// resumes there; the default does nothing.
    func resume(from cursor: UInt64, epoch: Epoch?) async
    /// Pages the server sends unasked, for the reconciler to apply as they come (one reader at a
    /// time: a new call ends the previous stream). The stream keeps the newest pages when the
    /// reader is slow; a page lost that way leaves a gap the reconciler fills with a pull. The
    /// default has none (the stream finishes at once).
    func livePages() async -> AsyncStream<LivePage>
    /// The server's head after every commit, for live updates; a transport without a live channel
    /// returns a stream that finishes at once.
    func liveHeads() async -> AsyncStream<UInt64>
    /// Bytes sent and received on the wire so far, after compression; `nil` for a transport
    /// without a wire (sync statistics then count the binary codec's size).
    var traffic: TransportTraffic? { get }
}

extension SyncTransport {
    public var traffic: TransportTraffic? { nil }

    public func resume(from cursor: UInt64, epoch: Epoch?) async {}

    public func livePages() async -> AsyncStream<LivePage> { AsyncStream { $0.finish() } }

    public func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?, leavingOut device: UInt64?) async throws -> PullPage {
        try await pull(after: cursor, from: position, limit: limit, epoch: epoch)
    }

    /// A pull that sends no epoch (served from `cursor` whatever the namespace's epoch is).
    public func pull(after cursor: UInt64, from position: UInt64, limit: Int) async throws -> PullPage {
        try await pull(after: cursor, from: position, limit: limit, epoch: nil)
    }
}
