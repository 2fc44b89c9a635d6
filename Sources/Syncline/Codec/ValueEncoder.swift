import Foundation

/// Turns any `Encodable` model into a ``Value``, losslessly: integers stay 64-bit integers,
/// `Data` becomes `.bytes`, optionals that are `nil` are left out of objects.
///
/// ```swift
/// struct Todo: Codable { var title: String; var done: Bool }
/// let fields = try ValueEncoder().encodeFields(Todo(title: "Buy milk", done: false))
/// // ["title": "Buy milk", "done": false]
/// ```
public struct ValueEncoder: Sendable {
    public init() {}

    /// - Throws: ``SyncError`` `.invalidValue` naming the coding path (an unsigned integer above
    ///   `Int64.max`, or an error the model's own `encode(to:)` threw).
    public func encode<T: Encodable>(_ value: T) throws(SyncError) -> Value {
        do {
            return try ValueEncoding.box(value, path: [])
        } catch let error as SyncError {
            throw error
        } catch {
            throw SyncError(.invalidValue, "cannot encode \(T.self): \(error)")
        }
    }

    /// Encodes a model that must be an object (a record's fields).
    /// - Throws: ``SyncError`` `.invalidValue` when the model does not encode to an object.
    public func encodeFields<T: Encodable>(_ value: T) throws(SyncError) -> [String: Value] {
        guard case .object(let fields) = try encode(value) else {
            throw SyncError(.invalidValue, "\(T.self) does not encode to an object, so it cannot be a record")
        }
        return fields
    }
}

/// A mutable tree node the containers write into; turned into a ``Value`` at the end.
final class ValueBox {
    enum Content {
        case value(Value)
        case array([ValueBox])
        case object([String: ValueBox])
        case empty
    }

    var content: Content = .empty

    var value: Value {
        switch content {
        case .value(let value): return value
        case .array(let items): return .array(items.map(\.value))
        case .object(let members): return .object(members.mapValues(\.value))
        case .empty: return .object([:])
        }
    }
}

enum ValueEncoding {
    static func box<T: Encodable>(_ value: T, path: [any CodingKey]) throws -> Value {
        if let direct = try directValue(value, path: path) { return direct }
        let encoder = ValueEncoderImplementation(path: path)
        try value.encode(to: encoder)
        return encoder.root.value
    }

    /// Values with a natural ``Value`` form, skipping their `Codable` representation.
    static func directValue<T: Encodable>(_ value: T, path: [any CodingKey]) throws -> Value? {
        switch value {
        case let data as Data: return .bytes(Array(data))
        case let value as Value: return value
        default: return nil
        }
    }

    static func integer<T: BinaryInteger>(_ value: T, path: [any CodingKey]) throws -> Value {
        guard let exact = Int64(exactly: value) else {
            throw SyncError(.invalidValue, "\(pathString(path)): \(value) does not fit in a 64-bit signed integer")
        }
        return .int(exact)
    }

    static func pathString(_ path: [any CodingKey]) -> String {
        path.isEmpty ? "the top level" : path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }
}

struct SuperKey: CodingKey {
    var stringValue: String { "super" }
    var intValue: Int? { nil }
    init() {}
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { return nil }
}

struct IndexKey: CodingKey {
    var stringValue: String { String(intValue!) }
    var intValue: Int?
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.intValue = intValue }
}

