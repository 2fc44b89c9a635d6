import AsyncAlgorithms
public import Logging
public import ServiceLifecycle
import Synchronization

/// The façade of the client pipeline (DESIGN §3): Ingest → LocalStore → Outbox → Transport →
/// Reconciler, with an event bus.
///
/// ```swift
/// let client = try SyncClient(namespace: Namespace("alice"), store: SQLiteStore(path: "alice.db"),
///                             transport: transport)
/// let todos = try client.collection(Todo.self, named: "todos", conflicts: .lastWriterWins)
/// try await todos.upsert(todo, priority: .high)
/// try await todos.update(id: "1") { $0.done = true }     // sends only `done`
/// let stats = try await client.sync()                      // one full push + pull now
/// ```
public final class SyncClient: Sendable {
    public struct Configuration: Sendable {
        /// Changes per pushed batch. Default 500.
        public var maxBatchChanges: Int
        /// Encoded bytes per pushed batch. Default 1 MiB.
        public var maxBatchBytes: Int
        /// Entries per pulled page. Default 500.
        public var pageSize: Int
        /// Push attempts per batch inside one `sync()`. Default 1: a failed push fails the sync at
        /// once (and reports the device offline when the server cannot be reached); the
        /// background loop retries with exponential backoff and jitter, so timeouts never stack
        /// up inside one `sync()`.
        public var pushAttempts: Int
        /// Backoff between attempts: from `initialBackoff`, doubled, jittered, capped at `maxBackoff`.
        public var initialBackoff: Duration
        public var maxBackoff: Duration
        /// Size limits on local writes.
        public var limits: Limits
        /// Events buffered per subscriber before the oldest are dropped. Default 256.
        public var eventBufferSize: Int
        /// Unix milliseconds (injected so tests control time).
        public var wallClock: @Sendable () -> UInt64
        /// How often the background loop syncs when nothing triggers it. Default 30 s.
        public var syncInterval: Duration
        /// When changes are pending and nothing drained for this long, `outboxStalled` fires. Default 60 s.
        public var stallTimeout: Duration
        /// Background syncs refused for the token, in a row, before the client stops retrying and
        /// reports `.connectivity(.unauthorized)` (once); `start()` or `sync()` tries again. Default 3.
        public var maxUnauthorized: Int
        /// Where the client logs what it does (syncs at debug, failures at info, a stalled outbox
        /// and a refused token at warning). Default: nowhere.
        public var logger: Logger

        public init(
            maxBatchChanges: Int = 500, maxBatchBytes: Int = 1 << 20, pageSize: Int = 500, pushAttempts: Int = 1,
            initialBackoff: Duration = .milliseconds(50), maxBackoff: Duration = .seconds(5), limits: Limits = .default,
            eventBufferSize: Int = 256, wallClock: @escaping @Sendable () -> UInt64 = { WallClock.nowMillis() },
            syncInterval: Duration = .seconds(30), stallTimeout: Duration = .seconds(60), maxUnauthorized: Int = 3,
            logger: Logger = Logger(label: "syncline", factory: { _ in SwiftLogNoOpLogHandler() })
        ) {
            self.logger = logger
            self.maxUnauthorized = max(1, maxUnauthorized)
            self.syncInterval = syncInterval
            self.stallTimeout = stallTimeout
            self.maxBatchChanges = maxBatchChanges
            self.maxBatchBytes = maxBatchBytes
            self.pageSize = pageSize
            self.pushAttempts = pushAttempts
            self.initialBackoff = initialBackoff
            self.maxBackoff = maxBackoff
            self.limits = limits
            self.eventBufferSize = eventBufferSize
            self.wallClock = wallClock
        }
    }

