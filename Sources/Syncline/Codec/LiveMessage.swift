/// A message on the live WebSocket (`/v1/ns/{ns}/live`, DESIGN §5).
///
/// Text frames carry JSON: `{"type": "hello", "cursor": 40, "epoch": "9f1c2a7b3d4e5f60"}`,
/// `{"type": "welcome", "head": 42, "serverTime": …, "epoch": "9f1c2a7b3d4e5f60"}`, `{"type": "push", "batch": 7, "changes": […]}`, `{"type": "ack", "batch": 7,
/// "results": […], "head": 43, "serverTime": …}`, `{"type": "changes", "after": 42, "from": 42, "changes": […],
/// "cursor": 43, "hasMore": false, "remaining": 0, "head": 43}`, `{"type": "error", "code": …,
/// "message": …}`. Binary frames carry the same in the binary codec: one kind byte, a varint (the
/// cursor, batch number or `after`), then the body.
///
/// `after` and `from` on `changes` (an extension of DESIGN §5.1) are the cursor and position the
/// page was read with (see ``InMemorySyncServer/pull(namespace:after:from:limit:collections:epoch:)``),
/// so a device applies a page only when it continues exactly where it is.
///
/// `epoch` (see ``Epoch``) is optional in `hello` (a device that has none yet, or an older one, is
/// served from its cursor and learns the epoch from the `welcome`); in binary frames it follows the
/// hello's cursor and the welcome's server time as 8 bytes, or is absent.
public enum LiveMessage: Sendable, Hashable {
    case hello(cursor: UInt64, epoch: Epoch? = nil)
    case welcome(head: UInt64, serverTime: UInt64, epoch: Epoch? = nil)
    case push(batch: UInt64, ChangeBatch)
    case ack(batch: UInt64, PushResponse)
    case changes(after: UInt64, from: UInt64, PullPage)
    case error(code: String, message: String, batch: UInt64?)

    private enum Kind: UInt8 {
        case hello = 1, welcome, push, ack, changes, error
    }

    // MARK: JSON (text frames)

    public func encodeJSON() throws(SyncError) -> [UInt8] {
        var writer = JSONWriter()
        switch self {
        case .hello(let cursor, let epoch):
            writer.raw("{\"type\":\"hello\",\"cursor\":")
            writer.integer(cursor)
            writer.epoch(epoch)
            writer.raw("}")
        case .welcome(let head, let serverTime, let epoch):
            writer.raw("{\"type\":\"welcome\",\"head\":")
            writer.integer(head)
            writer.raw(",\"serverTime\":")
            writer.integer(serverTime)
            writer.epoch(epoch)
            writer.raw("}")
        case .push(let batch, let changes):
            writer.raw("{\"type\":\"push\",\"batch\":")
            writer.integer(batch)
            writer.raw(",")
            writer.rawBytes(try JSONCodec.encode(changes).dropFirst())
        case .ack(let batch, let response):
            writer.raw("{\"type\":\"ack\",\"batch\":")
            writer.integer(batch)
            writer.raw(",")
            writer.rawBytes(try JSONCodec.encode(response).dropFirst())
        case .changes(let after, let from, let page):
            writer.raw("{\"type\":\"changes\",\"after\":")
            writer.integer(after)
            writer.raw(",\"from\":")
            writer.integer(from)
            writer.raw(",")
            writer.rawBytes(try JSONCodec.encode(page).dropFirst())
        case .error(let code, let message, let batch):
            writer.raw("{\"type\":\"error\",\"code\":")
            writer.string(code)
            writer.raw(",\"message\":")
            writer.string(message)
            if let batch {
                writer.raw(",\"batch\":")
                writer.integer(batch)
            }
            writer.raw("}")
        }
        return writer.bytes
    }

