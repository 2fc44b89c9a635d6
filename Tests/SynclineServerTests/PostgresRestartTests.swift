import Foundation
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Testing

/// PostgreSQL itself restarted at once (`pg_ctl restart -m immediate`: a crash and recovery) while
/// devices on two node processes write. The restart needs a cluster of its own, so the other
/// PostgreSQL tests running meanwhile are not cut off: `Scripts/test.sh` starts one and sets
/// `SYNCLINE_TEST_POSTGRES_RESTARTABLE_URL` and `SYNCLINE_TEST_POSTGRES_RESTART` (a command that
/// restarts it, e.g. `Scripts/postgres.sh restart 55433`).
@Suite("PostgreSQL restarted mid-run", .timeLimit(.minutes(3)))
struct PostgresRestartTests {
    static let urlVariable = "SYNCLINE_TEST_POSTGRES_RESTARTABLE_URL"
    static let commandVariable = "SYNCLINE_TEST_POSTGRES_RESTART"

    /// Runs the restart command with `posix_spawn` (Foundation's `Process.waitUntilExit` spun
    /// without end here once the command had started a new postmaster), output to a file, and
    /// waits for it with `waitpid` on a thread of its own.
    static func restartPostgreSQL() async throws {
        guard let command = ProcessInfo.processInfo.environment[commandVariable], !command.isEmpty else {
            throw SyncError(
                .transportUnavailable,
                "this test restarts a PostgreSQL cluster of its own: set \(urlVariable)=postgres://… and \(commandVariable)='<a command that runs pg_ctl restart -m immediate on it>' (Scripts/test.sh starts one and sets both)"
            )
        }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("syncline-pg-restart-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }  // a temporary file only
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let arguments = ["/bin/sh", "-c", command]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/sh", &actions, nil, &argv, environ)
        guard spawned == 0 else { throw SyncError(.storage, "could not run \(command): posix_spawn \(spawned)") }
        let child = pid
        let status = await onOwnThread { () -> Int32 in
            var status: Int32 = 0
            while waitpid(child, &status, 0) == -1 && errno == EINTR {}
            return status
        }
        guard status == 0 else {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw SyncError(.storage, "\(command) failed (wait status \(status)): \(text)")
        }
    }

    /// Devices write distinct records (one change each, never coalesced), so "applied exactly once"
    /// is checkable from outside: the namespace's head equals the number of acknowledged writes.
    @Test func everyAcknowledgedWriteIsAppliedOnceAcrossAnImmediateRestartOfPostgreSQL() async throws {
        let schema = PostgresTestDatabase.freshSchema()
        let database = try PostgresTestDatabase.serverURL(variable: Self.urlVariable, schema: schema)
        guard ProcessInfo.processInfo.environment[Self.commandVariable]?.isEmpty == false else {
            try await Self.restartPostgreSQL()  // throws, saying what to set
            return
        }
        try await NodeCluster.with(nodes: 2, database: database) { cluster in
            try await cluster.waitUntilServing()
            let namespace = try Namespace("team")
            var sockets: [WebSocketTransport] = []
            var failovers: [NodeFailoverTransport] = []
            let fixtures = try (0..<4).map { try StoreFixture($0 % 2 == 0 ? .sqlite : .leveldb) }
            let devices = try (0..<4).map { index -> SyncClient in
                let nodes: [any SyncTransport] = cluster.urls.map { url in
                    if index % 2 == 0 {
                        return RESTTransport(url: url, namespace: namespace, token: { LiveServer.token }, configuration: .init(timeout: .seconds(20)))
                    }
                    let socket = WebSocketTransport(
                        url: url, namespace: namespace, token: { LiveServer.token },
                        configuration: .init(ackTimeout: .seconds(20), initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(300))
                    )
                    sockets.append(socket)
                    return socket
                }
                let failover = NodeFailoverTransport(nodes, first: index)
                failovers.append(failover)
                return try SyncClient(
                    namespace: namespace, store: try fixtures[index].open(), transport: failover,
                    configuration: .init(pushAttempts: 2, initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(200), syncInterval: .milliseconds(200))
                )
            }
            defer { sockets.forEach { $0.close() } }
            devices.forEach { $0.start() }

            try await devices.writeNewRecords("before", count: 30)
            let during = Task { try await devices.writeNewRecords("during", count: 60) }
            try await Task.sleep(for: .milliseconds(30))
            try await Self.restartPostgreSQL()  // mid-run: devices are writing and pushing
            try await during.value
            try await devices.writeNewRecords("after", count: 30)

            // Quiesce: every outbox drains and every device reaches the head.
            failovers.forEach { $0.setPatient(true) }
            let total = devices.count * (30 + 60 + 30)
            let deadline = ContinuousClock.now + .seconds(60)
            for device in devices {
                while true {
                    let pending = try await device.pendingCount()
                    let cursor = try await device.pullCursor()
                    if pending == 0 && cursor >= UInt64(total) { break }
                    guard ContinuousClock.now < deadline else {
                        Issue.record("a device did not settle: \(pending) pending, cursor \(cursor) of \(total)")
                        break
                    }
                    do {
                        try await device.sync()
                    } catch let error as SyncError where error.code == .transportUnavailable {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
            }
            for device in devices { await device.stop() }

            // Nothing acknowledged lost, nothing applied twice: one seq per write, every record present.
            let probe = NodeFailoverTransport(
                cluster.urls.map { RESTTransport(url: $0, namespace: namespace, token: { LiveServer.token }) }, first: 1
            )
            probe.setPatient(true)
            let (records, head) = try await probe.serverContents()
            #expect(head == UInt64(total), "each of the \(total) acknowledged writes applied exactly once (head \(head))")
            #expect(records.count == total, "every acknowledged write is in PostgreSQL")
            for (index, device) in devices.enumerated() {
                let visible = try await device.visibleRecords(in: Sample.collection())
                #expect(visible == records, "device \(index) converged")
                device.close()
            }
            withExtendedLifetime(fixtures) {}
        }
    }
}
