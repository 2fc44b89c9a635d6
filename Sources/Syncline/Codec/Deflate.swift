import CZlib

/// zlib compression (the zlib format, which is what HTTP `Content-Encoding: deflate` means), with
/// hard limits on inflation so a hostile input cannot exhaust memory.
public enum Deflate {
    /// Compresses `bytes`. Level 1 is about 2.5× faster than the default 6 for ~20% larger output.
    /// - Throws: ``SyncError`` `.compressionFailed`.
    public static func compress(_ bytes: [UInt8], level: Int32 = 1) throws(SyncError) -> [UInt8] {
        var stream = z_stream()
        guard syncline_deflateInit(&stream, level) == Z_OK else {
            throw SyncError(.compressionFailed, "zlib could not start compressing at level \(level)")
        }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))))
        var input = bytes
        let code: Int32 = input.withUnsafeMutableBufferPointer { inputBuffer in
            output.withUnsafeMutableBufferPointer { outputBuffer in
                stream.next_in = inputBuffer.baseAddress
                stream.avail_in = UInt32(inputBuffer.count)
                stream.next_out = outputBuffer.baseAddress
                stream.avail_out = UInt32(outputBuffer.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard code == Z_STREAM_END else {
            throw SyncError(.compressionFailed, "zlib failed to compress \(bytes.count) bytes (code \(code))")
        }
        output.removeSubrange(Int(stream.total_out)...)
        return output
    }

    /// Inflates a zlib stream, stopping as soon as the output would pass `maxOutputBytes` (the
    /// zip-bomb guard: memory never exceeds it, whatever the compressed size). There is no limit
    /// on the ratio: a body of repeated bytes inflating 1,000× is legitimate when its inflated
    /// size is within the limit, and refusing it wedged devices' outboxes (issue 11).
    /// - Throws: ``SyncError`` `.decompressionLimit` naming the limit, or `.malformedInput` for a
    ///   truncated or corrupt stream or bytes after its end.
    public static func decompress(_ bytes: [UInt8], maxOutputBytes: Int) throws(SyncError) -> [UInt8] {
        let limit = maxOutputBytes
        var stream = z_stream()
        guard syncline_inflateInit(&stream) == Z_OK else {
            throw SyncError(.malformedInput, "zlib could not start inflating")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        output.reserveCapacity(min(limit, max(bytes.count * 4, 256)))
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var input = bytes
        var finished = false
        var failure: SyncError?
        input.withUnsafeMutableBufferPointer { inputBuffer in
            stream.next_in = inputBuffer.baseAddress
            stream.avail_in = UInt32(inputBuffer.count)
            while !finished {
                let produced: Int
                let code: Int32 = chunk.withUnsafeMutableBufferPointer { chunkBuffer in
                    stream.next_out = chunkBuffer.baseAddress
                    stream.avail_out = UInt32(chunkBuffer.count)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                produced = chunk.count - Int(stream.avail_out)
                switch code {
                case Z_STREAM_END:
                    finished = true
                case Z_OK:
                    break
                case Z_BUF_ERROR where produced == 0:
                    failure = SyncError(.malformedInput, "zlib stream is truncated after \(stream.total_in) bytes")
                    return
                default:
                    failure = SyncError(.malformedInput, "zlib stream is corrupt at byte \(stream.total_in) (code \(code))")
                    return
                }
                if output.count + produced > limit {
                    failure = SyncError(.decompressionLimit, "inflated body exceeds the limit of \(limit) bytes", limit: limit)
                    return
                }
                output.append(contentsOf: chunk[0..<produced])
            }
            if stream.avail_in != 0 {
                failure = SyncError(.malformedInput, "\(stream.avail_in) bytes follow the end of the zlib stream")
            }
        }
        if let failure { throw failure }
        return output
    }
}
