import Foundation
import Synchronization
import Syncline
import SynclineNetwork
import SynclineTesting
import Testing

/// `syncline-server` as a child process, so it can be killed with SIGKILL.
final class ServerProcess: Sendable {
    private final class Output: Sendable {
        let text = Mutex("")
    }

    private let process: Process
    private let output = Output()
    let port: Int

    /// Starts the server and waits for its "listening" line.
    /// - Parameters:
    ///   - arguments: more command-line arguments (later ones win over the defaults).
    ///   - logLevel: the server's log level; its log lines are kept in ``output`` and copied to this
    ///     process's standard error.
    ///   - data: the SQLite data directory, or (`nil`) `database`: a PostgreSQL URL.
    init(data: String?, database: String? = nil, port: Int = 0, arguments: [String] = [], logLevel: String = "error") async throws {
        let process = Process()
        process.executableURL = try Self.executable()
        let backend = data.map { ["--data", $0] } ?? database.map { ["--database", $0] } ?? []
        process.arguments = [
            "--port", String(port), "--dev-token", "\(LiveServer.token):*", "--rate-limit", "0", "--log-level", logLevel,
        ] + backend + arguments
        let pipe = Pipe()
        let errors = Pipe()
        process.standardOutput = pipe
        process.standardError = errors
        let output = self.output
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            output.text.withLock { $0 += text }
        }
        errors.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            FileHandle.standardError.write(data)
            output.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
        self.process = process
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let text = output.text.withLock { $0 }
            if let range = text.range(of: "listening on 127.0.0.1:"),
                let port = Int(text[range.upperBound...].prefix { $0.isNumber })
            {
                self.port = port
                return
            }
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw SyncError(.transportUnavailable, "syncline-server did not start: \(text)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Everything the server wrote so far (standard output and its log).
    var outputText: String { output.text.withLock { $0 } }

    /// Sends `signal` (SIGHUP, say) to the server.
    func send(_ signal: Int32) {
        Foundation.kill(process.processIdentifier, signal)
    }

    /// Waits until the server's output contains `text` `count` times, for at most `limit`.
    /// - Returns: whether it did.
    func waitForOutput(_ text: String, count: Int = 1, within limit: Duration = .seconds(10)) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if outputText.components(separatedBy: text).count - 1 >= count { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    /// SIGKILL: no shutdown, no flush.
    func kill() async {
        let process = self.process
        await onOwnThread {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// SIGTERM, then waits up to `limit` for the graceful shutdown; a server still running then is
    /// killed, and the answer is `false`.
    func terminate(within limit: Duration) async -> Bool {
        let process = self.process
        return await onOwnThread {
            guard process.isRunning else { return true }
            process.terminate()
            let deadline = ContinuousClock.now + limit
            while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
            guard process.isRunning else { return true }
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return false
        }
    }

    /// `syncline-server`, built next to the test bundle.
    static func executable() throws -> URL {
        var directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("syncline-server")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        throw SyncError(.storage, "syncline-server is not built next to the tests; run swift build --build-tests")
    }
}

@Suite("Server killed and restarted", .timeLimit(.minutes(3)))
struct ServerRestartTests {
    /// Devices write distinct records (one change each, never coalesced), so "applied exactly once"
    /// is checkable from outside: the server's head equals the number of acknowledged writes.
    @Test func devicesConvergeAcrossASIGKILLOfTheServer() async throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("syncline-kill-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: data) }  // temporary files only
        let first = try await ServerProcess(data: data)
        let namespace = try Namespace("team")
        let url = first.baseURL
        let fixtures = try [StoreKind.sqlite, .leveldb, .sqlite, .leveldb].map { try StoreFixture($0) }
        let sockets = (0..<2).map { _ in
            WebSocketTransport(
                url: url, namespace: namespace, token: { LiveServer.token },
                configuration: .init(ackTimeout: .seconds(5), initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(300))
            )
        }
        defer { sockets.forEach { $0.close() } }
        let transports: [any SyncTransport] = [
            RESTTransport(url: url, namespace: namespace, token: { LiveServer.token }, configuration: .init(timeout: .seconds(5))),
            sockets[0],
            RESTTransport(url: url, namespace: namespace, token: { LiveServer.token }, configuration: .init(timeout: .seconds(5))),
            sockets[1],
        ]
        let configuration = SyncClient.Configuration(
            pushAttempts: 2, initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(200), syncInterval: .milliseconds(200)
        )
        let devices = try zip(fixtures, transports).map { fixture, transport in
            try SyncClient(namespace: namespace, store: try fixture.open(), transport: transport, configuration: configuration)
        }
        devices.forEach { $0.start() }

        try await devices.writeNewRecords("before", count: 30)
        let during = Task { try await devices.writeNewRecords("during", count: 50) }
        try await Task.sleep(for: .milliseconds(30))
        await first.kill()  // mid-run: devices are writing and pushing
        try await during.value
        try await devices.writeNewRecords("down", count: 20)  // written while the server is gone: queued, durable
        let second = try await ServerProcess(data: data, port: first.port)
        try await devices.writeNewRecords("after", count: 30)

        // Quiesce: every outbox drains and every device reaches the head.
        let total = devices.count * (30 + 50 + 20 + 30)
        let deadline = ContinuousClock.now + .seconds(60)
        for device in devices {
            while true {
                let pending = try await device.pendingCount()
                let cursor = try await device.pullCursor()
                if pending == 0 && cursor >= UInt64(total) { break }
                guard ContinuousClock.now < deadline else {
                    let status = await device.status
                    Issue.record("a device did not settle: \(pending) pending, cursor \(cursor) of \(total), last error \(String(describing: status.lastError))")
                    break
                }
                do {
                    try await device.sync()
                } catch let error as SyncError where error.code == .transportUnavailable {
                    try await Task.sleep(for: .milliseconds(50))  // a socket still reconnecting
                }
            }
        }
        for device in devices { await device.stop() }

        // Nothing acknowledged lost, nothing applied twice: one seq per write, every record present.
        let probe = RESTTransport(url: second.baseURL, namespace: namespace, token: { LiveServer.token })
        let (records, head) = try await probe.serverContents()
        #expect(head == UInt64(total), "each of the \(total) acknowledged writes applied exactly once (head \(head))")
        #expect(records.count == total, "every acknowledged write is on the server")
        for (index, device) in devices.enumerated() {
            let visible = try await device.visibleRecords(in: Sample.collection())
            #expect(visible == records, "device \(index) converged")
            device.close()
        }
        // SIGTERM with live sockets still open: a graceful shutdown closes them (1001) and exits.
        let stopping = ContinuousClock.now
        let exited = await second.terminate(within: .seconds(20))
        #expect(exited, "graceful shutdown with open live connections, not killed after 20 s")
        #expect(ContinuousClock.now - stopping < .seconds(20), "graceful shutdown with open live connections")
    }
}
