/// A write that another device's concurrent write replaced after the server had applied it
/// (DESIGN §4, invariant 7).
///
/// The device that made the write learns it lost only from the server: when it pushed first, its
/// write was applied and acknowledged, and the later, concurrent write that overwrote it reaches
/// it as an ordinary pull. So the server remembers, with the record, which applied writes a
/// concurrent one replaced (``ServerRecord/superseded``), and a pull entry carries those made
/// after the device's cursor (``RemoteChange/superseded``). A device reports a lost write when an
/// entry names an HLC it wrote and still holds as confirmed (or pending): once the entry is
/// applied it holds the winner, so it reports each loss once, whatever the order of the pushes.
public struct SupersededWrite: Hashable, Sendable {
    /// The HLC of the write that was replaced (it names the device and the change).
    public var hlc: HLC
    /// The seq of the concurrent write that replaced it.
    public var seq: UInt64
    /// For a replaced field write, the fields it lost; for a replaced delete, the fields of the
    /// write that brought the record back.
    public var fields: [String]
    /// The replaced write was a delete (the record came back).
    public var deleted: Bool

    public init(hlc: HLC, seq: UInt64, fields: [String], deleted: Bool = false) {
        self.hlc = hlc
        self.seq = seq
        self.fields = fields
        self.deleted = deleted
    }

    /// How many a record keeps, the newest: a device that sleeps through more concurrent
    /// overwrites of one record than this learns only of the newest ones (a bound on what a hot
    /// record carries, not on correctness elsewhere).
    public static let keptPerRecord = 32
}
