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
        /// How far (milliseconds) a change's HLC may be ahead of `clock`. Default 5 minutes.
        public var maxClockSkewMillis: UInt64

        public init(
            maxBatchChanges: Int = 5_000, idempotencyWindow: Int = 1_000_000, maxPageSize: Int = 1_000,
            clock: @escaping @Sendable () -> UInt64 = { WallClock.nowMillis() }, limits: Limits = .default,
            maxClockSkewMillis: UInt64 = 300_000
        ) {
            self.maxClockSkewMillis = maxClockSkewMillis
            self.limits = limits
            self.maxBatchChanges = maxBatchChanges
            self.idempotencyWindow = idempotencyWindow
            self.maxPageSize = maxPageSize
            self.clock = clock
        }

        /// The shared engine's view of these limits.
        var engine: ServerEngine.Configuration {
            ServerEngine.Configuration(
                maxBatchChanges: maxBatchChanges, maxPageSize: maxPageSize, limits: limits, maxClockSkewMillis: maxClockSkewMillis
            )
        }
    }

    public let configuration: Configuration
    private var namespaces: [Namespace: NamespaceState] = [:]
    private let heads = HeadBroadcaster()
    /// The epoch of namespaces not written yet; a namespace takes it when it is first written.
    private var defaultEpoch = Epoch.random()

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    // MARK: Push

    /// Applies a batch in order, each change once.
    /// - Throws: ``SyncError`` `.batchTooLarge` when the batch has more changes than allowed; the
    ///   change's validation error (`.fieldTooLarge`, `.invalidFieldName`, ...) when one change is
    ///   invalid; `.clockSkew` when a change's HLC is too far ahead of server time. Either way
    ///   nothing of the batch is applied.
    public func push(_ batch: ChangeBatch, namespace: Namespace) throws(SyncError) -> PushResponse {
        let serverTime = configuration.clock()
        try ServerEngine.validate(batch, configuration: configuration.engine, serverTime: serverTime)
        let outcome = try applyValidated(batch, namespace: namespace)
        return PushResponse(results: outcome.results, head: outcome.head, serverTime: serverTime, epoch: outcome.epoch)
    }

    /// Applies a batch that passed ``ServerEngine/validate(_:configuration:serverTime:)`` (a
    /// network server in front of this one checks it with its own limits).
    public func applyValidated(_ batch: ChangeBatch, namespace: Namespace) throws(SyncError) -> ServerEngine.PushOutcome {
        // Taken out of the table while it changes, so the change is made in place, not on a copy
        // of the whole namespace.
        var state = namespaces.removeValue(forKey: namespace) ?? newNamespace()
        defer { namespaces[namespace] = state }
        let outcome: ServerEngine.PushOutcome
        do {
            outcome = try ServerEngine.push(batch, into: &state)
        } catch {
            throw SyncError(.storage, "in-memory push failed: \(error)")  // the in-memory state never throws
        }
        state.ledger.record(batch, outcome)
        heads.publish(state.head, namespace: namespace)  // announced only when it moved
        return outcome
    }

    // MARK: Pull

    /// Records changed after `cursor`, coalesced: see ``ServerEngine/pull(from:after:from:limit:collections:epoch:configuration:)``.
    /// - Throws: ``SyncError`` `.resyncRequired` when `epoch` is not the namespace's or `cursor` is
    ///   older than the tombstone horizon, `.invalidCursor` when it or `position` is beyond the head,
    ///   or `position` is before `cursor`.
    public func pull(
        namespace: Namespace, after cursor: UInt64, from position: UInt64? = nil, limit: Int,
        collections: Set<CollectionName>? = nil, epoch: Epoch? = nil, leavingOut device: UInt64? = nil
    ) throws(SyncError) -> PullPage {
        let state = namespaces[namespace] ?? newNamespace()
        do {
            var page = try ServerEngine.pull(
                from: state, after: cursor, from: position, limit: limit, collections: collections, epoch: epoch,
                configuration: configuration.engine
            )
            // A snapshot (after 0) carries everything: the device may have lost what it wrote.
            if let device, cursor > 0 { page.leaveOut(writesOf: device) }
            page.serverTime = configuration.clock()
            return page
        } catch let error as SyncError {
            throw error
        } catch {
            throw SyncError(.storage, "in-memory pull failed: \(error)")
        }
    }

    // MARK: Live updates

    /// A stream of the namespace's head after every commit that wrote something (newest only
    /// when the reader is slow: the buffer holds one value).
    public func subscribe(namespace: Namespace) -> AsyncStream<UInt64> {
        heads.subscribe(namespace: namespace, current: namespaces[namespace]?.head ?? 0)
    }

    // MARK: Inspection and maintenance

    /// The namespaces that hold anything.
    public var namespaceNames: [Namespace] { Array(namespaces.keys) }

    /// The namespace's head seq.
    public func head(namespace: Namespace) -> UInt64 { namespaces[namespace]?.head ?? 0 }

    /// The namespace's epoch.
    public func epoch(namespace: Namespace) -> Epoch { namespaces[namespace]?.namespaceEpoch ?? defaultEpoch }

    /// The restore fence (what `syncline-server restore-fence` does to a database): every namespace
    /// gets a new epoch and its head moves past any seq a device could have seen
    /// (``ServerEngine/fence(head:horizon:)``); namespaces not written yet get a new epoch too.
    public func fence() {
        defaultEpoch = Epoch.random()
        for (name, var state) in namespaces {
            (state.head, state.horizon) = ServerEngine.fence(head: state.head, horizon: state.horizon)
            state.namespaceEpoch = Epoch.random()
            namespaces[name] = state
            heads.publish(state.head, namespace: name)
        }
    }

    private func newNamespace() -> NamespaceState {
        NamespaceState(window: configuration.idempotencyWindow, epoch: defaultEpoch)
    }

    /// Every record the namespace holds, deleted ones included, by key.
    public func records(namespace: Namespace) -> [RecordKey: ServerRecord] { namespaces[namespace]?.records ?? [:] }

    /// How many times each event id was applied (for tests of idempotence: every count is 1).
    public func applications(namespace: Namespace) -> [EventID: Int] { namespaces[namespace]?.ledger.applications ?? [:] }

    /// The changes that lost on some fields (at their push, or replaced later by a concurrent
    /// write) or were rejected, with those fields: the ground truth for "every lost write is
    /// reported once" (see ``LossLedger``).
    public func losses(namespace: Namespace) -> [EventID: LossLedger.Loss] { namespaces[namespace]?.ledger.losses ?? [:] }

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
private struct NamespaceState: ServerNamespaceWriter, ServerNamespaceReader {
    var head: UInt64 = 0
    var namespaceEpoch: Epoch
    var horizon: UInt64 = 0
    var records: [RecordKey: ServerRecord] = [:]
    /// Each record at its latest seq only; `seqOrder` lists those seqs ascending (stale ones are
    /// skipped and compacted away).
    var keyAtSeq: [UInt64: RecordKey] = [:]
    var seqOrder: [UInt64] = []
    var applied: [EventID: ServerEngine.AppliedChange] = [:]
    var appliedOrder: [EventID] = []
    var appliedStart = 0
    let window: Int
    /// Bookkeeping for tests (a reference server, not a production one).
    var ledger = LossLedger()

