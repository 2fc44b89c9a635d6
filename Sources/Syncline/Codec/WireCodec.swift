/// How protocol messages travel as bytes (DESIGN §5): the JSON or the binary codec, deflated
/// (`Content-Encoding: deflate`, zlib) when the body is at least `compressionThreshold` bytes.
/// Clients and the server use the same codec, so both ends agree on every limit.
///
/// ```swift
/// let wire = WireCodec(format: .binary, compressionThreshold: 1_024)
/// let body = try wire.encode(batch)                 // deflated when large enough
/// let again = try wire.decodeChangeBatch(body)      // inflation bounded by the limits
/// ```
public struct WireCodec: Sendable {
    /// A body's codec.
    public enum Format: String, Sendable, CaseIterable {
        case binary
        case json

        /// The HTTP media type.
        public var contentType: String {
            switch self {
            case .binary: return "application/vnd.syncline+binary"
            case .json: return "application/json"
            }
        }

        /// The format of a `Content-Type` header (parameters ignored); `nil` when it is neither.
        public init?(contentType: String) {
            let media = contentType.split(separator: ";", maxSplits: 1).first ?? ""
            switch String(media.filter { $0 != " " && $0 != "\t" }).lowercased() {
            case "application/vnd.syncline+binary": self = .binary
            case "application/json": self = .json
            default: return nil
            }
        }
    }

    /// Encoded bytes and how they are encoded.
    public struct Body: Sendable, Hashable {
        public var bytes: [UInt8]
        public var format: Format
        /// The bytes are a zlib stream (`Content-Encoding: deflate`).
        public var deflated: Bool

        public init(bytes: [UInt8], format: Format, deflated: Bool) {
            self.bytes = bytes
            self.format = format
            self.deflated = deflated
        }
    }

    public var format: Format
    /// Bodies of at least this many bytes are deflated. Default 1 KiB; `Int.max` turns it off.
    public var compressionThreshold: Int
    /// zlib level: 1 (default) compresses change batches about 2.5× faster than 6 for ~20% more bytes.
    public var compressionLevel: Int32
    /// The largest body accepted after inflation (the zip-bomb guard). Default 16 MiB.
    public var maxDecompressedBytes: Int

    public init(
        format: Format = .binary, compressionThreshold: Int = 1_024, compressionLevel: Int32 = 1,
        maxDecompressedBytes: Int = 16 << 20
    ) {
        self.format = format
        self.compressionThreshold = compressionThreshold
        self.compressionLevel = compressionLevel
        self.maxDecompressedBytes = maxDecompressedBytes
    }

    // MARK: Messages

    public func encode(_ batch: ChangeBatch) throws(SyncError) -> Body {
        try wrap(format == .binary ? BinaryCodec.encode(batch) : JSONCodec.encode(batch))
    }

    public func encode(_ response: PushResponse) throws(SyncError) -> Body {
        try wrap(format == .binary ? BinaryCodec.encode(response) : JSONCodec.encode(response))
    }

    public func encode(_ page: PullPage) throws(SyncError) -> Body {
        try wrap(format == .binary ? BinaryCodec.encode(page) : JSONCodec.encode(page))
    }

    /// - Throws: ``SyncError`` `.malformedInput` for bytes that are not a batch in the body's
    ///   format, `.decompressionLimit` when inflation passes a limit.
    public func decodeChangeBatch(_ body: Body) throws(SyncError) -> ChangeBatch {
        let bytes = try unwrap(body)
        return body.format == .binary ? try BinaryCodec.decodeChangeBatch(bytes) : try JSONCodec.decodeChangeBatch(bytes)
    }

    public func decodePushResponse(_ body: Body) throws(SyncError) -> PushResponse {
        let bytes = try unwrap(body)
        return body.format == .binary ? try BinaryCodec.decodePushResponse(bytes) : try JSONCodec.decodePushResponse(bytes)
    }

    public func decodePullPage(_ body: Body) throws(SyncError) -> PullPage {
        let bytes = try unwrap(body)
        return body.format == .binary ? try BinaryCodec.decodePullPage(bytes) : try JSONCodec.decodePullPage(bytes)
    }

    // MARK: Compression

    /// Deflates `bytes` when they reach the threshold and deflating makes them smaller.
    public func wrap(_ bytes: [UInt8]) throws(SyncError) -> Body {
        if bytes.count >= compressionThreshold {
            let deflated = try Deflate.compress(bytes, level: compressionLevel)
            if deflated.count < bytes.count { return Body(bytes: deflated, format: format, deflated: true) }
        }
        return Body(bytes: bytes, format: format, deflated: false)
    }

    /// The body's plain bytes, inflated within the limits.
    public func unwrap(_ body: Body) throws(SyncError) -> [UInt8] {
        if body.deflated {
            return try Deflate.decompress(body.bytes, maxOutputBytes: maxDecompressedBytes)
        }
        guard body.bytes.count <= maxDecompressedBytes else {
            throw SyncError(
                .decompressionLimit,
                "a body of \(body.bytes.count) bytes is over the limit of \(maxDecompressedBytes) bytes"
            )
        }
        return body.bytes
    }
}

/// Bytes a transport moved on the wire (after compression), for sync statistics.
public struct TransportTraffic: Sendable, Hashable {
    /// Message bytes (bodies, frames' payloads) sent and received, compressed.
    public var bytesSent: Int
    public var bytesReceived: Int
    /// For HTTP, the bytes of the requests' and responses' heads (request or status line and
    /// headers) around those bodies. TCP and TLS framing are not counted.
    public var headBytesSent: Int
    public var headBytesReceived: Int

    public init(bytesSent: Int = 0, bytesReceived: Int = 0, headBytesSent: Int = 0, headBytesReceived: Int = 0) {
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
        self.headBytesSent = headBytesSent
        self.headBytesReceived = headBytesReceived
    }
}
