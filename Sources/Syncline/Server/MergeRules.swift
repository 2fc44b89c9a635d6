/// The server's conflict rules (DESIGN §4), in one place: the in-memory reference server and the
/// real server backends both call ``apply(_:to:seq:)``, so they cannot disagree.
///
/// A change is *concurrent* for field `f` when the server's `f` was written by another device at a
/// seq greater than the change's `base`; a delete by another device after `base` is concurrent with
/// every field of an upsert. Per mode:
///
/// - `force`: the change wins everywhere.
/// - `reject`: any concurrent field rejects the whole change; the server returns its current
///   values for those fields and changes nothing.
/// - `lww`: a concurrent field keeps the greater `(hlc, node)`; fields that are not concurrent take
///   the incoming value. A write newer than a delete brings the record back with only the fields
///   written after the delete; a delete removes every field not newer than itself (fields newer
///   than the delete survive, so the result does not depend on arrival order).
///
/// A write that replaces a concurrent one the server had applied (a field, a delete undone, or
/// fields a delete removes) leaves a ``SupersededWrite`` on the record: the device whose write
/// was replaced learns from it, in its next pull, that it lost (invariant 7), even though its
/// push was answered `applied`.
public enum MergeRules {
    /// What applying one change did.
    public struct Outcome: Sendable {
        /// The record after the change (`nil` when there was none and still is none).
        public var record: ServerRecord?
        /// The answer for the device.
        public var result: PushResult
        /// Whether the change wrote anything (and so used `seq`).
        public var consumedSeq: Bool
        /// Fields (or, for a delete, surviving fields) on which the incoming change lost.
        public var lost: [String]
        /// Applied writes this change replaced (also appended to ``record``).
        public var superseded: [SupersededWrite] = []
    }

    /// Applies `change` to the server's copy of its record.
    /// - Parameters:
    ///   - current: the record as the server holds it, `nil` if it never existed.
    ///   - seq: the seq the change gets if it writes anything.
    public static func apply(_ change: Change, to current: ServerRecord?, seq: UInt64) -> Outcome {
        switch change.operation {
        case .upsert: return upsert(change, current, seq)
        case .delete: return delete(change, current, seq)
        }
    }

    static func isConcurrent(_ field: FieldState, with change: Change) -> Bool {
        field.seq > change.base && field.hlc.node != change.hlc.node
    }

    static func deleteIsConcurrent(_ record: ServerRecord, with change: Change) -> Bool {
        record.deletedSeq > change.base && (record.tombstone?.node ?? change.hlc.node) != change.hlc.node
    }

    private static func upsert(_ change: Change, _ current: ServerRecord?, _ seq: UInt64) -> Outcome {
        var record = current ?? ServerRecord(collection: change.collection, id: change.record)
        let names = change.fields.keys.sorted()
        let againstDelete = record.deleted && deleteIsConcurrent(record, with: change)
        let concurrent = names.filter { name in
            if record.deleted { return againstDelete }
            return record.fields[name].map { isConcurrent($0, with: change) } ?? false
        }

        if change.mode == .reject && !concurrent.isEmpty {
            return Outcome(
                record: current,
                result: .rejected(id: change.id, conflicts: concurrent, current: record.fields.filter { concurrent.contains($0.key) }),
                consumedSeq: false, lost: concurrent
            )
        }

        var winners: [String] = []
        var lost: [String] = []
        for name in names {
            let wins: Bool
            if change.mode == .force || !concurrent.contains(name) {
                wins = true
            } else if record.deleted {
                wins = change.hlc > (record.tombstone ?? .zero)
            } else {
                wins = change.hlc > record.fields[name]!.hlc
            }
            if wins { winners.append(name) } else { lost.append(name) }
        }

        // A record that did not exist, or a deleted one written again, comes (back) to life.
        let revives = record.deleted && (!winners.isEmpty || names.isEmpty && !againstDelete)
        let creates = current == nil
        guard !winners.isEmpty || revives || creates else {
            return Outcome(
                record: current, result: .applied(id: change.id, seq: record.seq, fields: record.fields.filter { names.contains($0.key) }),
                consumedSeq: false, lost: lost
            )
        }
        var replaced: [SupersededWrite] = []
        if revives {
            if againstDelete, let tombstone = record.tombstone {
                replaced = [SupersededWrite(hlc: tombstone, seq: seq, fields: winners, deleted: true)]
            }
            record.deleted = false
            record.fields = [:]
        } else {
            replaced = supersessions(of: record.fields, winners.filter { concurrent.contains($0) }, at: seq)
        }
        record.remember(replaced)
        for name in winners { record.fields[name] = FieldState(value: change.fields[name]!, hlc: change.hlc, seq: seq) }
        record.seq = seq
        return Outcome(
            record: record, result: .applied(id: change.id, seq: seq, fields: record.fields.filter { names.contains($0.key) }),
            consumedSeq: true, lost: lost, superseded: replaced
        )
    }

    private static func delete(_ change: Change, _ current: ServerRecord?, _ seq: UInt64) -> Outcome {
        guard var record = current, !record.deleted else {
            // Nothing to delete: a record never pushed, or one already deleted.
            return Outcome(record: current, result: .applied(id: change.id, seq: current?.seq ?? 0, fields: [:]), consumedSeq: false, lost: [])
        }
        let concurrent = record.fields.filter { isConcurrent($0.value, with: change) }.keys.sorted()
        if change.mode == .reject && !concurrent.isEmpty {
            return Outcome(
                record: current,
                result: .rejected(id: change.id, conflicts: concurrent, current: record.fields.filter { concurrent.contains($0.key) }),
                consumedSeq: false, lost: concurrent
            )
        }
        let survivors = change.mode == .lww
            ? record.fields.filter { concurrent.contains($0.key) && $0.value.hlc > change.hlc }
            : [:]
        let replaced = supersessions(of: record.fields, concurrent.filter { survivors[$0] == nil }, at: seq)
        record.remember(replaced)
        record.fields = survivors
        record.deleted = survivors.isEmpty
        record.tombstone = max(record.tombstone ?? change.hlc, change.hlc)
        record.deletedSeq = seq
        record.seq = seq
        return Outcome(
            record: record, result: .applied(id: change.id, seq: seq, fields: survivors), consumedSeq: true,
            lost: survivors.keys.sorted(), superseded: replaced
        )
    }

    /// The writes that set `names` in `fields`, replaced at `seq`: one ``SupersededWrite`` per
    /// write (the fields one change wrote share its HLC), oldest first.
    private static func supersessions(of fields: [String: FieldState], _ names: [String], at seq: UInt64) -> [SupersededWrite] {
        guard !names.isEmpty else { return [] }
        var byWrite: [HLC: [String]] = [:]
        for name in names {
            if let state = fields[name] { byWrite[state.hlc, default: []].append(name) }
        }
        return byWrite.sorted { $0.key < $1.key }.map { SupersededWrite(hlc: $0.key, seq: seq, fields: $0.value.sorted()) }
    }
}
