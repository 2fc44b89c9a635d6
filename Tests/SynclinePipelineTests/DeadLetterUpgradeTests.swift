import Syncline
import SynclineTesting
import Testing

/// Issue 12 §4: dead letters were kept in a format of their own with no version. They are a
/// versioned document now, like every other stored document, and a store written by an earlier
/// version is upgraded when it opens. Tried: lists of 1 and of 83 letters in the old form (83 is
/// the magic's first byte, `"S"`, as a count), on every store.
@Suite("Dead letters are a versioned document")
struct DeadLetterUpgradeTests {
    /// The headerless list earlier versions wrote.
    static func legacy(_ letters: [DeadLetter]) -> [UInt8] {
        var writer = BinaryWriter()
        writer.writeVarint(UInt64(letters.count))
        for letter in letters {
            writer.writeBytes(BinaryCodec.encode(OutboxEntry(position: 0, priority: letter.priority, change: letter.change)))
            writer.writeString(letter.error.code.description)
            writer.writeString(letter.error.message)
            writer.writeVarint(letter.failedAt)
        }
        return writer.bytes
    }

    static func letters(_ count: Int) -> [DeadLetter] {
        (0..<count).map { number in
            DeadLetter(
                change: Sample.change(UInt64(number + 1), record: "r\(number)", fields: ["v": .int(Int64(number))]), priority: .normal,
                error: SyncError(.fieldTooLarge, "field v of r\(number) is too large"), failedAt: 1_800_000_000_000 + UInt64(number)
            )
        }
    }

    @Test(arguments: StoreKind.allCases)
    func lettersFromAnEarlierVersionAreUpgradedWhenTheStoreOpens(_ kind: StoreKind) async throws {
        for count in [1, 83] {
            let fixture = try StoreFixture(kind)
            let letters = Self.letters(count)
            let store = try fixture.open()
            try store.write { tx in try tx.setMetadata("syncline.dead-letters", Self.legacy(letters)) }
            let harness = Harness()
            let client = try SyncClient(namespace: harness.namespace, store: store, transport: InMemoryTransport(server: harness.server, namespace: harness.namespace))
            #expect(try await client.deadLetters() == letters, "\(count) letters read back")
            let stored = try #require(try store.read { tx in try tx.metadata("syncline.dead-letters") })
            #expect(BinaryCodec.isHeadedDeadLetters(stored), "rewritten as the versioned document")
            #expect(Array(stored.prefix(4)) == [0x53, 0x4C, BinaryCodec.version, BinaryCodec.Kind.deadLetters.rawValue])
            #expect(try BinaryCodec.decodeDeadLetters(stored) == letters)
            client.close()
        }
    }

    /// A document from a newer version is refused by version, not misread.
    @Test func aNewerVersionIsRefused() throws {
        var bytes = BinaryCodec.encode(Self.letters(2))
        bytes[2] = BinaryCodec.version + 1
        let error = #expect(throws: SyncError.self) { try BinaryCodec.decodeDeadLetters(bytes) }
        #expect(error?.code == .unsupportedVersion)
    }
}
