import Foundation
import Syncline
import SynclineNetwork
import SynclineSQLite

// Every Swift snippet of README.md and Syncline.docc, verbatim, inside a function whose
// parameters stand for what the snippet takes from its surroundings (`transport`, `record`, a
// token source). `DocSnippetTests` checks that each snippet's lines appear here, in order and
// together, so a snippet that stops compiling fails the build, and one changed in the docs but
// not here fails the test. Edit both together.

/// What the snippets call `auth`: the app's source of tokens.
struct ExampleAuth: Sendable {
    let issue: @Sendable () async throws -> String
    func token() async throws -> String { try await issue() }
    func freshToken() async throws -> String { try await issue() }
}

enum Snippets {
    // README.md, "Stores".
    static func readmeStores(record: RecordState, change: Change) throws {
        let store = try SQLiteStore(path: "alice.db")            // .app durability by default
        try store.write { tx in
            try tx.putRecord(record)                              // record + outbox entry: one transaction
            try tx.enqueue(change, priority: .high)
        }
        let next = try store.read { tx in try tx.outbox(limit: 500) }   // drain order
        _ = next
    }

    // README.md, "Client pipeline".
    static func readmeClientPipeline(transport: any SyncTransport) async throws {
        struct Todo: Codable, Identifiable, Sendable { var id: String; var title: String; var done: Bool }

        let client = try SyncClient(namespace: Namespace("alice"), store: SQLiteStore(path: "alice.db"), transport: transport)
        let todos = try client.collection(Todo.self, named: "todos", conflicts: .lastWriterWins)
        try await todos.upsert(Todo(id: "1", title: "Buy milk", done: false), priority: .high)
        try await todos.update(id: "1") { $0.done = true }        // sends only `done`
        let view = Task { for await snapshot in todos.observe() { print(snapshot) } }  // on every change
        try await client.sync()                                     // one push + pull now
        client.start()                                              // or keep syncing in the background
        view.cancel()
    }

    // README.md, "Transports".
    static func readmeTransports(ns: Namespace, auth: ExampleAuth) throws {
        let rest = RESTTransport(url: "http://127.0.0.1:8080", namespace: ns, token: { try await auth.token() })
        let live = WebSocketTransport(url: "http://127.0.0.1:8080", namespace: ns, token: { try await auth.token() })
        let client = try SyncClient(namespace: ns, store: SQLiteStore(path: "alice.db"), transport: live)
        client.start()
        _ = rest
    }

    // Syncline.docc, "Getting Started". Runs until its task is cancelled, then hands back the
    // client (for the test to stop and close).
    static func gettingStarted(
        serverURL: String, databasePath: String, auth: ExampleAuth,
        render: @escaping @Sendable ([Any]) -> Void, log: @escaping @Sendable (SyncEvent) -> Void
    ) async throws -> (SyncClient, Task<Void, Never>) {
        struct Todo: Codable, Identifiable, Sendable { var id: String; var title: String; var done: Bool }

        let client = try SyncClient(
            namespace: Namespace("alice"), store: SQLiteStore(path: databasePath),
            transport: .webSocket(serverURL, token: { try await auth.freshToken() }))
        let todos = try client.collection(Todo.self, named: "todos", conflicts: .lastWriterWins)

        try await todos.upsert(Todo(id: "1", title: "Buy milk", done: false), priority: .high)
        try await todos.update(id: "1") { $0.done = true }   // only `done` travels
        let view = Task { for await snapshot in todos.observe() { render(snapshot) } }

        client.start()                                       // sync in the background, live
        for await event in client.events { log(event) }      // progress, conflicts, connectivity, errors
        return (client, view)
    }

    // Syncline.docc, "Stores".
    static func doccStores(record: RecordState, change: Change) throws {
        let store = try SQLiteStore(path: "alice.db")
        let entry = try store.write { tx in
            try tx.putRecord(record)
            return try tx.enqueue(change, priority: .high)
        }
        _ = entry
    }
}
