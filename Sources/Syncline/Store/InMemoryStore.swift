import Synchronization

/// A ``SyncStore`` in memory, for tests and the simulator.
///
/// The data lives in an ``InMemoryStore/Database`` that outlives the store: opening a new
/// `InMemoryStore` on the same database is what a restart looks like.
///
/// ```swift
/// let database = InMemoryStore.Database()
/// let store = InMemoryStore(database: database)
/// store.close()
/// let reopened = InMemoryStore(database: database)   // everything committed is still there
/// ```
public final class InMemoryStore: SyncStore {
    /// The data of an in-memory store; share it between successive stores to simulate restarts.
    public final class Database: Sendable {
        fileprivate let state: Mutex<State>

        public init() { state = Mutex(State()) }
    }

    public let database: Database
    public let configuration: StoreConfiguration
    private let isOpen = Atomic<Bool>(true)

    public init(database: Database = Database(), configuration: StoreConfiguration = StoreConfiguration()) {
        self.database = database
        self.configuration = configuration
    }

    public func read<Result: Sendable>(_ body: (any StoreReader) throws -> Result) throws -> Result {
        try checkOpen()
        let limits = configuration.limits
        return try database.state.withLock { state in
            let transaction = InMemoryTransaction(state: state, limits: limits)
            return try body(transaction)
        }
    }

    public func write<Result: Sendable>(_ body: (any StoreWriter) throws -> Result) throws -> Result {
        try checkOpen()
        let limits = configuration.limits
        return try database.state.withLock { state in
            let transaction = InMemoryTransaction(state: state, limits: limits)
            state = State()  // the transaction holds the only reference, so its changes do not copy
            do {
                let result = try body(transaction)
                state = transaction.finish()
                return result
            } catch {
                state = transaction.rollBack()
                throw error
            }
        }
    }

    public func close() { isOpen.store(false, ordering: .sequentiallyConsistent) }

    private func checkOpen() throws(SyncError) {
        guard isOpen.load(ordering: .sequentiallyConsistent) else {
            throw SyncError(.storeClosed, "the in-memory store was closed")
        }
    }
}

private struct State: Sendable {
    var records: [CollectionName: [RecordID: RecordState]] = [:]
    var outbox: [UInt64: OutboxEntry] = [:]
    /// Positions per priority (index = raw value), ascending.
    var drainOrder: [SortedPositions] = [SortedPositions(), SortedPositions(), SortedPositions()]
    var outboxByRecord: [RecordKey: [UInt64]] = [:]
    var metadata: [String: [UInt8]] = [:]
    var conflicts: [EventID: StoredConflict] = [:]
    var lastOutboxSeq: UInt64 = 0
}

/// A transaction that edits the state in place and keeps an undo log.
private final class InMemoryTransaction: StoreWriter {
    private var state: State
    /// Steps that revert this transaction's edits, newest last. They capture `self`; the array is
    /// emptied when the transaction ends, which breaks the cycle.
    private var undo: [() -> Void] = []
    let limits: Limits

    init(state: State, limits: Limits) {
        self.state = state
        self.limits = limits
    }

    func finish() -> State {
        undo.removeAll()
        return state
    }

    func rollBack() -> State {
        for step in undo.reversed() { step() }
        undo.removeAll()
        return state
    }

    // MARK: Reads

    func record(_ key: RecordKey) throws -> RecordState? { state.records[key.collection]?[key.id] }

    func allRecords() throws -> [RecordState] {
        state.records.values.flatMap(\.values)
    }

    func records(in collection: CollectionName) throws -> [RecordState] {
        guard let records = state.records[collection] else { return [] }
        return records.values.sorted { $0.id.rawValue.utf8.lexicographicallyPrecedes($1.id.rawValue.utf8) }
    }

    func outbox(limit: Int) throws -> [OutboxEntry] { try outbox(limit: limit, skipping: []) }

    func outbox(limit: Int, skipping: Set<UInt64>) throws -> [OutboxEntry] {
        var result = [OutboxEntry]()
        for seqs in state.drainOrder {
            for seq in seqs where !skipping.contains(seq) {
                guard result.count < limit else { return result }
                if let entry = state.outbox[seq] { result.append(entry) }
            }
        }
        return result
    }

    func outboxEntries(for key: RecordKey) throws -> [OutboxEntry] {
        (state.outboxByRecord[key] ?? []).compactMap { state.outbox[$0] }
    }

    func outboxEntry(position: UInt64) throws -> OutboxEntry? { state.outbox[position] }
    func outboxCount() throws -> Int { state.outbox.count }

    /// Measured when asked (once per push), not kept: this store never encodes its entries.
    func outboxBytes() throws -> Int { state.outbox.values.reduce(0) { $0 + LocalStore.encodedSize($1.change) } }
    func metadata(_ name: String) throws -> [UInt8]? { state.metadata[name] }
    func conflict(_ id: EventID) throws -> StoredConflict? { state.conflicts[id] }
    func conflicts() throws -> [StoredConflict] { state.conflicts.values.sorted { $0.id < $1.id } }

