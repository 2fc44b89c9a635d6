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
    /// How far the live pages applied since the cursor was stored have got: a catch-up of several
    /// pages keeps `after` (the device's cursor) while `position` moves, as a pull does.
    private var live: (after: UInt64, position: UInt64)?

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
        live = nil  // the pull moves the cursor: live pages start again from it
        var done = 0
        var total = 0
        var resyncs = 0
        let (start, known, everPulled) = try await local.pullPosition()
        var (cursor, epoch) = (start, known)
        // The reconciler owns the cursor and tells the transport where the device stands.
        await transport.resume(from: cursor, epoch: epoch)
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
                    // A server that does not check the epoch itself.
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
                await transport.resume(from: 0, epoch: nil)
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
            if !page.hasMore {
                await transport.resume(from: page.cursor, epoch: epoch ?? page.epoch)
                return
            }
            epoch = epoch ?? page.epoch  // the rest of the pull stays in the first page's epoch
            position = page.cursor
        }
    }

    /// Applies a page the server pushed (a live channel), as it comes, when it continues the
    /// device's cursor: the transport hands it over and keeps nothing to be fetched again.
    /// - Returns: `false` when the page does not continue the cursor (a page lost on the way, a
    ///   session behind or ahead of the device, another epoch, a snapshot) and brings something
    ///   the device lacks: the caller pulls instead. A page the device already has is ignored.
    package func applyLive(_ live: LivePage, policy: @escaping @Sendable (CollectionName) -> ConflictPolicy) async throws -> Bool {
        let (cursor, epoch, _) = try await local.pullPosition()
        var page = live.page
        let position = self.live?.after == cursor ? self.live!.position : cursor
        if let known = epoch, let current = page.epoch, known != current { return false }
        guard cursor > 0, live.after == cursor, live.from == position else {
            // Older than what the device has (it pulled past it): nothing to do.
            return live.after <= cursor && page.cursor <= position && !page.hasMore
        }
        page.leaveOut(writesOf: local.node)
        let applied: PageOutcome
        do {
            applied = try await local.applyPage(page, after: cursor, from: position, snapshot: nil, policy: policy)
        } catch let error as SyncError where error.code == .invalidPage {
            bus.emit(.error(SyncErrorEvent(error: error, key: nil, changeID: nil)))
            self.live = nil
            return false
        }
        for report in applied.detected { bus.emit(.conflictDetected(report)) }
        if !applied.changedKeys.isEmpty { bus.emit(.recordsChanged(applied.changedKeys, origin: .remote)) }
        if page.hasMore {
            self.live = (cursor, page.cursor)
        } else {
            self.live = nil
            await transport.resume(from: page.cursor, epoch: epoch ?? page.epoch)
        }
        return true
    }

    // MARK: Rules of reconciling
    //
    // What an answer or a page does to a record, inside the store transaction that
    // `LocalStore.applyPushResponse` and `LocalStore.applyPage` open (the local store owns the
    // transaction and the clock; these rules are the reconciler's).

    /// Applies the server's result for one pushed change to its record: confirmed fields, lost
    /// writes reported (kept as conflicts under `manual`), rejections run through the policy.
    static func acknowledge(
        _ entry: OutboxEntry, _ result: PushResult, policy: ConflictPolicy, merged: [String: Value], clock: inout HybridClock,
        ids: inout EventIDGenerator, now: UInt64, _ tx: any StoreWriter, _ outcome: inout AckOutcome
    ) throws {
        let change = entry.change
        let key = change.key
        try tx.removeOutboxEntries([entry.position])
        outcome.acknowledged += 1
        var record = try tx.record(key) ?? RecordState(collection: key.collection, id: key.id)
        let visibleBefore = (record.isDeleted, record.visibleFields)
        // An answer can be older than what a pull already brought (a duplicate carries the
        // original result): only what is newer than the record's pulled seq is news.
        switch result {
        case .applied(_, let seq, let fields), .duplicate(_, let seq, let fields):
            let fresh = seq > record.seq
            for (name, state) in fields where state.seq > record.seq && state.seq >= (record.fields[name]?.seq ?? 0) {
                record.fields[name] = state
            }
            var lost: [String]
            if change.operation == .upsert {
                if fresh && !fields.isEmpty { record.tombstone = nil }
                lost = change.fields.keys.filter { fields[$0]?.hlc != change.hlc }.sorted()
                for name in change.fields.keys where Self.isCovered(record.pendingFields[name], by: change) {
                    record.pendingFields[name] = nil
                }
                if record.fields.values.contains(where: { $0.hlc == change.hlc }) {
                    record.ownWrites[change.hlc] = OwnWrite(id: change.id, seq: seq)
                }
            } else {
                // Deleting what this device's own acknowledged delete left deleted changes nothing
                // on the server (same seq): its tombstone stays the earlier delete's.
                let alreadyDeleted = record.fields.isEmpty && record.tombstone.flatMap { record.ownWrites[$0] }?.seq == seq
                if fresh && fields.isEmpty && !alreadyDeleted {
                    record.fields = [:]
                    record.tombstone = max(record.tombstone ?? change.hlc, change.hlc)
                } else if fresh && !fields.isEmpty {
                    record.fields = record.fields.filter { fields[$0.key] != nil }
                    record.tombstone = nil
                }
                lost = fields.keys.sorted()
                if let pending = record.pendingDelete, pending <= change.hlc { record.pendingDelete = nil }
                if record.tombstone == change.hlc { record.ownWrites[change.hlc] = OwnWrite(id: change.id, seq: seq) }
            }
            var server = fields.filter { lost.contains($0.key) }
            // Replaced by a concurrent write after it was applied, as a pull said before this
            // (late) acknowledgement came: reported now, with the change's id.
            if let replaced = record.lostWrites.removeValue(forKey: change.hlc) {
                let extra = replaced.filter { !lost.contains($0) }
                for name in extra { server[name] = record.tombstone == nil ? record.fields[name] : nil }
                lost = (lost + extra).sorted()
            }
            if !lost.isEmpty {
                let local = change.fields.filter { lost.contains($0.key) }
                outcome.detected.append(
                    ConflictReport(
                        changeID: change.id, key: key, fields: lost, policy: policy.name, local: local, server: server.mapValues(\.value)
                    )
                )
                if case .manual = policy {
                    try Self.keepConflict(change.id, lost, local: local, server: server, in: &record, detected: try clock.now(wallMillis: now), tx)
                }
            }
        case .rejected(_, let conflicts, let current):
            record.lostWrites[change.hlc] = nil
            for (name, state) in current where state.seq > record.seq && state.seq >= (record.fields[name]?.seq ?? 0) {
                record.fields[name] = state
            }
            let report = ConflictReport(
                changeID: change.id, key: key, fields: conflicts, policy: policy.name,
                local: change.fields.filter { conflicts.contains($0.key) }, server: current.mapValues(\.value)
            )
            outcome.detected.append(report)
            switch policy {
            case .manual:
                try Self.keepConflict(change.id, conflicts, local: change.fields, server: current, in: &record, detected: try clock.now(wallMillis: now), tx)
            case .merge where change.operation == .upsert:
                // Resolved before the transaction opened (see applyPushResponse).
                var fields = change.fields
                for (name, value) in merged { fields[name] = value }
                let hlc = try clock.now(wallMillis: now)
                let base = max(record.seq, current.values.map(\.seq).max() ?? 0)
                let retry = Change(
                    id: ids.next(wallMillis: now), collection: key.collection, record: key.id, operation: .upsert,
                    fields: fields, hlc: hlc, base: base, mode: .reject
                )
                for name in change.fields.keys where Self.isCovered(record.pendingFields[name], by: change) {
                    record.pendingFields[name] = nil
                }
                for (name, value) in fields where record.pendingFields[name] == nil {
                    record.pendingFields[name] = FieldState(value: value, hlc: hlc, seq: 0)
                }
                try tx.enqueue(retry, priority: entry.priority)
                outcome.resolved.append(report)
            default:
                // serverWins (and a rejected delete under merge): the local edit is dropped.
                for name in change.fields.keys where Self.isCovered(record.pendingFields[name], by: change) {
                    record.pendingFields[name] = nil
                }
                if let pending = record.pendingDelete, pending <= change.hlc { record.pendingDelete = nil }
                outcome.resolved.append(report)
            }
        }
        record.pruneOwnWrites()
        try tx.putRecord(record)
        // The device's own write, confirmed as it shows it, is no news: the app heard of it
        // (origin .local) when it was written. Only an answer that changes what the app sees
        // (a lost field, the server's values) is reported, as a remote change.
        if (record.isDeleted, record.visibleFields) != visibleBefore { outcome.changedKeys.append(key) }
    }

    /// Keeps a conflict for the app to resolve (the `manual` policy) and flags its record.
    static func keepConflict(
        _ id: EventID, _ names: [String], local: [String: Value], server: [String: FieldState], in record: inout RecordState,
        detected: HLC, _ tx: any StoreWriter
    ) throws {
        record.conflicted = true
        try tx.putConflict(
            StoredConflict(
                id: id, collection: record.collection, record: record.id, fieldNames: names, local: local, server: server,
                detected: detected
            )
        )
    }

    /// Whether a pending write is settled by the answer to `change`: it is one of the change's
    /// fields and no newer than the change (a change coalesced from earlier writes carries the
    /// newest of their HLCs; a later local write has a greater HLC and stays pending).
    static func isCovered(_ pending: FieldState?, by change: Change) -> Bool {
        guard let pending else { return false }
        return pending.hlc <= change.hlc
    }

    /// A write of this device that a concurrent one replaced after the server applied it.
    ///
    /// Still confirmed here (the device knows the change from its acknowledgement): reported now,
    /// before the page replaces it, so a later page that says the same finds nothing to report.
    /// Still waiting for its acknowledgement (it was lost): kept in ``RecordState/lostWrites``
    /// and reported with the acknowledgement, which names the change.
    static func noteSuperseded(
        _ write: SupersededWrite, by change: RemoteChange, in record: inout RecordState, policy: ConflictPolicy,
        clock: inout HybridClock, now: UInt64, _ tx: any StoreWriter, _ outcome: inout PageOutcome
    ) throws {
        if let id = record.ownWrites[write.hlc]?.id {
            let names = write.deleted
                ? (record.tombstone == write.hlc ? write.fields : [])
                : write.fields.filter { record.fields[$0]?.hlc == write.hlc }
            guard !names.isEmpty || (write.deleted && record.tombstone == write.hlc) else { return }
            let local = write.deleted ? [:] : record.fields.filter { names.contains($0.key) }.mapValues(\.value)
            let server = change.fields.filter { names.contains($0.key) }
            outcome.detected.append(
                ConflictReport(changeID: id, key: record.key, fields: names, policy: policy.name, local: local, server: server.mapValues(\.value))
            )
            if case .manual = policy {
                try keepConflict(id, names, local: local, server: server, in: &record, detected: try clock.now(wallMillis: now), tx)
            }
        } else if let sent = try tx.outboxEntries(for: record.key).first(where: { $0.sent && $0.change.hlc == write.hlc }) {
            let names = write.deleted ? write.fields : write.fields.filter { sent.change.fields[$0] != nil }
            record.lostWrites[write.hlc] = Array(Set(record.lostWrites[write.hlc] ?? []).union(names)).sorted()
        }
    }
}
