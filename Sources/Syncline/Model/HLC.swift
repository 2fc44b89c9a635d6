/// A hybrid logical clock timestamp: 48 bits of Unix milliseconds and a 16-bit counter, plus the
/// 64-bit id of the node (device) that made it, as a tie-breaker.
///
/// Timestamps are totally ordered by `(wallMillis, counter, node)`. The string form is
/// `"<unix-ms>.<counter>@<node-hex16>"`, e.g. `"1732300000000.3@9f1c2a7b3d4e5f60"`.
public struct HLC: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The largest representable wall time (2^48 - 1 ms, about the year 10889).
    public static let maxWallMillis: UInt64 = (1 << 48) - 1
    /// The smallest timestamp, before any real one.
    public static let zero = HLC(packed: 0, node: 0)

    /// Wall milliseconds in the upper 48 bits, counter in the lower 16.
    public let packed: UInt64
    /// The node (device) id.
    public let node: UInt64

    public init(packed: UInt64, node: UInt64) {
        self.packed = packed
        self.node = node
    }

    /// - Throws: ``SyncError`` `.clock` when `wallMillis` does not fit in 48 bits.
    public init(wallMillis: UInt64, counter: UInt16, node: UInt64) throws(SyncError) {
        guard wallMillis <= Self.maxWallMillis else {
            throw SyncError(.clock, "wall time \(wallMillis) ms does not fit in 48 bits")
        }
        self.packed = wallMillis << 16 | UInt64(counter)
        self.node = node
    }

    /// Unix milliseconds.
    public var wallMillis: UInt64 { packed >> 16 }
    /// The logical counter within one millisecond.
    public var counter: UInt16 { UInt16(truncatingIfNeeded: packed) }

    public static func < (lhs: HLC, rhs: HLC) -> Bool {
        (lhs.packed, lhs.node) < (rhs.packed, rhs.node)
    }

    public var description: String {
        "\(wallMillis).\(counter)@\(Hex.string(node, width: 16))"
    }

    /// Parses the string form.
    /// - Throws: ``SyncError`` `.malformedInput` naming the text.
    public init(parsing text: some StringProtocol) throws(SyncError) {
        let utf8 = Array(text.utf8)
        guard utf8.count <= 64,
            let dot = utf8.firstIndex(of: UInt8(ascii: ".")),
            let at = utf8.firstIndex(of: UInt8(ascii: "@")), dot < at,
            let millis = Decimal64.parse(utf8[..<dot]),
            let counter = Decimal64.parse(utf8[(dot + 1)..<at]), counter <= UInt64(UInt16.max),
            utf8.count - at - 1 == 16,
            let node = Hex.parse(utf8[(at + 1)...])
        else {
            throw SyncError.malformed("\(NameRules.quote(String(text))) is not an HLC (\"<unix-ms>.<counter>@<node-hex16>\")")
        }
        try self.init(wallMillis: millis, counter: UInt16(counter), node: node)
    }
}

/// The clock that stamps a node's mutations.
///
/// `now(wallMillis:)` is the send rule: the result is greater than every timestamp this clock
/// produced or received before, even when the wall clock goes backwards. `receive(_:wallMillis:)`
/// is the receive rule: it advances the clock past a remote timestamp, so causality holds across
/// nodes whose clocks disagree.
public struct HybridClock: Sendable {
    public let node: UInt64
    /// The greatest timestamp produced or received so far.
    public private(set) var last: HLC

    public init(node: UInt64, last: HLC = .zero) {
        self.node = node
        self.last = HLC(packed: last.packed, node: node)
    }

    /// Stamps a local event.
    /// - Parameter wallMillis: the current Unix time in milliseconds (injected so tests control it).
    /// - Throws: ``SyncError`` `.clock` when the clock cannot advance (48-bit time exhausted).
    public mutating func now(wallMillis: UInt64) throws(SyncError) -> HLC {
        let wall = min(wallMillis, HLC.maxWallMillis) << 16
        let next = wall > last.packed ? wall : try Self.increment(last.packed)
        last = HLC(packed: next, node: node)
        return last
    }

    /// Takes in a remote timestamp (from a pull or an ack) so the next local stamp is after it.
    /// - Throws: ``SyncError`` `.clock` when the clock cannot advance.
    public mutating func receive(_ remote: HLC, wallMillis: UInt64) throws(SyncError) {
        let wall = min(wallMillis, HLC.maxWallMillis) << 16
        let highest = max(wall, last.packed, remote.packed)
        let next = highest == wall && wall > last.packed && wall > remote.packed ? wall : try Self.increment(highest)
        last = HLC(packed: next, node: node)
    }

    /// Moves the clock to `last`, backwards too: only after the device learned that its wall clock
    /// was wrong and re-stamped every write no one has seen (see `LocalStore.observeServerTime`).
    public mutating func rebase(to last: HLC) {
        self.last = HLC(packed: last.packed, node: node)
    }

    /// Adds one to the counter; a full counter carries into the millisecond part.
    private static func increment(_ packed: UInt64) throws(SyncError) -> UInt64 {
        guard packed < UInt64.max else { throw SyncError(.clock, "the hybrid logical clock reached its maximum") }
        return packed + 1
    }
}

extension HLC {
    /// A node (device) id as the 16 hex digits of the HLC's string form.
    public static func nodeHex(_ node: UInt64) -> String { Hex.string(node, width: 16) }

    /// Parses a node id written as 1 to 16 hex digits.
    public static func node(parsing text: String) -> UInt64? { Hex.parse(Array(text.utf8)[...]) }
}

enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    static func string(_ value: UInt64, width: Int) -> String {
        var chars = [UInt8](repeating: UInt8(ascii: "0"), count: width)
        var rest = value
        var index = width - 1
        while index >= 0 {
            chars[index] = digits[Int(rest & 0xF)]
            rest >>= 4
            index -= 1
        }
        return String(decoding: chars, as: UTF8.self)
    }

    static func nibble(_ char: UInt8) -> UInt64? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt64(char - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt64(char - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt64(char - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// Parses 1 to 16 hex digits.
    static func parse(_ chars: ArraySlice<UInt8>) -> UInt64? {
        guard !chars.isEmpty, chars.count <= 16 else { return nil }
        var value: UInt64 = 0
        for char in chars {
            guard let digit = nibble(char) else { return nil }
            value = value << 4 | digit
        }
        return value
    }
}

enum Decimal64 {
    /// Parses 1 to 19 ASCII digits (always fits in UInt64).
    static func parse(_ chars: ArraySlice<UInt8>) -> UInt64? {
        guard !chars.isEmpty, chars.count <= 19 else { return nil }
        var value: UInt64 = 0
        for char in chars {
            guard char >= UInt8(ascii: "0"), char <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(char - UInt8(ascii: "0"))
        }
        return value
    }
}
