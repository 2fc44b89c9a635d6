import Glibc
import Synchronization
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Testing

/// What an app developer hit in the first hour against a real server (issue 11).
@Suite("First-hour regressions through the server", .timeLimit(.minutes(2)))
struct FirstHourServerTests {
    /// Item 3: five records with a 200 KiB field of spaces (inside every documented limit) and a
    /// small one after them. The batch deflates about 1,000 to 1; the server refused it for its
    /// inflate ratio (413 `decompression_limit`) and the outbox was wedged for good. Only the
    /// absolute inflated size is limited now, so everything arrives, nothing is dead-lettered.
    @Test(arguments: [WireCodec.Format.binary, .json])
    func compressibleRecordsWithinTheLimitsAllArrive(_ format: WireCodec.Format) async throws {
        try await LiveServer.with { live in
            let namespace = try Namespace("team")
            let fixture = try StoreFixture(.sqlite)
            let client = try SyncClient(namespace: namespace, store: try fixture.open(), transport: live.rest(namespace, format: format))
            let spaces = String(repeating: " ", count: 200 * 1_024)
            for number in 0..<5 { _ = try await client.upsert(Sample.key("big\(number)"), fields: ["text": .string(spaces)]) }
            _ = try await client.upsert(Sample.key("small"), fields: ["n": 1])
            try await client.sync()
            #expect(try await client.pendingCount() == 0)
            #expect(try await client.deadLetters().isEmpty)
            #expect(try await live.backend.head(namespace: namespace) == 6, "all six changes reached the server")
            client.close()
        }
    }

    /// Item 3, the client half: a refusal of a batch's size (413) is treated like a refusal of its
    /// content: the batch is split until the change the server will not take stands alone, that
    /// one is dead-lettered and the rest flow. Tried: a server taking bodies of at most 300 KiB,
    /// four incompressible 200 KiB records (each fits alone, not two together) and one of 400 KiB.
    @Test func aBatchRefusedWith413IsSplitAndOnlyTheOversizedChangeIsSetAside() async throws {
        var configuration = LiveServer.configuration()
        configuration.maxRequestBytes = 300 * 1_024
        configuration.wire.maxDecompressedBytes = 300 * 1_024
        try await LiveServer.with(configuration: configuration) { live in
            let namespace = try Namespace("team")
            let fixture = try StoreFixture(.sqlite)
            let client = try SyncClient(namespace: namespace, store: try fixture.open(), transport: live.rest(namespace))
            var random = SeededRandom(seed: 413)
            func noise(_ count: Int) -> Value { .bytes((0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }) }
            for number in 0..<2 { _ = try await client.upsert(Sample.key("a\(number)"), fields: ["blob": noise(200 * 1_024)]) }
            _ = try await client.upsert(Sample.key("huge"), fields: ["blob": noise(200 * 1_024), "more": noise(200 * 1_024)])
            for number in 0..<2 { _ = try await client.upsert(Sample.key("b\(number)"), fields: ["blob": noise(200 * 1_024)]) }
            try await client.sync()
            #expect(try await client.pendingCount() == 0, "nothing stays wedged in the outbox")
            let letters = try await client.deadLetters()
            #expect(letters.map(\.change.record.rawValue) == ["huge"], "only the change over the server's limit is set aside")
            #expect(letters.first?.error.code == .decompressionLimit || letters.first?.error.code == .batchTooLarge)
            #expect(try await live.backend.head(namespace: namespace) == 4, "the four that fit reached the server")
            client.close()
        }
    }
}

/// Item 5 through the real server: the superseded write travels in pull pages over REST and in
/// live pages over the WebSocket, in both codecs, and the device whose write lost is told once
/// although it pushed first.
@Suite("Lost writes reported through the server", .timeLimit(.minutes(2)))
struct LostWriteServerTests {
    enum Path: String, CaseIterable, Sendable { case restBinary, restJSON, webSocketBinary, webSocketJSON }

