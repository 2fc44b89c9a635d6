import Foundation
import NIOHTTP1
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Synchronization
import Testing

/// Long polling (issue 12 §7, DESIGN §5 `wait`): a REST device hears of other devices' changes
/// live, without a WebSocket and without polling on a timer.
@Suite("Long polling", .timeLimit(.minutes(2)))
struct LongPollTests {
    /// Before, a REST device started with `start()` heard of another device's write only at its
    /// next timer sync (30 s). Here the timer is an hour away: only the long poll can bring it.
    @Test(arguments: [WireCodec.Format.binary, .json])
    func aRESTDeviceStartedInTheBackgroundReceivesAnotherDevicesWriteLive(_ format: WireCodec.Format) async throws {
        try await LiveServer.with { live in
            let namespace = try Namespace("team")
            let laptop = try SyncClient(
                namespace: namespace, store: InMemoryStore(), transport: live.rest(namespace, format: format),
                configuration: .init(syncInterval: .seconds(3_600))
            )
            let phone = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: live.rest(namespace, format: format))
            laptop.start()
            defer { laptop.close() }
            // The laptop's first sync (its poll starts with it), then a write elsewhere.
            #expect(try await eventually(within: .seconds(10)) { await laptop.status.lastSync != nil }, "the laptop synced once")
            try await Task.sleep(for: .milliseconds(200))
            let key = Sample.key("from-phone")
            _ = try await phone.upsert(key, fields: ["title": "hello"])
            let written = ContinuousClock.now
            try await phone.sync()
            let arrived = try await eventually(within: .seconds(20)) { try await laptop.fields(of: key) == ["title": "hello"] }
            #expect(arrived, "the write reached the laptop without its timer")
            print("long poll (\(format)): the phone's write reached the laptop \(ContinuousClock.now - written) after it was written")
            phone.close()
        }
    }

    /// Every device started in the background holds a connection for its long poll. With the
    /// shared HTTP client's old limit of 8 connections per server, a process with more devices
    /// (the simulator runs 25) starved their pushes and pulls: `Scripts/stress.sh` failed with
    /// `getConnectionFromPoolTimeout`. Tried: 12 devices in one process, all polling, each syncing.
    @Test func manyBackgroundDevicesInOneProcessStillSync() async throws {
        try await LiveServer.with { live in
            let namespace = try Namespace("team")
            var devices: [SyncClient] = []
            for _ in 0..<12 {
                let device = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: live.rest(namespace))
                device.start()
                devices.append(device)
            }
            // Every device's poll is held (nothing is being written).
            try await Task.sleep(for: .milliseconds(500))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (number, device) in devices.enumerated() {
                    group.addTask {
                        _ = try await device.upsert(Sample.key("d\(number)"), fields: ["n": .int(Int64(number))])
                        try await device.sync()
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await live.backend.head(namespace: namespace) == 12)
            for device in devices { device.close() }
        }
    }

    /// The server side: a pull with `wait` answers at once when there is something after the
    /// cursor, and an empty page when the time is up (the server's cap when the device asks for
    /// more). Tried: `wait=30` against a cap of 1 s, and `wait` values that are not seconds.
    @Test func aPullWithSomethingToSendIsAnsweredAtOnceAndAnEmptyOneWhenTimeIsUp() async throws {
        var configuration = LiveServer.configuration()
        configuration.maxLongPoll = .seconds(1)
        try await LiveServer.with(configuration: configuration) { live in
            let writer = live.rest(try Namespace("team"))
            _ = try await writer.push(ChangeBatch(changes: [Sample.change(1, record: "a", fields: ["v": 1])]))

            var answer = try await live.raw(.GET, "/v1/ns/team/changes?after=0&limit=10&wait=30")
            #expect(answer.status == 200 && answer.text.contains(#""record":"a""#), "something after the cursor: at once")

            let clock = ContinuousClock()
            let start = clock.now
            answer = try await live.raw(.GET, "/v1/ns/team/changes?after=1&limit=10&wait=30")
            let held = clock.now - start
            #expect(answer.status == 200 && answer.text.contains(#""changes":[]"#), "time up: an empty page")
            #expect(held >= .milliseconds(900), "held until the cap (1 s), not answered at once: \(held)")

            for bad in ["-1", "abc", "1.5"] {
                let refused = try await live.raw(.GET, "/v1/ns/team/changes?after=0&wait=\(bad)")
                #expect(refused.status == 400 && refused.text.contains("wait"), "wait=\(bad): \(refused.text)")
            }
        }
    }

    /// A poll held with nothing to send is answered by the next commit, with its entry. Tried:
    /// `wait=20` and a push 300 ms into the poll (the time says it was held, then woken).
    @Test func aHeldPullIsAnsweredByTheNextCommit() async throws {
        try await LiveServer.with { live in
            let writer = live.rest(try Namespace("team"))
            _ = try await writer.push(ChangeBatch(changes: [Sample.change(1, record: "a", fields: ["v": 1])]))
            let clock = ContinuousClock()
            let start = clock.now
            async let poll = live.raw(.GET, "/v1/ns/team/changes?after=1&limit=10&wait=20")
            try await Task.sleep(for: .milliseconds(300))
            _ = try await writer.push(ChangeBatch(changes: [Sample.change(2, record: "b", fields: ["v": 2])]))
            let answer = try await poll
            let held = clock.now - start
            #expect(answer.status == 200 && answer.text.contains(#""record":"b""#), "the commit's entry: \(answer.text)")
            #expect(held >= .milliseconds(250) && held < .seconds(15), "held, then answered by the commit, not the 20 s limit: \(held)")
        }
    }
}

