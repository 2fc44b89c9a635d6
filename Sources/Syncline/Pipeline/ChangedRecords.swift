import Synchronization

/// The record ids a commit changed in one collection, gathered until the live query takes them.
/// The event bus calls `note` synchronously as it emits (so no change is dropped however slow
/// the subscriber is), and a one-element signal wakes the query; ids that arrive while it works
/// are taken together next time. Memory is bounded by the collection's size.
final class ChangedRecords: Sendable {
    private let pending = Mutex<Set<RecordID>>([])
    private let signal = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    let collection: CollectionName

    init(_ collection: CollectionName) { self.collection = collection }

    var signals: AsyncStream<Void> { signal.stream }

    func note(_ event: SyncEvent) {
        guard case .recordsChanged(let keys, _) = event else { return }
        let ids = keys.lazy.filter { $0.collection == self.collection }.map(\.id)
        let added = pending.withLock { pending -> Bool in
            var added = false
            for id in ids { added = pending.insert(id).inserted || added }
            return added
        }
        if added { signal.continuation.yield() }
    }

    func take() -> Set<RecordID> {
        pending.withLock { pending in
            defer { pending = [] }
            return pending
        }
    }

    func finish() { signal.continuation.finish() }
}
