import Syncline
import SynclineTesting
import Testing

@Suite("Deflate")
struct DeflateTests {
    @Test func randomDataRoundTrips() throws {
        var random = SeededRandom(seed: 77)
        for size in [0, 1, 100, 65_535, 65_536, 200_000] {
            // Half random bytes, half repetitive text, so both paths of zlib run.
            let data = (0..<size).map { index in index % 2 == 0 ? UInt8.random(in: 0...255, using: &random) : UInt8(index % 7) }
            let compressed = try Deflate.compress(data)
            #expect(try Deflate.decompress(compressed, maxOutputBytes: size + 1) == data, "size \(size)")
        }
    }

    @Test func aZlibBombStopsAtTheLimit() throws {
        // Tried: 64 MiB of zeros (about 64 KiB compressed) against a 1 MiB cap.
        let bomb = try Deflate.compress([UInt8](repeating: 0, count: 64 * 1024 * 1024), level: 9)
        #expect(bomb.count < 128 * 1024)
        #expect {
            _ = try Deflate.decompress(bomb, maxOutputBytes: 1024 * 1024)
        } throws: { error in
            (error as? SyncError)?.code == .decompressionLimit && (error as? SyncError)?.message.contains("1048576") == true
        }
        // A body that inflates 1,000× but stays within the cap is accepted (issue 11: five records
        // with a 200 KiB field of spaces were refused for their ratio).
        let spaces = [UInt8](repeating: 0x20, count: 1 << 20)
        let compressed = try Deflate.compress(spaces)
        #expect(compressed.count * 200 < spaces.count, "over the 200× ratio that was refused before")
        #expect(try Deflate.decompress(compressed, maxOutputBytes: 1 << 20) == spaces)
    }

    @Test func brokenStreamsAreTypedErrors() throws {
        let good = try Deflate.compress(Array("hello hello hello hello".utf8))
        // Tried: empty input, a truncated stream, a corrupted byte, bytes after the end, not zlib at all.
        var corrupted = good
        corrupted[corrupted.count / 2] ^= 0xFF
        let cases: [([UInt8], String)] = [
            ([], "empty"), (Array(good.dropLast(3)), "truncated"), (corrupted, "corrupted"), (good + [1, 2, 3], "trailing bytes"),
            (Array("plain text".utf8), "not zlib"),
        ]
        for (input, what) in cases {
            #expect("\(what)") {
                _ = try Deflate.decompress(input, maxOutputBytes: 1 << 20)
            } throws: { error in
                (error as? SyncError)?.code == .malformedInput
            }
        }
    }
}
