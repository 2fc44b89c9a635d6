/// The ground truth a test checks "nothing lost, nothing applied twice, every lost write reported
/// once" against (invariants 1, 4 and 7): per event id, how many times it was applied and the
/// fields on which it lost, whether at its own push (`lww` or `rejected`) or later, replaced by a
/// concurrent write (a ``SupersededWrite``). Memory grows with the changes seen: for the
/// reference server, simulations and tests, not production.
///
/// A replaced write that its device wrote over again itself (a later change of the same device to
/// the same field, or any later change of a record whose delete was undone, reaching the server
/// after the replacement) may go unreported: the device holds its own newer write and hears of
/// that one's fate; whether it still reports the older one depends on whether it pulled before
/// its newer write was answered. ``Loss/overwritten`` names those fields.
public struct LossLedger: Sendable {
    /// The fields one change lost.
    public struct Loss: Hashable, Sendable {
        /// Every field the change lost: a device may report these.
        public var fields: Set<String> = []
        /// Those of ``fields`` the same device wrote again after it lost them (they were replaced
        /// after the server applied the change): a device need not report these.
        public var overwritten: Set<String> = []

        public init(fields: Set<String> = [], overwritten: Set<String> = []) {
            self.fields = fields
            self.overwritten = overwritten
        }

        /// The fields a device must report.
        public var required: Set<String> { fields.subtracting(overwritten) }
    }

    /// A replaced write that its device may still write over.
    private struct Replaced {
        var id: EventID
        var node: UInt64
        var fields: Set<String>
        /// The replaced write was a delete: any later change of the device to the record is
        /// written over it.
        var deleted: Bool
    }

    /// How many times each event id was applied.
    public private(set) var applications: [EventID: Int] = [:]
    /// Changes that lost on some fields.
    public private(set) var losses: [EventID: Loss] = [:]
    /// Changes the server answered with `rejected`: decided, not lost.
    public private(set) var rejected: Set<EventID> = []
    /// Which change wrote with each HLC (a device stamps every change with its own HLC), to name
    /// the change a ``SupersededWrite`` replaced, with its record.
    private var writers: [HLC: (id: EventID, key: RecordKey)] = [:]
    /// Replaced writes per record, until their device writes those fields again.
    private var replaced: [RecordKey: [Replaced]] = [:]

    public init() {}

    /// Records what applying `batch` did.
    public mutating func record(_ batch: ChangeBatch, _ outcome: ServerEngine.PushOutcome) {
        let applied = Set(outcome.applied.map(\.id))
        let duplicates = Set(outcome.results.compactMap { result -> EventID? in
            if case .duplicate(let id, _, _) = result { return id }
            return nil
        })
        for change in batch.changes where !duplicates.contains(change.id) {
            // A device writing a field again makes its earlier, replaced write of it moot.
            if var open = replaced[change.key] {
                for index in open.indices where open[index].node == change.hlc.node && open[index].id != change.id {
                    let again = change.operation == .delete || open[index].deleted
                        ? open[index].fields : open[index].fields.intersection(change.fields.keys)
                    losses[open[index].id, default: Loss()].overwritten.formUnion(again)
                    open[index].fields.subtract(again)
                }
                open.removeAll { $0.fields.isEmpty }
                replaced[change.key] = open.isEmpty ? nil : open
            }
            if applied.contains(change.id) { writers[change.hlc] = (change.id, change.key) }
        }
        for (id, lost) in outcome.applied {
            applications[id, default: 0] += 1
            if !lost.isEmpty { losses[id, default: Loss()].fields.formUnion(lost) }
        }
        for (id, conflicts) in outcome.rejected {
            losses[id, default: Loss()].fields.formUnion(conflicts)
            rejected.insert(id)
        }
        for write in outcome.superseded {
            guard let (id, key) = writers[write.hlc] else { continue }
            losses[id, default: Loss()].fields.formUnion(write.fields)
            replaced[key, default: []].append(Replaced(id: id, node: write.hlc.node, fields: Set(write.fields), deleted: write.deleted))
        }
    }
}
