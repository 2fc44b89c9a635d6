/// Drains the durable outbox to the transport in batches (DESIGN §3): higher priorities first,
/// per-record order kept, each batch cut by count and bytes; hands the server's answers to the
/// reconciler. A failed push is retried with exponential backoff and jitter.
package actor Outbox {
    package struct Configuration: Sendable {
        /// Changes per batch. Default 500.
        package var maxBatchChanges = 500
        /// Encoded bytes per batch. Default 1 MiB.
        package var maxBatchBytes = 1 << 20
        /// Attempts of one batch inside one `sync()` before giving up until the next. Default 5.
        package var attempts = 1
        /// Backoff after the first failure, doubled each time, jittered, capped. Defaults 50 ms and 5 s.
        package var initialBackoff: Duration = .milliseconds(50)
        package var maxBackoff: Duration = .seconds(5)
    }

    private let local: LocalStore
    private let transport: any SyncTransport
    private let bus: EventBus
    private let configuration: Configuration
    private var random = SystemRandomNumberGenerator()

    package init(local: LocalStore, transport: any SyncTransport, bus: EventBus, configuration: Configuration) {
        self.local = local
        self.transport = transport
        self.bus = bus
        self.configuration = configuration
    }

    /// Pushes until the outbox is empty.
    /// - Throws: the last transport error when a batch failed every attempt.
    package func drain(policy: @escaping @Sendable (CollectionName) -> ConflictPolicy, stats: inout SyncStats) async throws {
        let total = try await local.pending()
        var done = 0
        var bytesDone = 0
        var restamps = 0
        while true {
            let queued = try await local.nextBatch(maxChanges: configuration.maxBatchChanges, maxBytes: configuration.maxBatchBytes)
            if queued.isEmpty { return }
            do {
                try await send(queued, policy: policy, stats: &stats, done: &done, bytesDone: &bytesDone, total: total)
            } catch let error as SyncError where error.code == .clockSkew && restamps < Self.maxRestamps {
                // Stamped by a clock ahead of the server's: nothing of the batch was applied. The
                // device corrects its clock from the server's time and re-stamps what no one has
                // seen; the next batch carries the new stamps.
                restamps += 1
                guard try await local.observeServerTime(error.serverTime, refused: queued.map(\.entry)) else { throw error }
            }
        }
    }

    /// Re-stamps for clock skew within one drain before it gives up (each is a correction, so one
    /// is the rule; more means the server's time moves under the device).
    static let maxRestamps = 3

    /// Pushes entries; when the server refuses the batch for its content (one bad change) or its
    /// size, the batch is split in halves (order kept) until the bad change stands alone, and that
    /// one is dead-lettered while the rest flow.
    private func send(
        _ queued: [QueuedChange], policy: @escaping @Sendable (CollectionName) -> ConflictPolicy, stats: inout SyncStats,
        done: inout Int, bytesDone: inout Int, total: (count: Int, bytes: Int)
    ) async throws {
        let entries = queued.map(\.entry)
        let batch = ChangeBatch(changes: entries.map(\.change))
        // The batch's binary size: header, count, and the sizes measured when it was cut.
        var count = BinaryWriter(capacity: 10)
        count.writeVarint(UInt64(queued.count))
        let bytes = 4 + count.bytes.count + queued.reduce(0) { $0 + $1.bytes }
        let response: PushResponse
        let trafficBefore = transport.traffic
        do {
            response = try await pushWithRetry(batch, stats: &stats)
        } catch let error as SyncError where error.code.refusesBatchContent {
            if queued.count == 1 {
                let letter = try await local.deadLetter(entries[0], error: error)
                bus.emit(.error(SyncErrorEvent(error: error, key: letter.change.key, changeID: letter.change.id)))
                done += 1
                bytesDone += queued[0].bytes  // out of the outbox too
                return
            }
            let middle = queued.count / 2
            try await send(Array(queued[..<middle]), policy: policy, stats: &stats, done: &done, bytesDone: &bytesDone, total: total)
            try await send(Array(queued[middle...]), policy: policy, stats: &stats, done: &done, bytesDone: &bytesDone, total: total)
            return
        }
        let outcome = try await local.applyPushResponse(entries, response, policy: policy)
        done += outcome.acknowledged
        bytesDone += queued.reduce(0) { $0 + $1.bytes }
        stats.pushed += outcome.acknowledged
        if let before = trafficBefore, let after = transport.traffic {
            // What crossed the wire, compressed, retries included.
            stats.bytesUp += after.bytesSent - before.bytesSent
            stats.bytesDown += after.bytesReceived - before.bytesReceived
        } else {
            stats.bytesUp += bytes
        }
        stats.conflicts += outcome.detected.count
        stats.resolved += outcome.resolved.count
        for report in outcome.detected { bus.emit(.conflictDetected(report)) }
        for report in outcome.resolved { bus.emit(.conflictResolved(report)) }
        bus.emit(.pushProgress(done: done, total: max(total.count, done), bytesDone: bytesDone, bytesTotal: max(total.bytes, bytesDone)))
        if !outcome.changedKeys.isEmpty { bus.emit(.recordsChanged(outcome.changedKeys, origin: .remote)) }
    }

    private func pushWithRetry(_ batch: ChangeBatch, stats: inout SyncStats) async throws -> PushResponse {
        var backoff = Backoff(initial: configuration.initialBackoff, maximum: configuration.maxBackoff)
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await transport.push(batch)
            } catch {
                // Cancelled by the caller (whatever the transport made of it): not a failure.
                if error is CancellationError || Task.isCancelled { throw CancellationError() }
                stats.errors += 1
                let syncError = LocalStore.syncError(error)
                // Content refusals are split and dead-lettered by the caller; a refused token is
                // the transport's to renew (it asks its token provider once): back off until the
                // next sync rather than loop on it here.
                if syncError.code.refusesBatchContent || syncError.code == .clockSkew { throw syncError }
                bus.emit(.error(SyncErrorEvent(error: syncError, key: nil, changeID: batch.changes.first?.id)))
                guard attempt < configuration.attempts, syncError.code != .unauthorized, !Task.isCancelled else { throw syncError }
                try await Task.sleep(for: backoff.next(using: &random))
            }
        }
    }
}

