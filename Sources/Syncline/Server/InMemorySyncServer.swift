/// The reference sync server, in memory: protocol v1's semantics (DESIGN §4–§5) without a
/// network. Per namespace it keeps one seq counter, the records with per-field seqs, an index of
/// each record's latest seq (so a pull costs what changed, not the history), the results of
/// applied event ids (idempotency), and a tombstone horizon.
///
/// The merge and conflict rules live in ``MergeRules``; the network server calls the same code.
public actor InMemorySyncServer {
    public struct Configuration: Sendable {
        /// The most changes one push may carry. Default 5,000.
        public var maxBatchChanges: Int
        /// How many applied event ids are remembered per namespace for idempotency. Default 1,000,000.
        public var idempotencyWindow: Int
        /// The most entries one pull page returns. Default 1,000.
        public var maxPageSize: Int
        /// Server time in Unix milliseconds (injected so tests control it).
        public var clock: @Sendable () -> UInt64
        /// Field and record sizes accepted; a batch with a change over them is refused whole.
        public var limits: Limits

        public init(
            maxBatchChanges: Int = 5_000, idempotencyWindow: Int = 1_000_000, maxPageSize: Int = 1_000,
            clock: @escaping @Sendable () -> UInt64 = { WallClock.nowMillis() }, limits: Limits = .default
        ) {
            self.limits = limits
            self.maxBatchChanges = maxBatchChanges
            self.idempotencyWindow = idempotencyWindow
            self.maxPageSize = maxPageSize
            self.clock = clock
        }
    }

    public let configuration: Configuration
    private var namespaces: [Namespace: NamespaceState] = [:]
    private var subscribers: [Namespace: [Int: AsyncStream<UInt64>.Continuation]] = [:]
    private var nextSubscriber = 0

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    // MARK: Push

    /// Applies a batch in order, each change once.
    /// - Throws: ``SyncError`` `.batchTooLarge` when the batch has more changes than allowed; the
    ///   change's validation error (`.fieldTooLarge`, `.invalidFieldName`, ...) when one change is
    ///   invalid. Either way nothing of the batch is applied.
    public func push(_ batch: ChangeBatch, namespace: Namespace) throws(SyncError) -> PushResponse {
        guard batch.changes.count <= configuration.maxBatchChanges else {
            throw SyncError(
                .batchTooLarge,
                "a batch of \(batch.changes.count) changes is over the limit of \(configuration.maxBatchChanges)"
            )
        }
        for change in batch.changes { try change.validate(configuration.limits) }
        var state = namespaces[namespace] ?? NamespaceState()
        var results: [PushResult] = []
        results.reserveCapacity(batch.changes.count)
        let headBefore = state.head
        for change in batch.changes {
            if let original = state.applied[change.id] {
                results.append(.duplicate(id: change.id, seq: original.seq, fields: original.fields))
                continue
            }
            let key = change.key
            let outcome = MergeRules.apply(change, to: state.records[key], seq: state.head + 1)
            if outcome.consumedSeq, let record = outcome.record {
                state.head += 1
                state.store(record)
            }
            if case .applied(_, let seq, let fields) = outcome.result {
                state.remember(change.id, seq: seq, fields: fields, window: configuration.idempotencyWindow)
                state.applications[change.id, default: 0] += 1
                if !outcome.lost.isEmpty { state.losses[change.id] = outcome.lost }
            } else if case .rejected(_, let conflicts, _) = outcome.result {
                state.losses[change.id] = conflicts
            }
            results.append(outcome.result)
        }
        namespaces[namespace] = state
        if state.head != headBefore { notify(namespace, head: state.head) }
        return PushResponse(results: results, head: state.head, serverTime: configuration.clock())
    }

    // MARK: Pull

    /// Records changed after `cursor`, coalesced (one entry per record, only the fields written
    /// after the cursor), in the order of each record's latest seq.
    ///
    /// Paging: while a page says `hasMore`, ask for the next one with the same `after` and
    /// `from` set to the page's `cursor`; the last page's `cursor` is the new `after`. Keeping
    /// `after` fixed for the whole pull is what makes paging safe: a record written again while the
    /// device pages moves past the position and comes later with every field written after `after`.
    /// (Sending the page cursor as `after` would drop the fields such a record got in between.)
    /// - Parameters:
    ///   - cursor: the device's cursor when the pull began (`after`).
    ///   - position: where the previous page ended (`from`); defaults to `cursor`.
    /// - Throws: ``SyncError`` `.resyncRequired` when `cursor` is older than the tombstone horizon,
    ///   `.invalidCursor` when it or `position` is beyond the head, or `position` is before `cursor`.
    public func pull(
        namespace: Namespace, after cursor: UInt64, from position: UInt64? = nil, limit: Int,
        collections: Set<CollectionName>? = nil
    ) throws(SyncError) -> PullPage {
        let state = namespaces[namespace] ?? NamespaceState()
        let position = position ?? cursor
        guard cursor <= state.head, position <= state.head, position >= cursor else {
            throw SyncError(
                .invalidCursor,
                "cursor \(cursor) / position \(position) must satisfy cursor <= position <= head \(state.head)"
            )
        }
        if cursor != 0 && cursor < state.horizon {
            throw SyncError(
                .resyncRequired,
                "cursor \(cursor) is older than the tombstone horizon \(state.horizon): pull again from 0"
            )
        }
        let pageSize = max(1, min(limit, configuration.maxPageSize))
        var changes: [RemoteChange] = []
        var last = position
        var remaining: UInt64 = 0
        for seq in state.latestSeqs(after: position) {
            guard let key = state.keyAtSeq[seq], let record = state.records[key] else { continue }
            if let collections, !collections.contains(key.collection) { continue }
            if cursor == 0 && record.deleted { continue }  // a snapshot holds live records only
            if changes.count < pageSize {
                changes.append(record.remoteChange(after: cursor))
                last = seq
            } else {
                remaining += 1
            }
        }
        let hasMore = remaining > 0
        // With nothing left, the cursor moves to the head so an idle device does not rescan.
        let next = hasMore ? last : state.head
        return PullPage(changes: changes, cursor: next, hasMore: hasMore, remaining: remaining, head: state.head)
    }

    // MARK: Live updates

    /// A stream of the namespace's head after every commit that wrote something (newest only
    /// when the reader is slow: the buffer holds one value).
    public func subscribe(namespace: Namespace) -> AsyncStream<UInt64> {
        let (stream, continuation) = AsyncStream<UInt64>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = nextSubscriber
        nextSubscriber += 1
        subscribers[namespace, default: [:]][id] = continuation
        continuation.onTermination = { _ in Task { await self.unsubscribe(namespace, id) } }
        continuation.yield(namespaces[namespace]?.head ?? 0)
        return stream
    }

    private func unsubscribe(_ namespace: Namespace, _ id: Int) {
        subscribers[namespace]?[id] = nil
    }

    private func notify(_ namespace: Namespace, head: UInt64) {
        for continuation in subscribers[namespace, default: [:]].values { continuation.yield(head) }
    }

    // MARK: Inspection and maintenance

    /// The namespace's head seq.
    public func head(namespace: Namespace) -> UInt64 { namespaces[namespace]?.head ?? 0 }

    /// Every record the namespace holds, deleted ones included, by key.
    public func records(namespace: Namespace) -> [RecordKey: ServerRecord] { namespaces[namespace]?.records ?? [:] }

    /// How many times each event id was applied (for tests of idempotence: every count is 1).
    public func applications(namespace: Namespace) -> [EventID: Int] { namespaces[namespace]?.applications ?? [:] }

    /// The changes that lost on some fields (lww) or were rejected, with those fields: the
    /// ground truth for "every lost write is reported once".
    public func losses(namespace: Namespace) -> [EventID: [String]] { namespaces[namespace]?.losses ?? [:] }

    /// Forgets tombstones written at or before `seq`; devices whose cursor is older must resync.
    public func purgeTombstones(namespace: Namespace, through seq: UInt64) {
        guard var state = namespaces[namespace] else { return }
        for (key, record) in state.records where record.deleted && record.seq <= seq {
            state.records[key] = nil
            state.keyAtSeq[record.seq] = nil
        }
        state.horizon = max(state.horizon, seq + 1)
        namespaces[namespace] = state
    }
}

