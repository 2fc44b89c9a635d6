import Foundation
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Testing

extension ServerProcess {
    /// Runs `syncline-server` with `arguments` (a subcommand) to its end: its exit status and output.
    static func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = try executable()
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        return await onOwnThread {
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: output, as: UTF8.self))
        }
    }
}

/// DESIGN §5 and issue 10 §5: back up a running server, write more, restore the backup (the
/// subcommands of the real executable), and every device converges to the restored state plus
/// what it still had unsent; none skips a write made after the restore.
@Suite("Backup and restore", .timeLimit(.minutes(3)))
struct BackupRestoreTests {
    @Test func devicesConvergeToTheRestoredStatePlusTheirUnsentChanges() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("syncline-restore-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }  // temporary files only
        let data = root + "/data"
        let backupFile = root + "/backup.sqlite"
        let namespace = try Namespace("team")
        let first = try await ServerProcess(data: data)
        let url = first.baseURL
        let socket = WebSocketTransport(
            url: url, namespace: namespace, token: { LiveServer.token },
            configuration: .init(ackTimeout: .seconds(5), initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(300))
        )
        defer { socket.close() }
        let fixtures = try (0..<3).map { _ in try StoreFixture(.sqlite) }
        let transports: [any SyncTransport] = [
            RESTTransport(url: url, namespace: namespace, token: { LiveServer.token }, configuration: .init(timeout: .seconds(5))),
            socket,
            RESTTransport(
                url: url, namespace: namespace, token: { LiveServer.token },
                configuration: .init(wire: WireCodec(format: .json), timeout: .seconds(5))
            ),
        ]
        let devices = try zip(fixtures, transports).map { fixture, transport in
            try SyncClient(namespace: namespace, store: try fixture.open(), transport: transport)
        }
        let (alice, bob, carol) = (devices[0], devices[1], devices[2])
        defer { devices.forEach { $0.close() } }
        /// Two rounds, so every device has everyone's writes; a connection the restart cut is retried
        /// (short polling with a deadline).
        func syncAll(_ devices: [SyncClient]) async throws {
            for _ in 0..<2 {
                for device in devices {
                    let deadline = ContinuousClock.now + .seconds(20)
                    while true {
                        do {
                            try await device.sync()
                            break
                        } catch let error as SyncError where error.code == .transportUnavailable && ContinuousClock.now < deadline {
                            try await Task.sleep(for: .milliseconds(50))
                        }
                    }
                }
            }
        }

        // Before the backup: five records everybody has.
        for number in 1...3 { try await alice.upsert(Sample.key("r\(number)"), fields: ["title": .string("a\(number)")]) }
        for number in 4...5 { try await bob.upsert(Sample.key("r\(number)"), fields: ["title": .string("b\(number)")]) }
        try await syncAll(devices)

        // The backup, while the server runs.
        let backup = try await ServerProcess.run(["backup", "--data", data, "--to", backupFile])
        #expect(backup.status == 0, "backup: \(backup.output)")

        // After the backup: acknowledged writes everybody saw (they will be lost by the restore) ...
        try await alice.upsert(Sample.key("r6"), fields: ["title": "lost"])
        try await alice.upsert(Sample.key("r1"), fields: ["title": "lost edit"])
        try await syncAll(devices)
        #expect(try await carol.visibleRecords(in: Sample.collection())[Sample.id("r6")] == ["title": "lost"])
        let oldCursor = try await carol.pullCursor()
        let oldEpoch = try #require(try await carol.pullEpoch())
        // ... and Bob's writes made while he is offline (never sent).
        try await bob.upsert(Sample.key("r7"), fields: ["title": "unsent"])
        try await bob.upsert(Sample.key("r1"), fields: ["note": "bob's unsent note"])
        try await bob.upsert(Sample.key("r2"), fields: ["title": "bob's unsent title"])
        #expect(try await bob.pendingCount() == 3)

        // Stop, restore (which fences), start again on the same port.
        #expect(await first.terminate(within: .seconds(20)))
        let restore = try await ServerProcess.run(["restore", "--from", backupFile, "--data", data])
        #expect(restore.status == 0, "restore: \(restore.output)")
        let second = try await ServerProcess(data: data, port: first.port)
        do {
            try await Self.checkAfterRestore(
                url: url, namespace: namespace, devices: devices, oldCursor: oldCursor, oldEpoch: oldEpoch, syncAll: syncAll
            )
        } catch {
            _ = await second.terminate(within: .seconds(20))
            throw error
        }
        #expect(await second.terminate(within: .seconds(20)))
    }

