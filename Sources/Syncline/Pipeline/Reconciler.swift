import AsyncAlgorithms

/// Applies what comes back from the server (DESIGN §3): the answers to pushed batches, which the
/// outbox hands over on the inbound channel (acknowledgements, lost writes, rejections and their
/// conflict policies, refused changes to dead-letter), and pages of remote changes, each with
/// its cursor in one transaction. It owns the cursor and emits the progress, conflict and
/// record-change events.
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

    /// Applies the answers on `inbound` as they come, until the outbox finishes the channel, and
    /// takes each applied batch out of `inFlight`.
    /// - Returns: what was acknowledged, detected and resolved.
    func apply(
        _ inbound: AsyncChannel<Inbound>, inFlight: InFlight, policy: @escaping @Sendable (CollectionName) -> ConflictPolicy
    ) async throws -> SyncStats {
        var stats = SyncStats()
        var done = 0
        var bytesDone = 0
        for await message in inbound {
            switch message {
            case .answer(let queued, let response, let total):
                let outcome: AckOutcome
                do {
                    outcome = try await local.applyPushResponse(queued.map(\.entry), response, policy: policy)
                } catch {
                    // Not applied: the entries stay queued (sent) and go out again next time.
                    inFlight.remove(queued.map(\.entry.position))
                    throw error
                }
                inFlight.remove(queued.map(\.entry.position))
                done += outcome.acknowledged
                bytesDone += queued.reduce(0) { $0 + $1.bytes }
                stats.pushed += outcome.acknowledged
                stats.conflicts += outcome.detected.count
                stats.resolved += outcome.resolved.count
                for report in outcome.detected { bus.emit(.conflictDetected(report)) }
                for report in outcome.resolved { bus.emit(.conflictResolved(report)) }
                bus.emit(.pushProgress(done: done, total: max(total.count, done), bytesDone: bytesDone, bytesTotal: max(total.bytes, bytesDone)))
                if !outcome.changedKeys.isEmpty { bus.emit(.recordsChanged(outcome.changedKeys, origin: .remote)) }
            case .refused(let queued, let error, let total):
                let letter: DeadLetter
                do {
                    letter = try await local.deadLetter(queued.entry, error: error)
                } catch {
                    inFlight.remove([queued.entry.position])
                    throw error
                }
                inFlight.remove([queued.entry.position])
                bus.emit(.error(SyncErrorEvent(error: error, key: letter.change.key, changeID: letter.change.id)))
                done += 1
                bytesDone += queued.bytes  // out of the outbox too
                bus.emit(.pushProgress(done: done, total: max(total.count, done), bytesDone: bytesDone, bytesTotal: max(total.bytes, bytesDone)))
            }
        }
        return stats
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
                // Not this device's own writes, which it knows from their acknowledgements; a
                // snapshot (cursor 0) brings everything.
                page = try await transport.pull(
                    after: cursor, from: position, limit: pageSize, epoch: epoch, leavingOut: cursor > 0 ? local.node : nil
                )
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