extension RawAnswer {
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// Issue 12 §9 through the real server: a refusal for clock skew says the server's time
/// (`"serverTime"` in the error), the REST transport reads it, and the device re-stamps.
@Suite("A device with a wrong clock, through the server", .timeLimit(.minutes(1)))
struct ClockSkewServerTests {
    @Test(arguments: [WireCodec.Format.binary, .json])
    func aDeviceADayAheadSyncsAtOnce(_ format: WireCodec.Format) async throws {
        try await LiveServer.with { live in
            let namespace = try Namespace("team")
            let skew = Atomic<Int64>(0)
            let device = try SyncClient(
                namespace: namespace, store: InMemoryStore(), transport: live.rest(namespace, format: format),
                configuration: .init(wallClock: { UInt64(Int64(WallClock.nowMillis()) + skew.load(ordering: .relaxed)) })
            )
            try await device.sync()  // hears the server's time: its clock is right
            skew.store(86_400_000, ordering: .relaxed)  // then the user sets it a day ahead
            _ = try await device.upsert(Sample.key("t1"), fields: ["n": 1])
            try await device.sync()
            #expect(try await device.pendingCount() == 0)
            #expect(try await live.backend.head(namespace: namespace) == 1)
            let page = try await live.rest(namespace).pull(after: 0, from: 0, limit: 10)
            let stamp = try #require(page.changes.first?.fields["n"]).hlc.wallMillis
            #expect(stamp <= WallClock.nowMillis() + 1_000, "stamped with the server's time, not a day ahead")
            #expect(page.serverTime.map { $0 > 0 } == true, "pages carry the server's time")
            device.close()
        }
    }
}

/// What the W1 benchmark counts as wire bytes: bodies and, for HTTP, the heads around them.
@Suite("REST traffic accounting")
struct RESTTrafficTests {
    /// Tried: one push and one pull. The heads hold at least the request line, `Host` and the
    /// transport's own headers (the bearer token alone is 20 bytes), and the status line and the
    /// server's headers; the bodies are counted apart, as before.
    @Test func headsAndBodiesAreCountedApart() async throws {
        try await LiveServer.with { live in
            let transport = live.rest(try Namespace("team"))
            _ = try await transport.push(ChangeBatch(changes: [Sample.change(1, record: "a", fields: ["v": 1])]))
            _ = try await transport.pull(after: 0, from: 0, limit: 10)
            let traffic = try #require(transport.traffic)
            #expect(traffic.bytesSent > 40 && traffic.bytesReceived > 40, "\(traffic)")
            let tokenHeader = "Authorization: Bearer \(LiveServer.token)\r\n".utf8.count
            #expect(traffic.headBytesSent > 2 * (tokenHeader + "GET /v1/ns/team/changes HTTP/1.1\r\n".utf8.count), "\(traffic)")
            #expect(traffic.headBytesSent < 2 * 600 && traffic.headBytesReceived > 2 * "HTTP/1.1 200 OK\r\n".utf8.count, "\(traffic)")
            #expect(traffic.headBytesReceived < 2 * 600, "\(traffic)")
        }
    }
}
