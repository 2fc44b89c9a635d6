import Syncline

/// One namespace as the shared ``ServerEngine`` sees it inside a PostgreSQL transaction.
///
/// The engine is synchronous and postgres-nio is asynchronous, so the backend reads what a push or
/// a pull needs up front, in its transaction (the namespace row, the batch's event ids and records,
/// the page and its count), and runs the engine over this value. Whatever the engine asks for that
/// was not read throws a ``Need``: the backend reads it in the same transaction and runs the
/// engine again from the start (it is a pure function of what it reads). Writes are buffered here
/// and written by the backend in a few bulk statements after the engine returns.
struct PostgresNamespaceState: ServerNamespaceWriter, ServerNamespaceReader {
    /// Something the engine asked for that was not read yet.
    enum Need: Error, Hashable {
        case applied(EventID)
        case record(RecordKey)
        case page(PageRequest)
        case count(CountRequest)
    }

    struct PageRequest: Hashable {
        var position: UInt64
        var collections: Set<CollectionName>?
        var liveOnly: Bool
        var limit: Int
    }

    struct CountRequest: Hashable {
        var position: UInt64
        var collections: Set<CollectionName>?
    }

    let namespace: Namespace
    private(set) var head: UInt64
    let horizon: UInt64
    private(set) var appliedCount: Int64
    let namespaceEpoch: Epoch

    // What was read.
    var appliedRead: [EventID: ServerEngine.AppliedChange?] = [:]
    var recordsRead: [RecordKey: ServerRecord?] = [:]
    var pages: [PageRequest: [ServerRecord]] = [:]
    var counts: [CountRequest: UInt64] = [:]

    // What the engine wrote (the newest version of each record; each remembered id in order).
    private(set) var stored: [RecordKey: ServerRecord] = [:]
    private(set) var remembered: [(id: EventID, applied: ServerEngine.AppliedChange, ord: Int64)] = []
    private var rememberedByID: [EventID: ServerEngine.AppliedChange] = [:]
    private(set) var headChanged = false

    init(namespace: Namespace, head: UInt64, horizon: UInt64, appliedCount: Int64, epoch: Epoch) {
        self.namespace = namespace
        self.head = head
        self.horizon = horizon
        self.appliedCount = appliedCount
        self.namespaceEpoch = epoch
    }

    /// The same reads, none of the writes: the start of another run of the engine.
    var unwritten: PostgresNamespaceState {
        var copy = PostgresNamespaceState(
            namespace: namespace, head: head, horizon: horizon, appliedCount: appliedCount, epoch: namespaceEpoch
        )
        copy.appliedRead = appliedRead
        copy.recordsRead = recordsRead
        copy.pages = pages
        copy.counts = counts
        return copy
    }

    var wroteAnything: Bool { headChanged || !remembered.isEmpty || !stored.isEmpty }

    // MARK: ServerNamespaceReader / ServerNamespaceWriter

    func currentHead() -> UInt64 { head }

    func epoch() -> Epoch { namespaceEpoch }

    func tombstoneHorizon() -> UInt64 { horizon }

    func applied(_ id: EventID) throws -> ServerEngine.AppliedChange? {
        if let applied = rememberedByID[id] { return applied }
        guard let read = appliedRead[id] else { throw Need.applied(id) }
        return read
    }

    func record(_ key: RecordKey) throws -> ServerRecord? {
        if let record = stored[key] { return record }
        guard let read = recordsRead[key] else { throw Need.record(key) }
        return read
    }

    mutating func store(_ record: ServerRecord, replacing previous: ServerRecord?) throws {
        stored[RecordKey(collection: record.collection, id: record.id)] = record
    }

    mutating func remember(_ id: EventID, _ applied: ServerEngine.AppliedChange) throws {
        appliedCount += 1
        remembered.append((id, applied, appliedCount))
        rememberedByID[id] = applied
    }

    mutating func setHead(_ head: UInt64) throws {
        self.head = head
        headChanged = true
    }

    func latestRecords(after position: UInt64, collections: Set<CollectionName>?, liveOnly: Bool, limit: Int) throws -> [ServerRecord] {
        let request = PageRequest(position: position, collections: collections, liveOnly: liveOnly, limit: limit)
        guard let page = pages[request] else { throw Need.page(request) }
        return page
    }

    func countLatestRecords(after position: UInt64, collections: Set<CollectionName>?) throws -> UInt64 {
        let request = CountRequest(position: position, collections: collections)
        guard let count = counts[request] else { throw Need.count(request) }
        return count
    }
}
