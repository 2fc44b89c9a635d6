/// A field value: the data model shared by every store, codec and transport.
///
/// `Value` bridges losslessly to and from any `Codable` model through ``ValueEncoder`` and
/// ``ValueDecoder``. Integers are 64-bit signed; `bytes` carries `Data`/`[UInt8]` without a
/// base64 detour.
public enum Value: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case bytes([UInt8])
    case array([Value])
    case object([String: Value])
}

extension Value {
    /// The deepest nesting of arrays and objects any codec accepts.
    public static let maxDepth = 64

    /// The number of bytes this value takes in the binary codec (an exact figure, used for limits).
    public var encodedSize: Int {
        var writer = BinaryWriter()
        writer.write(self)
        return writer.bytes.count
    }

    /// Checks what every codec needs: nesting at most ``maxDepth``, object keys not starting with the
    /// reserved `$`.
    /// - Throws: ``SyncError`` `.invalidValue` naming the path of the offending value.
    public func validate(path: String = "value") throws(SyncError) {
        try validate(path: path, depth: 0)
    }

    private func validate(path: String, depth: Int) throws(SyncError) {
        switch self {
        case .array(let items):
            guard depth < Self.maxDepth else {
                throw SyncError(.invalidValue, "\(path) nests deeper than \(Self.maxDepth) levels")
            }
            for (index, item) in items.enumerated() { try item.validate(path: "\(path)[\(index)]", depth: depth + 1) }
        case .object(let members):
            guard depth < Self.maxDepth else {
                throw SyncError(.invalidValue, "\(path) nests deeper than \(Self.maxDepth) levels")
            }
            for (key, item) in members {
                if key.hasPrefix("$") {
                    throw SyncError(.invalidValue, "\(path) has the key \"\(key)\": keys starting with $ are reserved")
                }
                try item.validate(path: "\(path).\(key)", depth: depth + 1)
            }
        default:
            return
        }
    }
}

extension Value: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: Value...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, Value)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension Value: CustomStringConvertible {
    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return String(value)
        case .int(let value): return String(value)
        case .double(let value): return String(value)
        case .string(let value): return String(reflecting: value)
        case .bytes(let value): return "<\(value.count) bytes>"
        case .array(let items): return "[" + items.map(\.description).joined(separator: ", ") + "]"
        case .object(let members):
            return "{" + members.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        }
    }
}
