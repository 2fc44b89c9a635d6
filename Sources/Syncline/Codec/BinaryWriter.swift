/// Appends the binary codec's primitives to a byte buffer: LEB128 varints, zigzag integers,
/// little-endian doubles, length-prefixed UTF-8 and bytes, and tagged ``Value``s.
public struct BinaryWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func writeByte(_ byte: UInt8) { bytes.append(byte) }

    public mutating func writeVarint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    public mutating func writeZigZag(_ value: Int64) {
        writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    public mutating func writeFixed64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func writeDouble(_ value: Double) { writeFixed64(value.bitPattern) }

    public mutating func writeString(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            writeVarint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    public mutating func writeBytes(_ value: some Collection<UInt8>) {
        writeVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func writeRaw(_ value: some Sequence<UInt8>) { bytes.append(contentsOf: value) }

    public mutating func write(_ value: Value) {
        switch value {
        case .null: writeByte(ValueTag.null)
        case .bool(let flag): writeByte(flag ? ValueTag.trueValue : ValueTag.falseValue)
        case .int(let number):
            writeByte(ValueTag.int)
            writeZigZag(number)
        case .double(let number):
            writeByte(ValueTag.double)
            writeDouble(number)
        case .string(let text):
            writeByte(ValueTag.string)
            writeString(text)
        case .bytes(let data):
            writeByte(ValueTag.bytes)
            writeBytes(data)
        case .array(let items):
            writeByte(ValueTag.array)
            writeVarint(UInt64(items.count))
            for item in items { write(item) }
        case .object(let members):
            writeByte(ValueTag.object)
            writeFields(members) { writer, value in writer.write(value) }
        }
    }

    /// Writes a map as a count then `(key, value)` pairs, in the dictionary's own order (readers
    /// must not depend on the order; sorting would cost every write).
    public mutating func writeFields<V>(_ map: [String: V], _ writeValue: (inout BinaryWriter, V) -> Void) {
        writeVarint(UInt64(map.count))
        for (key, value) in map {
            writeString(key)
            writeValue(&self, value)
        }
    }

    public mutating func write(_ hlc: HLC) {
        writeFixed64(hlc.packed)
        writeFixed64(hlc.node)
    }

    /// Writes the 16 bytes big-endian, so ids compare bytewise in time order.
    public mutating func write(_ id: EventID) {
        withUnsafeBytes(of: id.high.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: id.low.bigEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func write(_ field: FieldState) {
        write(field.value)
        write(field.hlc)
        writeVarint(field.seq)
    }
}

enum ValueTag {
    static let null: UInt8 = 0
    static let falseValue: UInt8 = 1
    static let trueValue: UInt8 = 2
    static let int: UInt8 = 3
    static let double: UInt8 = 4
    static let string: UInt8 = 5
    static let bytes: UInt8 = 6
    static let array: UInt8 = 7
    static let object: UInt8 = 8
}
