import Syncline
import Testing

@Suite("WireCodec")
struct WireCodecTests {
    static func batch(_ count: Int) throws -> ChangeBatch {
        let collection = try CollectionName("todos")
        var generator = EventIDGenerator()
        var random = SystemRandomNumberGenerator()
        let changes = try (0..<count).map { index in
            Change(
                id: generator.next(wallMillis: 1_800_000_000_000, using: &random), collection: collection,
                record: try RecordID("t\(index)"), operation: .upsert,
                fields: ["title": .string("buy oat milk and bread, item \(index)"), "done": .bool(index % 2 == 0)],
                hlc: HLC(packed: UInt64(1_800_000_000_000 + index) << 16, node: 7), base: 0
            )
        }
        return ChangeBatch(changes: changes)
    }

    @Test(arguments: WireCodec.Format.allCases)
    func smallBodiesStayPlainAndLargeOnesAreDeflated(_ format: WireCodec.Format) throws {
        let wire = WireCodec(format: format, compressionThreshold: 1_024)
        let small = try Self.batch(1)
        let plain = try wire.encode(small)
        #expect(!plain.deflated, "one change is under the 1 KiB threshold")
        #expect(try wire.decodeChangeBatch(plain) == small)

        let large = try Self.batch(200)
        let deflated = try wire.encode(large)
        #expect(deflated.deflated)
        let raw = format == .binary ? BinaryCodec.encode(large) : try JSONCodec.encode(large)
        #expect(deflated.bytes.count * 3 < raw.count, "200 similar changes deflate to under a third (\(deflated.bytes.count) of \(raw.count))")
        #expect(try wire.decodeChangeBatch(deflated) == large)
    }

    @Test func contentTypesAreRecognised() {
        #expect(WireCodec.Format(contentType: "application/json; charset=utf-8") == .json)
        #expect(WireCodec.Format(contentType: "Application/Vnd.Syncline+Binary") == .binary)
        #expect(WireCodec.Format(contentType: "text/plain") == nil, "input tried: text/plain")
    }

    @Test func inflationIsBounded() throws {
        // Input tried: 4 MiB of zeros deflated (a ratio of about 1,000) and a body over the size limit.
        let bomb = try Deflate.compress([UInt8](repeating: 0, count: 4 << 20))
        let wire = WireCodec(maxDecompressedBytes: 1 << 20)
        #expect(throws: SyncError.self) { try wire.decodeChangeBatch(.init(bytes: bomb, format: .binary, deflated: true)) }
        let plain = [UInt8](repeating: 1, count: (1 << 20) + 1)
        let error = #expect(throws: SyncError.self) { try wire.decodeChangeBatch(.init(bytes: plain, format: .binary, deflated: false)) }
        #expect(error?.code == .decompressionLimit)
        // Input tried: a truncated zlib stream.
        let truncated = Array(try wire.encode(try Self.batch(200)).bytes.dropLast(10))
        #expect(throws: SyncError.self) { try wire.decodeChangeBatch(.init(bytes: truncated, format: .binary, deflated: true)) }
    }
}
