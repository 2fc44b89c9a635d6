/// A message on the live WebSocket (`/v1/ns/{ns}/live`, DESIGN §5).
///
/// Text frames carry JSON: `{"type": "hello", "cursor": 40}`, `{"type": "welcome", "head": 42,
/// "serverTime": …}`, `{"type": "push", "batch": 7, "changes": […]}`, `{"type": "ack", "batch": 7,
/// "results": […], "head": 43, "serverTime": …}`, `{"type": "changes", "after": 42, "from": 42, "changes": […],
/// "cursor": 43, "hasMore": false, "remaining": 0, "head": 43}`, `{"type": "error", "code": …,
/// "message": …}`. Binary frames carry the same in the binary codec: one kind byte, a varint (the
/// cursor, batch number or `after`), then the body.
///
/// `after` and `from` on `changes` (an extension of DESIGN §5.1) are the cursor and position the
/// page was read with (see ``InMemorySyncServer/pull(namespace:after:from:limit:collections:)``),
/// so a device applies a page only when it continues exactly where it is.
public enum LiveMessage: Sendable, Hashable {
    case hello(cursor: UInt64)
    case welcome(head: UInt64, serverTime: UInt64)
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
        case .hello(let cursor):
            writer.raw("{\"type\":\"hello\",\"cursor\":")
            writer.integer(cursor)
            writer.raw("}")
        case .welcome(let head, let serverTime):
            writer.raw("{\"type\":\"welcome\",\"head\":")
            writer.integer(head)
            writer.raw(",\"serverTime\":")
            writer.integer(serverTime)
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
        case "hello": return .hello(cursor: try root.unsigned("cursor"))
        case "welcome": return .welcome(head: try root.unsigned("head"), serverTime: try root.unsigned("serverTime"))
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
        case .hello(let cursor):
            writer.writeByte(Kind.hello.rawValue)
            writer.writeVarint(cursor)
        case .welcome(let head, let serverTime):
            writer.writeByte(Kind.welcome.rawValue)
            writer.writeVarint(head)
            writer.writeVarint(serverTime)
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
            guard reader.isAtEnd else { throw SyncError.malformed("hello has \(reader.remaining) bytes too many") }
            return .hello(cursor: number)
        case .welcome:
            let serverTime = try reader.readVarint()
            guard reader.isAtEnd else { throw SyncError.malformed("welcome has \(reader.remaining) bytes too many") }
            return .welcome(head: number, serverTime: serverTime)
        case .push: return .push(batch: number, try BinaryCodec.decodeChangeBatch(body))
        case .ack: return .ack(batch: number, try BinaryCodec.decodePushResponse(body))
        case .changes: return .changes(after: number, from: from, try BinaryCodec.decodePullPage(body))
        case .error:
            let code = try reader.readString()
            let message = try reader.readString()
            return .error(code: code, message: message, batch: number == 0 ? nil : number - 1)
        }
    }
}
