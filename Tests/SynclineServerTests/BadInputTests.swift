import AsyncHTTPClient
import CSQLite
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Synchronization
import Syncline
import SynclineNetwork
import SynclineSQLite
import SynclineServer
import SynclineTesting
import Testing
import WSClient

/// A raw HTTP answer: status, headers, and the protocol error's code when there is one.
struct RawAnswer {
    var status: UInt
    var headers: HTTPHeaders
    var body: [UInt8]

    var errorCode: String? {
        guard case .object(let root)? = try? JSONCodec.decodeValue(body),  // not JSON: no code, and the test says so
            case .object(let error)? = root["error"], case .string(let code)? = error["code"]
        else { return nil }
        return code
    }

    var errorLimit: Int64? {
        guard case .object(let root)? = try? JSONCodec.decodeValue(body),  // not JSON: no limit
            case .object(let error)? = root["error"], case .int(let limit)? = error["limit"]
        else { return nil }
        return limit
    }
}

extension LiveServer {
    /// Sends a request as a third-party client would, with nothing checked on the way.
    func raw(
        _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, token: String? = LiveServer.token,
        headers: [(String, String)] = []
    ) async throws -> RawAnswer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await RESTTransport.sharedHTTPClient.execute(request, timeout: .seconds(20))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return RawAnswer(status: response.status.code, headers: response.headers, body: Array(bytes.readableBytesView))
    }
}

@Suite("Bad input to the server", .timeLimit(.minutes(2)))
struct BadInputTests {
    static let json = [("Content-Type", "application/json")]
    static let binary = [("Content-Type", "application/vnd.syncline+binary")]

