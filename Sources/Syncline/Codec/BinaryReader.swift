/// Reads what ``BinaryWriter`` wrote, never trusting the input: every length is checked against
/// the bytes that remain before anything is allocated, nesting is bounded, text must be valid
/// UTF-8. Every failure is a ``SyncError`` `.malformedInput`.
public struct BinaryReader {
    public let bytes: [UInt8]
    public private(set) var offset: Int
    private var depth = 0

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset >= bytes.count }

    public mutating func readByte() throws(SyncError) -> UInt8 {
        guard offset < bytes.count else { throw SyncError.malformed("input ends early at byte \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readVarint() throws(SyncError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readByte()
            if shift == 63 && byte > 1 { throw SyncError.malformed("varint at byte \(offset - 1) overflows 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw SyncError.malformed("varint at byte \(offset) is longer than 10 bytes") }
        }
    }

    public mutating func readZigZag() throws(SyncError) -> Int64 {
        let raw = try readVarint()
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    public mutating func readFixed64() throws(SyncError) -> UInt64 {
        guard remaining >= 8 else { throw SyncError.malformed("input ends early at byte \(offset): 8 bytes expected") }
        var result: UInt64 = 0
        for index in (0..<8).reversed() { result = result << 8 | UInt64(bytes[offset + index]) }
        offset += 8
        return result
    }

    public mutating func readDouble() throws(SyncError) -> Double { Double(bitPattern: try readFixed64()) }

    /// Reads a length prefix and checks that `length * minimumElementSize` bytes remain.
    public mutating func readLength(minimumElementSize: Int = 1, what: String) throws(SyncError) -> Int {
        let start = offset
        let raw = try readVarint()
        guard raw <= UInt64(remaining / max(minimumElementSize, 1)) else {
            throw SyncError.malformed("\(what) at byte \(start) claims \(raw) items but only \(remaining) bytes remain")
        }
        return Int(raw)
    }

    public mutating func readBytes() throws(SyncError) -> [UInt8] {
        let count = try readLength(what: "byte string")
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    public mutating func readString() throws(SyncError) -> String {
        let start = offset
        let count = try readLength(what: "string")
        defer { offset += count }
        guard let text = String(validating: bytes[offset..<(offset + count)], as: UTF8.self) else {
            throw SyncError.malformed("string at byte \(start) is not valid UTF-8")
        }
        return text
    }

    public mutating func readValue() throws(SyncError) -> Value {
        let start = offset
        let tag = try readByte()
        switch tag {
        case ValueTag.null: return .null
        case ValueTag.falseValue: return .bool(false)
        case ValueTag.trueValue: return .bool(true)
        case ValueTag.int: return .int(try readZigZag())
        case ValueTag.double: return .double(try readDouble())
        case ValueTag.string: return .string(try readString())
        case ValueTag.bytes: return .bytes(try readBytes())
        case ValueTag.array:
            try enterNesting(at: start)
            defer { depth -= 1 }
            let count = try readLength(what: "array")
            var items = [Value]()
            items.reserveCapacity(count)
            for _ in 0..<count { items.append(try readValue()) }
            return .array(items)
        case ValueTag.object:
            try enterNesting(at: start)
            defer { depth -= 1 }
            return .object(try readFields { reader throws(SyncError) in try reader.readValue() })
        default:
            throw SyncError.malformed("unknown value tag \(tag) at byte \(start)")
        }
    }

    private mutating func enterNesting(at start: Int) throws(SyncError) {
        depth += 1
        if depth > Value.maxDepth {
            depth -= 1
            throw SyncError.malformed("value at byte \(start) nests deeper than \(Value.maxDepth) levels")
        }
    }

    /// Reads a map written by ``BinaryWriter/writeFields(_:_:)``; a repeated key is an error.
    public mutating func readFields<V>(
        _ readValue: (inout BinaryReader) throws(SyncError) -> V
    ) throws(SyncError) -> [String: V] {
        let start = offset
        let count = try readLength(minimumElementSize: 2, what: "map")
        var result = [String: V](minimumCapacity: count)
        for _ in 0..<count {
            let key = try readString()
            let value = try readValue(&self)
            if result.updateValue(value, forKey: key) != nil {
                throw SyncError.malformed("map at byte \(start) repeats the key \(NameRules.quote(key))")
            }
        }
        return result
    }

    public mutating func readHLC() throws(SyncError) -> HLC {
        let packed = try readFixed64()
        let node = try readFixed64()
        return HLC(packed: packed, node: node)
    }

    public mutating func readEventID() throws(SyncError) -> EventID {
        guard remaining >= 16 else { throw SyncError.malformed("input ends early at byte \(offset): an event id expected") }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for index in 0..<8 { high = high << 8 | UInt64(bytes[offset + index]) }
        for index in 8..<16 { low = low << 8 | UInt64(bytes[offset + index]) }
        offset += 16
        return EventID(high: high, low: low)
    }

    public mutating func readFieldState() throws(SyncError) -> FieldState {
        let value = try readValue()
        let hlc = try readHLC()
        let seq = try readVarint()
        return FieldState(value: value, hlc: hlc, seq: seq)
    }

    public mutating func readCollection() throws(SyncError) -> CollectionName {
        let text = try readString()
        do { return try CollectionName(text) } catch { throw SyncError.malformed(error.message) }
    }

    public mutating func readRecordID() throws(SyncError) -> RecordID {
        let text = try readString()
        do { return try RecordID(text) } catch { throw SyncError.malformed(error.message) }
    }

    public mutating func readBool() throws(SyncError) -> Bool {
        let start = offset
        switch try readByte() {
        case 0: return false
        case 1: return true
        case let other: throw SyncError.malformed("byte \(start) is \(other), not a boolean")
        }
    }

    /// Fails unless every byte was consumed.
    public func expectEnd() throws(SyncError) {
        guard isAtEnd else { throw SyncError.malformed("\(remaining) unexpected bytes after the end at byte \(offset)") }
    }
}