    @Test(arguments: Path.allCases)
    func aWriteReplacedAfterItWasAppliedIsReportedOnce(_ path: Path) async throws {
        try await LiveServer.with { live in
            let namespace = try Namespace("team")
            func transport() -> any SyncTransport {
                switch path {
                case .restBinary: return live.rest(namespace, format: .binary)
                case .restJSON: return live.rest(namespace, format: .json)
                case .webSocketBinary: return live.webSocket(namespace, format: .binary)
                case .webSocketJSON: return live.webSocket(namespace, format: .json)
                }
            }
            let alice = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: transport())
            let bob = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: transport())
            let reports = Mutex<[ConflictReport]>([])
            alice.observeEvents { event in
                if case .conflictDetected(let report) = event { reports.withLock { $0.append(report) } }
            }
            let key = Sample.key("t1")
            _ = try await alice.upsert(key, fields: ["title": "first"])
            try await alice.sync()
            try await bob.sync()
            let mine = try #require(try await alice.upsert(key, fields: ["title": "alice"]))
            try await Task.sleep(for: .milliseconds(3))
            _ = try await bob.upsert(key, fields: ["title": "bob"])
            try await alice.sync()  // applied: Alice pushed first
            try await bob.sync()  // replaces it
            try await alice.sync()
            try await alice.sync()
            let seen = reports.withLock { $0 }
            #expect(seen.count == 1, "told once: \(seen)")
            #expect(seen.first?.changeID == mine.id && seen.first?.local == ["title": "alice"] && seen.first?.server == ["title": "bob"])
            #expect(try await alice.fields(of: key) == ["title": "bob"])
            alice.close()
            bob.close()
        }
    }
}

/// Item 2: a device learns at once that it is offline. Tried: a port nobody listens on (the
/// connection is refused) and a listener whose accept queue is full (the connection is never
/// answered: the kernel drops the handshake). Before, `sync()` threw after 50 s (5 attempts of a
/// 10 s connect timeout each) and `connectivity(offline)` came only then. The bound here is
/// generous for a loaded machine; the test prints the measured times.
@Suite("Offline detection", .timeLimit(.minutes(2)))
struct OfflineDetectionTests {
    @Test(arguments: [Unreachable.refused, .unanswered])
    func aRESTDeviceReportsOfflineSoon(_ kind: Unreachable) async throws {
        let listener = try UnreachablePort(kind)
        defer { listener.close() }
        let namespace = try Namespace("team")
        let fixture = try StoreFixture(.sqlite)
        let client = try SyncClient(
            namespace: namespace, store: try fixture.open(),
            transport: .rest("http://127.0.0.1:\(listener.port)", token: { LiveServer.token })
        )
        let offline = AsyncStream<ContinuousClock.Instant>.makeStream()
        client.observeEvents { event in
            if case .connectivity(.offline) = event { offline.continuation.yield(.now) }
        }
        _ = try await client.upsert(Sample.key("t1"), fields: ["n": 1])
        let start = ContinuousClock.now
        let error = await #expect(throws: SyncError.self) { try await client.sync() }
        let failedAfter = ContinuousClock.now - start
        #expect(error?.code == .transportUnavailable)
        var reported: ContinuousClock.Instant?
        for await instant in offline.stream {
            reported = instant
            break
        }
        let offlineAfter = try #require(reported) - start
        print("offline detection (\(kind)): sync() failed after \(failedAfter), offline reported after \(offlineAfter)")
        // Measured on a quiet machine: refused 6 ms, unanswered 2.0 s (the connect timeout). The
        // bound only has to tell that apart from the old 50 s (five attempts of 10 s) on a loaded
        // machine, where the cooperative pool can be busy for seconds: speed is the benchmarks' job.
        let bound: Duration = .seconds(15)
        #expect(failedAfter < bound, "sync() failed after \(failedAfter)")
        #expect(offlineAfter < bound, "offline reported after \(offlineAfter)")
        #expect(await client.status.connectivity == .offline)
        #expect(try await client.pendingCount() == 1, "the change stays queued")
        client.close()
    }
}

enum Unreachable: String, Sendable, CustomTestStringConvertible {
    case refused, unanswered
    var testDescription: String { rawValue }
}

/// A loopback port where a connection is refused (nothing listens) or never answered (a
/// listener with a full accept queue that never accepts: further handshakes are dropped).
final class UnreachablePort: Sendable {
    let port: Int
    private let descriptors: [Int32]

    init(_ kind: Unreachable) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw SyncError(.storage, "socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        guard bound == 0 else { throw SyncError(.storage, "bind() failed: errno \(errno)") }
        var actual = sockaddr_in()
        var actualLength = length
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &actualLength) } }
        port = Int(UInt16(bigEndian: actual.sin_port))
        switch kind {
        case .refused:
            Glibc.close(listener)  // nothing listens on the port now
            descriptors = []
        case .unanswered:
            guard listen(listener, 0) == 0 else { throw SyncError(.storage, "listen() failed: errno \(errno)") }
            // Fill the accept queue (a backlog of 0 holds one); the listener never accepts.
            var fillers: [Int32] = []
            for _ in 0..<3 {
                let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                var target = address
                target.sin_port = actual.sin_port
                _ = withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(filler, $0, length) } }
                fillers.append(filler)
            }
            descriptors = [listener] + fillers
        }
    }

    func close() {
        for descriptor in descriptors { Glibc.close(descriptor) }
    }
}