    /// - Throws: ``SyncError`` `.malformedInput` naming what is wrong (unknown type, missing key).
    public static func decodeJSON(_ bytes: [UInt8]) throws(SyncError) -> LiveMessage {
        let root = try JSONFields(JSONReader.parse(bytes), path: "message")
        switch try root.string("type") {
        case "hello": return .hello(cursor: try root.unsigned("cursor"), epoch: try root.epoch("epoch"))
        case "welcome":
            return .welcome(head: try root.unsigned("head"), serverTime: try root.unsigned("serverTime"), epoch: try root.epoch("epoch"))
        // The bodies' own decoders ignore the envelope's keys (unknown keys are ignored).
        case "push": return .push(batch: try root.unsigned("batch"), try JSONCodec.decodeChangeBatch(bytes))
        case "ack": return .ack(batch: try root.unsigned("batch"), try JSONCodec.decodePushResponse(bytes))
        case "changes":
            return .changes(after: try root.unsigned("after"), from: try root.unsigned("from"), try JSONCodec.decodePullPage(bytes))
        case "error":
            return .error(
                code: try root.string("code"), message: try root.string("message"),
                batch: root.members["batch"] == nil ? nil : try root.unsigned("batch")
            )
        case let other:
            throw SyncError.malformed("message type \(NameRules.quote(other)) is not one of hello, welcome, push, ack, changes, error")
        }
    }

    // MARK: Binary frames

    public func encodeBinary() -> [UInt8] {
        var writer = BinaryWriter()
        switch self {
        case .hello(let cursor, let epoch):
            writer.writeByte(Kind.hello.rawValue)
            writer.writeVarint(cursor)
            if let epoch { writer.writeFixed64(epoch.rawValue) }
        case .welcome(let head, let serverTime, let epoch):
            writer.writeByte(Kind.welcome.rawValue)
            writer.writeVarint(head)
            writer.writeVarint(serverTime)
            if let epoch { writer.writeFixed64(epoch.rawValue) }
        case .push(let batch, let changes):
            writer.writeByte(Kind.push.rawValue)
            writer.writeVarint(batch)
            writer.writeRaw(BinaryCodec.encode(changes))
        case .ack(let batch, let response):
            writer.writeByte(Kind.ack.rawValue)
            writer.writeVarint(batch)
            writer.writeRaw(BinaryCodec.encode(response))
        case .changes(let after, let from, let page):
            writer.writeByte(Kind.changes.rawValue)
            writer.writeVarint(after)
            writer.writeVarint(from)
            writer.writeRaw(BinaryCodec.encode(page))
        case .error(let code, let message, let batch):
            writer.writeByte(Kind.error.rawValue)
            writer.writeVarint(batch.map { $0 + 1 } ?? 0)
            writer.writeString(code)
            writer.writeString(message)
        }
        return writer.bytes
    }

    /// - Throws: ``SyncError`` `.malformedInput`.
    public static func decodeBinary(_ bytes: [UInt8]) throws(SyncError) -> LiveMessage {
        var reader = BinaryReader(bytes)
        let byte = try reader.readByte()
        guard let kind = Kind(rawValue: byte) else { throw SyncError.malformed("live message kind \(byte) is unknown") }
        let number = try reader.readVarint()
        let from = kind == .changes ? try reader.readVarint() : 0
        let body = Array(bytes[reader.offset...])
        switch kind {
        case .hello:
            let epoch = try Self.readTrailingEpoch(&reader, in: "hello")
            return .hello(cursor: number, epoch: epoch)
        case .welcome:
            let serverTime = try reader.readVarint()
            let epoch = try Self.readTrailingEpoch(&reader, in: "welcome")
            return .welcome(head: number, serverTime: serverTime, epoch: epoch)
        case .push: return .push(batch: number, try BinaryCodec.decodeChangeBatch(body))
        case .ack: return .ack(batch: number, try BinaryCodec.decodePushResponse(body))
        case .changes: return .changes(after: number, from: from, try BinaryCodec.decodePullPage(body))
        case .error:
            let code = try reader.readString()
            let message = try reader.readString()
            return .error(code: code, message: message, batch: number == 0 ? nil : number - 1)
        }
    }

    /// Nothing (no epoch) or exactly 8 bytes (the epoch) at the end of a hello or welcome.
    private static func readTrailingEpoch(_ reader: inout BinaryReader, in what: String) throws(SyncError) -> Epoch? {
        switch reader.remaining {
        case 0: return nil
        case 8: return Epoch(rawValue: try reader.readFixed64())
        case let count: throw SyncError.malformed("\(what) ends with \(count) bytes; expected none or an 8-byte epoch")
        }
    }
}
