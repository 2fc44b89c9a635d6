import Foundation
import Logging
import Syncline
import SynclineNetwork
import SynclineSQLite
import SynclineServer

/// `e2e_rest`: the client's whole sync path over the network (issue 12). Device A (SQLite store,
/// `RESTTransport`) has N changes queued; the clock runs from its `sync()` until device B (SQLite,
/// REST), pulling all the while, has received all N from a `syncline-server` on loopback (SQLite
/// backend, in this process). The baseline is `push_throughput`'s: the backend applying the same
/// records in batches of 500 directly, in the same run.
enum EndToEndREST {
    static let token = "bench"

    static func measure(records: Int, root: URL, run: Int) async throws -> (rate: Double, baseline: Double) {
        let batches = NetworkSuite.batches(records, seed: UInt64(run))
        let baseline = try await NetworkSuite.rawBackend(batches, path: root.appendingPathComponent("e2e-raw-\(run).sqlite").path)

        let backend = try SQLiteBackend(path: root.appendingPathComponent("e2e-server-\(run).sqlite").path)
        var logger = Logger(label: "bench-server")
        logger.logLevel = .error
        let running = try await SyncServer.start(
            backend: backend, configuration: SyncServerConfiguration(tokens: TokenStore([token: ["*"]]), rateLimit: nil), logger: logger
        )
        let namespace = try Namespace("e2e")
        func device(_ name: String) throws -> SyncClient {
            let transport = RESTTransport(
                url: "http://127.0.0.1:\(running.port)", namespace: namespace, token: { token }, configuration: .init(longPoll: nil)
            )
            let store = try SQLiteStore(path: root.appendingPathComponent("e2e-\(name)-\(run).sqlite").path)
            return try SyncClient(namespace: namespace, store: store, transport: transport)
        }
        let alice = try device("alice")
        let bob = try device("bob")
        defer {
            alice.close()
            bob.close()
        }
        // Both known to the server, their clocks corrected, their cursors past 0 (a namespace in
        // use; a pull from 0 is a snapshot, which carries the device's own writes too): only the
        // transfer is timed.
        let seed = try CollectionName("seed")
        _ = try await bob.upsert(RecordKey(collection: seed, id: RecordID("seed")), fields: ["n": 0])
        try await bob.sync()
        try await alice.sync()
        let collection = try CollectionName("todos")
        for change in batches.flatMap(\.changes) {
            _ = try await alice.upsert(RecordKey(collection: collection, id: change.record), fields: change.fields)
        }
        let rate = try await measureAsync(operations: records) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let stats = try await alice.sync()
                    guard stats.pushed == records else { throw SyncError(.storage, "device A pushed \(stats.pushed) of \(records)") }
                }
                group.addTask {
                    var received = 0
                    while received < records { received += try await bob.sync().pulled }
                }
                try await group.waitForAll()
            }
        }
        try await running.stop()
        return (rate, baseline)
    }
}
