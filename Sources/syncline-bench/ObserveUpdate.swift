import Syncline

/// `observe_update`: how fast committed changes reach an `observe()` subscriber of a large
/// collection against a small one (issue 12 §6). One writer updates records of a collection of N
/// (a SyncClient on an in-memory store, no sync) one `update` at a time, as an app would; the rate
/// is updates per second until the subscriber's snapshot shows the last one. A snapshot applies
/// the changed records to the previous one, so the rate should not depend on N.
enum ObserveUpdate {
    struct Item: Codable, Identifiable, Sendable, Equatable {
        var id: String
        var title: String
        var done: Bool
        var rank: Int
    }

    /// Updates per second delivered to the subscriber of a collection of `records`.
    static func measure(records: Int, updates: Int) async throws -> Double {
        let server = InMemorySyncServer()
        let namespace = try Namespace("bench")
        let client = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: InMemoryTransport(server: server, namespace: namespace))
        defer { client.close() }
        let items = try client.collection(Item.self, named: "items")
        let ids = (0..<records).map { "i\(1_000_000 + $0)" }
        let started = AsyncStream<Void>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<16 {
                group.addTask {
                    for index in stride(from: writer, to: records, by: 16) {
                        try await items.upsert(Item(id: ids[index], title: "item \(index)", done: false, rank: index))
                    }
                }
            }
            try await group.waitForAll()
        }
        let last = ids[(updates - 1) * 7919 % records]
        let subscriber = Task {
            var snapshots = items.observe().makeAsyncIterator()
            let first = await snapshots.next()
            started.continuation.finish()
            guard first?.count == records else { return false }
            while let snapshot = await snapshots.next() {
                let index = snapshot.partitionPoint { $0.id >= last }
                if index < snapshot.count, snapshot[index].id == last, snapshot[index].rank == -(updates - 1) { return true }
            }
            return false
        }
        for await _ in started.stream {}
        return try await measureAsync(operations: updates) {
            for update in 0..<updates {
                // Spread over the collection (7919 is prime, so the records differ).
                try await items.update(id: ids[update * 7919 % records]) { $0.rank = -update }
            }
            guard await subscriber.value else { throw SyncError(.storage, "the subscriber never saw the last update") }
        }
    }
}

extension Array {
    /// The first index whose element satisfies `predicate`, for an array partitioned by it.
    fileprivate func partitionPoint(where predicate: (Element) -> Bool) -> Int {
        var (low, high) = (0, count)
        while low < high {
            let middle = (low + high) / 2
            if predicate(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
