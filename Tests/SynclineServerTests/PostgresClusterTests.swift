import Foundation
import Logging
import NIOHTTP1
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Testing

/// Several server nodes on one PostgreSQL (DESIGN §6): live fan-out through LISTEN/NOTIFY, seqs
/// that never interleave, idempotency across nodes, and what a node does when PostgreSQL goes away.
@Suite("PostgreSQL cluster", .timeLimit(.minutes(2)))
struct PostgresClusterTests {
    /// Two nodes sharing one schema, for the length of `body`.
    static func twoNodes(_ body: @Sendable (LiveServer, LiveServer, String) async throws -> Void) async throws {
        let schema = PostgresTestDatabase.freshSchema()
        var settings = LiveServer.configuration()
        settings.helloTimeout = .seconds(10)  // two PostgreSQL round trips under the whole suite's load
        settings.pingInterval = .seconds(30)
        let configuration = settings
        try await LiveServer.with(postgresSchema: schema, configuration: configuration) { first in
            try await LiveServer.with(postgresSchema: schema, configuration: configuration) { second in
                try await body(first, second, schema)
            }
        }
    }

    /// Runs `sql` on the test database (not through a node).
    static func admin(_ sql: String) async throws {
        let configuration = try PostgresTestDatabase.configuration()
        var connection = PostgresConnection.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username, password: configuration.password,
            database: configuration.database, tls: .disable
        )
        connection.options.connectTimeout = .seconds(3)
        let logger = PostgresTestDatabase.logger()
        let client = try await PostgresConnection.connect(configuration: connection, id: 1, logger: logger)
        do {
            try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        } catch {
            try await client.close()
            throw error
        }
        try await client.close()
    }

    /// A change to a `Todo` (so a device's typed collection shows it).
    func change(_ number: UInt64, _ record: String, node: UInt64 = 0xA) -> Change {
        Change(
            id: Sample.eventID(number), collection: Sample.collection(), record: Sample.id(record), operation: .upsert,
            fields: ["title": .string("todo \(number)"), "done": .bool(false)], hlc: try! HLC(wallMillis: 1_000 + number, counter: 0, node: node), base: 0, mode: .lww
        )
    }

    @Test func aWriteThroughOneNodeReachesADeviceLiveOnAnother() async throws {
        try await Self.twoNodes { first, second, _ in
            let namespace = try Namespace("team")
            let aliceTransport = first.rest(namespace)
            let bobTransport = second.webSocket(namespace)
            defer { bobTransport.close() }
            // A long interval: only the socket can bring the change in time.
            let configuration = SyncClient.Configuration(syncInterval: .seconds(3_600))
            let alice = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: aliceTransport, configuration: configuration)
            let bob = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: bobTransport, configuration: configuration)
            let bobTodos = try bob.collection(Todo.self, named: "todos")
            let snapshots = bobTodos.observe()
            bob.start()
            try await bobTransport.waitUntilConnected(within: second.patience)
            let aliceTodos = try alice.collection(Todo.self, named: "todos")
            let before = bobTransport.statistics.pagesFromSocket
            try await aliceTodos.upsert(Todo(id: "from-node-1", title: "across nodes", done: false))
            try await alice.sync()
            var iterator = snapshots.makeAsyncIterator()
            while let snapshot = await iterator.next(), snapshot.isEmpty {}
            #expect(try await bobTodos.get(id: "from-node-1")?.title == "across nodes")
            #expect(bobTransport.statistics.pagesFromSocket > before, "node 2 pushed the page: bob did not pull")
            await alice.stop()
            await bob.stop()
        }
    }

    @Test func pushesThroughTwoNodesToOneNamespaceNeverInterleaveAndDuplicatesAreKnownEverywhere() async throws {
        try await Self.twoNodes { first, second, _ in
            let namespace = try Namespace("team")
            let nodes = [first.rest(namespace), second.rest(namespace)]
            let batches = (0..<20).map { batch in
                ChangeBatch(changes: (0..<25).map { change(UInt64(batch * 25 + $0 + 1), "r\(batch)-\($0)") })
            }
            // Four devices at once, two on each node, five batches each.
            let responses = try await withThrowingTaskGroup(of: [PushResponse].self) { group in
                for device in 0..<4 {
                    group.addTask {
                        var answers: [PushResponse] = []
                        for index in stride(from: device, to: batches.count, by: 4) {
                            answers.append(try await nodes[device % 2].push(batches[index]))
                        }
                        return answers
                    }
                }
                var all: [PushResponse] = []
                for try await answers in group { all += answers }
                return all
            }
            var seqs: [UInt64] = []
            for response in responses {
                var previous: UInt64 = 0
                for result in response.results {
                    guard case .applied(_, let seq, _) = result else { Issue.record("expected applied, got \(result)"); continue }
                    #expect(seq > previous, "one batch's seqs ascend")
                    previous = seq
                    seqs.append(seq)
                }
            }
            #expect(seqs.sorted() == Array(1...500), "every seq once: one push at a time per namespace, whichever node")
            // A batch applied through node 1 is a duplicate through node 2, with its original seqs.
            let replay = try await nodes[1].push(batches[0])
            let original = try #require(responses.first { $0.results.first?.id == batches[0].changes[0].id })
            for (again, first) in zip(replay.results, original.results) {
                guard case .duplicate(_, let seq, _) = again, case .applied(_, let applied, _) = first else {
                    Issue.record("expected a duplicate, got \(again)")
                    continue
                }
                #expect(seq == applied)
            }
            #expect(replay.head == 500)
        }
    }

    @Test func aNodeThatLosesItsConnectionsRecoversAndCatchesUpWithoutARestart() async throws {
        try await Self.twoNodes { first, second, schema in
            let namespace = try Namespace("team")
            let socket = second.webSocket(namespace)
            defer { socket.close() }
            _ = try await socket.pull(after: 0, from: 0, limit: 1)  // the socket opens once the cursor is known
            try await socket.waitUntilConnected(within: second.patience)
            let heads = await socket.liveHeads()
            // The nodes lose their LISTEN connections; a commit right then is not missed by node 2:
            // it reads the heads again once it listens again (or hears the NOTIFY).
            try await Self.admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'syncline-listen:\(schema)'"
            )
            _ = try await Self.eventually { try await first.rest(namespace).push(ChangeBatch(changes: [change(1, "while-down")])) }
            for await head in heads where head >= 1 { break }
            // Every connection of both nodes dies (as in a PostgreSQL restart): requests get 503
            // for a moment at most, then both nodes serve again, by themselves.
            try await Self.admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name IN ('syncline:\(schema)', 'syncline-listen:\(schema)')"
            )
            let pushed = try await Self.eventually { try await second.rest(namespace).push(ChangeBatch(changes: [change(2, "after")])) }
            #expect(pushed.head == 2)
            for await head in heads where head >= 2 { break }
            let page = try await Self.eventually { try await first.rest(namespace).pull(after: 0, from: 0, limit: 10, epoch: nil) }
            #expect(page.changes.count == 2)
        }
    }

    @Test func anUnreachableDatabaseIsAnswered503WithRetryAfterAndHealthzSaysWhy() async throws {
        var configuration = try PostgresTestDatabase.configuration()
        configuration.port = 1  // nothing listens there
        configuration.connectTimeout = .seconds(1)
        let retryAfter = configuration.retryAfterSeconds
        let backend = PostgresBackend(configuration: configuration, logger: PostgresTestDatabase.logger())
        try await LiveServer.with(backend: backend, services: [backend]) { server in
            let health = try await server.raw(.GET, "/healthz", token: nil)
            #expect(health.status == 503)
            #expect(health.headers.first(name: "Retry-After") != nil)
            #expect(String(decoding: health.body, as: UTF8.self).contains("PostgreSQL"))
            let pull = try await server.raw(.GET, "/v1/ns/team/changes?after=0")
            #expect(pull.status == 503)
            #expect(pull.headers.first(name: "Retry-After") == "\(retryAfter)")
            #expect(String(decoding: pull.body, as: UTF8.self).contains("transport_unavailable"))
        }
    }

    @Test func aForeignOrNewerSchemaIsRefusedAndLeftUntouched() async throws {
        let foreign = PostgresTestDatabase.freshSchema()
        try await Self.admin("CREATE SCHEMA \(foreign)")
        try await Self.admin("CREATE TABLE \(foreign).invoices(id int)")
        var error = await #expect(throws: SyncError.self) { try await Self.runUntilReady(try PostgresTestDatabase.configuration(schema: foreign)) }
        #expect(error?.code == .notASynclineStore)
        try await Self.admin("SELECT count(*) FROM \(foreign).invoices")  // still there

        let newer = PostgresTestDatabase.freshSchema()
        try await Self.runUntilReady(try PostgresTestDatabase.configuration(schema: newer))
        try await Self.admin("UPDATE \(newer).syncline_meta SET value = 99 WHERE name = 'schema_version'")
        error = await #expect(throws: SyncError.self) { try await Self.runUntilReady(try PostgresTestDatabase.configuration(schema: newer)) }
        #expect(error?.code == .newerSchema)
    }

    /// Runs a backend until it serves (then stops it), or rethrows what ended it.
    static func runUntilReady(_ configuration: PostgresBackend.Configuration) async throws {
        let backend = PostgresBackend(configuration: configuration, logger: PostgresTestDatabase.logger())
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await backend.run()
                return false
            }
            group.addTask {
                try await PostgresTestDatabase.waitUntilAvailable(backend)
                return true
            }
            defer { group.cancelAll() }
            _ = try await group.next()
        }
    }

    /// Retries `body` while the node answers 503 (PostgreSQL not reachable yet), for up to 60 s.
    static func eventually<Value: Sendable>(_ body: () async throws -> Value) async throws -> Value {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            do {
                return try await body()
            } catch let error as SyncError where error.code == .transportUnavailable && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }
}