/// Pulls remote changes page by page and applies each page with its cursor in one transaction.
package actor Reconciler {
    private let local: LocalStore
    private let transport: any SyncTransport
    private let bus: EventBus
    private let pageSize: Int

    package init(local: LocalStore, transport: any SyncTransport, bus: EventBus, pageSize: Int) {
        self.local = local
        self.transport = transport
        self.bus = bus
        self.pageSize = pageSize
    }

    /// Pulls until the server says nothing is left. The cursor stays where the pull began until
    /// the last page, which stores the new one with its records (see `InMemorySyncServer.pull`
    /// for why paging keeps `after` fixed); an interrupted pull starts again from that cursor.
    package func pullAll(policy: @escaping @Sendable (CollectionName) -> ConflictPolicy, stats: inout SyncStats) async throws {
        var done = 0
        var total = 0
        var resyncs = 0
        let (start, known, everPulled) = try await local.pullPosition()
        var (cursor, epoch) = (start, known)
        var position = cursor
        // A pull from 0 is a snapshot: the keys it holds tell which local records are gone. A
        // device that never pulled holds no pulled record, so its first sync keeps no key set:
        // joining a large namespace costs memory by the page, not by the namespace.
        var snapshot: Set<RecordKey>? = cursor == 0 && everPulled ? [] : nil
        while true {
            let page: PullPage
            let trafficBefore = transport.traffic
            do {
                page = try await transport.pull(after: cursor, from: position, limit: pageSize, epoch: epoch)
                if let known = epoch, let current = page.epoch {
                    // A server (or a buffered live page) that does not check the epoch itself.
                    try ServerEngine.checkEpoch(known, current: current)
                }
            } catch let error as SyncError where error.code == .resyncRequired && resyncs == 0 {
                // The cursor is older than the tombstone horizon, or belongs to another epoch (the
                // server was restored from a backup): resync from a snapshot, keeping the outbox.
                resyncs += 1
                try await local.resetCursor()
                cursor = 0
                position = 0
                epoch = nil
                snapshot = []
                continue
            } catch {
                if error is CancellationError || Task.isCancelled { throw CancellationError() }
                // Unreachable server, undecodable answer: reported, nothing applied, retried later.
                stats.errors += 1
                bus.emit(.error(SyncErrorEvent(error: LocalStore.syncError(error), key: nil, changeID: nil)))
                throw error
            }
            let applied: PageOutcome
            do {
                snapshot?.formUnion(page.changes.map { RecordKey(collection: $0.collection, id: $0.record) })
                applied = try await local.applyPage(page, after: cursor, from: position, snapshot: snapshot, policy: policy)
            } catch let error as SyncError where error.code == .invalidPage {
                stats.errors += 1
                bus.emit(.error(SyncErrorEvent(error: error, key: nil, changeID: nil)))
                throw error
            }
            done += page.changes.count
            stats.pulled += page.changes.count
            if let before = trafficBefore, let after = transport.traffic {
                stats.bytesDown += after.bytesReceived - before.bytesReceived
                stats.bytesUp += after.bytesSent - before.bytesSent
            } else {
                stats.bytesDown += BinaryCodec.encode(page).count
            }
            // The first page's `remaining` is exact; later ones only bound it (see
            // `ServerEngine.pull`), so the total is the first page's, raised if writes made
            // while paging add entries.
            if position == cursor { total = done + Int(clamping: page.remaining) }
            bus.emit(.pullProgress(done: done, total: page.hasMore ? max(total, done + 1) : done))
            stats.conflicts += applied.detected.count
            for report in applied.detected { bus.emit(.conflictDetected(report)) }
            if !applied.changedKeys.isEmpty { bus.emit(.recordsChanged(applied.changedKeys, origin: .remote)) }
            if !page.hasMore { return }
            epoch = epoch ?? page.epoch  // the rest of the pull stays in the first page's epoch
            position = page.cursor
        }
    }
}
