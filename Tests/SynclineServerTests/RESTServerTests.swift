import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Synchronization
import Testing

struct Todo: Codable, Identifiable, Sendable, Equatable {
    var id: String
    var title: String
    var done: Bool
}

@Suite("REST server", .timeLimit(.minutes(2)))
struct RESTServerTests {
    @Test(arguments: WireCodec.Format.allCases)
    func twoDevicesSyncThroughTheServer(_ format: WireCodec.Format) async throws {
        try await LiveServer.with { server in
            let namespace = try Namespace("team")
            let alice = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: server.rest(namespace, format: format))
            let bob = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: server.rest(namespace, format: format))
            let aliceTodos = try alice.collection(Todo.self, named: "todos")
            let bobTodos = try bob.collection(Todo.self, named: "todos")
            for index in 0..<120 {
                try await aliceTodos.upsert(Todo(id: "t\(index)", title: "task number \(index)", done: false))
            }
            let pushed = try await alice.sync()
            #expect(pushed.pushed == 120)
            let pulled = try await bob.sync()
            #expect(pulled.pulled == 120)
            #expect(try await bobTodos.get(id: "t119") == Todo(id: "t119", title: "task number 119", done: false))

            try await bobTodos.update(id: "t7") { $0.done = true }
            try await bob.sync()
            try await alice.sync()
            #expect(try await aliceTodos.get(id: "t7")?.done == true)
            #expect(try await server.backend.head(namespace: namespace) == 121)
        }
    }

    @Test func aRefusedTokenIsRenewedOnceThenReported() async throws {
        try await LiveServer.with { server in
            let namespace = try Namespace("team")
            let calls = Mutex(0)
            // The first token the provider hands out has expired; the next one is good.
            let renewing = RESTTransport(url: server.baseURL, namespace: namespace, token: {
                let call = calls.withLock { $0 += 1; return $0 }
                return call == 1 ? "expired" : LiveServer.token
            })
            let device = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: renewing)
            try await device.upsert(Sample.key("a"), fields: ["v": 1])
            #expect(try await device.sync().pushed == 1)
            #expect(calls.withLock { $0 } == 2, "asked once more after the 401")
            // Later requests reuse the renewed token.
            try await device.sync()
            #expect(calls.withLock { $0 } == 2)

            // A provider that only has bad tokens: one renewal per request, then an error; no loop.
            let badCalls = Mutex(0)
            let hopeless = RESTTransport(url: server.baseURL, namespace: namespace, token: {
                badCalls.withLock { $0 += 1 }
                return "revoked"
            })
            let stuck = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: hopeless)
            let events = stuck.events
            try await stuck.upsert(Sample.key("b"), fields: ["v": 2])
            await #expect {
                try await stuck.sync()
            } throws: { error in
                (error as? SyncError)?.code == .unauthorized
            }
            #expect(badCalls.withLock { $0 } == 2, "the first token and one renewal")
            #expect(try await stuck.pendingCount() == 1, "the change stays queued for a later token")
            var reported = false
            for await event in events {
                if case .error(let failure) = event, failure.error.code == .unauthorized {
                    reported = true
                    break
                }
            }
            #expect(reported, "an authentication error event was emitted")
        }
    }

    @Test func clientsNameTheirTransportByURL() async throws {
        try await LiveServer.with { server in
            let namespace = try Namespace("team")
            let alice = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: .rest(server.baseURL, token: { LiveServer.token }))
            let bob = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: .webSocket(server.baseURL, token: { LiveServer.token }))
            defer {
                alice.close()
                bob.close()
            }
            try await alice.upsert(Sample.key("by-url"), fields: ["v": 1])
            #expect(try await alice.sync().pushed == 1)
            #expect(try await bob.sync().pulled == 1)
            #expect(try await bob.record(Sample.key("by-url"))?.visibleFields["v"] == 1)
        }
    }

    @Test func oldTombstonesArePurgedAndStaleDevicesResync() async throws {
        var configuration = LiveServer.configuration()
        configuration.tombstoneRetention = .zero  // every tombstone is old at once
        configuration.tombstoneSweepInterval = .milliseconds(20)
        try await LiveServer.with(configuration: configuration) { server in
            let namespace = try Namespace("team")
            let alice = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: server.rest(namespace))
            let bob = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: server.rest(namespace))
            try await alice.upsert(Sample.key("a"), fields: ["v": 1])
            try await alice.upsert(Sample.key("b"), fields: ["v": 2])
            try await alice.sync()
            try await bob.sync()
            #expect(try await bob.pullCursor() == 2)
            try await alice.delete(Sample.key("a"))
            try await alice.upsert(Sample.key("c"), fields: ["v": 3])
            try await alice.sync()
            // The janitor purges the tombstone: a cursor before it is now answered with 410.
            var answer = try await server.raw(.GET, "/v1/ns/team/changes?after=2")
            let deadline = ContinuousClock.now + .seconds(10)
            while answer.status != 410 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                answer = try await server.raw(.GET, "/v1/ns/team/changes?after=2")
            }
            #expect(answer.status == 410 && answer.errorCode == "resync_required")
            // Bob, still at cursor 2, pulls a snapshot instead and ends up equal to the server.
            try await bob.sync()
            let visible = try await bob.visibleRecords(in: Sample.collection())
            #expect(visible == [Sample.id("b"): ["v": 2], Sample.id("c"): ["v": 3]])
            #expect(try await bob.pullCursor() == 4)
        }
    }
}