    public let namespace: Namespace
    public let configuration: Configuration
    package let local: LocalStore
    package let ingest: Ingest
    private let outbox: Outbox
    private let reconciler: Reconciler
    private let bus: EventBus
    private let policies = Mutex<[CollectionName: ConflictPolicy]>([:])
    private let syncGate = SyncGate()
    private let transport: any SyncTransport
    /// Ends a transport the client created itself (the network convenience initializers).
    private let closeTransport: (@Sendable () -> Void)?
    private let state = Mutex(ClientState())
    /// Wakes the running background loop: a local write, a server commit, or a tick. Each `run()`
    /// makes its own stream: an `AsyncStream` whose reader was cancelled is finished for good, so
    /// a loop restarted after `stop()` on the old one would end at once.
    private let trigger = Mutex<(run: UInt64, continuation: AsyncStream<Void>.Continuation)?>(nil)
    private let runs = Atomic<UInt64>(0)
    /// Records reported as not decoding, with the error, so each is reported once.
    private let undecodable = Mutex<Set<String>>([])

    private struct ClientState {
        var status = SyncStatus()
        var runner: Task<Void, any Error>?
        var lastDrain = ContinuousClock.now
        var stallReported = false
        /// Background syncs refused for the token in a row.
        var unauthorizedInARow = 0
        /// Set when they reached `maxUnauthorized`: the loop waits for `start()` or `sync()`.
        var waitingForCredentials = false
    }

    /// Opens the pipeline over a store and a transport. Local reads and writes work at once,
    /// online or not; `sync()` exchanges changes with the server.
    public convenience init(
        namespace: Namespace, store: any SyncStore, transport: any SyncTransport,
        configuration: Configuration = Configuration()
    ) throws {
        try self.init(namespace: namespace, store: store, transport: transport, configuration: configuration, closeTransport: nil)
    }

    /// - Parameter closeTransport: called by ``close()``, for a transport the client owns.
    package init(
        namespace: Namespace, store: any SyncStore, transport: any SyncTransport, configuration: Configuration,
        closeTransport: (@Sendable () -> Void)?
    ) throws {
        self.closeTransport = closeTransport
        self.namespace = namespace
        self.configuration = configuration
        bus = EventBus(bufferSize: configuration.eventBufferSize)
        local = try LocalStore(store: store, limits: configuration.limits, wallClock: configuration.wallClock)
        ingest = Ingest(local: local)
        var outboxConfiguration = Outbox.Configuration()
        outboxConfiguration.maxBatchChanges = configuration.maxBatchChanges
        outboxConfiguration.maxBatchBytes = configuration.maxBatchBytes
        outboxConfiguration.attempts = configuration.pushAttempts
        outboxConfiguration.initialBackoff = configuration.initialBackoff
        outboxConfiguration.maxBackoff = configuration.maxBackoff
        outbox = Outbox(local: local, transport: transport, bus: bus, configuration: outboxConfiguration)
        reconciler = Reconciler(local: local, transport: transport, bus: bus, pageSize: configuration.pageSize)
        self.transport = transport
    }

    /// Pushes the outbox and nothing else (no pull): for measurements that keep the directions
    /// apart. Apps call ``sync()``.
    package func push() async throws -> SyncStats {
        try await syncGate.run {
            var stats = SyncStats()
            let policies = self.policies.withLock { $0 }
            try await pushAll(policy: { policies[$0] ?? .lastWriterWins }, stats: &stats)
            return stats
        }
    }

    /// Everything queued, outbox → transport → reconciler (DESIGN §3): the outbox pushes batch
    /// after batch while the reconciler applies the answers it hands over on a channel (no
    /// buffer: the outbox waits for the reconciler to take each one). Both end when the outbox
    /// is empty and every answer is applied; the first error ends both and is thrown, with what
    /// each had done counted in `stats`.
    private func pushAll(policy: @escaping @Sendable (CollectionName) -> ConflictPolicy, stats: inout SyncStats) async throws {
        let inbound = AsyncChannel<Inbound>()
        let inFlight = InFlight()
        let (outbox, reconciler) = (self.outbox, self.reconciler)
        let (parts, failure) = await withTaskGroup(of: (SyncStats, (any Error)?).self) { group in
            group.addTask {
                var stats = SyncStats()
                defer { inbound.finish() }
                do {
                    try await outbox.drain(into: inbound, inFlight: inFlight, stats: &stats)
                    return (stats, nil)
                } catch {
                    return (stats, error)
                }
            }
            group.addTask {
                do {
                    return (try await reconciler.apply(inbound, inFlight: inFlight, policy: policy), nil)
                } catch {
                    return (SyncStats(), error)
                }
            }
            var parts = SyncStats()
            var failure: (any Error)?
            for await (part, error) in group {
                parts.add(part)
                if let error, failure == nil {
                    failure = error
                    group.cancelAll()
                    inbound.finish()
                }
            }
            return (parts, failure)
        }
        stats.add(parts)
        if let failure { throw failure }
    }

