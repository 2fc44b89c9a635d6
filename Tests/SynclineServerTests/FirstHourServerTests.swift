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
