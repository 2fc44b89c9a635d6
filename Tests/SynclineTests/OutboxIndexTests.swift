import Syncline
import SynclineTesting
import Testing

/// The in-memory outbox index against a plain dictionary model, through random sets, removals,
/// commits and rollbacks (which exercise the sorted table's compaction and re-insertion).
@Suite("OutboxIndex")
struct OutboxIndexTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func matchesAReferenceModel(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        var index = OutboxIndex()
        var committed: [UInt64: OutboxIndex.Item] = [:]
        var current = committed
        let keys = (0..<8).map { Sample.key("r\($0)") }
        for step in 0..<4_000 {
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<4:
                let item = OutboxIndex.Item(
                    seq: index.allocate(), priority: Priority.allCases.randomElement(using: &random)!,
                    key: keys.randomElement(using: &random)!, bytes: Int.random(in: 20...400, using: &random)
                )
                index.set(item)
                current[item.seq] = item
            case 4:
                if var item = current.values.randomElement(using: &random) {
                    item.priority = Priority.allCases.randomElement(using: &random)!
                    item.bytes = Int.random(in: 20...400, using: &random)
                    #expect(index.set(item) == current[item.seq])
                    current[item.seq] = item
                }
            case 5..<8:
                if let seq = current.keys.randomElement(using: &random) {
                    index.remove(seq: seq)
                    current[seq] = nil
                }
            case 8:
                index.commit()
                committed = current
            default:
                index.rollBack()
                current = committed
            }
            #expect(index.count == current.count, "seed \(seed) step \(step)")
            #expect(index.bytes == current.values.reduce(0) { $0 + $1.bytes }, "seed \(seed) step \(step): the byte total")
            for key in keys {
                let expected = current.values.filter { $0.key == key }.map(\.seq).sorted()
                #expect(index.positions(for: key) == expected, "seed \(seed) step \(step) \(key)")
            }
            if let probe = current.keys.randomElement(using: &random) { #expect(index.item(probe) == current[probe]) }
        }
    }
}