    /// The pipeline's state as a snapshot: pending changes, last sync, connectivity, last error.
    public var status: SyncStatus {
        get async {
            var status = state.withLock { $0.status }
            status.pending = (try? await local.pendingCount()) ?? status.pending  // a read; on failure the last known count
            return status
        }
    }

    // MARK: Background sync

    /// Syncs in the background until cancelled: after local writes, when the server announces a
    /// commit (live transports), every `syncInterval`, and with exponential backoff and jitter
    /// after failures. Cancelling the task that runs it ends every part cleanly; nothing
    /// acknowledged is lost (it is in the store).
    ///
    /// It is a `Service` (swift-service-lifecycle): in a `ServiceGroup` it runs until cancelled or
    /// until the group shuts down gracefully, when it returns normally. ``start()`` and ``stop()``
    /// run it in a task of its own.
    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await self.runLoops() }
        } catch is CancellationError where Task.isShuttingDownGracefully {
            configuration.logger.debug("background sync stopped for a graceful shutdown")
        }
    }

    private func runLoops() async throws {
        // Live updates start from where the device stands (the transport does not guess it).
        let (cursor, epoch, _) = try await local.pullPosition()
        await transport.resume(from: cursor, epoch: epoch)
        let heads = await transport.liveHeads()
        let triggers = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let run = runs.add(1, ordering: .relaxed).newValue
        trigger.withLock { $0 = (run, triggers.continuation) }
        defer {
            triggers.continuation.finish()
            trigger.withLock { current in
                if current?.run == run { current = nil }  // a newer run() keeps its own
            }
        }
        let interval = configuration.syncInterval
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                for await _ in heads { triggers.continuation.yield() }
            }
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: interval)
                    triggers.continuation.yield()
                }
            }
            group.addTask { try await self.syncLoop(triggers) }
            group.addTask {
                // Pages the server pushes go to the reconciler as they come; one it cannot apply
                // (a gap) wakes a pull.
                for await live in await self.transport.livePages() {
                    if try await !self.applyLive(live) { triggers.continuation.yield() }
                }
            }
        }
    }

    /// A live page, applied by the reconciler in turn with `sync()` (both move the cursor).
    /// - Returns: whether it was applied or had nothing new; `false` asks for a pull.
    private func applyLive(_ live: LivePage) async throws -> Bool {
        let policies = self.policies.withLock { $0 }
        do {
            return try await syncGate.run { try await reconciler.applyLive(live, policy: { policies[$0] ?? .lastWriterWins }) }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            report(error)
            return false
        }
    }

    /// Wakes the background loop, when one runs (every local change that queues something).
    private func wake() {
        trigger.withLock { _ = $0?.continuation.yield() }
    }

    private func syncLoop(_ triggers: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)) async throws {
        var backoff = Backoff(initial: configuration.initialBackoff, maximum: configuration.maxBackoff)
        triggers.continuation.yield()
        for await _ in triggers.stream {
            try Task.checkCancellation()
            // Refused for the token too often: local writes and ticks wait for the app.
            if state.withLock({ $0.waitingForCredentials }) { continue }
            do {
                try await sync()
                backoff.reset()
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                if (error as? SyncError)?.code == .unauthorized, refusedForTheToken() { continue }
                try await checkStall()
                try await backoff.wait()
                triggers.continuation.yield()
            }
        }
    }

    /// Counts a background sync refused for the token; at `maxUnauthorized` in a row the client
    /// reports `.connectivity(.unauthorized)` once and the loop waits. Returns whether it waits.
    private func refusedForTheToken() -> Bool {
        let limit = configuration.maxUnauthorized
        let stop = state.withLock { state -> Bool in
            state.unauthorizedInARow += 1
            guard state.unauthorizedInARow >= limit, !state.waitingForCredentials else { return false }
            state.waitingForCredentials = true
            state.status.connectivity = .unauthorized
            return true
        }
        if stop {
            configuration.logger.warning("the server refused the token \(limit) times in a row: background sync waits for start() or sync()")
            bus.emit(.connectivity(.unauthorized))
        }
        return stop
    }

    private func checkStall() async throws {
        let pending = try await local.pendingCount()
        let timeout = configuration.stallTimeout
        let report = state.withLock { state -> Bool in
            guard pending > 0, !state.stallReported, ContinuousClock.now - state.lastDrain >= timeout else { return false }
            state.stallReported = true
            return true
        }
        if report {
            let reason = state.withLock { $0.status.lastError?.description } ?? "unknown"
            configuration.logger.warning("outbox stalled: \(pending) changes pending, nothing drained for \(timeout): \(reason)")
            bus.emit(.outboxStalled(reason: "\(pending) changes pending, nothing drained for \(timeout): \(reason)"))
        }
    }

    /// Starts `run()` in a task (the app may instead run it in its own task or service group).
    /// After `.connectivity(.unauthorized)`, call it again once the app has fixed its
    /// credentials: the loop tries again at once.
    public func start() {
        let resumed = state.withLock { state -> Bool in
            let waiting = state.waitingForCredentials
            state.waitingForCredentials = false
            state.unauthorizedInARow = 0
            guard state.runner == nil else { return waiting }
            state.runner = Task { try await self.run() }
            return false
        }
        if resumed { wake() }
    }

    /// Stops the background loop and waits for it to end.
    public func stop() async {
        let runner = state.withLock { state -> Task<Void, any Error>? in
            defer { state.runner = nil }
            return state.runner
        }
        runner?.cancel()
        _ = await runner?.result
    }

    /// Reports, once per record and error, a record a typed collection could not decode.
    package func reportUndecodable(_ key: RecordKey, as model: String, _ error: any Error) {
        let syncError = (error as? SyncError).map { SyncError(.invalidValue, $0.message) } ?? SyncError(.invalidValue, "\(error)")
        let message = "record \(key) does not decode as \(model): \(syncError.message)"
        let first = undecodable.withLock { reported in
            if reported.count >= 10_000 { reported.removeAll() }  // bounded: a record may then be reported again
            return reported.insert(message).inserted
        }
        if first { bus.emit(.error(SyncErrorEvent(error: SyncError(.invalidValue, message), key: key, changeID: nil))) }
    }

    /// Reports an error that has no caller to throw to (a live query's read).
    package func report(_ error: any Error) {
        bus.emit(.error(SyncErrorEvent(error: LocalStore.syncError(error), key: nil, changeID: nil)))
    }

    /// A new subscription to the event bus.
    public var events: AsyncStream<SyncEvent> { bus.subscribe() }

    /// Calls `handler` synchronously with every event as it is emitted (tests and tools).
    @discardableResult
    package func observeEvents(_ handler: @escaping @Sendable (SyncEvent) -> Void) -> Int { bus.observe(handler) }

    /// Stops the calls of an ``observeEvents(_:)`` handler.
    package func removeEventObserver(_ id: Int) { bus.removeObserver(id) }

    /// The device's id (the node of its HLCs).
    public var deviceID: UInt64 { get async { await local.deviceID } }

    // MARK: Collections and policies

    /// A typed view of one collection; registers its conflict policy.
    public func collection<Model: Codable & Identifiable & Sendable>(
        _ type: Model.Type, named name: String, conflicts: ConflictPolicy = .lastWriterWins,
        defaultPriority: Priority = .normal
    ) throws -> SyncCollection<Model> {
        let collection = try CollectionName(name)
        setPolicy(conflicts, for: collection)
        return SyncCollection(client: self, name: collection, policy: conflicts, defaultPriority: defaultPriority)
    }

    public func setPolicy(_ policy: ConflictPolicy, for collection: CollectionName) {
        policies.withLock { $0[collection] = policy }
    }

    public func policy(for collection: CollectionName) -> ConflictPolicy {
        policies.withLock { $0[collection] } ?? .lastWriterWins
    }

    // MARK: Untyped access

    /// Sets fields of a record (creating it). Only the fields whose value changes are sent.
    /// - Throws: ``SyncError`` for invalid names or oversized values; nothing is written then.
    @discardableResult
    public func upsert(
        _ key: RecordKey, fields: [String: Value], replacing: Bool = false, priority: Priority = .normal
    ) async throws -> Change? {
        let mode = policy(for: key.collection).mode
        // Checked and encoded here, on the caller's task, so the group commit does not do it serially.
        try local.limits.validate(fields: fields, record: key)
        let outcome = try await ingest.submit(
            .upsert(key: key, fields: fields, replace: replacing, priority: priority, mode: mode, encoded: EncodedFields(fields))
        )
        if outcome.change != nil {
            bus.emit(.recordsChanged([key], origin: .local))
            wake()
        }
        return outcome.change
    }

    /// Deletes a record. Deleting a record that does not exist does nothing.
    @discardableResult
    public func delete(_ key: RecordKey, priority: Priority = .normal) async throws -> Change? {
        let mode = policy(for: key.collection).mode
        let outcome = try await ingest.submit(.delete(key: key, priority: priority, mode: mode))
        if outcome.change != nil {
            bus.emit(.recordsChanged([key], origin: .local))
            wake()
        }
        return outcome.change
    }

    /// The record's visible fields, or nil when it does not exist or is deleted.
    public func fields(of key: RecordKey) async throws -> [String: Value]? {
        try await local.record(key).flatMap(Self.visibleFields)
    }

    /// The visible fields of each record that exists and is not deleted, in one read.
    package func fields(of keys: [RecordKey]) async throws -> [RecordKey: [String: Value]] {
        try await local.records(keys).compactMapValues(Self.visibleFields)
    }

    /// What the app sees of a record: nil when it is deleted or was never written.
    private static func visibleFields(_ record: RecordState) -> [String: Value]? {
        if record.isDeleted || record.seq == 0 && record.fields.isEmpty && record.pendingFields.isEmpty { return nil }
        return record.visibleFields
    }

    /// The raw record state, pending writes included.
    public func record(_ key: RecordKey) async throws -> RecordState? { try await local.record(key) }

    /// Visible records of a collection, by id.
    public func visibleRecords(in collection: CollectionName) async throws -> [RecordID: [String: Value]] {
        var result: [RecordID: [String: Value]] = [:]
        for record in try await local.records(in: collection) {
            if let fields = Self.visibleFields(record) { result[record.id] = fields }
        }
        return result
    }

    // MARK: Sync

    /// One full push then pull, now. Concurrent calls run one after the other.
    /// - Returns: what it did.
    /// - Throws: the transport's error when the server cannot be reached (the changes stay queued);
    ///   `CancellationError` when the calling task is cancelled (connectivity and `lastError`
    ///   are left as they were).
    @discardableResult
    public func sync() async throws -> SyncStats {
        try await syncGate.run {
            let clock = ContinuousClock()
            let start = clock.now
            var stats = SyncStats()
            bus.emit(.syncStarted)
            let policies = self.policies.withLock { $0 }
            let policy: @Sendable (CollectionName) -> ConflictPolicy = { policies[$0] ?? .lastWriterWins }
            do {
                // A device that never heard the server's time pulls first: the page says it, so
                // changes written offline by a wrong clock are re-stamped before they go out.
                if try await !local.knowsServerTime() { try await reconciler.pullAll(policy: policy, stats: &stats) }
                try await pushAll(policy: policy, stats: &stats)
                try await reconciler.pullAll(policy: policy, stats: &stats)
                // Answers to merges queued while pulling go out at once.
                if try await local.pendingCount() > 0 { try await pushAll(policy: policy, stats: &stats) }
            } catch {
                stats.duration = clock.now - start
                // Cancelled by the caller: not an error and not a sign of being offline, whatever
                // the transport made of it (an HTTP client reports its cancelled request as a
                // failure of its own).
                if error is CancellationError || Task.isCancelled {
                    bus.emit(.syncFinished(stats))
                    throw CancellationError()
                }
                let syncError = LocalStore.syncError(error)
                let offline = syncError.code == .transportUnavailable
                let changed = state.withLock { state -> Bool in
                    state.status.lastError = syncError
                    defer { if offline { state.status.connectivity = .offline } }
                    return offline && state.status.connectivity != .offline
                }
                if changed { bus.emit(.connectivity(.offline)) }
                configuration.logger.info("sync failed", metadata: ["syncline.error": "\(syncError)"])
                bus.emit(.syncFinished(stats))
                throw syncError
            }
            stats.duration = clock.now - start
            let now = configuration.wallClock()
            let changed = state.withLock { state -> Bool in
                defer {
                    state.status.connectivity = .online
                    state.status.lastSync = now
                    state.status.lastError = nil
                    state.lastDrain = .now
                    state.stallReported = false
                    state.unauthorizedInARow = 0
                    state.waitingForCredentials = false
                }
                return state.status.connectivity != .online
            }
            if changed { bus.emit(.connectivity(.online)) }
            configuration.logger.debug(
                "synced", metadata: ["syncline.pushed": "\(stats.pushed)", "syncline.pulled": "\(stats.pulled)", "syncline.conflicts": "\(stats.conflicts)"]
            )
            bus.emit(.syncFinished(stats))
            return stats
        }
    }

    /// Changes waiting in the outbox.
    public func pendingCount() async throws -> Int { try await local.pendingCount() }

    /// The server seq up to which remote changes were applied (0 before the first pull).
    public func pullCursor() async throws -> UInt64 { try await local.pullCursor() }

    /// The server's namespace epoch the cursor belongs to (`nil` before the first pull that told
    /// it). It changes when the server was restored from a backup and the device resynced.
    public func pullEpoch() async throws -> Epoch? { try await local.pullPosition().epoch }

    // MARK: Dead letters

    /// Changes the server refused for good (too large, invalid), set aside so the rest keep
    /// flowing; their local values stay visible until they are discarded.
    public func deadLetters() async throws -> [DeadLetter] { try await local.deadLetters() }

    /// Queues a dead-lettered change again.
    public func retryDeadLetter(_ id: EventID) async throws {
        try await local.retryDeadLetter(id)
        wake()
    }

    /// Drops a dead-lettered change and the local values it carried.
    public func discardDeadLetter(_ id: EventID) async throws {
        let key = try await local.discardDeadLetter(id)
        bus.emit(.recordsChanged([key], origin: .local))
    }

    // MARK: Manual conflicts

    /// Conflicts kept by the `manual` policy, across restarts.
    public func conflicts() async throws -> [StoredConflict] { try await local.conflicts() }

    /// Resolves a kept conflict: `values` are pushed as a new edit; nil keeps the server's values.
    public func resolveConflict(_ id: EventID, with values: [String: Value]?, priority: Priority = .normal) async throws {
        let report = try await local.resolveConflict(id, with: values, priority: priority)
        bus.emit(.conflictResolved(report))
        bus.emit(.recordsChanged([report.key], origin: .local))
        wake()  // the resolution is queued: push it now, not at the next tick
    }

    /// Ends every subscription and closes the store (so it can be opened again, as a restart
    /// does). Writes already acknowledged are in the store; later calls fail with `.storeClosed`.
    public func close() {
        state.withLock { $0.runner?.cancel() }
        trigger.withLock { $0?.continuation.finish() }
        bus.finish()
        local.store.close()
        closeTransport?()
    }
}

/// The pipeline at a glance (``SyncClient/status``).
public struct SyncStatus: Sendable {
    /// Changes waiting in the outbox.
    public var pending = 0
    /// Unix milliseconds of the last sync that completed.
    public var lastSync: UInt64?
    /// `nil` until the first sync attempt.
    public var connectivity: Connectivity?
    /// The error of the last sync, cleared by the next one that completes.
    public var lastError: SyncError?
}

/// Runs one operation at a time, in call order.
actor SyncGate {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        if busy {
            await withCheckedContinuation { waiters.append($0) }
        }
        busy = true
        defer {
            if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
        }
        return try await body()
    }
}

extension SyncClient: Service {}
