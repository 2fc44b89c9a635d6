import Syncline
import SynclineTesting
import Testing

/// Feeds every decoder at least 100,000 random and mutated inputs: each must return or throw a
/// typed ``SyncError``; none may crash, hang or allocate beyond its input.
@Suite("Decoder fuzzing")
struct FuzzTests {
    static let inputsPerDecoder = 100_000

    enum Decoder: String, CaseIterable, CustomTestStringConvertible {
        case binaryBatch, binaryPage, binaryResponse, binaryRecord, binaryOutboxEntry, binaryConflict, binaryDeadLetters
        case jsonBatch, jsonPage, jsonResponse, jsonValue
        case liveBinary, liveJSON
        case inflate

        var testDescription: String { rawValue }
        var isJSON: Bool { rawValue.hasPrefix("json") || self == .liveJSON }

        /// A valid document for the corpus.
        func sample(_ model: inout RandomModel) throws -> [UInt8] {
            switch self {
            case .binaryBatch: return BinaryCodec.encode(model.changeBatch(max: 2))
            case .binaryPage: return BinaryCodec.encode(model.pullPage(max: 2))
            case .binaryResponse: return BinaryCodec.encode(model.pushResponse(max: 2))
            case .binaryRecord:
                return BinaryCodec.encode(
                    RecordState(
                        collection: model.collection(), id: model.recordID(), fields: model.fieldStates(max: 2),
                        seq: 9, tombstone: model.chance(0.5) ? model.hlc() : nil, pendingFields: model.fieldStates(max: 2),
                        ownWrites: model.chance(0.5) ? [model.hlc(): OwnWrite(id: model.eventID(), seq: 4)] : [:],
                        lostWrites: model.chance(0.3) ? [model.hlc(): [model.key()]] : [:]
                    )
                )
            case .binaryDeadLetters:
                return BinaryCodec.encode(
                    (0..<model.int(0...2)).map { _ in
                        DeadLetter(change: model.change(), priority: .low, error: SyncError(.fieldTooLarge, model.string(maxLength: 20)), failedAt: 5)
                    }
                )
            case .binaryOutboxEntry:
                return BinaryCodec.encode(OutboxEntry(position: 3, priority: .high, change: model.change(), sent: model.chance(0.5)))
            case .binaryConflict:
                return BinaryCodec.encode(
                    StoredConflict(
                        id: model.eventID(), collection: model.collection(), record: model.recordID(), fieldNames: ["a"],
                        local: model.fields(max: 2), server: model.fieldStates(max: 2), detected: model.hlc()
                    )
                )
            case .jsonBatch: return try JSONCodec.encode(model.changeBatch(max: 2))
            case .jsonPage: return try JSONCodec.encode(model.pullPage(max: 2))
            case .jsonResponse: return try JSONCodec.encode(model.pushResponse(max: 2))
            case .jsonValue: return try JSONCodec.encode(model.value())
            case .liveBinary: return Self.liveMessage(&model).encodeBinary()
            case .liveJSON: return try Self.liveMessage(&model).encodeJSON()
            case .inflate: return try Deflate.compress(Array(model.string(maxLength: 200).utf8) + [UInt8](repeating: 7, count: model.int(0...300)))
            }
        }

        func decode(_ bytes: [UInt8]) throws(SyncError) {
            switch self {
            case .binaryBatch: _ = try BinaryCodec.decodeChangeBatch(bytes)
            case .binaryPage: _ = try BinaryCodec.decodePullPage(bytes)
            case .binaryResponse: _ = try BinaryCodec.decodePushResponse(bytes)
            case .binaryRecord: _ = try BinaryCodec.decodeRecordState(bytes)
            case .binaryOutboxEntry: _ = try BinaryCodec.decodeOutboxEntry(bytes)
            case .binaryConflict: _ = try BinaryCodec.decodeStoredConflict(bytes)
            case .binaryDeadLetters: _ = try BinaryCodec.decodeDeadLetters(bytes)
            case .jsonBatch: _ = try JSONCodec.decodeChangeBatch(bytes)
            case .jsonPage: _ = try JSONCodec.decodePullPage(bytes)
            case .jsonResponse: _ = try JSONCodec.decodePushResponse(bytes)
            case .jsonValue: _ = try JSONCodec.decodeValue(bytes)
            case .liveBinary: _ = try LiveMessage.decodeBinary(bytes)
            case .liveJSON: _ = try LiveMessage.decodeJSON(bytes)
            case .inflate: _ = try Deflate.decompress(bytes, maxOutputBytes: 4_096)
            }
        }

        /// How many kinds of live message there are (hello, welcome, push, ack, changes, error).
        static let liveKinds = 6

