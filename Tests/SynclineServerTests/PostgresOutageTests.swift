import Foundation
import NIOHTTP1
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Testing

/// A node whose PostgreSQL goes away and comes back (DESIGN §6): every connection is cut and new
/// ones are refused (the node's own database stops accepting connections, as during a restart),
/// meanwhile requests are answered 503 with Retry-After and `/healthz` says why; afterwards the
/// node serves again by itself and every acknowledged write is there once.
@Suite("PostgreSQL outage", .timeLimit(.minutes(3)))
struct PostgresOutageTests {
    func change(_ number: UInt64) -> Change {
        Change(
            id: Sample.eventID(number), collection: Sample.collection(), record: Sample.id("r\(number)"), operation: .upsert,
            fields: ["n": .int(Int64(number))], hlc: try! HLC(wallMillis: 1_000 + number, counter: 0, node: 0xA), base: 0, mode: .lww
        )
    }

    @Test func requestsGet503WhilePostgreSQLIsAwayAndTheNodeRecoversByItself() async throws {
        var configuration = try PostgresTestDatabase.configuration(schema: "public")
        let database = "d_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await PostgresClusterTests.admin("CREATE DATABASE \(database)")
        configuration.database = database
        configuration.connectTimeout = .seconds(2)
        let retryAfter = configuration.retryAfterSeconds
        let backend = PostgresBackend(configuration: configuration, logger: PostgresTestDatabase.logger())
        try await LiveServer.with(backend: backend, services: [backend]) { server in
            try await PostgresTestDatabase.waitUntilAvailable(backend)
            let device = server.rest(try Namespace("team"))
            let first = try await PostgresClusterTests.eventually { try await device.push(ChangeBatch(changes: [change(1)])) }
            #expect(first.head == 1)

            try await PostgresClusterTests.admin("ALTER DATABASE \(database) ALLOW_CONNECTIONS false")
            try await PostgresClusterTests.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(database)'")
            // The node notices (its LISTEN connection drops and cannot come back) and says so.
            var health = try await server.raw(.GET, "/healthz", token: nil)
            let deadline = ContinuousClock.now + .seconds(60)
            while health.status == 200, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                health = try await server.raw(.GET, "/healthz", token: nil)
            }
            #expect(health.status == 503)
            #expect(String(decoding: health.body, as: UTF8.self).contains("PostgreSQL"))
            let refused = try await server.raw(.GET, "/v1/ns/team/changes?after=0")
            #expect(refused.status == 503)
            #expect(refused.headers.first(name: "Retry-After") == "\(retryAfter)")

            try await PostgresClusterTests.admin("ALTER DATABASE \(database) ALLOW_CONNECTIONS true")
            // Back without a restart: a retried write lands once, the first one is kept.
            let second = try await PostgresClusterTests.eventually { try await device.push(ChangeBatch(changes: [change(2)])) }
            #expect(second.head == 2)
            let replay = try await device.push(ChangeBatch(changes: [change(1)]))
            guard case .duplicate(_, 1, _) = replay.results.first else {
                Issue.record("expected the first write as a duplicate, got \(replay.results)")
                return
            }
            let page = try await device.pull(after: 0, from: 0, limit: 10, epoch: nil)
            #expect(page.changes.count == 2 && page.head == 2)
            #expect(try await server.raw(.GET, "/healthz", token: nil).status == 200)
        }
        try await PostgresClusterTests.admin("DROP DATABASE \(database) WITH (FORCE)")
    }
}
