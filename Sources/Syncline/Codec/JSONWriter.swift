/// Writes JSON text: strings escaped, object keys sorted (the output is deterministic), doubles
/// in their shortest round-trip form with a fraction when integral (`1.0`).
struct JSONWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// Appends bytes that are already JSON.
    mutating func rawBytes(_ json: some Sequence<UInt8>) { bytes.append(contentsOf: json) }

    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0x00..<0x20:
                raw("\\u00")
                bytes.append(Self.hexDigit(byte >> 4))
                bytes.append(Self.hexDigit(byte & 0xF))
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    mutating func integer(_ value: some BinaryInteger) { bytes.append(contentsOf: String(value).utf8) }

    mutating func bool(_ value: Bool) { value ? raw("true") : raw("false") }

    /// - Throws: ``SyncError`` `.invalidValue` for NaN and infinities, which JSON cannot carry.
    mutating func double(_ value: Double) throws(SyncError) {
        guard value.isFinite else { throw SyncError(.invalidValue, "\(value) cannot be written as JSON") }
        let text = value.description
        bytes.append(contentsOf: text.utf8)
        if !text.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") }) { raw(".0") }
    }

    /// Writes `{"key": value, ...}` with keys in sorted order.
    mutating func object<V>(_ members: [String: V], _ writeValue: (inout JSONWriter, V) throws(SyncError) -> Void) throws(SyncError) {
        bytes.append(UInt8(ascii: "{"))
        var first = true
        for key in members.keys.sorted() {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            string(key)
            bytes.append(UInt8(ascii: ":"))
            try writeValue(&self, members[key]!)
        }
        bytes.append(UInt8(ascii: "}"))
    }

    mutating func array<S: Sequence>(_ items: S, _ writeItem: (inout JSONWriter, S.Element) throws(SyncError) -> Void) throws(SyncError) {
        bytes.append(UInt8(ascii: "["))
        var first = true
        for item in items {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            try writeItem(&self, item)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// Writes a ``Value``: bytes as `{"$b": "<base64>"}`.
    /// - Throws: ``SyncError`` `.invalidValue` for non-finite doubles and reserved `$` keys.
    mutating func value(_ value: Value) throws(SyncError) {
        switch value {
        case .null: raw("null")
        case .bool(let flag): bool(flag)
        case .int(let number): integer(number)
        case .double(let number): try double(number)
        case .string(let text): string(text)
        case .bytes(let data):
            raw("{\"$b\":")
            string(Base64.encode(data))
            raw("}")
        case .array(let items):
            try array(items) { writer, item throws(SyncError) in try writer.value(item) }
        case .object(let members):
            if let reserved = members.keys.first(where: { $0.hasPrefix("$") }) {
                throw SyncError(.invalidValue, "the key \"\(reserved)\" starts with $, which is reserved")
            }
            try object(members) { writer, item throws(SyncError) in try writer.value(item) }
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4); decoding is strict.
package enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let lookup: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, char) in alphabet.enumerated() { table[Int(char)] = UInt8(index) }
        return table
    }()

    package static func encode(_ data: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((data.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= data.count {
            let chunk = UInt32(data[index]) << 16 | UInt32(data[index + 1]) << 8 | UInt32(data[index + 2])
            for shift in [18, 12, 6, 0] { out.append(alphabet[Int(chunk >> UInt32(shift) & 0x3F)]) }
            index += 3
        }
        let rest = data.count - index
        if rest > 0 {
            let chunk = UInt32(data[index]) << 16 | (rest == 2 ? UInt32(data[index + 1]) << 8 : 0)
            out.append(alphabet[Int(chunk >> 18 & 0x3F)])
            out.append(alphabet[Int(chunk >> 12 & 0x3F)])
            out.append(rest == 2 ? alphabet[Int(chunk >> 6 & 0x3F)] : UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Encodes base64url without padding (RFC 4648 §5).
    package static func encode(url data: [UInt8]) -> String {
        String(
            decoding: encode(data).utf8.compactMap { char -> UInt8? in
                switch char {
                case UInt8(ascii: "+"): return UInt8(ascii: "-")
                case UInt8(ascii: "/"): return UInt8(ascii: "_")
                case UInt8(ascii: "="): return nil
                default: return char
                }
            }, as: UTF8.self
        )
    }

    /// Decodes base64url without padding (RFC 4648 §5, as in JWTs and JWKs).
    package static func decode(url text: String) -> [UInt8]? {
        var standard: [UInt8] = []
        standard.reserveCapacity(text.utf8.count + 2)
        for char in text.utf8 {
            switch char {
            case UInt8(ascii: "="), UInt8(ascii: "+"), UInt8(ascii: "/"): return nil
            case UInt8(ascii: "-"): standard.append(UInt8(ascii: "+"))
            case UInt8(ascii: "_"): standard.append(UInt8(ascii: "/"))
            default: standard.append(char)
            }
        }
        switch standard.count % 4 {
        case 0: break
        case 2: standard += Array("==".utf8)
        case 3: standard.append(UInt8(ascii: "="))
        default: return nil
        }
        return decode(String(decoding: standard, as: UTF8.self))
    }

    package static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 4 * 3)
        var index = 0
        while index < chars.count {
            let isLast = index + 4 == chars.count
            let padding = isLast ? (chars[index + 3] == UInt8(ascii: "=") ? (chars[index + 2] == UInt8(ascii: "=") ? 2 : 1) : 0) : 0
            var chunk: UInt32 = 0
            for offset in 0..<4 {
                let char = chars[index + offset]
                if offset >= 4 - padding {
                    chunk <<= 6
                    continue
                }
                let value = lookup[Int(char)]
                guard value != 0xFF else { return nil }
                chunk = chunk << 6 | UInt32(value)
            }
            out.append(UInt8(chunk >> 16 & 0xFF))
            if padding < 2 { out.append(UInt8(chunk >> 8 & 0xFF)) }
            if padding < 1 { out.append(UInt8(chunk & 0xFF)) }
            // Non-canonical encodings (bits set in the padding) are refused.
            if padding == 2 && chunk & 0xFFFF != 0 || padding == 1 && chunk & 0xFF != 0 { return nil }
            index += 4
        }
        return out
    }
}
