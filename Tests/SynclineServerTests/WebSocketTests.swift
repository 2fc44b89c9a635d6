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
            for await snapshot in snapshots where snapshot.count == 20 { break }
            #expect(try await bobTodos.all().count == 20)
            #expect(bobTransport.statistics.pagesFromSocket > 0, "bob's pulls were answered by pages the server pushed")
            await alice.stop()
            await bob.stop()
        }
    }
}
