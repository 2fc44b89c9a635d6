/// The server's push and pull algorithms (DESIGN §4–§5), written once over two small protocols so
/// the in-memory reference server and every real backend run the same code: idempotency by
/// event id, seq assignment, ``MergeRules``, coalesced delta pages and the tombstone horizon.
public enum ServerEngine {
    /// What a backend remembers of an applied change, for idempotency.
    public struct AppliedChange: Sendable, Hashable {
        public var seq: UInt64
        public var fields: [String: FieldState]

        public init(seq: UInt64, fields: [String: FieldState]) {
            self.seq = seq
            self.fields = fields
        }
    }

    /// The limits every backend enforces the same way.
    public struct Configuration: Sendable {
        /// The most changes one push may carry. Default 5,000.
        public var maxBatchChanges: Int
        /// The most entries one pull page returns. Default 1,000.
        public var maxPageSize: Int
        /// Field and record sizes accepted; a batch with a change over them is refused whole.
        public var limits: Limits
        /// How far (milliseconds) a change's HLC may be ahead of the server's clock. Default 5 minutes.
        public var maxClockSkewMillis: UInt64

        public init(maxBatchChanges: Int = 5_000, maxPageSize: Int = 1_000, limits: Limits = .default, maxClockSkewMillis: UInt64 = 300_000) {
            self.maxBatchChanges = maxBatchChanges
            self.maxPageSize = maxPageSize
            self.limits = limits
            self.maxClockSkewMillis = maxClockSkewMillis
        }
    }

    /// How far a restore fence moves a namespace's head: 2^32 seqs, more than a namespace can
    /// plausibly have been written between a backup and its restore, so every seq a device could
    /// have seen before the restore is below the new head (see ``fence(head:horizon:)``).
    public static let fenceGap: UInt64 = 1 << 32

    /// A namespace's head and tombstone horizon after a restore fence (its epoch is replaced too).
    ///
    /// The new epoch alone makes every device that sends its epoch resync. The head moves as well so
    /// that (1) every later write gets a seq above any seq a device holds from before the restore:
    /// a pending change's `base` from then is still compared correctly (a write after the restore
    /// is concurrent to it), and (2) the horizon can be set to the new head, so a device that sends
    /// no epoch (an older client) but a cursor from before the restore gets `410 resync_required`
    /// too instead of skipping writes.
    public static func fence(head: UInt64, horizon: UInt64) -> (head: UInt64, horizon: UInt64) {
        let moved = head.addingReportingOverflow(fenceGap)
        let newHead = moved.overflow ? UInt64(Int64.max) : min(moved.partialValue, UInt64(Int64.max))
        return (newHead, max(horizon, newHead))
    }

    /// What one push did, change by change (for bookkeeping and metrics).
    public struct PushOutcome: Sendable {
        public var results: [PushResult]
        public var head: UInt64
        /// The namespace's epoch the seqs belong to.
        public var epoch: Epoch
        /// Event ids applied by this push (not duplicates), with the fields on which each lost.
        public var applied: [(id: EventID, lost: [String])]
        /// Event ids rejected, with the concurrent fields.
        public var rejected: [(id: EventID, conflicts: [String])]
        /// Applied writes (of earlier pushes) that this push's changes replaced concurrently.
        public var superseded: [SupersededWrite] = []
    }

    /// Checks a batch before anything is applied.
    /// - Throws: ``SyncError`` `.batchTooLarge` (with the limit), a change's validation error, or
    ///   `.clockSkew` naming the server time when a change's HLC is too far ahead of it.
    public static func validate(_ batch: ChangeBatch, configuration: Configuration, serverTime: UInt64) throws(SyncError) {
        guard batch.changes.count <= configuration.maxBatchChanges else {
            throw SyncError(
                .batchTooLarge,
                "a batch of \(batch.changes.count) changes is over the limit of \(configuration.maxBatchChanges)",
                limit: configuration.maxBatchChanges
            )
        }
        for change in batch.changes {
            try change.validate(configuration.limits)
            let millis = change.hlc.wallMillis
            if millis > serverTime &+ configuration.maxClockSkewMillis {
                throw SyncError(
                    .clockSkew,
                    "change \(change.id) has an HLC \(millis - serverTime) ms ahead of the server time \(serverTime); re-stamp it",
                    limit: Int(clamping: configuration.maxClockSkewMillis), serverTime: serverTime
                )
            }
        }
    }

    /// Applies a validated batch in order, each change once, inside the backend's transaction.
    public static func push(_ batch: ChangeBatch, into namespace: inout some ServerNamespaceWriter) throws -> PushOutcome {
        var head = try namespace.currentHead()
        let headBefore = head
        var outcome = PushOutcome(results: [], head: head, epoch: try namespace.epoch(), applied: [], rejected: [])
        outcome.results.reserveCapacity(batch.changes.count)
        for change in batch.changes {
            if let original = try namespace.applied(change.id) {
                outcome.results.append(.duplicate(id: change.id, seq: original.seq, fields: original.fields))
                continue
            }
            let current = try namespace.record(change.key)
            let merged = MergeRules.apply(change, to: current, seq: head + 1)
            if merged.consumedSeq, let record = merged.record {
                head += 1
                try namespace.store(record, replacing: current)
            }
            switch merged.result {
            case .applied(_, let seq, let fields):
                try namespace.remember(change.id, AppliedChange(seq: seq, fields: fields))
                outcome.applied.append((change.id, merged.lost))
                outcome.superseded.append(contentsOf: merged.superseded)
            case .rejected(_, let conflicts, _):
                outcome.rejected.append((change.id, conflicts))
            case .duplicate:
                break
            }
            outcome.results.append(merged.result)
        }
        if head != headBefore { try namespace.setHead(head) }
        outcome.head = head
        return outcome
    }