    init(window: Int, epoch: Epoch) {
        self.window = window
        self.namespaceEpoch = epoch
    }

    // MARK: ServerNamespaceWriter

    func currentHead() -> UInt64 { head }

    func epoch() -> Epoch { namespaceEpoch }

    func applied(_ id: EventID) -> ServerEngine.AppliedChange? { applied[id] }

    func record(_ key: RecordKey) -> ServerRecord? { records[key] }

    mutating func store(_ record: ServerRecord, replacing previous: ServerRecord?) {
        if let previous, previous.seq != record.seq { keyAtSeq[previous.seq] = nil }
        records[record.key] = record
        keyAtSeq[record.seq] = record.key
        seqOrder.append(record.seq)
        if seqOrder.count > 64 && seqOrder.count > keyAtSeq.count * 2 {
            seqOrder = seqOrder.filter { keyAtSeq[$0] != nil }
        }
    }

    mutating func remember(_ id: EventID, _ result: ServerEngine.AppliedChange) {
        applied[id] = result
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

    mutating func setHead(_ head: UInt64) { self.head = head }

    // MARK: ServerNamespaceReader

    func tombstoneHorizon() -> UInt64 { horizon }

    func latestRecords(after position: UInt64, collections: Set<CollectionName>?, liveOnly: Bool, limit: Int) -> [ServerRecord] {
        var result: [ServerRecord] = []
        for record in latest(after: position, collections: collections, liveOnly: liveOnly) {
            if result.count == limit { break }
            result.append(record)
        }
        return result
    }

    func countLatestRecords(after position: UInt64, collections: Set<CollectionName>?) -> UInt64 {
        latest(after: position, collections: collections, liveOnly: false).reduce(0) { count, _ in count + 1 }
    }

    /// Records at their latest seq after `position`, ascending, filtered.
    private func latest(after position: UInt64, collections: Set<CollectionName>?, liveOnly: Bool) -> some Sequence<ServerRecord> {
        var low = 0
        var high = seqOrder.count
        while low < high {
            let middle = (low + high) / 2
            if seqOrder[middle] <= position { low = middle + 1 } else { high = middle }
        }
        return seqOrder[low...].lazy
            .compactMap { keyAtSeq[$0].flatMap { records[$0] } }
            .filter { record in
                (collections?.contains(record.collection) ?? true) && !(liveOnly && record.deleted)
            }
    }
}
