import Foundation

/// Builds any `Decodable` model from a ``Value``: the inverse of ``ValueEncoder``.
///
/// Integers convert to any integer type they fit; integral doubles convert to integers and exact
/// integers to floating point; `.bytes` decodes as `Data`; a missing key or `.null` decodes as `nil`
/// for an optional.
///
/// ```swift
/// let todo = try ValueDecoder().decode(Todo.self, fromFields: record.visibleFields)
/// ```
public struct ValueDecoder: Sendable {
    public init() {}

    /// - Throws: ``SyncError`` `.invalidValue` naming the coding path, what was expected and what
    ///   was found.
    public func decode<T: Decodable>(_ type: T.Type, from value: Value) throws(SyncError) -> T {
        do {
            return try ValueDecoderImplementation(value: value, path: []).decodeValue(T.self)
        } catch let error as SyncError {
            throw error
        } catch {
            throw SyncError(.invalidValue, "cannot decode \(T.self): \(error)")
        }
    }

    /// Decodes a record's fields.
    public func decode<T: Decodable>(_ type: T.Type, fromFields fields: [String: Value]) throws(SyncError) -> T {
        try decode(type, from: .object(fields))
    }
}

final class ValueDecoderImplementation: Decoder {
    let value: Value
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any] = [:]

    init(value: Value, path: [any CodingKey]) {
        self.value = value
        codingPath = path
    }

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == Data.self {
            guard case .bytes(let bytes) = value else { throw mismatch("bytes") }
            return Data(bytes) as! T  // checked: T is Data
        }
        return try T(from: self)
    }

    func mismatch(_ expected: String) -> SyncError {
        ValueDecoding.mismatch(expected, found: value, path: codingPath)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else { throw mismatch("an object") }
        return KeyedDecodingContainer(KeyedValueDecoder<Key>(members: members, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw mismatch("an array") }
        return UnkeyedValueDecoder(items: items, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleValueDecoder(value: value, codingPath: codingPath)
    }
}

enum ValueDecoding {
    static func kind(_ value: Value) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .double: return "a double"
        case .string: return "a string"
        case .bytes: return "bytes"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    static func mismatch(_ expected: String, found: Value, path: [any CodingKey]) -> SyncError {
        SyncError(.invalidValue, "\(ValueEncoding.pathString(path)): expected \(expected), found \(kind(found))")
    }

    static func bool(_ value: Value, _ path: [any CodingKey]) throws -> Bool {
        guard case .bool(let flag) = value else { throw mismatch("a boolean", found: value, path: path) }
        return flag
    }

    static func string(_ value: Value, _ path: [any CodingKey]) throws -> String {
        guard case .string(let text) = value else { throw mismatch("a string", found: value, path: path) }
        return text
    }

    static func double(_ value: Value, _ path: [any CodingKey]) throws -> Double {
        switch value {
        case .double(let number): return number
        case .int(let number):
            guard let exact = Double(exactly: number) else {
                throw SyncError(.invalidValue, "\(ValueEncoding.pathString(path)): \(number) has no exact double")
            }
            return exact
        default: throw mismatch("a number", found: value, path: path)
        }
    }

    static func float(_ value: Value, _ path: [any CodingKey]) throws -> Float {
        let number = try double(value, path)
        guard number.isNaN || Double(Float(number)) == number || number.isInfinite else {
            throw SyncError(.invalidValue, "\(ValueEncoding.pathString(path)): \(number) has no exact Float")
        }
        return Float(number)
    }

    static func integer<T: FixedWidthInteger>(_ value: Value, _ path: [any CodingKey]) throws -> T {
        let result: T?
        switch value {
        case .int(let number): result = T(exactly: number)
        case .double(let number): result = T(exactly: number)
        default: throw mismatch("an integer", found: value, path: path)
        }
        guard let result else {
            throw SyncError(.invalidValue, "\(ValueEncoding.pathString(path)): \(value) does not fit in \(T.self)")
        }
        return result
    }
}

struct KeyedValueDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [String: Value]
    let codingPath: [any CodingKey]

    var allKeys: [Key] { members.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

    private func value(_ key: Key) throws -> Value {
        guard let value = members[key.stringValue] else {
            throw SyncError(.invalidValue, "\(ValueEncoding.pathString(codingPath + [key])): the key is missing")
        }
        return value
    }

    private func path(_ key: Key) -> [any CodingKey] { codingPath + [key] }

    func decodeNil(forKey key: Key) throws -> Bool { members[key.stringValue].map { $0 == .null } ?? true }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try ValueDecoding.bool(value(key), path(key)) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try ValueDecoding.string(value(key), path(key)) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try ValueDecoding.double(value(key), path(key)) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try ValueDecoding.float(value(key), path(key)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try ValueDecoding.integer(value(key), path(key)) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try ValueDecoding.integer(value(key), path(key)) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try ValueDecoding.integer(value(key), path(key)) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try ValueDecoding.integer(value(key), path(key)) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try ValueDecoding.integer(value(key), path(key)) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try ValueDecoding.integer(value(key), path(key)) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try ValueDecoding.integer(value(key), path(key)) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try ValueDecoding.integer(value(key), path(key)) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try ValueDecoding.integer(value(key), path(key)) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try ValueDecoding.integer(value(key), path(key)) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try ValueDecoderImplementation(value: value(key), path: path(key)).decodeValue(T.self)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try ValueDecoderImplementation(value: value(key), path: path(key)).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try ValueDecoderImplementation(value: value(key), path: path(key)).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        ValueDecoderImplementation(value: members[SuperKey().stringValue] ?? .null, path: codingPath + [SuperKey()])
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        ValueDecoderImplementation(value: members[key.stringValue] ?? .null, path: path(key))
    }
}

struct UnkeyedValueDecoder: UnkeyedDecodingContainer {
    let items: [Value]
    let codingPath: [any CodingKey]
    private(set) var currentIndex = 0

    init(items: [Value], codingPath: [any CodingKey]) {
        self.items = items
        self.codingPath = codingPath
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private var path: [any CodingKey] { codingPath + [IndexKey(currentIndex)] }

    private mutating func next() throws -> Value {
        guard !isAtEnd else {
            throw SyncError(.invalidValue, "\(ValueEncoding.pathString(path)): the array has only \(items.count) elements")
        }
        defer { currentIndex += 1 }
        return items[currentIndex]
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex] == .null else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { let p = path; return try ValueDecoding.bool(next(), p) }
    mutating func decode(_ type: String.Type) throws -> String { let p = path; return try ValueDecoding.string(next(), p) }
    mutating func decode(_ type: Double.Type) throws -> Double { let p = path; return try ValueDecoding.double(next(), p) }
    mutating func decode(_ type: Float.Type) throws -> Float { let p = path; return try ValueDecoding.float(next(), p) }
    mutating func decode(_ type: Int.Type) throws -> Int { let p = path; return try ValueDecoding.integer(next(), p) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { let p = path; return try ValueDecoding.integer(next(), p) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { let p = path; return try ValueDecoding.integer(next(), p) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { let p = path; return try ValueDecoding.integer(next(), p) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { let p = path; return try ValueDecoding.integer(next(), p) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { let p = path; return try ValueDecoding.integer(next(), p) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { let p = path; return try ValueDecoding.integer(next(), p) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { let p = path; return try ValueDecoding.integer(next(), p) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { let p = path; return try ValueDecoding.integer(next(), p) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { let p = path; return try ValueDecoding.integer(next(), p) }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let p = path
        return try ValueDecoderImplementation(value: next(), path: p).decodeValue(T.self)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let p = path
        return try ValueDecoderImplementation(value: next(), path: p).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let p = path
        return try ValueDecoderImplementation(value: next(), path: p).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let p = path
        return ValueDecoderImplementation(value: try next(), path: p)
    }
}

struct SingleValueDecoder: SingleValueDecodingContainer {
    let value: Value
    let codingPath: [any CodingKey]

    func decodeNil() -> Bool { value == .null }
    func decode(_ type: Bool.Type) throws -> Bool { try ValueDecoding.bool(value, codingPath) }
    func decode(_ type: String.Type) throws -> String { try ValueDecoding.string(value, codingPath) }
    func decode(_ type: Double.Type) throws -> Double { try ValueDecoding.double(value, codingPath) }
    func decode(_ type: Float.Type) throws -> Float { try ValueDecoding.float(value, codingPath) }
    func decode(_ type: Int.Type) throws -> Int { try ValueDecoding.integer(value, codingPath) }
    func decode(_ type: Int8.Type) throws -> Int8 { try ValueDecoding.integer(value, codingPath) }
    func decode(_ type: Int16.Type) throws -> Int16 { try ValueDecoding.integer(value, codingPath) }
    func decode(_ type: Int32.Type) throws -> Int32 { try ValueDecoding.integer(value, codingPath) }
    func decode(_ type: Int64.Type) throws -> Int64 { try ValueDecoding.integer(value, codingPath) }
    func decode(_ type: UInt.Type) throws -> UInt { try ValueDecoding.integer(value, codingPath) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try ValueDecoding.integer(value, codingPath) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try ValueDecoding.integer(value, codingPath) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try ValueDecoding.integer(value, codingPath) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try ValueDecoding.integer(value, codingPath) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try ValueDecoderImplementation(value: value, path: codingPath).decodeValue(T.self)
    }
}
