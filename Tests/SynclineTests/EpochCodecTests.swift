import Syncline
import Testing

/// Namespace epochs on the wire (DESIGN §5): both codecs carry the same information, old
/// documents without an epoch still read, and a bad epoch is refused with a clear error.
@Suite("Epoch codecs")
struct EpochCodecTests {
    static let epoch = Epoch(rawValue: 0x9F1C_2A7B_3D4E_5F60)

    static func page(epoch: Epoch?) throws -> PullPage {
        let change = RemoteChange(
            seq: 41, collection: try CollectionName("todos"), record: try RecordID("t1"), deleted: false,
            fields: ["done": FieldState(value: true, hlc: HLC(packed: 7 << 16, node: 3), seq: 41)]
        )
        return PullPage(changes: [change], cursor: 41, hasMore: false, remaining: 0, head: 42, epoch: epoch)
    }

    static func response(epoch: Epoch?) throws -> PushResponse {
        var random = SystemRandomNumberGenerator()
        var generator = EventIDGenerator()
        let id = generator.next(wallMillis: 1_800_000_000_000, using: &random)
        return PushResponse(results: [.duplicate(id: id, seq: 40)], head: 42, serverTime: 1_800_000_000_123, epoch: epoch)
    }

    @Test(arguments: [EpochCodecTests.epoch, nil])
    func pagesAndResponsesKeepTheirEpochInBothCodecs(_ epoch: Epoch?) throws {
        let page = try Self.page(epoch: epoch)
        #expect(try JSONCodec.decodePullPage(JSONCodec.encode(page)) == page)
        #expect(try BinaryCodec.decodePullPage(BinaryCodec.encode(page)) == page)
        let response = try Self.response(epoch: epoch)
        #expect(try JSONCodec.decodePushResponse(JSONCodec.encode(response)) == response)
        #expect(try BinaryCodec.decodePushResponse(BinaryCodec.encode(response)) == response)
        let json = String(decoding: try JSONCodec.encode(page), as: UTF8.self)
        #expect(json.contains(#""epoch":"9f1c2a7b3d4e5f60""#) == (epoch != nil), "JSON: \(json)")
    }

    @Test(arguments: [EpochCodecTests.epoch, nil])
    func helloAndWelcomeKeepTheirEpochInBothFramings(_ epoch: Epoch?) throws {
        for message in [LiveMessage.hello(cursor: 40, epoch: epoch), .welcome(head: 42, serverTime: 99, epoch: epoch)] {
            #expect(try LiveMessage.decodeJSON(message.encodeJSON()) == message)
            #expect(try LiveMessage.decodeBinary(message.encodeBinary()) == message)
        }
        let page = try Self.page(epoch: epoch)
        let changes = LiveMessage.changes(after: 40, from: 40, page)
        #expect(try LiveMessage.decodeBinary(changes.encodeBinary()) == changes)
        #expect(try LiveMessage.decodeJSON(changes.encodeJSON()) == changes)
    }

    @Test func documentsFromBeforeEpochsStillRead() throws {
        // Tried: a pull page and a hello as a client or server older than epochs writes them.
        let json = #"{"changes":[],"cursor":3,"hasMore":false,"head":3,"remaining":0}"#
        #expect(try JSONCodec.decodePullPage(Array(json.utf8)).epoch == nil)
        #expect(try LiveMessage.decodeJSON(Array(#"{"type":"hello","cursor":3}"#.utf8)) == .hello(cursor: 3))
        // Binary version 1 of a pull page: header, cursor, hasMore, remaining, head, no entries.
        let version1: [UInt8] = [0x53, 0x4C, 1, 2, 3, 0, 0, 3, 0]
        let page = try BinaryCodec.decodePullPage(version1)
        #expect(page.epoch == nil && page.cursor == 3 && page.head == 3)
        #expect(try LiveMessage.decodeBinary([1, 3]) == .hello(cursor: 3))
        // Tried: a third-party hello that spells "no epoch" as null.
        #expect(try LiveMessage.decodeJSON(Array(#"{"type":"hello","cursor":3,"epoch":null}"#.utf8)) == .hello(cursor: 3))
    }

    @Test func badEpochsAreRefusedWithAClearError() throws {
        // Tried: an epoch that is not 16 hex digits, a number instead of a string, a presence byte
        // of 7, a hello with 3 trailing bytes, and a pull page in a binary version from the future.
        for text in ["xyz", "9f1c2a7b3d4e5f6", "9f1c2a7b3d4e5f60a", "9f1c2a7b3d4e5fzz", ""] {
            let error = #expect(throws: SyncError.self) { try Epoch(parsing: text) }
            #expect(error?.code == .invalidParameter, "epoch \(text)")
        }
        let badString = #"{"changes":[],"cursor":3,"epoch":"nope","hasMore":false,"head":3,"remaining":0}"#
        var error = #expect(throws: SyncError.self) { try JSONCodec.decodePullPage(Array(badString.utf8)) }
        #expect(error?.code == .malformedInput && error?.message.contains("epoch") == true)
        let number = #"{"changes":[],"cursor":3,"epoch":12,"hasMore":false,"head":3,"remaining":0}"#
        error = #expect(throws: SyncError.self) { try JSONCodec.decodePullPage(Array(number.utf8)) }
        #expect(error?.code == .malformedInput)
        var presence = BinaryCodec.encode(try Self.page(epoch: Self.epoch))
        presence[4] = 7
        error = #expect(throws: SyncError.self) { try BinaryCodec.decodePullPage(presence) }
        #expect(error?.code == .malformedInput)
        error = #expect(throws: SyncError.self) { try LiveMessage.decodeBinary([1, 3, 0xAA, 0xBB, 0xCC]) }
        #expect(error?.code == .malformedInput)
        var future = BinaryCodec.encode(try Self.page(epoch: Self.epoch))
        future[2] = BinaryCodec.supersededVersion + 1
        error = #expect(throws: SyncError.self) { try BinaryCodec.decodePullPage(future) }
        #expect(error?.code == .unsupportedVersion)
    }

    @Test func epochsPrintAsSixteenHexDigitsAndParseBack() throws {
        #expect(Self.epoch.description == "9f1c2a7b3d4e5f60")
        #expect(try Epoch(parsing: "9F1C2A7B3D4E5F60") == Self.epoch)
        #expect(Epoch(rawValue: 1).description == "0000000000000001")
        #expect(Epoch.random() != Epoch.random(), "two random epochs differ")
    }
}
