import Logging
import ServiceLifecycle
import Synchronization
import Syncline
import SynclineTesting
import Testing

/// Issue 12 §5: `SyncClient` is a `Service`: in a `ServiceGroup` it syncs in the background and
/// returns normally when the group shuts down gracefully; it logs through the app's `Logger`.
@Suite("SyncClient as a service", .timeLimit(.minutes(1)))
struct ServiceTests {
    /// Collects what the client logs.
    final class Collector: Sendable {
        let lines = Mutex<[(Logger.Level, String)]>([])

        struct Handler: LogHandler {
            let collector: Collector
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .trace

            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }

            func log(event: LogEvent) {
                collector.lines.withLock { $0.append((event.level, "\(event.message)")) }
            }
        }

        var logger: Logger { Logger(label: "syncline-test") { _ in Handler(collector: self) } }
        func contains(_ level: Logger.Level, _ text: String) -> Bool { lines.withLock { $0.contains { $0.0 == level && $0.1.contains(text) } } }
    }

    @Test func aClientInAServiceGroupSyncsAndEndsWithTheGroup() async throws {
        let harness = Harness()
        let collector = Collector()
        let client = try SyncClient(
            namespace: harness.namespace, store: InMemoryStore(), transport: InMemoryTransport(server: harness.server, namespace: harness.namespace),
            configuration: .init(logger: collector.logger)
        )
        let group = ServiceGroup(services: [client], logger: Logger(label: "group") { _ in SwiftLogNoOpLogHandler() })
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            _ = try await client.upsert(Sample.key("t1"), fields: ["n": 1])
            #expect(try await eventually { await harness.server.head(namespace: harness.namespace) == 1 }, "synced in the background")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()  // the client's run() returned: the group ended without an error
        }
        #expect(collector.contains(.debug, "synced"), "syncs are logged at debug")
        #expect(collector.contains(.debug, "graceful shutdown"))
        client.close()
    }

    /// A failed sync is logged at info with its error. Tried: a transport whose server refuses
    /// every token.
    @Test func aFailedSyncIsLogged() async throws {
        let harness = Harness()
        let collector = Collector()
        let client = try SyncClient(
            namespace: harness.namespace, store: InMemoryStore(),
            transport: RefusingTransport(InMemoryTransport(server: harness.server, namespace: harness.namespace)),
            configuration: .init(logger: collector.logger)
        )
        await #expect(throws: SyncError.self) { try await client.sync() }
        #expect(collector.contains(.info, "sync failed"))
        client.close()
    }
}
