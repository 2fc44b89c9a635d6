public import Syncline

/// What the crash-safety writer writes, so the test can check every byte of it after a kill.
public enum CrashWorkload {
    public static let recordsPerIteration = 3
    public static let collection = try! CollectionName("crash")

    public static func recordID(_ iteration: Int, _ index: Int) -> RecordID { try! RecordID("k\(iteration)-\(index)") }

    /// The fields of one record: a ~200-byte payload derived from the iteration.
    public static func fields(_ iteration: Int, _ index: Int) -> [String: Value] {
        [
            "iteration": .int(Int64(iteration)),
            "index": .int(Int64(index)),
            "payload": .string(String(repeating: "\(iteration).\(index)|", count: 200 / "\(iteration).\(index)|".count)),
        ]
    }

    /// The records and changes of one iteration's transaction.
    public static func group(_ iteration: Int) -> [(RecordState, Change)] {
        (0..<recordsPerIteration).map { index in
            let id = recordID(iteration, index)
            let fields = fields(iteration, index)
            let hlc = HLC(packed: UInt64(iteration) << 16 | UInt64(index), node: 0xC0FFEE)
            let change = Change(
                id: EventID(high: UInt64(iteration) << 16 | 0x7000, low: 0x8000_0000_0000_0000 | UInt64(index)),
                collection: collection, record: id, operation: .upsert, fields: fields, hlc: hlc, base: 0
            )
            let record = RecordState(
                collection: collection, id: id, pendingFields: fields.mapValues { FieldState(value: $0, hlc: hlc, seq: 0) }
            )
            return (record, change)
        }
    }
}
