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
        /// The binary-encoded size of the entry's change.
        package var bytes: Int

        package init(seq: UInt64, priority: Priority, key: RecordKey, bytes: Int) {
            self.seq = seq
            self.priority = priority
            self.key = key
            self.bytes = bytes
        }
    }

    /// A record's positions, ascending; one position (the usual case) needs no allocation.
    private struct Positions: Sendable {
        var first: UInt64
        var rest: [UInt64] = []

        /// No position yet (positions never reach `UInt64.max`).
        static let empty = Positions(first: .max)

        var all: [UInt64] { rest.isEmpty ? [first] : [first] + rest }

        mutating func insert(_ seq: UInt64) {
            if first == .max {
                first = seq
            } else if seq > rest.last ?? first {
                rest.append(seq)
            } else {
                var all = self.all
                all.append(seq)
                all.sort()
                self = Positions(first: all[0], rest: Array(all.dropFirst()))
            }
        }

        /// Removes `seq`; `false` when nothing remains.
        mutating func remove(_ seq: UInt64) -> Bool {
            let remaining = all.filter { $0 != seq }
            guard let head = remaining.first else { return false }
            self = Positions(first: head, rest: Array(remaining.dropFirst()))
            return true
        }
    }

    /// A record key with its hash computed once: the table rehashes every key each time it
    /// grows, and a key's strings are costlier to hash than its cached hash.
    private struct HashedKey: Hashable {
        let key: RecordKey
        let hash: Int

        init(_ key: RecordKey) {
            self.key = key
            hash = key.hashValue
        }

        static func == (lhs: Self, rhs: Self) -> Bool { lhs.hash == rhs.hash && lhs.key == rhs.key }
        func hash(into hasher: inout Hasher) { hasher.combine(hash) }
    }

    private var bySeq = SeqTable()
    private var byRecord: [HashedKey: Positions] = [:]
    /// The greatest position handed out; positions are never reused while the store is open.
    package private(set) var lastSeq: UInt64 = 0
    /// For each position touched since the last commit, the item it had before.
    private var journal: [(seq: UInt64, old: Item?)] = []

    package init() {}

    package var count: Int { bySeq.count }

    /// The sum of the items' ``Item/bytes``.
    package private(set) var bytes = 0

    package func item(_ seq: UInt64) -> Item? { bySeq.item(seq) }

    /// The record's positions, oldest first.
    package func positions(for key: RecordKey) -> [UInt64] { byRecord[HashedKey(key)]?.all ?? [] }

    package mutating func allocate() -> UInt64 {
        lastSeq += 1
        return lastSeq
    }

    /// Records an item found when the store opened (not journaled).
    package mutating func load(_ item: Item) {
        insert(item)
        lastSeq = max(lastSeq, item.seq)
    }

    /// Adds or replaces the item at its position.
    /// - Returns: the item it replaced, if any.
    @discardableResult
    package mutating func set(_ item: Item) -> Item? {
        let old = bySeq.set(item)
        journal.append((item.seq, old))
        bytes += item.bytes - (old?.bytes ?? 0)
        if let old {
            if old.key == item.key { return old }
            removePosition(old)
        }
        insertPosition(item)
        return old
    }

    package mutating func remove(seq: UInt64) {
        guard let old = bySeq.item(seq) else { return }
        journal.append((seq, old))
        remove(old)
    }

    package mutating func commit() { journal.removeAll(keepingCapacity: true) }

    package mutating func rollBack() {
        for (seq, old) in journal.reversed() {
            if let current = bySeq.item(seq) { remove(current) }
            if let old { insert(old) }
        }
        journal.removeAll(keepingCapacity: true)
    }

    private mutating func insert(_ item: Item) {
        bySeq.set(item)
        insertPosition(item)
        bytes += item.bytes
    }

    private mutating func remove(_ item: Item) {
        bySeq.remove(item.seq)
        removePosition(item)
        bytes -= item.bytes
    }

    /// One hash lookup, whether the record is new or not.
    private mutating func insertPosition(_ item: Item) {
        byRecord[HashedKey(item.key), default: Positions.empty].insert(item.seq)
    }

    private mutating func removePosition(_ item: Item) {
        guard let index = byRecord.index(forKey: HashedKey(item.key)) else { return }
        if !byRecord.values[index].remove(item.seq) { byRecord.remove(at: index) }
    }
}

/// Items by position. Positions are handed out in increasing order and mostly leave in the same
/// order, so a sorted array is cheaper than a hash table: a new position is an append, a lookup a
/// binary search, and removed slots are compacted away once they are the majority.
private struct SeqTable: Sendable {
    private var seqs: [UInt64] = []
    private var items: [OutboxIndex.Item?] = []
    private(set) var count = 0

    private func slot(_ seq: UInt64) -> Int? {
        var low = 0
        var high = seqs.count
        while low < high {
            let middle = (low + high) / 2
            if seqs[middle] < seq { low = middle + 1 } else { high = middle }
        }
        return low < seqs.count && seqs[low] == seq ? low : nil
    }

    func item(_ seq: UInt64) -> OutboxIndex.Item? {
        guard let last = seqs.last, seq <= last, let index = slot(seq) else { return nil }
        return items[index]
    }

    /// - Returns: the item it replaced.
    @discardableResult
    mutating func set(_ item: OutboxIndex.Item) -> OutboxIndex.Item? {
        if let last = seqs.last, item.seq <= last {
            if let index = slot(item.seq) {
                let old = items[index]
                items[index] = item
                if old == nil { count += 1 }
                return old
            }
            let index = seqs.firstIndex { $0 > item.seq } ?? seqs.count  // rare: a rolled-back removal
            seqs.insert(item.seq, at: index)
            items.insert(item, at: index)
        } else {
            seqs.append(item.seq)
            items.append(item)
        }
        count += 1
        return nil
    }

    mutating func remove(_ seq: UInt64) {
        guard let index = slot(seq), items[index] != nil else { return }
        items[index] = nil
        count -= 1
        if items.count >= 64 && count * 2 < items.count { compact() }
    }

    private mutating func compact() {
        var keptSeqs = [UInt64]()
        var keptItems = [OutboxIndex.Item?]()
        keptSeqs.reserveCapacity(count * 2)
        keptItems.reserveCapacity(count * 2)
        for (seq, item) in zip(seqs, items) where item != nil {
            keptSeqs.append(seq)
            keptItems.append(item)
        }
        seqs = keptSeqs
        items = keptItems
    }
}
