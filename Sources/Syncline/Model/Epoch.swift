/// A namespace's epoch (DESIGN §5): a random 64-bit id the server keeps with every namespace and
/// replaces when it is restored from a backup (the restore fence). A device's cursor means
/// something only within the epoch it was read in: a pull or hello with another epoch is answered
/// `410 resync_required`, and the device resyncs from a snapshot.
///
/// On the wire it is a string of 16 lowercase hex digits (`"9f1c2a7b3d4e5f60"`), so JavaScript
/// clients read it exactly; the binary codec carries the 8 bytes.
public struct Epoch: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// A fresh random epoch (never 0, so a zero-filled value is never mistaken for one).
    public static func random() -> Epoch {
        var generator = SystemRandomNumberGenerator()
        return Epoch(rawValue: UInt64.random(in: 1...UInt64.max, using: &generator))
    }

    /// Parses the wire form: exactly 16 hex digits.
    /// - Throws: ``SyncError`` `.invalidParameter` naming the text.
    public init(parsing text: some StringProtocol) throws(SyncError) {
        let utf8 = Array(text.utf8)
        guard utf8.count == 16, let value = Hex.parse(utf8[...]) else {
            throw SyncError(.invalidParameter, "epoch \(NameRules.quote(String(text.prefix(40)))) is not 16 hex digits")
        }
        rawValue = value
    }

    public var description: String { Hex.string(rawValue, width: 16) }
}
