import AsyncHTTPClient
import Foundation
import NIOCore
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
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
}