/// `syncline-server --database`: separate processes on one PostgreSQL, one of them SIGKILLed.
@Suite("PostgreSQL server processes", .timeLimit(.minutes(2)))
struct PostgresServerProcessTests {
    @Test func nodesShareOneDatabaseAndAKilledNodeComesBackWithEverything() async throws {
        let configuration = try PostgresTestDatabase.configuration()
        let url = try #require(ProcessInfo.processInfo.environment[PostgresTestDatabase.variable])
        let database = url + (url.contains("?") ? "&" : "?") + "schema=\(configuration.schema)"
        let namespace = try Namespace("team")
        // Every node this test starts is stopped on every way out (a failed expectation included).
        let started = Mutex<[ServerProcess]>([])
        func node() async throws -> ServerProcess {
            let process = try await ServerProcess(data: nil, database: database, arguments: ["--pool-size", "4"])
            started.withLock { $0.append(process) }
            return process
        }
        do {
            try await run(node: node, namespace: namespace)
        } catch {
            for process in started.withLock({ $0 }) { await process.kill() }
            throw error
        }
        for process in started.withLock({ $0 }) { #expect(await process.terminate(within: .seconds(10))) }
    }

    private func run(node: () async throws -> ServerProcess, namespace: Namespace) async throws {
        let first = try await node()
        let second = try await node()
        func device(_ node: ServerProcess) -> RESTTransport {
            RESTTransport(url: node.baseURL, namespace: namespace, token: { LiveServer.token }, configuration: .init(timeout: .seconds(45)))
        }
        func change(_ number: UInt64) -> Change {
            Change(
                id: Sample.eventID(number), collection: Sample.collection(), record: Sample.id("r\(number)"), operation: .upsert,
                fields: ["n": .int(Int64(number))], hlc: try! HLC(wallMillis: 1_000 + number, counter: 0, node: 0xA), base: 0, mode: .lww
            )
        }
        // Written through one node, read through the other (each node is ready once it answers).
        _ = try await PostgresClusterTests.eventually { try await device(first).push(ChangeBatch(changes: [change(1), change(2)])) }
        let seen = try await PostgresClusterTests.eventually { try await device(second).pull(after: 0, from: 0, limit: 10, epoch: nil) }
        #expect(seen.changes.count == 2 && seen.head == 2)
        // One node dies without a word; the other goes on; the killed one, started again, has everything.
        await first.kill()
        let pushed = try await PostgresClusterTests.eventually { try await device(second).push(ChangeBatch(changes: [change(3)])) }
        #expect(pushed.head == 3)
        let again = try await node()
        let page = try await PostgresClusterTests.eventually { try await device(again).pull(after: 0, from: 0, limit: 10, epoch: nil) }
        #expect(page.changes.count == 3 && page.head == 3)
        // A duplicate through the restarted node is known.
        let replay = try await PostgresClusterTests.eventually { try await device(again).push(ChangeBatch(changes: [change(3)])) }
        guard case .duplicate(_, 3, _) = replay.results.first else {
            Issue.record("expected a duplicate at seq 3, got \(replay.results)")
            return
        }
    }
}

/// The tombstone janitor on a shared database: one node purges at a time (an advisory lock).
@Suite("PostgreSQL tombstone janitor", .timeLimit(.minutes(2)))
struct PostgresJanitorTests {
    @Test func onlyTheNodeHoldingTheJanitorLockPurges() async throws {
        let configuration = try PostgresTestDatabase.configuration()
        let backend = PostgresBackend(configuration: configuration, logger: PostgresTestDatabase.logger())
        let group = ServiceGroup(services: [backend], logger: PostgresTestDatabase.logger())
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            defer { tasks.cancelAll() }
            try await PostgresTestDatabase.waitUntilAvailable(backend)
            let namespace = try Namespace("team")
            let hlc = { (millis: UInt64) in try! HLC(wallMillis: millis, counter: 0, node: 0xA) }
            _ = try await backend.applyValidated(
                ChangeBatch(changes: [
                    Change(
                        id: Sample.eventID(1), collection: Sample.collection(), record: Sample.id("r1"), operation: .upsert,
                        fields: ["v": 1], hlc: hlc(1_000), base: 0, mode: .lww
                    ),
                    Change(
                        id: Sample.eventID(2), collection: Sample.collection(), record: Sample.id("r1"), operation: .delete,
                        fields: [:], hlc: hlc(2_000), base: 1, mode: .lww
                    ),
                ]),
                namespace: namespace
            )
            // Another node holds the janitor's lock: this one purges nothing and waits for nothing.
            let admin = try PostgresTestDatabase.configuration(schema: configuration.schema)
            var settings = PostgresConnection.Configuration(
                host: admin.host, port: admin.port, username: admin.username, password: admin.password, database: admin.database, tls: .disable
            )
            settings.options.connectTimeout = .seconds(5)
            let logger = PostgresTestDatabase.logger()
            let holder = try await PostgresConnection.connect(configuration: settings, id: 1, logger: logger)
            let key = "syncline.janitor.\(configuration.schema)"
            try await holder.query("SELECT pg_advisory_lock(hashtext(\(key)))", logger: logger)
            let whileHeld = try await backend.purgeTombstones(olderThan: 1_000_000)
            #expect(whileHeld.isEmpty, "the lock is another node's")
            try await holder.query("SELECT pg_advisory_unlock(hashtext(\(key)))", logger: logger)
            try await holder.close()
            // Released: this node purges, and a cursor from before the horizon must resync.
            let purged = try await backend.purgeTombstones(olderThan: 1_000_000)
            #expect(purged[namespace] == 3)
            let error = await #expect(throws: SyncError.self) {
                try await backend.pull(
                    namespace: namespace, after: 1, from: 1, limit: 10, collections: nil, epoch: nil, configuration: .init()
                )
            }
            #expect(error?.code == .resyncRequired)
        }
    }
}
