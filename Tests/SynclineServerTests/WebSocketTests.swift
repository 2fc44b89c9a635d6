import Foundation
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Testing

@Suite("Live WebSocket", .timeLimit(.minutes(2)))
struct WebSocketTests {
    @Test(arguments: WireCodec.Format.allCases)
    func changesArriveOverTheSocketWithoutPolling(_ format: WireCodec.Format) async throws {
        try await LiveServer.with { server in
            let namespace = try Namespace("team")
            let aliceTransport = server.webSocket(namespace, format: format)
            let bobTransport = server.webSocket(namespace, format: format)
            defer {
                aliceTransport.close()
                bobTransport.close()
            }
            // A long interval: only the socket can bring the change in time.
            let configuration = SyncClient.Configuration(syncInterval: .seconds(3_600))
            let alice = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: aliceTransport, configuration: configuration)
            let bob = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: bobTransport, configuration: configuration)
            let bobTodos = try bob.collection(Todo.self, named: "todos")
            let snapshots = bobTodos.observe()
            alice.start()
            bob.start()
            while !(aliceTransport.isConnected && bobTransport.isConnected) { try await Task.sleep(for: .milliseconds(5)) }

            let aliceTodos = try alice.collection(Todo.self, named: "todos")
            for index in 0..<20 {
                try await aliceTodos.upsert(Todo(id: "live-\(index)", title: "over the socket", done: false))
            }
            var iterator = snapshots.makeAsyncIterator()
            while let snapshot = await iterator.next(), snapshot.count < 20 {}
            #expect(try await bobTodos.all().count == 20)
            // A burst may be fetched over REST (pages that trail a newer head are not used); a
            // single change once bob is idle comes in the page the server pushes.
            while try await bob.pullCursor() < 20 { try await Task.sleep(for: .milliseconds(2)) }
            let before = bobTransport.statistics.pagesFromSocket
            try await aliceTodos.upsert(Todo(id: "one-more", title: "a single commit", done: true))
            while let snapshot = await iterator.next(), snapshot.count < 21 {}
            #expect(try await bobTodos.get(id: "one-more")?.done == true)
            #expect(bobTransport.statistics.pagesFromSocket > before, "bob's pull was answered by the page the server pushed")
            await alice.stop()
            await bob.stop()
        }
    }
}
