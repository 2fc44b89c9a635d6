public import Syncline
import Synchronization

/// A ``SyncStore`` that forwards to another and throws on a chosen write: the `n`-th write call
/// from the moment it is armed (`putRecord`, `setMetadata`, `putOutboxEntry`, …), which may be
/// in the middle of a transaction whose earlier writes already ran. The wrapped store then rolls
/// the transaction back, as it would after a full disk or an I/O error, so tests can show that
/// what belongs together (a page and its cursor) is committed together or not at all.
public final class FaultInjectingStore: SyncStore {
    public let inner: any SyncStore
    private let plan = Mutex(Plan())

    struct Plan {
        /// Write calls left before the failing one; nil when disarmed.
        var countdown: Int?
        /// Every write call forwarded or refused since the store was made.
        var writes = 0
        var failures = 0
    }

    public init(_ inner: any SyncStore) {
        self.inner = inner
    }

    /// Makes the `n`-th write call from now (1 = the next one) throw `.storage`; it fires once.
    public func failWrite(_ n: Int) {
        plan.withLock { $0.countdown = max(1, n) }
    }

    public func disarm() {
        plan.withLock { $0.countdown = nil }
    }

    /// Write calls seen so far (to learn how many a transaction makes).
    public var writes: Int { plan.withLock { $0.writes } }

    /// Injected failures so far.
    public var failures: Int { plan.withLock { $0.failures } }

    /// Counts one write call, throwing when it is the armed one.
    func tick(_ operation: String) throws {
        let fail = plan.withLock { plan -> Bool in
            plan.writes += 1
            guard let countdown = plan.countdown else { return false }
            if countdown > 1 {
                plan.countdown = countdown - 1
                return false
            }
            plan.countdown = nil
            plan.failures += 1
            return true
        }
        if fail { throw SyncError(.storage, "injected fault: \(operation) failed (write \(writes))") }
    }

    public func read<Result: Sendable>(_ body: (any StoreReader) throws -> Result) throws -> Result {
        try inner.read(body)
    }

    public func write<Result: Sendable>(_ body: (any StoreWriter) throws -> Result) throws -> Result {
        try inner.write { writer in try body(Writer(inner: writer, store: self)) }
    }

    public func close() { inner.close() }

    /// The wrapped transaction's writer, counting each write.
    struct Writer: StoreWriter {
        let inner: any StoreWriter
        let store: FaultInjectingStore

        var limits: Limits { inner.limits }
        func record(_ key: RecordKey) throws -> RecordState? { try inner.record(key) }
        func records(in collection: CollectionName) throws -> [RecordState] { try inner.records(in: collection) }
        func allRecords() throws -> [RecordState] { try inner.allRecords() }
        func outbox(limit: Int) throws -> [OutboxEntry] { try inner.outbox(limit: limit) }
        func outbox(limit: Int, skipping: Set<UInt64>) throws -> [OutboxEntry] { try inner.outbox(limit: limit, skipping: skipping) }
        func outboxChangeSize(position: UInt64) throws -> Int? { try inner.outboxChangeSize(position: position) }
        func outboxEntries(for key: RecordKey) throws -> [OutboxEntry] { try inner.outboxEntries(for: key) }
        func outboxEntry(position: UInt64) throws -> OutboxEntry? { try inner.outboxEntry(position: position) }
        func outboxCount() throws -> Int { try inner.outboxCount() }
        func outboxBytes() throws -> Int { try inner.outboxBytes() }
        func metadata(_ name: String) throws -> [UInt8]? { try inner.metadata(name) }
        func conflict(_ id: EventID) throws -> StoredConflict? { try inner.conflict(id) }
        func conflicts() throws -> [StoredConflict] { try inner.conflicts() }

        func putRecord(_ state: RecordState) throws {
            try store.tick("putRecord")
            try inner.putRecord(state)
        }
        func insertRecordIfAbsent(_ state: RecordState) throws -> Bool {
            try store.tick("insertRecordIfAbsent")
            return try inner.insertRecordIfAbsent(state)
        }
        func insertRecordIfAbsent(_ state: RecordState, encoded: @autoclosure () -> [UInt8]) throws -> Bool {
            try store.tick("insertRecordIfAbsent")
            return try inner.insertRecordIfAbsent(state, encoded: encoded())
        }
        func removeRecord(_ key: RecordKey) throws {
            try store.tick("removeRecord")
            try inner.removeRecord(key)
        }
        func allocateOutboxPosition() throws -> UInt64 { try inner.allocateOutboxPosition() }
        func putOutboxEntry(_ entry: OutboxEntry) throws {
            try store.tick("putOutboxEntry")
            try inner.putOutboxEntry(entry)
        }
        func putOutboxEntry(_ entry: OutboxEntry, encoded: @autoclosure () -> [UInt8]) throws {
            try store.tick("putOutboxEntry")
            try inner.putOutboxEntry(entry, encoded: encoded())
        }
        func removeOutboxEntries(_ seqs: [UInt64]) throws {
            try store.tick("removeOutboxEntries")
            try inner.removeOutboxEntries(seqs)
        }
        func setMetadata(_ name: String, _ value: [UInt8]?) throws {
            try store.tick("setMetadata")
            try inner.setMetadata(name, value)
        }
        func putConflict(_ conflict: StoredConflict) throws {
            try store.tick("putConflict")
            try inner.putConflict(conflict)
        }
        func removeConflict(_ id: EventID) throws {
            try store.tick("removeConflict")
            try inner.removeConflict(id)
        }
    }
}
