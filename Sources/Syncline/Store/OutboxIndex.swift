/// Where each queued outbox entry is, kept in memory by the on-disk stores so that queueing a
/// change never has to query the database for the record's earlier entries.
///
/// Its size follows the outbox (pending changes), not the history. Changes made inside a
/// transaction are journaled; ``rollBack()`` restores the state of the last ``commit()``.
package struct OutboxIndex: Sendable {
    package struct Item: Hashable, Sendable {
        package var seq: UInt64
        package var priority: Priority
        package var key: RecordKey

        package init(seq: UInt64, priority: Priority, key: RecordKey) {
            self.seq = seq
            self.priority = priority
            self.key = key
        }
    }

    /// A record's positions, ascending; one position (the usual case) needs no allocation.
    private struct Positions: Sendable {
        var first: UInt64
        var rest: [UInt64] = []

        var all: [UInt64] { rest.isEmpty ? [first] : [first] + rest }
    }

    private var bySeq: [UInt64: Item] = [:]
    private var byRecord: [RecordKey: Positions] = [:]
    /// The greatest position handed out; positions are never reused while the store is open.
    package private(set) var lastSeq: UInt64 = 0
    /// For each position touched since the last commit, the item it had before.
    private var journal: [(seq: UInt64, old: Item?)] = []

    package init() {}

    package var count: Int { bySeq.count }

    package func item(_ seq: UInt64) -> Item? { bySeq[seq] }

    /// The record's positions, oldest first.
    package func positions(for key: RecordKey) -> [UInt64] { byRecord[key]?.all ?? [] }

    package mutating func allocate() -> UInt64 {
        lastSeq += 1
        return lastSeq
    }

    /// Records an item found when the store opened (not journaled).
    package mutating func load(_ item: Item) {
        insert(item)
        lastSeq = max(lastSeq, item.seq)
    }

    package mutating func set(_ item: Item) {
        let old = bySeq[item.seq]
        journal.append((item.seq, old))
        if let old { remove(old) }
        insert(item)
    }

    package mutating func remove(seq: UInt64) {
        guard let old = bySeq[seq] else { return }
        journal.append((seq, old))
        remove(old)
    }

    package mutating func commit() { journal.removeAll(keepingCapacity: true) }

    package mutating func rollBack() {
        for (seq, old) in journal.reversed() {
            if let current = bySeq[seq] { remove(current) }
            if let old { insert(old) }
        }
        journal.removeAll(keepingCapacity: true)
    }

    private mutating func insert(_ item: Item) {
        bySeq[item.seq] = item
        if var positions = byRecord[item.key] {
            if item.seq > positions.rest.last ?? positions.first {
                positions.rest.append(item.seq)
            } else {
                var all = positions.all
                all.append(item.seq)
                all.sort()
                positions = Positions(first: all[0], rest: Array(all.dropFirst()))
            }
            byRecord[item.key] = positions
        } else {
            byRecord[item.key] = Positions(first: item.seq)
        }
    }

    private mutating func remove(_ item: Item) {
        bySeq[item.seq] = nil
        guard let positions = byRecord[item.key] else { return }
        let remaining = positions.all.filter { $0 != item.seq }
        byRecord[item.key] = remaining.isEmpty ? nil : Positions(first: remaining[0], rest: Array(remaining.dropFirst()))
    }
}
