import Syncline
import SynclineTesting
import Testing

/// Every strict prefix of a valid encoding, of every message and stored document, in both codecs,
/// must be refused with `malformed_input`: a decoder that clamps an oversized length prefix, or
/// stops early at the end of its input, would accept a truncated frame as a shorter valid one
/// (the fuzz suite only checks that bad input does not crash).
@Suite("Truncated input")
struct TruncationTests {
    /// Decoders of whole documents; a bare JSON value is left out (`12` is a prefix of `123`).
    static let decoders = FuzzTests.Decoder.allCases.filter { $0 != .jsonValue && $0 != .inflate }

    @Test(arguments: decoders)
    func everyStrictPrefixIsRefused(_ decoder: FuzzTests.Decoder) throws {
        var model = RandomModel(seed: 0x7E0C + UInt64(Self.decoders.firstIndex(of: decoder)!))
        var documents = try (0..<40).map { _ in try decoder.sample(&model) }
        // Every kind of live message, whatever the random draws gave.
        if decoder == .liveBinary || decoder == .liveJSON {
            for kind in 0..<FuzzTests.Decoder.liveKinds {
                let message = FuzzTests.Decoder.liveMessage(&model, kind: kind)
                documents.append(decoder == .liveBinary ? message.encodeBinary() : try message.encodeJSON())
            }
        }
        var accepted: [String] = []
        var wrongCode: [String] = []
        for document in documents {
            try decoder.decode(document)  // the whole document decodes
            for length in 0..<document.count {
                do throws(SyncError) {
                    try decoder.decode(Array(document.prefix(length)))
                    accepted.append("\(length) of \(document.count) bytes: \(document.prefix(24))")
                } catch {
                    if error.code != .malformedInput { wrongCode.append("\(length) of \(document.count): \(error)") }
                }
            }
        }
        #expect(accepted.isEmpty, "\(decoder): truncated input accepted: \(accepted.prefix(3))")
        #expect(wrongCode.isEmpty, "\(decoder): truncated input refused with another code: \(wrongCode.prefix(3))")
    }
}
