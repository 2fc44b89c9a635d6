/// The name of an isolated database on a server: `[A-Za-z0-9._-]{1,64}`.
public struct Namespace: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// - Throws: ``SyncError`` `.invalidNamespace` naming the rejected value.
    public init(_ rawValue: String) throws(SyncError) {
        guard NameRules.isValidName(rawValue) else {
            throw SyncError(.invalidNamespace, "namespace \(NameRules.quote(rawValue)) must match [A-Za-z0-9._-]{1,64}")
        }
        self.rawValue = rawValue
    }

    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The name of a set of records inside a namespace: `[A-Za-z0-9._-]{1,64}`.
public struct CollectionName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// - Throws: ``SyncError`` `.invalidCollection` naming the rejected value.
    public init(_ rawValue: String) throws(SyncError) {
        guard NameRules.isValidName(rawValue) else {
            throw SyncError(.invalidCollection, "collection \(NameRules.quote(rawValue)) must match [A-Za-z0-9._-]{1,64}")
        }
        self.rawValue = rawValue
    }

    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A record's id: a non-empty UTF-8 string of at most 256 bytes, without NUL.
public struct RecordID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The longest id, in bytes of UTF-8.
    public static let maxBytes = 256
    public let rawValue: String

    /// - Throws: ``SyncError`` `.invalidRecordID` naming the rejected value.
    public init(_ rawValue: String) throws(SyncError) {
        let count = rawValue.utf8.count
        guard count > 0, count <= Self.maxBytes else {
            throw SyncError(
                .invalidRecordID,
                "record id \(NameRules.quote(rawValue)) is \(count) bytes; it must be 1 to \(Self.maxBytes) bytes of UTF-8"
            )
        }
        guard !rawValue.utf8.contains(0) else {
            throw SyncError(.invalidRecordID, "record id \(NameRules.quote(rawValue)) contains a NUL character")
        }
        self.rawValue = rawValue
    }

    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Rules for field names: non-empty, at most 128 bytes of UTF-8, no NUL, not starting with `$`.
public enum FieldName {
    public static let maxBytes = 128

    /// - Throws: ``SyncError`` `.invalidFieldName` naming the rejected value.
    public static func validate(_ name: String) throws(SyncError) {
        let count = name.utf8.count
        guard count > 0, count <= maxBytes else {
            throw SyncError(
                .invalidFieldName,
                "field name \(NameRules.quote(name)) is \(count) bytes; it must be 1 to \(maxBytes) bytes of UTF-8"
            )
        }
        guard !name.hasPrefix("$") else {
            throw SyncError(.invalidFieldName, "field name \(NameRules.quote(name)) starts with $, which is reserved")
        }
        guard !name.utf8.contains(0) else {
            throw SyncError(.invalidFieldName, "field name \(NameRules.quote(name)) contains a NUL character")
        }
    }
}

enum NameRules {
    static func isValidName(_ name: String) -> Bool {
        let utf8 = name.utf8
        guard !utf8.isEmpty, utf8.count <= 64 else { return false }
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default:
                return false
            }
        }
        return true
    }

    /// Quotes a user value for an error message, shortened so a huge value does not flood a log.
    static func quote(_ value: String) -> String {
        let shown = value.count > 80 ? String(value.prefix(77)) + "..." : value
        return String(reflecting: shown)
    }
}