    /// A sample's value in Prometheus text.
    static func metric(_ name: String, in text: [UInt8]) -> Double? {
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1))
        }
        return nil
    }

    static func batch(_ count: Int, field: Value = "x", from start: UInt64 = 1) -> ChangeBatch {
        ChangeBatch(changes: (0..<UInt64(count)).map { Sample.change(start + $0, record: "r\(start + $0)", fields: ["v": field]) })
    }

    @Test func everyBadRequestGetsItsOwnErrorWhileOthersAreServed() async throws {
        var configuration = LiveServer.configuration(engine: .init(maxBatchChanges: 10, limits: Limits(maxFieldBytes: 1_000)))
        configuration.maxRequestBytes = 1 << 20
        configuration.wire.maxDecompressedBytes = 1 << 20
        try await LiveServer.with(configuration: configuration) { server in
            let namespace = try Namespace("team")
            // A well-behaved device keeps syncing while the bad requests come in.
            let device = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: server.rest(namespace))
            let good = Task {
                for index in 0..<30 {
                    try await device.upsert(Sample.key("good\(index)"), fields: ["n": .int(Int64(index))])
                    try await device.sync()
                }
            }
            let push = "/v1/ns/team/push"
            let valid = try JSONCodec.encode(Self.batch(2))

            // Tried: a truncated JSON body, and JSON of the wrong shape.
            var answer = try await server.raw(.POST, push, body: Array(valid.dropLast(7)), headers: Self.json)
            #expect(answer.status == 400 && answer.errorCode == "malformed_input")
            answer = try await server.raw(.POST, push, body: Array(#"{"changes": [{"id": 1}]}"#.utf8), headers: Self.json)
            #expect(answer.status == 400 && answer.errorCode == "malformed_input")
            // Tried: a truncated binary body, and random bytes.
            answer = try await server.raw(.POST, push, body: Array(BinaryCodec.encode(Self.batch(2)).dropLast(5)), headers: Self.binary)
            #expect(answer.status == 400 && answer.errorCode == "malformed_input")
            answer = try await server.raw(.POST, push, body: (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 97) }, headers: Self.binary)
            #expect(answer.status == 400 && answer.errorCode == "malformed_input")
            // Tried: a zlib bomb (8 MiB of zeros deflated to a few KiB) and a corrupt zlib stream.
            let bomb = try Deflate.compress([UInt8](repeating: 0, count: 8 << 20), level: 9)
            answer = try await server.raw(.POST, push, body: bomb, headers: Self.json + [("Content-Encoding", "deflate")])
            #expect(answer.status == 413 && answer.errorCode == "decompression_limit" && answer.errorLimit != nil, "a \(bomb.count)-byte bomb")
            answer = try await server.raw(.POST, push, body: [0x78, 0x9C, 1, 2, 3, 4], headers: Self.json + [("Content-Encoding", "deflate")])
            #expect(answer.status == 400 && answer.errorCode == "malformed_input")
            // Tried: a body over the 1 MiB limit as sent.
            answer = try await server.raw(.POST, push, body: [UInt8](repeating: 0x20, count: (1 << 20) + 10), headers: Self.json)
            #expect(answer.status == 413 && answer.errorCode == "decompression_limit" && answer.errorLimit == 1 << 20)
            // Tried: 11 changes against a limit of 10.
            answer = try await server.raw(.POST, push, body: try JSONCodec.encode(Self.batch(11, from: 100)), headers: Self.json)
            #expect(answer.status == 413 && answer.errorCode == "batch_too_large" && answer.errorLimit == 10)
            // Tried: a 5,000-byte field against a limit of 1,000.
            let huge = Self.batch(1, field: .string(String(repeating: "h", count: 5_000)), from: 200)
            answer = try await server.raw(.POST, push, body: BinaryCodec.encode(huge), headers: Self.binary)
            #expect(answer.status == 400 && answer.errorCode == "field_too_large" && answer.errorLimit == 1_000)
            // Tried: no token, a wrong token, and a token for another namespace.
            answer = try await server.raw(.POST, push, body: valid, token: nil, headers: Self.json)
            #expect(answer.status == 401 && answer.errorCode == "unauthorized" && answer.headers.first(name: "WWW-Authenticate") == "Bearer")
            answer = try await server.raw(.GET, "/v1/ns/team/changes?after=0", token: "not-a-token")
            #expect(answer.status == 401 && answer.errorCode == "unauthorized")
            answer = try await server.raw(.GET, "/v1/ns/team/changes?after=0", token: LiveServer.otherToken)
            #expect(answer.status == 403 && answer.errorCode == "forbidden")
            // Tried: an invalid namespace name in the path.
            answer = try await server.raw(.GET, "/v1/ns/bad%20name/changes?after=0")
            #expect(answer.status == 400 && answer.errorCode == "invalid_namespace")
            // Tried: a cursor beyond the head, a negative limit, a limit of 0, and a cursor that is not a number.
            answer = try await server.raw(.GET, "/v1/ns/team/changes?after=999999")
            #expect(answer.status == 409 && answer.errorCode == "invalid_cursor")
            answer = try await server.raw(.GET, "/v1/ns/team/changes?after=0&limit=-5")
            #expect(answer.status == 400 && answer.errorCode == "invalid_parameter")
            answer = try await server.raw(.GET, "/v1/ns/team/changes?after=0&limit=0")
            #expect(answer.status == 400 && answer.errorCode == "invalid_parameter")
            answer = try await server.raw(.GET, "/v1/ns/team/changes?after=abc")
            #expect(answer.status == 400 && answer.errorCode == "invalid_parameter")
            // Tried: a parameter given twice, and collection lists with an empty name.
            answer = try await server.raw(.GET, "/v1/ns/team/changes?after=0&after=1")
            #expect(answer.status == 400 && answer.errorCode == "invalid_parameter")
            for list in ["todos,,notes", "todos,", ",todos"] {
                answer = try await server.raw(.GET, "/v1/ns/team/changes?collections=\(list)")
                #expect(answer.status == 400 && answer.errorCode == "invalid_collection", "collections=\(list)")
            }
            // Tried: a body in a format the server does not speak, and an unknown Content-Encoding.
            answer = try await server.raw(.POST, push, body: valid, headers: [("Content-Type", "text/plain")])
            #expect(answer.status == 415 && answer.errorCode == "unsupported_media_type")
            answer = try await server.raw(.POST, push, body: valid, headers: Self.json + [("Content-Encoding", "br")])
            #expect(answer.status == 415 && answer.errorCode == "unsupported_media_type")

            // None of it was applied; the good device was served throughout.
            try await good.value
            #expect(try await device.pendingCount() == 0)
            let head = try await server.backend.head(namespace: namespace)
            #expect(head == 30, "only the good device's 30 changes were applied")
            let valid2 = try await server.raw(.POST, push, body: valid, headers: Self.json)
            #expect(valid2.status == 200, "the server still answers a valid push")
        }
    }

    @Test(arguments: [false, true])
    func theServerRefusesADatabaseThatIsNotItsOwnAndLeavesItAlone(deviceStore: Bool) throws {
        let fixture = try StoreFixture(.sqlite)
        if deviceStore {
            // Tried: a device's SQLite store (another application_id) as the server's --data file.
            let store = try SQLiteStore(path: fixture.storePath)
            try store.write { tx in try tx.putRecord(Sample.record("a", fields: ["v": 1])) }
            store.close()
        } else {
            // Tried: another application's database (application_id 0, a rollback journal, a table).
            var db: OpaquePointer?
            #expect(sqlite3_open(fixture.storePath, &db) == SQLITE_OK)
            #expect(sqlite3_exec(db, "CREATE TABLE invoices(id INTEGER PRIMARY KEY); INSERT INTO invoices VALUES (1);", nil, nil, nil) == SQLITE_OK)
            sqlite3_close_v2(db)
        }
        let before = try Data(contentsOf: URL(fileURLWithPath: fixture.storePath))
        #expect {
            _ = try SQLiteBackend(path: fixture.storePath)
        } throws: { error in
            (error as? SyncError)?.code == .notASynclineStore && (error as? SyncError)?.message.contains("left untouched") == true
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: fixture.storePath)) == before)
    }

    @Test func tooManyRequestsGetRetryAfter() async throws {
        // Tried: 20 requests at once against a burst of 5. The bucket refills one token per 20 s,
        // so the refusal does not depend on how fast a loaded machine serves the requests.
        let configuration = LiveServer.configuration(rateLimit: .init(perSecond: 0.05, burst: 5))
        try await LiveServer.with(configuration: configuration) { server in
            var statuses: [UInt] = []
            var retryAfter: String?
            for _ in 0..<20 {
                let answer = try await server.raw(.GET, "/v1/ns/team/changes?after=0")
                statuses.append(answer.status)
                if answer.status == 429 {
                    retryAfter = answer.headers.first(name: "Retry-After")
                    #expect(answer.errorCode == "rate_limited")
                }
            }
            #expect(statuses.prefix(5).allSatisfy { $0 == 200 })
            #expect(statuses.contains(429))
            #expect(Int(retryAfter ?? "") ?? 0 >= 1)
            // Another token has its own bucket.
            let other = try await server.raw(.GET, "/v1/ns/other/changes?after=0", token: LiveServer.otherToken)
            #expect(other.status == 200)
        }
    }

    @Test func aWebSocketSendingGarbageIsClosedAndOthersAreServed() async throws {
        try await LiveServer.with { server in
            let namespace = try Namespace("team")
            let replies = Mutex<[String]>([])
            // Tried: a text frame that is not JSON after a valid hello, and a binary frame of an unknown kind.
            for garbage in [WebSocketOutboundWriter.OutboundFrame.text("{not json"), .binary(ByteBuffer(bytes: [0xEE, 1, 2, 3]))] {
                var configuration = WebSocketClientConfiguration()
                configuration.additionalHeaders[.authorization] = "Bearer \(LiveServer.token)"
                let close = try await WebSocketClient.connect(
                    url: "\(server.liveURL)/v1/ns/team/live", configuration: configuration, logger: .init(label: "garbage")
                ) { inbound, outbound, _ in
                    try await outbound.write(.text(#"{"type":"hello","cursor":0}"#))
                    try await outbound.write(garbage)
                    for try await message in inbound.messages(maxSize: 1 << 20) {
                        if case .text(let text) = message { replies.withLock { $0.append(text) } }
                    }
                }
                #expect(close?.closeCode == .protocolError, "the server closes with 1002 after garbage")
            }
            let texts = replies.withLock { $0 }
            #expect(texts.contains { $0.contains(#""type":"welcome""#) })
            #expect(texts.filter { $0.contains(#""code":"malformed_input""#) }.count == 2, "each garbage frame is answered with an error: \(texts)")

            // Tried: no hello at all within the timeout (2 s in these tests).
            var configuration = WebSocketClientConfiguration()
            configuration.additionalHeaders[.authorization] = "Bearer \(LiveServer.token)"
            let silent = try await WebSocketClient.connect(
                url: "\(server.liveURL)/v1/ns/team/live", configuration: configuration, logger: .init(label: "silent")
            ) { inbound, _, _ in
                for try await _ in inbound.messages(maxSize: 1 << 20) {}
            }
            #expect(silent?.closeCode == .protocolError)

            // A wrong token is refused at the upgrade.
            var wrong = WebSocketClientConfiguration()
            wrong.additionalHeaders[.authorization] = "Bearer nope"
            await #expect(throws: (any Error).self) {
                try await WebSocketClient.connect(url: "\(server.liveURL)/v1/ns/team/live", configuration: wrong, logger: .init(label: "wrong")) { _, _, _ in }
            }

            // Meanwhile a normal device is served.
            let device = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: server.rest(namespace))
            try await device.upsert(Sample.key("after-garbage"), fields: ["ok": true])
            #expect(try await device.sync().pushed == 1)
        }
    }

    @Test func aWebSocketThatNeverReadsDoesNotMakeTheServerBuffer() async throws {
        try await LiveServer.with { server in
            let namespace = try Namespace("team")
            var configuration = WebSocketClientConfiguration(maxFrameSize: 16 << 20)
            configuration.additionalHeaders[.authorization] = "Bearer \(LiveServer.token)"
            let stop = AsyncStream<Void>.makeStream()
            let welcomed = AsyncStream<Void>.makeStream()
            // Says hello, reads the welcome, then never reads again: everything the server sends
            // after it piles up in the socket.
            let reader = Task {
                defer { welcomed.continuation.finish() }  // a connection that fails ends the wait below
                try await WebSocketClient.connect(
                    url: "\(server.liveURL)/v1/ns/team/live", configuration: configuration, logger: .init(label: "stalled")
                ) { inbound, outbound, _ in
                    try await outbound.write(.text(#"{"type":"hello","cursor":0}"#))
                    var messages = inbound.messages(maxSize: 16 << 20).makeAsyncIterator()
                    _ = try await messages.next()
                    welcomed.continuation.yield()
                    for await _ in stop.stream {}
                }
            }
            defer {
                stop.continuation.finish()
                reader.cancel()
            }
            var welcome = welcomed.stream.makeAsyncIterator()
            // The session is subscribed before the commits start.
            try #require(await welcome.next() != nil, "the stalled socket was welcomed")
            // 150 commits of about 60 KB each (9 MB): more than the socket buffers hold.
            let writer = server.rest(namespace)
            let text = Value.string(String(repeating: "w", count: 1_000))
            for batch in 0..<150 {
                let changes = (0..<60).map { index in
                    Sample.change(UInt64(batch * 60 + index + 1), record: "big\(batch)-\(index)", fields: ["v": text])
                }
                _ = try await writer.push(ChangeBatch(changes: changes))
            }
            // The server kept answering, and sent the stalled socket far fewer pages than commits:
            // it waits for the socket instead of queueing a page per commit.
            let metrics = try await server.raw(.GET, "/metrics", token: nil)
            let pages = try #require(Self.metric("syncline_live_pages_sent_total", in: metrics.body))
            #expect(pages > 0 && pages < 150, "pages sent to a socket that never reads: \(pages) for 150 commits")
            // (The stalled socket may also have been closed by then: it does not answer pings.)
            #expect(Self.metric("syncline_changes_applied_total", in: metrics.body) == 9_000)
            let answer = try await server.raw(.GET, "/healthz", token: nil)
            #expect(answer.status == 200)
        }
    }
}
