/// A local write, before it is stamped.
package enum Mutation: Sendable {
    /// Sets `fields` on the record (creating it); with `replace`, fields the record has but
    /// `fields` lacks are set to null (a whole-model upsert).
    /// `encoded` holds `fields` already encoded (by the writer, before group commit).
    case upsert(key: RecordKey, fields: [String: Value], replace: Bool, priority: Priority, mode: ConflictMode, encoded: EncodedFields? = nil)
    case delete(key: RecordKey, priority: Priority, mode: ConflictMode)

    var key: RecordKey {
        switch self {
        case .upsert(let key, _, _, _, _, _), .delete(let key, _, _): return key
        }
    }
}

/// What committing one mutation did: the change queued (nil when it changed nothing). Kept small:
/// group commit hands one to every writer.
package struct MutationOutcome: Sendable {
    package var change: Change?
}

/// An outbox entry on its way to the transport, with its size in the binary codec.
package struct QueuedChange: Sendable {
    package var entry: OutboxEntry
    package var bytes: Int
}

/// What applying a push response did.
package struct AckOutcome: Sendable {
    package var acknowledged = 0
    package var detected: [ConflictReport] = []
    package var resolved: [ConflictReport] = []
    package var changedKeys: [RecordKey] = []
}

/// What applying a page of remote changes did.
package struct PageOutcome: Sendable {
    /// Records whose visible state changed.
    package var changedKeys: [RecordKey] = []
    /// This device's applied writes that the page says a concurrent write replaced.
    package var detected: [ConflictReport] = []
}