final class ValueEncoderImplementation: Encoder {
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any] = [:]
    let root: ValueBox

    init(path: [any CodingKey], root: ValueBox = ValueBox()) {
        codingPath = path
        self.root = root
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = root.content {} else { root.content = .object([:]) }
        return KeyedEncodingContainer(KeyedValueEncoder<Key>(box: root, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = root.content {} else { root.content = .array([]) }
        return UnkeyedValueEncoder(box: root, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleValueEncoder(box: root, codingPath: codingPath)
    }
}

/// Encodes one value into a box: shared by every container kind.
protocol ValueBoxWriter {
    var codingPath: [any CodingKey] { get }
}

extension ValueBoxWriter {
    func encodeValue<T: Encodable>(_ value: T, into box: ValueBox, path: [any CodingKey]) throws {
        if let direct = try ValueEncoding.directValue(value, path: path) {
            box.content = .value(direct)
            return
        }
        try value.encode(to: ValueEncoderImplementation(path: path, root: box))
        if case .empty = box.content { box.content = .value(.object([:])) }
    }
}

struct KeyedValueEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol, ValueBoxWriter {
    let box: ValueBox
    let codingPath: [any CodingKey]

    init(box: ValueBox, codingPath: [any CodingKey]) {
        self.box = box
        self.codingPath = codingPath
    }

    private func set(_ value: Value, for key: Key) { child(key).content = .value(value) }

    private func child(_ key: Key) -> ValueBox { child(named: key.stringValue) }

    private func child(named name: String) -> ValueBox {
        guard case .object(var members) = box.content else { preconditionFailure("keyed container on a non-object") }
        if let existing = members[name] { return existing }
        let created = ValueBox()
        members[name] = created
        box.content = .object(members)
        return created
    }

    mutating func encodeNil(forKey key: Key) throws { set(.null, for: key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { set(.bool(value), for: key) }
    mutating func encode(_ value: String, forKey key: Key) throws { set(.string(value), for: key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { set(.double(value), for: key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { set(.double(Double(value)), for: key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { set(.int(Int64(value)), for: key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { set(.int(Int64(value)), for: key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { set(.int(Int64(value)), for: key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { set(.int(Int64(value)), for: key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { set(.int(value), for: key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { set(try ValueEncoding.integer(value, path: codingPath + [key]), for: key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { set(.int(Int64(value)), for: key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { set(.int(Int64(value)), for: key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { set(.int(Int64(value)), for: key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { set(try ValueEncoding.integer(value, path: codingPath + [key]), for: key) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try encodeValue(value, into: child(key), path: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
        -> KeyedEncodingContainer<NestedKey>
    {
        let nested = child(key)
        if case .object = nested.content {} else { nested.content = .object([:]) }
        return KeyedEncodingContainer(KeyedValueEncoder<NestedKey>(box: nested, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = child(key)
        if case .array = nested.content {} else { nested.content = .array([]) }
        return UnkeyedValueEncoder(box: nested, codingPath: codingPath + [key])
    }

    /// Encodes the superclass under the key `"super"`, as Foundation's encoders do.
    mutating func superEncoder() -> any Encoder {
        ValueEncoderImplementation(path: codingPath + [SuperKey()], root: child(named: SuperKey().stringValue))
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        ValueEncoderImplementation(path: codingPath + [key], root: child(key))
    }
}

struct UnkeyedValueEncoder: UnkeyedEncodingContainer, ValueBoxWriter {
    let box: ValueBox
    let codingPath: [any CodingKey]

    var count: Int {
        if case .array(let items) = box.content { return items.count }
        return 0
    }

    private func append() -> ValueBox {
        guard case .array(var items) = box.content else { preconditionFailure("unkeyed container on a non-array") }
        let created = ValueBox()
        items.append(created)
        box.content = .array(items)
        return created
    }

    private var nextPath: [any CodingKey] { codingPath + [IndexKey(count)] }

    mutating func encodeNil() throws { append().content = .value(.null) }
    mutating func encode(_ value: Bool) throws { append().content = .value(.bool(value)) }
    mutating func encode(_ value: String) throws { append().content = .value(.string(value)) }
    mutating func encode(_ value: Double) throws { append().content = .value(.double(value)) }
    mutating func encode(_ value: Float) throws { append().content = .value(.double(Double(value))) }
    mutating func encode(_ value: Int) throws { append().content = .value(.int(Int64(value))) }
    mutating func encode(_ value: Int8) throws { append().content = .value(.int(Int64(value))) }
    mutating func encode(_ value: Int16) throws { append().content = .value(.int(Int64(value))) }
    mutating func encode(_ value: Int32) throws { append().content = .value(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { append().content = .value(.int(value)) }
    mutating func encode(_ value: UInt) throws { let path = nextPath; append().content = .value(try ValueEncoding.integer(value, path: path)) }
    mutating func encode(_ value: UInt8) throws { append().content = .value(.int(Int64(value))) }
    mutating func encode(_ value: UInt16) throws { append().content = .value(.int(Int64(value))) }
    mutating func encode(_ value: UInt32) throws { append().content = .value(.int(Int64(value))) }
    mutating func encode(_ value: UInt64) throws { let path = nextPath; append().content = .value(try ValueEncoding.integer(value, path: path)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = nextPath
        try encodeValue(value, into: append(), path: path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = nextPath
        let nested = append()
        nested.content = .object([:])
        return KeyedEncodingContainer(KeyedValueEncoder<NestedKey>(box: nested, codingPath: path))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = nextPath
        let nested = append()
        nested.content = .array([])
        return UnkeyedValueEncoder(box: nested, codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        let path = nextPath
        return ValueEncoderImplementation(path: path, root: append())
    }
}

struct SingleValueEncoder: SingleValueEncodingContainer, ValueBoxWriter {
    let box: ValueBox
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { box.content = .value(.null) }
    mutating func encode(_ value: Bool) throws { box.content = .value(.bool(value)) }
    mutating func encode(_ value: String) throws { box.content = .value(.string(value)) }
    mutating func encode(_ value: Double) throws { box.content = .value(.double(value)) }
    mutating func encode(_ value: Float) throws { box.content = .value(.double(Double(value))) }
    mutating func encode(_ value: Int) throws { box.content = .value(.int(Int64(value))) }
    mutating func encode(_ value: Int8) throws { box.content = .value(.int(Int64(value))) }
    mutating func encode(_ value: Int16) throws { box.content = .value(.int(Int64(value))) }
    mutating func encode(_ value: Int32) throws { box.content = .value(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { box.content = .value(.int(value)) }
    mutating func encode(_ value: UInt) throws { box.content = .value(try ValueEncoding.integer(value, path: codingPath)) }
    mutating func encode(_ value: UInt8) throws { box.content = .value(.int(Int64(value))) }
    mutating func encode(_ value: UInt16) throws { box.content = .value(.int(Int64(value))) }
    mutating func encode(_ value: UInt32) throws { box.content = .value(.int(Int64(value))) }
    mutating func encode(_ value: UInt64) throws { box.content = .value(try ValueEncoding.integer(value, path: codingPath)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try encodeValue(value, into: box, path: codingPath)
    }
}

extension Value: Codable {
    /// A ``Value`` inside a `Codable` model encodes as itself through ``ValueEncoder``; through other
    /// encoders it takes its natural form (bytes as an array of integers).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .bytes(let value): try container.encode(value)
        case .array(let items): try container.encode(items)
        case .object(let members): try container.encode(members)
        }
    }

    public init(from decoder: any Decoder) throws {
        if let direct = decoder as? ValueDecoderImplementation {
            self = direct.value
            return
        }
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([Value].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: Value].self))
        }
    }
}
