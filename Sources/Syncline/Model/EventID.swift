/// The id of one change: a UUIDv7 (48 bits of Unix milliseconds, then random bits), so ids sort
/// by creation time. It makes every push idempotent: the server applies an id at most once.
public struct EventID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The first 8 bytes, big-endian.
    public let high: UInt64
    /// The last 8 bytes, big-endian.
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Reads 16 bytes.
    /// - Throws: ``SyncError`` `.malformedInput` when `bytes` is not 16 bytes long.
    public init(bytes: some Collection<UInt8>) throws(SyncError) {
        guard bytes.count == 16 else { throw SyncError.malformed("an event id is 16 bytes, not \(bytes.count)") }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
        }
        self.init(high: high, low: low)
    }

    /// The 16 bytes, big-endian.
    public var bytes: [UInt8] {
        var result = [UInt8](repeating: 0, count: 16)
        for index in 0..<8 {
            result[index] = UInt8(truncatingIfNeeded: high >> (56 - 8 * index))
            result[8 + index] = UInt8(truncatingIfNeeded: low >> (56 - 8 * index))
        }
        return result
    }

    /// Unix milliseconds when the id was made.
    public var unixMillis: UInt64 { high >> 16 }
    /// The UUID version nibble (7 for ids made here).
    public var version: Int { Int(high >> 12 & 0xF) }

    public static func < (lhs: EventID, rhs: EventID) -> Bool { (lhs.high, lhs.low) < (rhs.high, rhs.low) }

    /// The canonical lowercase form, `0193520a-7c1e-7b3f-8d2a-4f0e9c1b2a3d`.
    public var description: String {
        let hex = Hex.string(high, width: 16) + Hex.string(low, width: 16)
        let chars = Array(hex.utf8)
        var out = [UInt8]()
        out.reserveCapacity(36)
        for (index, char) in chars.enumerated() {
            if index == 8 || index == 12 || index == 16 || index == 20 { out.append(UInt8(ascii: "-")) }
            out.append(char)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses the canonical 36-character form (either case).
    /// - Throws: ``SyncError`` `.malformedInput` naming the text.
    public init(parsing text: some StringProtocol) throws(SyncError) {
        let utf8 = Array(text.utf8)
        var digits = [UInt8]()
        digits.reserveCapacity(32)
        var valid = utf8.count == 36
        if valid {
            for (index, char) in utf8.enumerated() {
                if index == 8 || index == 13 || index == 18 || index == 23 {
                    if char != UInt8(ascii: "-") { valid = false; break }
                } else if Hex.nibble(char) != nil {
                    digits.append(char)
                } else {
                    valid = false
                    break
                }
            }
        }
        guard valid, let high = Hex.parse(digits[0..<16]), let low = Hex.parse(digits[16..<32]) else {
            throw SyncError.malformed("\(NameRules.quote(String(text))) is not a UUID")
        }
        self.init(high: high, low: low)
    }
}

/// Makes UUIDv7 event ids that increase strictly within one generator, even for many ids in the
/// same millisecond or when the wall clock goes backwards (the 12-bit `rand_a` field is used as a
/// counter, as RFC 9562 §6.2 method 1 allows).
public struct EventIDGenerator: Sendable {
    private var lastMillis: UInt64 = 0
    private var sequence: UInt64 = 0

    public init() {}

    /// - Parameters:
    ///   - wallMillis: the current Unix time in milliseconds.
    ///   - random: the source of the 62 random bits.
    public mutating func next(wallMillis: UInt64, using random: inout some RandomNumberGenerator) -> EventID {
        let millis = min(wallMillis, HLC.maxWallMillis)
        if millis > lastMillis {
            lastMillis = millis
            sequence = random.next() & 0x3FF  // leaves room to count up within the millisecond
        } else {
            sequence += 1
            if sequence > 0xFFF {
                lastMillis += 1
                sequence = 0
            }
        }
        let high = lastMillis << 16 | 0x7000 | sequence
        let low = (random.next() as UInt64) & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000
        return EventID(high: high, low: low)
    }

    /// Uses the system's random number generator.
    public mutating func next(wallMillis: UInt64) -> EventID {
        var random = SystemRandomNumberGenerator()
        return next(wallMillis: wallMillis, using: &random)
    }
}