/// The single owner of the device's store (DESIGN §3): every read and write of records, outbox,
/// cursor and conflicts goes through this actor, one transaction per step.
package actor LocalStore {
    package let store: any SyncStore
    package let limits: Limits
    /// This device's node id (its HLCs carry it), fixed when the store was created.
    package nonisolated let node: UInt64
    private var clock: HybridClock
    private var ids = EventIDGenerator()
    /// Random bits for event ids: a fast generator seeded once from the system's.
    private var random = SplitMix64(seed: { var system = SystemRandomNumberGenerator(); return system.next() }())
    private let wallClock: @Sendable () -> UInt64
    /// Server time minus this device's wall clock (ms), smoothed: stamps use the corrected time,
    /// so a device whose clock is wrong stamps as if it were right once it heard the server.
    private var clockOffset: Int64
    /// Whether the offset was stored (heard from a server) since the store was created.
    private var knownOffset: Bool

    package init(store: any SyncStore, limits: Limits = .default, wallClock: @escaping @Sendable () -> UInt64) throws {
        self.store = store
        self.limits = limits
        self.wallClock = wallClock
        let device = try store.write { tx -> DeviceMetadata in
            if let device = try tx.deviceMetadata() { return device }
            var random = SystemRandomNumberGenerator()
            let created = DeviceMetadata(deviceID: random.next() | 1, lastHLC: .zero)
            try tx.setDeviceMetadata(created)
            return created
        }
        clock = HybridClock(node: device.deviceID, last: device.lastHLC)
        node = device.deviceID
        try Self.upgradeDeadLetters(store)
        clockOffset = try store.read { tx in try Self.clockOffset(tx) }
        knownOffset = try store.read { tx in try tx.metadata(Self.clockOffsetName) != nil }
    }

    package var deviceID: UInt64 { clock.node }

    // MARK: Server time

    static let clockOffsetName = "syncline.clock-offset"

    static func clockOffset(_ tx: any StoreReader) throws -> Int64 {
        guard let bytes = try tx.metadata(clockOffsetName) else { return 0 }
        var reader = BinaryReader(bytes)
        let offset = try reader.readZigZag()
        try reader.expectEnd()
        return offset
    }

    /// Whether the device has heard the server's time (ever: the offset is kept in the store).
    package func knowsServerTime() throws -> Bool { try store.read { tx in try tx.metadata(Self.clockOffsetName) != nil } }

    /// The wall clock corrected by what the server's answers said of it.
    private func correctedNow() -> UInt64 {
        let wall = Int64(clamping: wallClock())
        return UInt64(max(0, wall.addingReportingOverflow(clockOffset).partialValue))
    }

    /// How far (ms) the offset may move before it is a correction rather than jitter: smaller
    /// moves are smoothed; larger ones re-stamp the writes no one has seen.
    static let clockJump: Int64 = 2_000

    /// Takes in the server's time from an answer (a push response, a pull page, a refusal for
    /// clock skew). A device whose clock is off by more than ``clockJump`` corrects it at once
    /// and re-stamps every change no one has seen (not yet sent, or `refused` for skew, which the
    /// server applied none of) by the same amount, in their order, so each keeps its place in real
    /// time; the clock then continues from the corrected time, backwards too. Smaller differences
    /// are smoothed (a quarter of each).
    /// - Returns: whether changes were re-stamped.
    @discardableResult
    package func observeServerTime(_ serverTime: UInt64?, refused: [OutboxEntry] = []) throws -> Bool {
        // Without the server's time (a refusal that did not say it), the offset stays as it is.
        let sample = serverTime.map { Int64(clamping: $0) - Int64(clamping: wallClock()) } ?? clockOffset
        let delta = sample - clockOffset
        if abs(delta) <= Self.clockJump && refused.isEmpty && serverTime != nil, knownOffset {
            clockOffset += delta / 4
            return false
        }
        knownOffset = true
        let jumped = abs(delta) > Self.clockJump
        clockOffset = jumped ? sample : clockOffset + delta / 4
        let now = correctedNow()
        var clock = self.clock
        let restamped = try store.write { tx -> Bool in
            var writer = BinaryWriter(capacity: 10)
            writer.writeZigZag(clockOffset)
            try tx.setMetadata(Self.clockOffsetName, writer.bytes)
            let refusedSeqs = Set(refused.map(\.position))
            var unseen = try tx.outbox(limit: Int.max).filter { !$0.sent || refusedSeqs.contains($0.position) }
            if !jumped {
                // Refused, yet the offset barely moved (the device had corrected it after these
                // were stamped): move them so the newest is now.
                unseen = unseen.filter { refusedSeqs.contains($0.position) }
            }
            guard !unseen.isEmpty else { return false }
            let shift = jumped ? delta : Int64(now) - Int64(clamping: unseen.map(\.change.hlc.wallMillis).max() ?? now)
            guard shift < 0 || jumped else { return false }
            var newest = HLC.zero
            var byRecord: [RecordKey: [Change]] = [:]
            for var entry in unseen {
                byRecord[entry.change.key, default: []].append(entry.change)
                entry.change.hlc = HLC(packed: Self.shift(entry.change.hlc.packed, byMillis: shift), node: entry.change.hlc.node)
                entry.sent = false
                try tx.putOutboxEntry(entry)
                newest = max(newest, entry.change.hlc)
            }
            // The record's pending writes that those changes carry move by the same amount, once
            // each, judged on their stamps before the move: a pending field belongs to a change
            // that holds it and is not older than it (a change coalesced from several writes
            // carries the newest of their stamps).
            for (key, changes) in byRecord {
                guard var record = try tx.record(key) else { continue }
                for (name, state) in record.pendingFields where changes.contains(where: { $0.fields[name] != nil && state.hlc <= $0.hlc }) {
                    record.pendingFields[name] = FieldState(
                        value: state.value, hlc: HLC(packed: Self.shift(state.hlc.packed, byMillis: shift), node: state.hlc.node), seq: 0
                    )
                }
                if let pending = record.pendingDelete, changes.contains(where: { $0.operation == .delete && pending <= $0.hlc }) {
                    record.pendingDelete = HLC(packed: Self.shift(pending.packed, byMillis: shift), node: pending.node)
                }
                try tx.putRecord(record)
            }
            // Backwards only when the clock was ahead; a clock that was behind only moves forward.
            let floor = shift < 0 ? HLC.zero : clock.last
            clock.rebase(to: max(floor, newest, HLC(packed: min(now, HLC.maxWallMillis) << 16, node: clock.node)))
            try tx.setDeviceMetadata(DeviceMetadata(deviceID: clock.node, lastHLC: clock.last))
            return true
        }
        self.clock = clock
        return restamped
    }

    /// `packed` (milliseconds in its upper 48 bits) moved by `millis`, kept within the HLC's range.
    static func shift(_ packed: UInt64, byMillis millis: Int64) -> UInt64 {
        let wall = Int64(clamping: packed >> 16)
        let moved = UInt64(min(max(0, wall + millis), Int64(HLC.maxWallMillis)))
        return moved << 16 | (packed & 0xFFFF)
    }

    // MARK: Local writes

    /// Commits mutations in one transaction (group commit). A mutation that fails on its own (too
    /// large, say) fails alone: the group is retried one by one.
    package func commit(_ mutations: [Mutation]) -> [Result<MutationOutcome, SyncError>] {
        do {
            let outcomes = try commitAll(mutations)
            return outcomes.map { .success($0) }
        } catch {
            guard mutations.count > 1 else { return [.failure(Self.syncError(error))] }
            return mutations.map { mutation in
                do {
                    return .success(try commitAll([mutation])[0])
                } catch {
                    return .failure(Self.syncError(error))
                }
            }
        }
    }

    private func commitAll(_ mutations: [Mutation]) throws -> [MutationOutcome] {
        var stamped: [(Mutation, HLC, EventID)] = []
        stamped.reserveCapacity(mutations.count)
        let clockBefore = clock
        for mutation in mutations {
            let now = correctedNow()
            stamped.append((mutation, try clock.now(wallMillis: now), ids.next(wallMillis: now, using: &random)))
        }
        let device = DeviceMetadata(deviceID: clock.node, lastHLC: clock.last)
        do {
            return try store.write { tx in
                let outcomes = try stamped.map { mutation, hlc, id in try Self.apply(mutation, hlc: hlc, id: id, tx) }
                try tx.setDeviceMetadata(device)
                return outcomes
            }
        } catch {
            clock = clockBefore
            throw error
        }
    }

    /// Applies one mutation. An upsert's fields were validated when the mutation was made (by
    /// ``SyncClient``, on the caller's task, so group commit does not do it serially); a delta is
    /// a subset of them, plus nulls for fields the record already has.
    private static func apply(
        _ mutation: Mutation, hlc: HLC, id: EventID, _ tx: any StoreWriter
    ) throws -> MutationOutcome {
        let key = mutation.key
        if case .upsert(_, let fields, _, let priority, let mode, let encoded) = mutation {
            // The common case, a new record, in one step: insert it unless it exists.
            let change = Change(
                id: id, collection: key.collection, record: key.id, operation: .upsert, fields: fields, hlc: hlc, base: 0,
                mode: mode
            )
            let created = RecordState(
                collection: key.collection, id: key.id, pendingFields: fields.mapValues { FieldState(value: $0, hlc: hlc, seq: 0) }
            )
            let inserted = try encoded.map { encoded in
                try tx.insertRecordIfAbsent(created, encoded: BinaryCodec.encodeNewRecord(key, fields: encoded, hlc: hlc))
            } ?? tx.insertRecordIfAbsent(created)
            if inserted {
                try tx.enqueueFirst(change, priority: priority, fields: encoded)
                return MutationOutcome(change: change)
            }
        }
        var record = try tx.record(key) ?? RecordState(collection: key.collection, id: key.id)
        switch mutation {
        case .upsert(_, let fields, let replace, let priority, let mode, _):
            let visible = record.visibleFields
            var delta = fields.filter { visible[$0.key] != $0.value }
            if replace {
                for name in visible.keys where fields[name] == nil && visible[name] != .null { delta[name] = .null }
            }
            let exists = !record.isDeleted && (record.seq > 0 || !record.fields.isEmpty || !record.pendingFields.isEmpty)
            if delta.isEmpty && exists { return MutationOutcome(change: nil) }
            let change = Change(
                id: id, collection: key.collection, record: key.id, operation: .upsert, fields: delta, hlc: hlc,
                base: record.seq, mode: mode
            )
            if let deletedLocally = record.pendingDelete {
                // Re-created after a local delete not yet confirmed: only the new fields are visible.
                record.fields = [:]
                record.tombstone = deletedLocally
                record.pendingDelete = nil
            }
            for (name, value) in delta { record.pendingFields[name] = FieldState(value: value, hlc: hlc, seq: 0) }
            try tx.putRecord(record)
            try tx.enqueue(change, priority: priority)
            return MutationOutcome(change: change)
        case .delete(_, let priority, let mode):
            let exists = !record.isDeleted && (record.seq > 0 || !record.fields.isEmpty || !record.pendingFields.isEmpty)
            guard exists else { return MutationOutcome(change: nil) }
            let change = Change(
                id: id, collection: key.collection, record: key.id, operation: .delete, hlc: hlc, base: record.seq,
                mode: mode
            )
            record.pendingFields = [:]
            record.pendingDelete = hlc
            try tx.putRecord(record)
            try tx.enqueue(change, priority: priority)
            return MutationOutcome(change: change)
        }
    }

    // MARK: Reads

    package func record(_ key: RecordKey) throws -> RecordState? {
        try store.read { tx in try tx.record(key) }
    }

    /// The stored records of `keys` (absent keys are left out), in one read.
    package func records(_ keys: [RecordKey]) throws -> [RecordKey: RecordState] {
        try store.read { tx in
            var found: [RecordKey: RecordState] = [:]
            for key in keys { found[key] = try tx.record(key) }
            return found
        }
    }

    package func records(in collection: CollectionName) throws -> [RecordState] {
        try store.read { tx in try tx.records(in: collection) }
    }

    package func pendingCount() throws -> Int { try store.read { tx in try tx.outboxCount() } }

    /// How many changes are queued, and their binary-encoded size, read together.
    package func pending() throws -> (count: Int, bytes: Int) {
        try store.read { tx in (try tx.outboxCount(), try tx.outboxBytes()) }
    }

    package func pullCursor() throws -> UInt64 { try store.read { tx in try tx.pullCursor() } }

    /// The pull cursor with the namespace epoch it belongs to, read together, and whether the
    /// device ever completed a pull (a device that never did holds no pulled record).
    package func pullPosition() throws -> (cursor: UInt64, epoch: Epoch?, everPulled: Bool) {
        try store.read { tx in (try tx.pullCursor(), try tx.pullEpoch(), try tx.metadata(MetadataName.cursor) != nil) }
    }

    package func conflicts() throws -> [StoredConflict] { try store.read { tx in try tx.conflicts() } }

    // MARK: Outbox

    /// The next batch in drain order, cut by count and encoded bytes, marked as sent. Each entry
    /// comes with its encoded size, measured once here. Entries at `skipping` (pushed, their
    /// answer not applied yet) are left out.
    package func nextBatch(maxChanges: Int, maxBytes: Int, skipping: Set<UInt64> = []) throws -> [QueuedChange] {
        try store.write { tx in
            var batch: [QueuedChange] = []
            var bytes = 0
            for entry in try tx.outbox(limit: maxChanges, skipping: skipping) {
                let size = try tx.outboxChangeSize(position: entry.position) ?? Self.encodedSize(entry.change)
                if !batch.isEmpty && bytes + size > maxBytes { break }
                batch.append(QueuedChange(entry: entry, bytes: size))
                bytes += size
            }
            try tx.markSent(batch.map(\.entry))
            return batch
        }
    }

    static func encodedSize(_ change: Change) -> Int {
        var writer = BinaryWriter(capacity: 128)
        writer.write(change)
        return writer.bytes.count
    }

    // MARK: Acknowledgements

    /// Applies the server's answers to a pushed batch: confirms applied changes, reports lost
    /// writes, and runs each collection's policy on rejected ones.
    package func applyPushResponse(
        _ entries: [OutboxEntry], _ response: PushResponse, policy: @Sendable (CollectionName) -> ConflictPolicy
    ) throws -> AckOutcome {
        guard response.results.count == entries.count,
            zip(entries, response.results).allSatisfy({ $0.change.id == $1.id })
        else {
            throw SyncError(
                .invalidPage,
                "the push response has \(response.results.count) results for \(entries.count) changes, or in another order"
            )
        }
        try observeServerTime(response.serverTime)
        // The app's merge resolvers run before the write transaction opens: a slow one does not
        // hold the store's write lock. Nothing else runs on this actor in between (no await), so
        // the records they were given cannot change before their results are written.
        var merged: [EventID: [String: Value]] = [:]
        for (entry, result) in zip(entries, response.results) {
            guard case .rejected(_, let conflicts, let current) = result, entry.change.operation == .upsert,
                case .merge(let resolver) = policy(entry.change.collection)
            else { continue }
            merged[entry.change.id] = resolver(entry.change.fields.filter { conflicts.contains($0.key) }, current.mapValues(\.value))
        }
        let now = correctedNow()
        var clock = self.clock
        var ids = self.ids
        try clock.receive(HLC(packed: min(response.serverTime, HLC.maxWallMillis) << 16, node: 0), wallMillis: now)
        let outcome = try store.write { tx -> AckOutcome in
            var outcome = AckOutcome()
            for (entry, result) in zip(entries, response.results) {
                try Reconciler.acknowledge(
                    entry, result, policy: policy(entry.change.collection), merged: merged[entry.change.id] ?? [:], clock: &clock,
                    ids: &ids, now: now, tx, &outcome
                )
            }
            try tx.setDeviceMetadata(DeviceMetadata(deviceID: clock.node, lastHLC: clock.last))
            return outcome
        }
        self.clock = clock
        self.ids = ids
        return outcome
    }

    // MARK: Remote pages

    /// Applies a page of remote changes in one transaction, with the new cursor when it is the
    /// pull's last page.
    /// - Returns: the records whose visible state the page changed (the device's own writes
    ///   coming back as they show are not among them), and this device's applied writes the page
    ///   says concurrent writes replaced (see ``SupersededWrite``), each reported once: the page
    ///   replaces them, so a page read again finds nothing left to report.
    /// - Parameters:
    ///   - cursor: the cursor the pull began from.
    ///   - position: where this page starts.
    /// - Throws: ``SyncError`` `.invalidPage` (nothing applied) when the page goes backwards.
    /// - Parameter snapshot: for a pull from 0, every key the snapshot's pages held; with the last
    ///   page, confirmed records the snapshot did not hold are gone on the server (deleted, and
    ///   their tombstones purged) and lose their confirmed fields, in the same transaction.
    ///
    /// A pull from 0 carries whole records: each entry replaces the record's confirmed fields and
    /// seq (after a restore the device may hold newer seqs than the server; pending local writes
    /// are kept). The last page stores the cursor with the page's epoch.
    package func applyPage(
        _ page: PullPage, after cursor: UInt64, from position: UInt64, snapshot: Set<RecordKey>? = nil,
        policy: @Sendable (CollectionName) -> ConflictPolicy = { _ in .lastWriterWins }
    ) throws -> PageOutcome {
        var previous = position
        for change in page.changes {
            guard change.seq > previous else {
                throw SyncError(
                    .invalidPage,
                    "entry \(change.collection)/\(change.record) has seq \(change.seq), not after \(previous): the page is not applied"
                )
            }
            previous = change.seq
        }
        guard page.cursor >= previous, page.cursor >= position, page.head >= page.cursor else {
            throw SyncError(
                .invalidPage,
                "page cursor \(page.cursor) (head \(page.head)) is behind its entries or the device's cursor \(cursor)"
            )
        }
        // A page's time is the first a new device hears (it pulls before it pushes). After that,
        // pages are not trusted for corrections: a live page may have waited in the transport
        // while a long sync ran, and a stale time would move the clock backwards past HLCs the
        // device received. Push answers and skew refusals, fresh answers to its own requests,
        // correct it from then on.
        if let serverTime = page.serverTime, !knownOffset { try observeServerTime(serverTime) }
        var clock = self.clock
        let now = correctedNow()
        for change in page.changes {
            for field in change.fields.values { try clock.receive(field.hlc, wallMillis: now) }
            if let hlc = change.hlc { try clock.receive(hlc, wallMillis: now) }
        }
        let node = clock.node
        let outcome = try store.write { tx -> PageOutcome in
            // Only records whose visible state the page changes are news for the app: the
            // device's own writes coming back confirmed are not (they were reported as local).
            var outcome = PageOutcome()
            for change in page.changes {
                let key = RecordKey(collection: change.collection, id: change.record)
                var record = try tx.record(key) ?? RecordState(collection: key.collection, id: key.id)
                let visibleBefore = (record.isDeleted, record.visibleFields)
                for write in change.superseded where write.hlc.node == node {
                    try Reconciler.noteSuperseded(write, by: change, in: &record, policy: policy(key.collection), clock: &clock, now: now, tx, &outcome)
                }
                if change.deleted {
                    record.fields = [:]
                    record.tombstone = change.hlc ?? .zero
                } else {
                    if change.reset || cursor == 0 { record.fields = [:] }
                    for (name, state) in change.fields where state.seq >= (record.fields[name]?.seq ?? 0) {
                        record.fields[name] = state
                    }
                    record.tombstone = nil
                }
                record.seq = cursor == 0 ? change.seq : max(record.seq, change.seq)
                record.pruneOwnWrites()
                try tx.putRecord(record)
                if (record.isDeleted, record.visibleFields) != visibleBefore { outcome.changedKeys.append(key) }
            }
            if !page.hasMore, let snapshot {
                // Confirmed by a pull (a seq) or by the device's own acknowledged write (confirmed
                // fields: a device is not sent its own writes back, so those may have no seq).
                for var record in try tx.allRecords()
                where (record.seq > 0 || !record.fields.isEmpty) && !snapshot.contains(record.key) && record.tombstone == nil {
                    record.fields = [:]
                    record.tombstone = .zero
                    record.pruneOwnWrites()
                    try tx.putRecord(record)
                    outcome.changedKeys.append(record.key)
                }
            }
            if !page.hasMore {
                try tx.setPullCursor(page.cursor)
                if let epoch = page.epoch { try tx.setPullEpoch(epoch) }
            }
            try tx.setDeviceMetadata(DeviceMetadata(deviceID: clock.node, lastHLC: clock.last))
            return outcome
        }
        self.clock = clock
        return outcome
    }

    /// Forgets the cursor and its epoch so the next pull starts from a snapshot (after a
    /// `resyncRequired`). Records and the outbox are kept: unsent changes still go out.
    package func resetCursor() throws {
        try store.write { tx in
            try tx.setPullCursor(0)
            try tx.setPullEpoch(nil)
        }
    }

    // MARK: Dead letters

    /// Takes a change the server refused for good out of the outbox and keeps it aside.
    package func deadLetter(_ entry: OutboxEntry, error: SyncError) throws -> DeadLetter {
        let letter = DeadLetter(change: entry.change, priority: entry.priority, error: error, failedAt: wallClock())
        try store.write { tx in
            try tx.removeOutboxEntries([entry.position])
            var letters = try Self.deadLetters(tx)
            letters.append(letter)
            try Self.setDeadLetters(letters, tx)
        }
        return letter
    }

    package func deadLetters() throws -> [DeadLetter] { try store.read { tx in try Self.deadLetters(tx) } }

    /// Queues a dead-lettered change again (same id: the server never applied it).
    package func retryDeadLetter(_ id: EventID) throws {
        try store.write { tx in
            var letters = try Self.deadLetters(tx)
            guard let index = letters.firstIndex(where: { $0.change.id == id }) else {
                throw SyncError(.notFound, "no dead-lettered change has the id \(id)")
            }
            let letter = letters.remove(at: index)
            try tx.enqueue(letter.change, priority: letter.priority)
            try Self.setDeadLetters(letters, tx)
        }
    }

    /// Drops a dead-lettered change and the local values it would have written.
    package func discardDeadLetter(_ id: EventID) throws -> RecordKey {
        try store.write { tx in
            var letters = try Self.deadLetters(tx)
            guard let index = letters.firstIndex(where: { $0.change.id == id }) else {
                throw SyncError(.notFound, "no dead-lettered change has the id \(id)")
            }
            let letter = letters.remove(at: index)
            if var record = try tx.record(letter.change.key) {
                for name in letter.change.fields.keys where Reconciler.isCovered(record.pendingFields[name], by: letter.change) {
                    record.pendingFields[name] = nil
                }
                if let pending = record.pendingDelete, pending <= letter.change.hlc { record.pendingDelete = nil }
                try tx.putRecord(record)
            }
            try Self.setDeadLetters(letters, tx)
            return letter.change.key
        }
    }

    static let deadLettersName = "syncline.dead-letters"

    static func deadLetters(_ tx: any StoreReader) throws -> [DeadLetter] {
        guard let bytes = try tx.metadata(deadLettersName) else { return [] }
        return try BinaryCodec.decodeDeadLetters(bytes)
    }

    static func setDeadLetters(_ letters: [DeadLetter], _ tx: any StoreWriter) throws {
        try tx.setMetadata(deadLettersName, letters.isEmpty ? nil : BinaryCodec.encode(letters))
    }

    /// Rewrites dead letters kept in the headerless form of earlier versions as the versioned
    /// document (once, when the store opens).
    static func upgradeDeadLetters(_ store: any SyncStore) throws {
        guard let bytes = try store.read({ tx in try tx.metadata(deadLettersName) }), !BinaryCodec.isHeadedDeadLetters(bytes) else { return }
        try store.write { tx in try setDeadLetters(try BinaryCodec.decodeDeadLetters(bytes), tx) }
    }

    // MARK: Manual conflicts

    /// Resolves a stored conflict: `values` are pushed as a new edit (nil drops the local edit).
    package func resolveConflict(_ id: EventID, with values: [String: Value]?, priority: Priority) throws -> ConflictReport {
        let now = correctedNow()
        var clock = self.clock
        var ids = self.ids
        let report = try store.write { tx -> ConflictReport in
            guard let conflict = try tx.conflict(id) else {
                throw SyncError(.notFound, "no unresolved conflict has the id \(id)")
            }
            try tx.removeConflict(id)
            var record = try tx.record(conflict.key) ?? RecordState(collection: conflict.collection, id: conflict.record)
            for name in conflict.local.keys { record.pendingFields[name] = nil }
            record.conflicted = try tx.conflicts().contains { $0.key == conflict.key }
            if let values, !values.isEmpty {
                let hlc = try clock.now(wallMillis: now)
                let base = max(record.seq, conflict.server.values.map(\.seq).max() ?? 0)
                let change = Change(
                    id: ids.next(wallMillis: now), collection: conflict.collection, record: conflict.record,
                    operation: .upsert, fields: values, hlc: hlc, base: base, mode: .reject
                )
                try change.validate(limits)
                for (name, value) in values { record.pendingFields[name] = FieldState(value: value, hlc: hlc, seq: 0) }
                try tx.enqueue(change, priority: priority)
            }
            try tx.putRecord(record)
            try tx.setDeviceMetadata(DeviceMetadata(deviceID: clock.node, lastHLC: clock.last))
            return ConflictReport(
                changeID: id, key: conflict.key, fields: conflict.fieldNames, policy: ConflictPolicy.manual.name,
                local: values ?? [:], server: conflict.server.mapValues(\.value)
            )
        }
        self.clock = clock
        self.ids = ids
        return report
    }

    static func syncError(_ error: any Error) -> SyncError {
        (error as? SyncError) ?? SyncError(.storage, "\(error)")
    }
}