    /// Records changed after `cursor`, coalesced (one entry per record, only the fields written
    /// after the cursor), in the order of each record's latest seq, starting past `position`.
    ///
    /// Paging: while a page says `hasMore`, ask for the next one with the same `after` and `from`
    /// set to the page's `cursor`; the last page's `cursor` is the new `after`. Keeping `after`
    /// fixed for the whole pull is what makes paging safe: a record written again while the device
    /// pages moves past the position and comes later with every field written after `after`.
    ///
    /// `epoch` is the one the device knows: another than the namespace's means its cursor belongs
    /// to a timeline the server no longer has (it was restored from a backup); `nil` (a first pull,
    /// an older client) is served as it is.
    /// - Throws: ``SyncError`` `.resyncRequired` when `epoch` is not the namespace's or `cursor` is
    ///   older than the tombstone horizon, `.invalidCursor` when it or `position` is beyond the head,
    ///   or `position` is before `cursor`.
    public static func pull(
        from namespace: some ServerNamespaceReader, after cursor: UInt64, from position: UInt64? = nil, limit: Int,
        collections: Set<CollectionName>? = nil, epoch: Epoch? = nil, configuration: Configuration
    ) throws -> PullPage {
        let current = try namespace.epoch()
        try checkEpoch(epoch, current: current)
        let head = try namespace.currentHead()
        let position = position ?? cursor
        guard cursor <= head, position <= head, position >= cursor else {
            throw SyncError(
                .invalidCursor, "cursor \(cursor) / position \(position) must satisfy cursor <= position <= head \(head)"
            )
        }
        let horizon = try namespace.tombstoneHorizon()
        if cursor != 0 && cursor < horizon {
            throw SyncError(
                .resyncRequired, "cursor \(cursor) is older than the tombstone horizon \(horizon): pull again from 0"
            )
        }
        let pageSize = max(1, min(limit, configuration.maxPageSize))
        // A snapshot (after 0) starts with live records only. Its later pages also carry the
        // tombstones of records deleted while the device paged: one of them may have come live
        // in an earlier page.
        let liveOnly = cursor == 0 && position == 0
        let records = try namespace.latestRecords(after: position, collections: collections, liveOnly: liveOnly, limit: pageSize)
        let last = records.last?.seq ?? position
        // `remaining` is exact on a pull's first page (the device's progress total), at the cost
        // of the delta. A later page only says whether anything is left (one probe of the index)
        // and bounds it by the seqs after it: counting the rest on every page would make a pull of
        // N records cost N²/page (DESIGN §5, a recorded departure from "exact" on every page).
        // Later pages hold tombstones too, so neither reads live records only.
        let remaining: UInt64
        if records.count < pageSize {
            remaining = 0
        } else if position == cursor {
            remaining = try namespace.countLatestRecords(after: last, collections: collections)
        } else {
            let next = try namespace.latestRecords(after: last, collections: collections, liveOnly: false, limit: 1)
            remaining = next.isEmpty ? 0 : head - last
        }
        let hasMore = remaining > 0
        // With nothing left, the cursor moves to the head so an idle device does not rescan.
        return PullPage(
            changes: records.map { $0.remoteChange(after: cursor) }, cursor: hasMore ? last : head, hasMore: hasMore,
            remaining: remaining, head: head, epoch: current
        )
    }

    /// - Throws: ``SyncError`` `.resyncRequired` when the device's epoch is not the namespace's.
    public static func checkEpoch(_ known: Epoch?, current: Epoch) throws(SyncError) {
        if let known, known != current {
            throw SyncError(
                .resyncRequired,
                "epoch \(known) is not the namespace's epoch \(current) (the server was restored from a backup): pull again from 0"
            )
        }
    }
}

/// One namespace inside a backend's write transaction: what ``ServerEngine/push(_:into:)`` needs.
public protocol ServerNamespaceWriter {
    func currentHead() throws -> UInt64
    func epoch() throws -> Epoch
    /// The remembered result of an event id still inside the idempotency window.
    func applied(_ id: EventID) throws -> ServerEngine.AppliedChange?
    func record(_ key: RecordKey) throws -> ServerRecord?
    /// Stores a record at its new seq (`previous` is what `record(_:)` returned).
    mutating func store(_ record: ServerRecord, replacing previous: ServerRecord?) throws
    mutating func remember(_ id: EventID, _ applied: ServerEngine.AppliedChange) throws
    mutating func setHead(_ head: UInt64) throws
}

/// One namespace as ``ServerEngine/pull(from:after:from:limit:collections:epoch:configuration:)`` reads it.
public protocol ServerNamespaceReader {
    func currentHead() throws -> UInt64
    /// The namespace's epoch (a namespace never written has the server's current default one).
    func epoch() throws -> Epoch
    /// Cursors older than this must resync from 0 (tombstones before it are gone).
    func tombstoneHorizon() throws -> UInt64
    /// Records whose latest seq is after `position`, ascending by seq, at most `limit`.
    func latestRecords(after position: UInt64, collections: Set<CollectionName>?, liveOnly: Bool, limit: Int) throws -> [ServerRecord]
    /// How many records, tombstones included, have their latest seq after `position`.
    func countLatestRecords(after position: UInt64, collections: Set<CollectionName>?) throws -> UInt64
}