    // MARK: Writes

    func putRecord(_ record: RecordState) throws {
        try limits.checkSize(of: record, encodedSize: BinaryCodec.encode(record).count)
        let old = state.records[record.collection]?[record.id]
        state.records[record.collection, default: [:]][record.id] = record
        undo.append { [self] in state.records[record.collection]?[record.id] = old }
    }

    func insertRecordIfAbsent(_ record: RecordState) throws -> Bool {
        guard state.records[record.collection]?[record.id] == nil else { return false }
        try putRecord(record)  // checks the size once (the protocol's default encodes twice)
        return true
    }

    func removeRecord(_ key: RecordKey) throws {
        guard let old = state.records[key.collection]?.removeValue(forKey: key.id) else { return }
        undo.append { [self] in state.records[key.collection, default: [:]][key.id] = old }
    }

    func allocateOutboxPosition() throws -> UInt64 {
        state.lastOutboxSeq += 1
        return state.lastOutboxSeq  // a rolled-back position is skipped, never reused
    }

    func putOutboxEntry(_ entry: OutboxEntry) throws {
        let old = state.outbox[entry.position]
        if let old, old.priority == entry.priority, old.change.key == entry.change.key {
            // Rewritten in place (marked sent, coalesced): its place in both orders stays.
            state.outbox[entry.position] = entry
            undo.append { [self] in state.outbox[entry.position] = old }
            return
        }
        if let old { removeEntry(old) }
        insertEntry(entry)
        undo.append { [self] in
            removeEntry(entry)
            if let old { insertEntry(old) }
        }
    }

    func removeOutboxEntries(_ seqs: [UInt64]) throws {
        for seq in seqs {
            guard let old = state.outbox[seq] else { continue }
            removeEntry(old)
            undo.append { [self] in insertEntry(old) }
        }
    }

    func setMetadata(_ name: String, _ value: [UInt8]?) throws {
        let old = state.metadata[name]
        state.metadata[name] = value
        undo.append { [self] in state.metadata[name] = old }
    }

    func putConflict(_ conflict: StoredConflict) throws {
        let old = state.conflicts.updateValue(conflict, forKey: conflict.id)
        undo.append { [self] in state.conflicts[conflict.id] = old }
    }

    func removeConflict(_ id: EventID) throws {
        guard let old = state.conflicts.removeValue(forKey: id) else { return }
        undo.append { [self] in state.conflicts[id] = old }
    }

    // MARK: Outbox indexes

    private func insertEntry(_ entry: OutboxEntry) {
        state.outbox[entry.position] = entry
        state.drainOrder[Int(entry.priority.rawValue)].insert(entry.position)
        Self.insertSorted(entry.position, into: &state.outboxByRecord[entry.change.key, default: []])
    }

    private func removeEntry(_ entry: OutboxEntry) {
        state.outbox[entry.position] = nil
        state.drainOrder[Int(entry.priority.rawValue)].remove(entry.position)
        let key = entry.change.key
        Self.removeSorted(entry.position, from: &state.outboxByRecord[key, default: []])
        if state.outboxByRecord[key]?.isEmpty == true { state.outboxByRecord[key] = nil }
    }

    private static func insertSorted(_ seq: UInt64, into array: inout [UInt64]) {
        if let last = array.last, last >= seq {
            let index = array.partitioningIndex { $0 >= seq }
            if index < array.count, array[index] == seq { return }
            array.insert(seq, at: index)
        } else {
            array.append(seq)
        }
    }

    private static func removeSorted(_ seq: UInt64, from array: inout [UInt64]) {
        let index = array.partitioningIndex { $0 >= seq }
        if index < array.count, array[index] == seq { array.remove(at: index) }
    }
}

/// Ascending outbox positions of one priority. Entries leave mostly from the front (the outbox
/// drains in order), so the front is trimmed by moving an offset rather than shifting the array
/// for every entry sent (which made draining N entries cost N²).
private struct SortedPositions: Sendable, Sequence {
    private var storage: [UInt64] = []
    private var start = 0

    func makeIterator() -> ArraySlice<UInt64>.Iterator { storage[start...].makeIterator() }

    mutating func insert(_ position: UInt64) {
        if start == storage.count {
            storage.removeAll(keepingCapacity: true)
            start = 0
        }
        guard let last = storage.last, last >= position else { return storage.append(position) }
        let index = storage[start...].partitioningIndex { $0 >= position }
        if index < storage.count, storage[index] == position { return }
        storage.insert(position, at: index)
    }

    mutating func remove(_ position: UInt64) {
        let index = storage[start...].partitioningIndex { $0 >= position }
        guard index < storage.count, storage[index] == position else { return }
        if index == start {
            start += 1
            if start >= 64 && start * 2 >= storage.count {
                storage.removeFirst(start)
                start = 0
            }
        } else {
            storage.remove(at: index)
        }
    }
}