        /// A live-socket message of any kind (or of the `kind`-th), as a peer could send it.
        static func liveMessage(_ model: inout RandomModel, kind: Int? = nil) -> LiveMessage {
            let number = UInt64(model.int(0...1_000_000))
            switch kind ?? model.int(0...(liveKinds - 1)) {
            case 0: return .hello(cursor: number)
            case 1: return .welcome(head: number, serverTime: 1_732_300_000_000)
            case 2: return .push(batch: number, model.changeBatch(max: 2))
            case 3: return .ack(batch: number, model.pushResponse(max: 2))
            case 4: return .changes(after: number, from: number + 1, model.pullPage(max: 2))
            default: return .error(code: model.string(), message: model.string(maxLength: 40), batch: model.chance(0.5) ? number : nil)
            }
        }
    }

    @Test(arguments: Decoder.allCases)
    func decoderSurvivesHostileInput(_ decoder: Decoder) async throws {
        let seed = UInt64(0x5EED_0000) + UInt64(Decoder.allCases.firstIndex(of: decoder)!)
        var model = RandomModel(seed: seed)
        let corpus = try (0..<64).map { _ in try decoder.sample(&model) }
        var accepted = 0
        var rejected = 0
        var unexpected: [String] = []
        for round in 0..<Self.inputsPerDecoder {
            if round % 2_000 == 0 { await Task.yield() }  // share the cooperative threads with async tests
            let input: [UInt8]
            switch round % 10 {
            case 0: input = Self.randomBytes(&model, json: decoder.isJSON)
            case 1: input = corpus[round / 10 % corpus.count]  // unmutated: must decode
            default: input = Self.mutate(corpus[model.int(0...(corpus.count - 1))], &model, json: decoder.isJSON)
            }
            do {
                try decoder.decode(input)
                accepted += 1
            } catch {
                rejected += 1
                if ![SyncError.Code.malformedInput, .unsupportedVersion, .decompressionLimit].contains(error.code) {
                    unexpected.append("round \(round): \(error)")
                }
                if round % 10 == 1 { unexpected.append("round \(round): a valid document was rejected: \(error)") }
            }
        }
        #expect(unexpected.isEmpty, "seed \(seed), \(decoder): \(unexpected.prefix(3))")
        #expect(accepted + rejected == Self.inputsPerDecoder)
        #expect(accepted >= Self.inputsPerDecoder / 10, "seed \(seed): every valid document decodes")
        #expect(rejected > Self.inputsPerDecoder / 2, "seed \(seed): most hostile inputs are refused")
    }

    static func randomBytes(_ model: inout RandomModel, json: Bool) -> [UInt8] {
        let count = model.int(0...300)
        if json {
            let alphabet = Array("{}[]\":,0123456789.-+eE truefalsnl\\u\"$b".utf8)
            return (0..<count).map { _ in alphabet[model.int(0...(alphabet.count - 1))] }
        }
        var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &model.random) }
        if count >= 4, model.chance(0.5) { bytes.replaceSubrange(0..<3, with: [0x53, 0x4C, 1]) }  // a valid header
        return bytes
    }

    static func mutate(_ original: [UInt8], _ model: inout RandomModel, json: Bool) -> [UInt8] {
        var bytes = original
        for _ in 0..<model.int(1...4) {
            guard !bytes.isEmpty else { return bytes }
            let position = model.int(0...(bytes.count - 1))
            switch model.int(0...7) {
            case 0: bytes[position] ^= UInt8(1) << UInt8(model.int(0...7))  // flip a bit
            case 1: bytes.removeSubrange(position...)  // truncate
            case 2: bytes.insert(UInt8.random(in: 0...255, using: &model.random), at: position)
            case 3:  // duplicate a range
                let end = min(bytes.count, position + model.int(1...32))
                bytes.insert(contentsOf: bytes[position..<end], at: position)
            case 4:  // a huge varint / length prefix
                bytes.insert(contentsOf: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], at: position)
            case 5: bytes[position] = [0x00, 0x7F, 0x80, 0xFF][model.int(0...3)]
            case 6:
                let tokens: [[UInt8]] = json
                    ? [Array("[[[[".utf8), Array("\"\\ud800\"".utf8), Array("1e999".utf8), Array(",".utf8), [0xC3, 0x28]]
                    : [[0x08, 0xFF, 0x7F], [0x07, 0x80, 0x80, 0x04], [0x05, 0x02, 0xC3, 0x28]]
                bytes.insert(contentsOf: tokens[model.int(0...(tokens.count - 1))], at: position)
            default: bytes.remove(at: position)
            }
        }
        return bytes
    }
}