    static func checkAfterRestore(
        url: String, namespace: Namespace, devices: [SyncClient], oldCursor: UInt64, oldEpoch: Epoch,
        syncAll: ([SyncClient]) async throws -> Void
    ) async throws {
        let (alice, bob, carol) = (devices[0], devices[1], devices[2])

        // A device pulling with the old epoch (or an older client with only its old cursor) gets 410.
        let probe = RESTTransport(url: url, namespace: namespace, token: { LiveServer.token })
        var error = await #expect(throws: SyncError.self) {
            try await probe.pull(after: oldCursor, from: oldCursor, limit: 100, epoch: oldEpoch)
        }
        #expect(error?.code == .resyncRequired)
        error = await #expect(throws: SyncError.self) { try await probe.pull(after: oldCursor, from: oldCursor, limit: 100) }
        #expect(error?.code == .resyncRequired)

        // A new device writes to the restored server before the others come back: nobody may skip it.
        let late = try SyncClient(
            namespace: namespace, store: try StoreFixture(.sqlite).open(),
            transport: RESTTransport(url: url, namespace: namespace, token: { LiveServer.token })
        )
        defer { late.close() }
        try await late.upsert(Sample.key("r9"), fields: ["title": "after restore"])
        try await late.sync()
        try await syncAll(devices + [late])

        // The server: the backup's records, plus Bob's unsent changes, plus the write after the restore.
        var server: [RecordID: [String: Value]] = [:]
        var position: UInt64 = 0
        var page: PullPage
        repeat {
            page = try await probe.pull(after: 0, from: position, limit: 1_000)
            for entry in page.changes where !entry.deleted { server[entry.record] = entry.fields.mapValues(\.value) }
            position = page.cursor
        } while page.hasMore
        let expected: [RecordID: [String: Value]] = [
            Sample.id("r1"): ["title": "a1", "note": "bob's unsent note"], Sample.id("r2"): ["title": "bob's unsent title"],
            Sample.id("r3"): ["title": "a3"], Sample.id("r4"): ["title": "b4"], Sample.id("r5"): ["title": "b5"],
            Sample.id("r7"): ["title": "unsent"], Sample.id("r9"): ["title": "after restore"],
        ]
        #expect(server == expected)
        let epoch = try #require(page.epoch)
        #expect(epoch != oldEpoch)
        #expect(page.head > oldCursor, "the fence moved the head past every seq a device held")
        for (name, device) in [("alice", alice), ("bob", bob), ("carol", carol), ("late", late)] {
            let visible = try await device.visibleRecords(in: Sample.collection())
            #expect(visible == expected, "\(name) converged: \(visible)")
            #expect(try await device.pendingCount() == 0, "\(name) sent everything")
            #expect(try await device.pullEpoch() == epoch, "\(name) knows the new epoch")
            #expect(try await device.pullCursor() == page.head, "\(name) pulled to the head")
        }
    }

    /// The backup is one consistent snapshot while a writer keeps committing: every write is one
    /// new record at the next seq, so a consistent copy holds exactly `head` records.
    @Test func aBackupTakenWhileWritesContinueIsOneConsistentSnapshot() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("syncline-online-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }  // temporary files only
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let namespace = try Namespace("team")
        let live = try SQLiteBackend(path: root + "/live.sqlite")
        let heads = live.subscribe(namespace: namespace)  // before the first write, so none is missed
        let writer = Task {
            var number: UInt64 = 0
            while !Task.isCancelled && number < 20_000 {
                number += 1
                let batch = ChangeBatch(changes: [Sample.change(number, record: "r\(number)", fields: ["n": .int(Int64(number))])])
                _ = try await live.applyValidated(batch, namespace: namespace)
            }
            return number
        }
        // Wait until the writer is under way, then copy while it runs.
        for await head in heads where head >= 200 { break }
        let copied = await onOwnThread { Result { try SQLiteBackend.backup(databaseAt: root + "/live.sqlite", to: root + "/copy.sqlite") } }
        let headAfterCopy = try await live.head(namespace: namespace)
        writer.cancel()
        let written = try await writer.value
        try copied.get()
        let copy = try SQLiteBackend(path: root + "/copy.sqlite")
        let head = try await copy.head(namespace: namespace)
        var count = 0
        var position: UInt64 = 0
        while true {
            let page = try await copy.pull(
                namespace: namespace, after: 0, from: position, limit: 1_000, collections: nil, epoch: nil, configuration: .init()
            )
            count += page.changes.count
            guard page.hasMore else { break }
            position = page.cursor
        }
        #expect(head >= 200 && head <= headAfterCopy, "the copy is a state the live database went through")
        #expect(count == Int(head), "a consistent copy holds exactly its head's records (\(count) of \(head); \(written) written)")
        #expect(try await copy.epoch(namespace: namespace) == (try await live.epoch(namespace: namespace)), "a backup keeps the epochs")
    }
}
