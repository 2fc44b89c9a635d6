/// A parsed JSON document. Integers keep their exact value; numbers with a fraction or exponent
/// are doubles.
enum JSONNode: Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    /// An integer above `Int64.max` (only valid where an unsigned 64-bit number is expected).
    case unsigned(UInt64)
    case double(Double)
    case string(String)
    case array([JSONNode])
    case object([String: JSONNode])

    var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .unsigned: return "an integer"
        case .double: return "a number with a fraction"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// A strict RFC 8259 parser that never trusts its input: nesting is bounded, strings must be
/// valid UTF-8 without raw control characters, surrogate escapes must pair, numbers must be
/// well-formed and in range, and nothing may follow the document. Failures are ``SyncError``
/// `.malformedInput` with the byte offset.
struct JSONReader {
    /// Deepest nesting of the whole document: the protocol's own levels plus a field value's.
    static let maxDepth = Value.maxDepth + 8

    private let bytes: [UInt8]
    private var offset = 0
    private var depth = 0

    static func parse(_ bytes: [UInt8]) throws(SyncError) -> JSONNode {
        var reader = JSONReader(bytes: bytes)
        reader.skipWhitespace()
        let node = try reader.parseValue()
        reader.skipWhitespace()
        guard reader.offset == bytes.count else { throw reader.error("unexpected bytes after the JSON document") }
        return node
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func error(_ message: String) -> SyncError {
        SyncError.malformed("JSON at byte \(offset): \(message)")
    }

    private mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x09, 0x0A, 0x0D: offset += 1
            default: return
            }
        }
    }

    private mutating func expect(_ literal: StaticString) throws(SyncError) {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - offset >= count else { throw error("truncated literal") }
        let matches = literal.withUTF8Buffer { expected in
            for index in 0..<count where bytes[offset + index] != expected[index] { return false }
            return true
        }
        guard matches else { throw error("invalid literal") }
        offset += count
    }

    private mutating func parseValue() throws(SyncError) -> JSONNode {
        guard offset < bytes.count else { throw error("the document ends early") }
        switch bytes[offset] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"):
            try expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expect("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expect("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try parseNumber()
        case let other:
            throw error("unexpected character \(Self.describe(other))")
        }
    }

    private mutating func enter() throws(SyncError) {
        depth += 1
        guard depth <= Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth) levels") }
    }

    private mutating func parseObject() throws(SyncError) -> JSONNode {
        try enter()
        defer { depth -= 1 }
        offset += 1
        var members = [String: JSONNode]()
        skipWhitespace()
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "}") {
            offset += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else { throw error("expected a key") }
            let keyOffset = offset
            let key = try parseString()
            skipWhitespace()
            guard offset < bytes.count, bytes[offset] == UInt8(ascii: ":") else { throw error("expected ':'") }
            offset += 1
            skipWhitespace()
            let value = try parseValue()
            if members.updateValue(value, forKey: key) != nil {
                throw SyncError.malformed("JSON at byte \(keyOffset): the key \(NameRules.quote(key)) appears twice")
            }
            skipWhitespace()
            guard offset < bytes.count else { throw error("the object is not closed") }
            if bytes[offset] == UInt8(ascii: ",") {
                offset += 1
                continue
            }
            guard bytes[offset] == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
            offset += 1
            return .object(members)
        }
    }

    private mutating func parseArray() throws(SyncError) -> JSONNode {
        try enter()
        defer { depth -= 1 }
        offset += 1
        var items = [JSONNode]()
        skipWhitespace()
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "]") {
            offset += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue())
            skipWhitespace()
            guard offset < bytes.count else { throw error("the array is not closed") }
            if bytes[offset] == UInt8(ascii: ",") {
                offset += 1
                continue
            }
            guard bytes[offset] == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
            offset += 1
            return .array(items)
        }
    }

    private mutating func parseString() throws(SyncError) -> String {
        let start = offset
        offset += 1
        var buffer = [UInt8]()
        var runStart = offset
        while true {
            guard offset < bytes.count else {
                offset = start
                throw error("the string is not closed")
            }
            let byte = bytes[offset]
            if byte == UInt8(ascii: "\"") {
                buffer.append(contentsOf: bytes[runStart..<offset])
                offset += 1
                break
            }
            if byte < 0x20 { throw error("a raw control character in a string") }
            if byte == UInt8(ascii: "\\") {
                buffer.append(contentsOf: bytes[runStart..<offset])
                try parseEscape(into: &buffer)
                runStart = offset
                continue
            }
            offset += 1
        }
        guard let text = String(validating: buffer, as: UTF8.self) else {
            offset = start
            throw error("the string is not valid UTF-8")
        }
        return text
    }

    private mutating func parseEscape(into buffer: inout [UInt8]) throws(SyncError) {
        offset += 1
        guard offset < bytes.count else { throw error("the escape ends early") }
        let code = bytes[offset]
        offset += 1
        switch code {
        case UInt8(ascii: "\""): buffer.append(0x22)
        case UInt8(ascii: "\\"): buffer.append(0x5C)
        case UInt8(ascii: "/"): buffer.append(0x2F)
        case UInt8(ascii: "b"): buffer.append(0x08)
        case UInt8(ascii: "f"): buffer.append(0x0C)
        case UInt8(ascii: "n"): buffer.append(0x0A)
        case UInt8(ascii: "r"): buffer.append(0x0D)
        case UInt8(ascii: "t"): buffer.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try parseHex4()
            if (0xD800...0xDBFF).contains(scalar) {
                guard bytes.count - offset >= 6, bytes[offset] == UInt8(ascii: "\\"), bytes[offset + 1] == UInt8(ascii: "u")
                else { throw error("a high surrogate without its low surrogate") }
                offset += 2
                let low = try parseHex4()
                guard (0xDC00...0xDFFF).contains(low) else { throw error("a high surrogate followed by \(low), not a low surrogate") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw error("a lone low surrogate")
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw error("an invalid code point") }
            buffer.append(contentsOf: String(Character(unicode)).utf8)
        default:
            throw error("an unknown escape \\\(Self.describe(code))")
        }
    }

    private mutating func parseHex4() throws(SyncError) -> UInt32 {
        guard bytes.count - offset >= 4 else { throw error("a \\u escape needs 4 hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = Hex.nibble(bytes[offset]) else { throw error("a \\u escape needs 4 hex digits") }
            value = value << 4 | UInt32(digit)
            offset += 1
        }
        return value
    }

    private mutating func parseNumber() throws(SyncError) -> JSONNode {
        let start = offset
        if bytes[offset] == UInt8(ascii: "-") { offset += 1 }
        guard offset < bytes.count, Self.isDigit(bytes[offset]) else { throw error("a number needs digits") }
        if bytes[offset] == UInt8(ascii: "0") {
            offset += 1
            if offset < bytes.count, Self.isDigit(bytes[offset]) { throw error("a number with a leading zero") }
        } else {
            while offset < bytes.count, Self.isDigit(bytes[offset]) { offset += 1 }
        }
        var isInteger = true
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") {
            isInteger = false
            offset += 1
            guard offset < bytes.count, Self.isDigit(bytes[offset]) else { throw error("a fraction needs digits") }
            while offset < bytes.count, Self.isDigit(bytes[offset]) { offset += 1 }
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "e") || bytes[offset] == UInt8(ascii: "E") {
            isInteger = false
            offset += 1
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-") { offset += 1 }
            guard offset < bytes.count, Self.isDigit(bytes[offset]) else { throw error("an exponent needs digits") }
            while offset < bytes.count, Self.isDigit(bytes[offset]) { offset += 1 }
        }
        let text = String(decoding: bytes[start..<offset], as: UTF8.self)
        if isInteger {
            if let value = Int64(text) { return .int(value) }
            if let value = UInt64(text) { return .unsigned(value) }
            offset = start
            throw error("the integer \(text.prefix(40)) is out of range")
        }
        guard let value = Double(text), value.isFinite else {
            offset = start
            throw error("the number \(text.prefix(40)) is out of range")
        }
        return .double(value)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private static func describe(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7F ? "'\(Character(Unicode.Scalar(byte)))'" : "0x\(String(byte, radix: 16))"
    }
}
