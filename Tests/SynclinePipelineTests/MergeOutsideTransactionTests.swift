import Synchronization
import Syncline
import SynclineTesting
import Testing

/// Issue 12 §4: the app's `merge` resolver ran while the store's write transaction was open, so a
/// slow resolver held the store's write lock. Tried: a store that says whether a write
/// transaction is open, and a resolver that looks.
@Suite("Merge resolvers run outside the store's transaction")
struct MergeOutsideTransactionTests {
    /// A store that tells whether one of its write transactions is open.
    final class WatchedStore: SyncStore {
        let inner = InMemoryStore()
        let writing = Atomic<Bool>(false)

        func read<Result: Sendable>(_ body: (any StoreReader) throws -> Result) throws -> Result { try inner.read(body) }

        func write<Result: Sendable>(_ body: (any StoreWriter) throws -> Result) throws -> Result {
            writing.store(true, ordering: .sequentiallyConsistent)
            defer { writing.store(false, ordering: .sequentiallyConsistent) }
            return try inner.write(body)
        }

        func close() { inner.close() }
    }

    @Test func theResolverRunsWithNoWriteTransactionOpen() async throws {
        let harness = Harness()
        let store = WatchedStore()
        let alice = try SyncClient(namespace: harness.namespace, store: store, transport: InMemoryTransport(server: harness.server, namespace: harness.namespace))
        let (bob, _, _) = try harness.device()
        let calls = Atomic<Int>(0)
        let underLock = Atomic<Int>(0)
        alice.setPolicy(
            .merge { local, server in
                calls.add(1, ordering: .relaxed)
                if store.writing.load(ordering: .sequentiallyConsistent) { underLock.add(1, ordering: .relaxed) }
                return ["title": .string("\(local["title"]?.description ?? "") + \(server["title"]?.description ?? "")")]
            }, for: Sample.collection()
        )
        let key = Sample.key("t1")
        _ = try await alice.upsert(key, fields: ["title": "first"])
        try await alice.sync()
        try await bob.sync()
        _ = try await bob.upsert(key, fields: ["title": "bob"])
        try await bob.sync()
        _ = try await alice.upsert(key, fields: ["title": "alice"])
        try await alice.sync()
        #expect(calls.load(ordering: .relaxed) == 1, "the conflict was merged once")
        #expect(underLock.load(ordering: .relaxed) == 0, "never while a write transaction was open")
        #expect(try await alice.fields(of: key)?["title"]?.description.contains("alice") == true)
    }
}
