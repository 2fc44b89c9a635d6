import CSQLite
import Foundation
import HTTPTypes
import Logging
import NIOHTTP1
import NIOWebSocket
import Syncline
import SynclineNetwork
import SynclineSQLite
import SynclineServer
import SynclineTesting
import Synchronization
import Testing
import WSClient

/// Namespace epochs and the restore fence (DESIGN §5), against the in-memory reference server and
/// the real server (SQLite backend on loopback) through each transport and codec.
@Suite("Namespace epochs", .timeLimit(.minutes(2)))
struct EpochTests {
    func change(
        _ number: UInt64, _ record: String, fields: [String: Value], base: UInt64 = 0, mode: ConflictMode = .lww, node: UInt64 = 0xA1
    ) -> Change {
        Change(
            id: Sample.eventID(number), collection: Sample.collection(), record: Sample.id(record), operation: .upsert,
            fields: fields, hlc: Sample.hlc(1_000 + number, node: node), base: base, mode: mode
        )
    }

    @Test(arguments: ServerKind.allCases)
    func everyAnswerCarriesTheEpochAndAnotherEpochGets410(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind) { server in
            // A namespace never written already has the epoch it will keep when written.
            let empty = try await server.pull(after: 0, limit: 10)
            let epoch = try #require(empty.epoch)
            let pushed = try await server.push(ChangeBatch(changes: [change(1, "a", fields: ["v": 1]), change(2, "b", fields: ["v": 2])]))
            #expect(pushed.epoch == epoch)
            // The device's own epoch, or none (a first pull, an older client), is served.
            let page = try await server.pull(after: 0, limit: 10, epoch: epoch)
            #expect(page.epoch == epoch && page.changes.count == 2)
            #expect(try await server.pull(after: 1, limit: 10).epoch == epoch)
            // Tried: a pull with an epoch the namespace never had.
            let other = Epoch(rawValue: epoch.rawValue ^ 1)
            let error = await #expect(throws: SyncError.self) { try await server.pull(after: 1, limit: 10, epoch: other) }
            #expect(error?.code == .resyncRequired, "another epoch is 410 resync_required")
        }
    }

    /// Over REST (and in memory): a live socket open across a fence is ended by it (see
    /// `aStaleHelloIsRefused…`), which a fence of a running server would do to the pushes here.
    @Test(arguments: [ServerKind.inMemory, .restBinary, .restJSON, .postgresRESTBinary, .postgresRESTJSON])
    func theFenceGivesANewEpochAndMovesTheHeadPastEverySeqADeviceHeld(_ kind: ServerKind) async throws {
        try await ServerUnderTest.with(kind) { server in
            _ = try await server.push(ChangeBatch(changes: [change(1, "a", fields: ["v": 1]), change(2, "b", fields: ["v": 2])]))
            let before = try #require(try await server.pull(after: 0, limit: 10).epoch)
            try await server.fence()
            let head = try await server.head()
            #expect(head == 2 + ServerEngine.fenceGap)
            // Tried: the old epoch with the old cursor, and the old cursor with no epoch (an older client).
            var error = await #expect(throws: SyncError.self) { try await server.pull(after: 2, limit: 10, epoch: before) }
            #expect(error?.code == .resyncRequired)
            error = await #expect(throws: SyncError.self) { try await server.pull(after: 2, limit: 10) }
            #expect(error?.code == .resyncRequired, "a cursor from before the fence is below the horizon")
            // A snapshot is served in the new epoch with every record.
            let snapshot = try await server.pull(after: 0, limit: 10)
            let after = try #require(snapshot.epoch)
            #expect(after != before && snapshot.changes.count == 2 && snapshot.cursor == head)
            // The next write comes after every seq a device could hold: a pending change based on
            // seq 2 is concurrent with it, so `reject` sees the conflict.
            let written = try await server.push(change(3, "a", fields: ["v": 3], node: 0xB2))
            guard case .applied(_, let seq, _) = written.first else { Issue.record("expected applied, got \(written)"); return }
            #expect(seq == head + 1)
            let stale = try await server.push(change(4, "a", fields: ["v": 4], base: 2, mode: .reject))
            guard case .rejected(_, let conflicts, _) = stale.first else { Issue.record("expected rejected, got \(stale)"); return }
            #expect(conflicts == ["v"])
            #expect(try await server.pull(after: head, limit: 10, epoch: after).changes.count == 1)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aBadEpochParameterIs400AndAStaleHelloIsRefused() async throws {
        try await LiveServer.with { server in
            // Tried: epoch=nope and an epoch one digit short.
            for bad in ["nope", "9f1c2a7b3d4e5f6"] {
                let answer = try await server.raw(.GET, "/v1/ns/team/changes?after=0&epoch=\(bad)")
                #expect(answer.status == 400 && answer.errorCode == "invalid_parameter", "epoch=\(bad)")
            }
            let epoch = try await server.backend.epoch(namespace: Namespace("team"))
            let other = Epoch(rawValue: epoch.rawValue ^ 0xFF)
            let answer = try await server.raw(.GET, "/v1/ns/team/changes?after=0&epoch=\(other)")
            #expect(answer.status == 410 && answer.errorCode == "resync_required")
            #expect(try await server.raw(.GET, "/v1/ns/team/changes?after=0&epoch=\(epoch)").status == 200)

            // Tried: a live hello with another epoch, then one with the namespace's epoch.
            var configuration = WebSocketClientConfiguration()
            configuration.additionalHeaders[.authorization] = "Bearer \(LiveServer.token)"
            for (hello, refused) in [(other, true), (epoch, false)] {
                let replies = Mutex<[String]>([])
                let close = try await WebSocketClient.connect(
                    url: "\(server.liveURL)/v1/ns/team/live", configuration: configuration, logger: .init(label: "hello")
                ) { inbound, outbound, _ in
                    try await outbound.write(.text(#"{"type":"hello","cursor":0,"epoch":"\#(hello)"}"#))
                    for try await message in inbound.messages(maxSize: 1 << 20) {
                        guard case .text(let text) = message else { continue }
                        replies.withLock { $0.append(text) }
                        if text.contains(#""type":"welcome""#) { try await outbound.close(.normalClosure, reason: nil) }
                    }
                }
                let texts = replies.withLock { $0 }
                if refused {
                    #expect(texts.count == 1 && texts[0].contains(#""code":"resync_required""#), "\(texts)")
                    #expect(close?.closeCode == .policyViolation)
                } else {
                    #expect(texts.first?.contains(#""epoch":"\#(epoch)""#) == true, "the welcome carries the epoch: \(texts)")
                }
            }
        }
    }

    @Test func aVersion1DatabaseIsUpgradedInPlaceAndKeepsItsData() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("syncline-upgrade-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }  // temporary files only
        let path = directory.appendingPathComponent("server.sqlite").path
        do {
            // A server database as the previous release wrote it (schema 1: no epoch, no meta).
            let old = try SQLiteBackend(path: path)
            _ = try await old.applyValidated(ChangeBatch(changes: [change(1, "a", fields: ["v": 1])]), namespace: Namespace("team"))
        }
        let connection = try SQLiteConnection(path: path, flags: SQLITE_OPEN_READWRITE)
        try connection.execute(
            """
            BEGIN; CREATE TABLE n2 AS SELECT ns, head, horizon, applied FROM namespaces; DROP TABLE namespaces;
            CREATE TABLE namespaces(ns TEXT PRIMARY KEY, head INTEGER NOT NULL, horizon INTEGER NOT NULL, applied INTEGER NOT NULL) WITHOUT ROWID;
            INSERT INTO namespaces SELECT * FROM n2; DROP TABLE n2; DROP TABLE server_meta; PRAGMA user_version = 0; COMMIT;
            """
        )
        #expect(try connection.integer("SELECT count(*) FROM pragma_table_info('namespaces') WHERE name = 'epoch'") == 0)
        let backend = try SQLiteBackend(path: path)
        #expect(try connection.integer("PRAGMA user_version") == 2)
        let page = try await backend.pull(
            namespace: Namespace("team"), after: 0, from: 0, limit: 10, collections: nil, epoch: nil, configuration: .init()
        )
        #expect(page.changes.count == 1 && page.head == 1 && page.epoch != nil)
        #expect(try await backend.epoch(namespace: Namespace("team")) == page.epoch)
        // Tried: a database from a newer server (schema 99) is refused, not changed.
        try connection.execute("PRAGMA user_version = 99")
        let error = #expect(throws: SyncError.self) { try SQLiteBackend(path: path) }
        #expect(error?.code == .newerSchema)
    }

    @Test func aDatabaseCopiedBackFromABackupIsFencedAtStartEvenWithoutRestoreFence() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("syncline-marker-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }  // temporary files only
        let directory = ServerDataDirectory(path: root.appendingPathComponent("data").path)
        let backupPath = root.appendingPathComponent("backup.sqlite").path
        let namespace = try Namespace("team")
        let logger = Logger(label: "test")
        var backend: SQLiteBackend? = try await directory.openBackend(logger: logger)
        _ = try await backend?.applyValidated(ChangeBatch(changes: [change(1, "a", fields: ["v": 1])]), namespace: namespace)
        let epoch = try #require(try await backend?.epoch(namespace: namespace))
        try directory.backup(to: backupPath)
        // Tried: a backup onto an existing file.
        #expect(throws: SyncError.self) { try directory.backup(to: backupPath) }
        _ = try await backend?.applyValidated(ChangeBatch(changes: [change(2, "b", fields: ["v": 2])]), namespace: namespace)
        backend = nil
        // Started again as it was: same epoch, nothing fenced.
        backend = try await directory.openBackend(logger: logger)
        #expect(try await backend?.epoch(namespace: namespace) == epoch)
        #expect(try await backend?.head(namespace: namespace) == 2)
        backend = nil
        // The operator copies the backup over the database by hand (no `restore`, no `restore-fence`).
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: directory.databasePath + suffix) }
        try FileManager.default.copyItem(atPath: backupPath, toPath: directory.databasePath)
        let restored = try await directory.openBackend(logger: logger)
        #expect(try await restored.epoch(namespace: namespace) != epoch, "a restored database is noticed and fenced")
        #expect(try await restored.head(namespace: namespace) == 1 + ServerEngine.fenceGap)
        // Tried: `restore` while a server holds the directory.
        do {
            let lock = try directory.lock()
            let error = await #expect(throws: SyncError.self) { try await directory.restore(from: backupPath, logger: logger) }
            #expect(error?.message.contains("locked") == true)
            withExtendedLifetime(lock) {}
        }
        // Tried: restoring a file that is not a server database.
        let garbage = root.appendingPathComponent("garbage.sqlite").path
        try Data(repeating: 7, count: 4_096).write(to: URL(fileURLWithPath: garbage))
        let error = await #expect(throws: SyncError.self) { try await directory.restore(from: garbage, logger: logger) }
        #expect(error?.code == .notASynclineStore)
        #expect(try await restored.head(namespace: namespace) == 1 + ServerEngine.fenceGap, "a refused restore changes nothing")
    }
}
