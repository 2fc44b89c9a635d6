import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Testing

/// Where the server-semantics suite runs: the in-memory reference server, or the real server
/// (SQLite backend, or PostgreSQL in a schema of its own; loopback) through each transport and codec.
enum ServerKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case inMemory, restBinary, restJSON, webSocketBinary, webSocketJSON
    case postgresRESTBinary, postgresRESTJSON, postgresWebSocketBinary, postgresWebSocketJSON

    var testDescription: String { rawValue }
    var isPostgres: Bool { rawValue.hasPrefix("postgres") }
    var isWebSocket: Bool { [.webSocketBinary, .webSocketJSON, .postgresWebSocketBinary, .postgresWebSocketJSON].contains(self) }
    var format: WireCodec.Format { [.restJSON, .webSocketJSON, .postgresRESTJSON, .postgresWebSocketJSON].contains(self) ? .json : .binary }
    static let live: [ServerKind] = [.inMemory, .webSocketBinary, .webSocketJSON]
}

/// One server seen through one transport, bound to a namespace.
struct ServerUnderTest: Sendable {
    let namespace: Namespace
    let backend: any ServerBackend
    let pushVia: @Sendable (ChangeBatch) async throws -> PushResponse
    let pullVia: @Sendable (UInt64, UInt64, Int, Set<CollectionName>?, Epoch?) async throws -> PullPage
    let headsVia: @Sendable () async -> AsyncStream<UInt64>
    /// The restore fence on the server behind (``InMemorySyncServer/fence()``, ``SQLiteBackend/fence()``).
    let fenceVia: @Sendable () async throws -> Void
    /// The same server through the same kind of transport, in another namespace.
    let other: @Sendable (Namespace) async throws -> ServerUnderTest

    func push(_ changes: Change...) async throws -> [PushResult] { try await pushVia(ChangeBatch(changes: changes)).results }
    func push(_ batch: ChangeBatch) async throws -> PushResponse { try await pushVia(batch) }

    func pull(
        after cursor: UInt64, from position: UInt64? = nil, limit: Int, collections: Set<CollectionName>? = nil, epoch: Epoch? = nil
    ) async throws -> PullPage {
        try await pullVia(cursor, position ?? cursor, limit, collections, epoch)
    }

    func fence() async throws { try await fenceVia() }

    func head() async throws -> UInt64 { try await backend.head(namespace: namespace) }

    func purgeTombstones(through seq: UInt64) async throws { try await backend.purgeTombstones(namespace: namespace, through: seq) }

    /// A record's live fields as a snapshot pull (after 0) shows them.
    func fields(_ record: String = "t1") async throws -> [String: Value]? {
        var position: UInt64 = 0
        while true {
            let page = try await pull(after: 0, from: position, limit: 1_000)
            if let entry = page.changes.first(where: { $0.record.rawValue == record }) { return entry.fields.mapValues(\.value) }
            guard page.hasMore else { return nil }
            position = page.cursor
        }
    }

    static func with(
        _ kind: ServerKind, engine: ServerEngine.Configuration = .init(), namespace: Namespace = try! Namespace("team"),
        _ body: @Sendable (ServerUnderTest) async throws -> Void
    ) async throws {
        switch kind {
        case .inMemory:
            let server = InMemorySyncServer(
                configuration: .init(maxBatchChanges: engine.maxBatchChanges, maxPageSize: engine.maxPageSize, limits: engine.limits)
            )
            try await body(inMemory(server, namespace))
        default:
            var configuration = LiveServer.configuration(engine: engine)
            // The hello waits for two PostgreSQL round trips: the production default, not the 2 s of the SQLite tests.
            if kind.isPostgres {
                configuration.helloTimeout = .seconds(10)
                configuration.pingInterval = .seconds(30)
            }
            try await LiveServer.with(postgres: kind.isPostgres, configuration: configuration) { live in
                let sut = try await overNetwork(live, kind, namespace)
                try await body(sut)
            }
        }
    }

    static func inMemory(_ server: InMemorySyncServer, _ namespace: Namespace) -> ServerUnderTest {
        ServerUnderTest(
            namespace: namespace, backend: server,
            pushVia: { try await server.push($0, namespace: namespace) },
            pullVia: { try await server.pull(namespace: namespace, after: $0, from: $1, limit: $2, collections: $3, epoch: $4) },
            headsVia: { await server.subscribe(namespace: namespace) },
            fenceVia: { await server.fence() },
            other: { inMemory(server, $0) }
        )
    }

    static func overNetwork(_ live: LiveServer, _ kind: ServerKind, _ namespace: Namespace) async throws -> ServerUnderTest {
        let format = kind.format
        let rest = live.rest(namespace, format: format)
        var push: @Sendable (ChangeBatch) async throws -> PushResponse = { try await rest.push($0) }
        var heads: @Sendable () async -> AsyncStream<UInt64> = { await rest.liveHeads() }
        if kind.isWebSocket {
            let socket = live.webSocket(namespace, format: format)
            // The socket opens once the device's cursor is known (its first pull).
            _ = try await socket.pull(after: 0, from: 0, limit: 1)
            try await socket.waitUntilConnected(within: live.patience)
            push = { try await socket.push($0) }
            heads = { await socket.liveHeads() }
        }
        return ServerUnderTest(
            namespace: namespace, backend: live.backend, pushVia: push,
            // Pulls with an exact limit go over REST (the socket's own pages are tested on their own).
            pullVia: { try await rest.pull(after: $0, from: $1, limit: $2, collections: $3, epoch: $4) },
            headsVia: heads,
            fenceVia: {
                if let postgres = live.backend as? PostgresBackend {
                    _ = try await postgres.fence()
                    return
                }
                guard let sqlite = live.backend as? SQLiteBackend else { throw SyncError(.storage, "not a SQLite backend") }
                _ = try await sqlite.fence()
            },
            other: { try await overNetwork(live, kind, $0) }
        )
    }
}
