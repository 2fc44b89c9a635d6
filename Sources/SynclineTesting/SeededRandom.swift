public import Syncline

/// A small, fast, seedable generator so every randomized test replays from its seed: the
/// package's ``SplitMix64`` behind a public face.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var generator: SplitMix64

    public var state: UInt64 { generator.state }

    public init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    public mutating func next() -> UInt64 { generator.next() }
}

/// Random model values for property and fuzz tests.
public struct RandomModel {
    public var random: SeededRandom
    /// Whether doubles may be NaN or infinite (JSON cannot carry them).
    public var finiteDoublesOnly: Bool

    public init(seed: UInt64, finiteDoublesOnly: Bool = true) {
        random = SeededRandom(seed: seed)
        self.finiteDoublesOnly = finiteDoublesOnly
    }

    public mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
    public mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &random) < probability }

    /// A string mixing ASCII, multi-byte scalars and escapes that JSON must quote.
    public mutating func string(maxLength: Int = 12) -> String {
        let pool: [Unicode.Scalar] = [
            "a", "b", "z", "0", "9", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1F}", "é", "ß", "€", "中",
            "\u{1F600}", "\u{FFFD}", "$", ".", "-",
        ]
        var scalars = String.UnicodeScalarView()
        for _ in 0..<int(0...maxLength) { scalars.append(pool[int(0...(pool.count - 1))]) }
        return String(scalars)
    }

    /// A valid field or object key (not starting with `$`, not empty).
    public mutating func key() -> String {
        var text = string(maxLength: 10).replacingFirstDollar()
        if text.isEmpty { text = "k" }
        return text
    }

    public mutating func double() -> Double {
        switch int(0...9) {
        case 0: return 0
        case 1: return -0.0
        case 2: return Double(int(-1000...1000))
        case 3: return finiteDoublesOnly ? .greatestFiniteMagnitude : .infinity
        case 4: return finiteDoublesOnly ? .leastNonzeroMagnitude : .nan
        default:
            return Double(bitPattern: random.next()).isFinite
                ? Double(bitPattern: random.next() & 0x7FEF_FFFF_FFFF_FFFF) * (chance(0.5) ? 1 : -1)
                : 1.5
        }
    }

    public mutating func value(depth: Int = 0) -> Value {
        let scalarOnly = depth >= 4
        switch int(0...(scalarOnly ? 6 : 8)) {
        case 0: return .null
        case 1: return .bool(chance(0.5))
        case 2:
            switch int(0...3) {
            case 0: return .int(.max)
            case 1: return .int(.min)
            default: return .int(Int64(bitPattern: random.next()) >> Int64(int(0...63)))
            }
        case 3: return .double(double())
        case 4: return .string(string())
        case 5: return .bytes((0..<int(0...16)).map { _ in UInt8.random(in: 0...255, using: &random) })
        case 6: return .int(Int64(int(-5...5)))
        case 7: return .array((0..<int(0...4)).map { _ in value(depth: depth + 1) })
        default:
            var members = [String: Value]()
            for _ in 0..<int(0...4) { members[key()] = value(depth: depth + 1) }
            return .object(members)
        }
    }

    public mutating func fields(max: Int = 5) -> [String: Value] {
        var result = [String: Value]()
        for _ in 0..<int(0...max) { result[key()] = value() }
        return result
    }

    public mutating func hlc() -> HLC {
        HLC(packed: random.next() & 0x0000_FFFF_FFFF_FFFF_FFFF | 1, node: random.next())
    }

    public mutating func eventID() -> EventID { EventID(high: random.next(), low: random.next()) }

    public mutating func collection() -> CollectionName {
        try! CollectionName(["todos", "notes", "a.b_c-9", "x"][int(0...3)])
    }

    public mutating func recordID() -> RecordID {
        var text = string(maxLength: 20).replacingOccurrencesOfNUL()
        if text.isEmpty { text = "r" }
        return try! RecordID(text)
    }

    public mutating func change() -> Change {
        let operation: ChangeOperation = chance(0.8) ? .upsert : .delete
        return Change(
            id: eventID(), collection: collection(), record: recordID(), operation: operation,
            fields: operation == .upsert ? fields() : [:], hlc: hlc(), base: random.next() >> int(0...63),
            mode: [ConflictMode.lww, .reject, .force][int(0...2)]
        )
    }

    public mutating func fieldStates(max: Int = 5) -> [String: FieldState] {
        var result = [String: FieldState]()
        for _ in 0..<int(0...max) { result[key()] = FieldState(value: value(), hlc: hlc(), seq: random.next() >> 20) }
        return result
    }

    public mutating func remoteChange() -> RemoteChange {
        let superseded = chance(0.3) ? (0..<int(1...3)).map { _ in supersededWrite() } : []
        if chance(0.2) {
            return RemoteChange(
                seq: random.next() >> 12, collection: collection(), record: recordID(), deleted: true, hlc: hlc(),
                superseded: superseded
            )
        }
        return RemoteChange(
            seq: random.next() >> 12, collection: collection(), record: recordID(), deleted: false,
            fields: fieldStates(), reset: chance(0.2), superseded: superseded
        )
    }

    public mutating func supersededWrite() -> SupersededWrite {
        SupersededWrite(hlc: hlc(), seq: random.next() >> 12, fields: (0..<int(0...3)).map { _ in key() }, deleted: chance(0.3))
    }

    public mutating func changeBatch(max: Int = 6) -> ChangeBatch {
        ChangeBatch(changes: (0..<int(0...max)).map { _ in change() })
    }

    public mutating func pullPage(max: Int = 6) -> PullPage {
        PullPage(
            changes: (0..<int(0...max)).map { _ in remoteChange() }, cursor: random.next() >> 8,
            hasMore: chance(0.5), remaining: random.next() >> 30, head: random.next() >> 8,
            epoch: chance(0.8) ? Epoch(rawValue: random.next()) : nil
        )
    }

    public mutating func pushResponse(max: Int = 6) -> PushResponse {
        let results: [PushResult] = (0..<int(0...max)).map { _ in
            switch int(0...2) {
            case 0: return .applied(id: eventID(), seq: random.next() >> 10, fields: fieldStates())
            case 1: return .duplicate(id: eventID(), seq: random.next() >> 10, fields: chance(0.5) ? fieldStates() : [:])
            default:
                let current = fieldStates()
                return .rejected(id: eventID(), conflicts: Array(current.keys), current: current)
            }
        }
        return PushResponse(
            results: results, head: random.next() >> 8, serverTime: random.next() >> 20,
            epoch: chance(0.8) ? Epoch(rawValue: random.next()) : nil
        )
    }
}

extension String {
    fileprivate func replacingFirstDollar() -> String {
        hasPrefix("$") ? "_" + dropFirst() : self
    }

    fileprivate func replacingOccurrencesOfNUL() -> String {
        String(String.UnicodeScalarView(unicodeScalars.filter { $0 != "\u{0}" }))
    }
}