/// One namespace's data.
private struct NamespaceState {
    var head: UInt64 = 0
    var horizon: UInt64 = 0
    var records: [RecordKey: ServerRecord] = [:]
    /// Each record at its latest seq only; `seqOrder` lists those seqs ascending (stale ones are
    /// skipped and compacted away).
    var keyAtSeq: [UInt64: RecordKey] = [:]
    var seqOrder: [UInt64] = []
    var applied: [EventID: (seq: UInt64, fields: [String: FieldState])] = [:]
    var appliedOrder: [EventID] = []
    var appliedStart = 0
    /// Bookkeeping for tests (a reference server, not a production one).
    var applications: [EventID: Int] = [:]
    var losses: [EventID: [String]] = [:]

    mutating func store(_ record: ServerRecord) {
        if let previous = records[record.key], previous.seq != record.seq { keyAtSeq[previous.seq] = nil }
        records[record.key] = record
        keyAtSeq[record.seq] = record.key
        seqOrder.append(record.seq)
        if seqOrder.count > 64 && seqOrder.count > keyAtSeq.count * 2 {
            seqOrder = seqOrder.filter { keyAtSeq[$0] != nil }
        }
    }

    /// The latest seqs after `cursor`, ascending.
    func latestSeqs(after cursor: UInt64) -> some Sequence<UInt64> {
        var low = 0
        var high = seqOrder.count
        while low < high {
            let middle = (low + high) / 2
            if seqOrder[middle] <= cursor { low = middle + 1 } else { high = middle }
        }
        return seqOrder[low...].lazy.filter { keyAtSeq[$0] != nil }
    }

    mutating func remember(_ id: EventID, seq: UInt64, fields: [String: FieldState], window: Int) {
        applied[id] = (seq, fields)
        appliedOrder.append(id)
        if appliedOrder.count - appliedStart > window {
            applied[appliedOrder[appliedStart]] = nil
            appliedStart += 1
            if appliedStart > 1_024 && appliedStart * 2 > appliedOrder.count {
                appliedOrder.removeFirst(appliedStart)
                appliedStart = 0
            }
        }
    }
}
