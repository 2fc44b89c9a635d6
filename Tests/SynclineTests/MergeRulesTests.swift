import Syncline
import SynclineTesting
import Testing

/// ``MergeRules`` as a pure function (DESIGN §4), one row per rule: a sequence of changes applied
/// to a record that starts absent, and what the record and each answer must be. In rows marked
/// `bothOrders` the last two steps are concurrent (neither saw the other): applied in either
/// order they must leave the same record, or convergence would depend on who pushed first.
@Suite("Merge rules")
struct MergeRulesTests {
    static let alice: UInt64 = 0xA
    static let bob: UInt64 = 0xB

    /// One change of a row: who writes what, at which HLC, having seen which seq.
    struct Step: Sendable {
        var node: UInt64
        var millis: UInt64
        var counter: UInt16 = 0
        var fields: [String: Value] = [:]
        var delete = false
        var base: UInt64 = 0
        var mode: ConflictMode = .lww
    }

    enum Answer: Equatable, Sendable {
        case applied, unchanged, rejected([String])
    }

    struct Row: Sendable, CustomTestStringConvertible {
        var rule: String
        var steps: [Step]
        /// The record's live fields afterwards; nil when it is deleted or absent.
        var fields: [String: Value]?
        /// The answer to the last step, and the fields it lost.
        var last: Answer
        var lost: [String] = []
        var bothOrders = false
        var testDescription: String { rule }
    }

    static let rows: [Row] = [
        Row(
            rule: "lww: on a concurrent field the greater HLC wins",
            steps: [Step(node: alice, millis: 100, fields: ["title": "a"]), Step(node: bob, millis: 200, fields: ["title": "b"])],
            fields: ["title": "b"], last: .applied, bothOrders: true
        ),
        Row(
            rule: "lww: the older concurrent write loses and is told so",
            steps: [Step(node: bob, millis: 200, fields: ["title": "b"]), Step(node: alice, millis: 100, fields: ["title": "a"])],
            fields: ["title": "b"], last: .unchanged, lost: ["title"]
        ),
        Row(
            rule: "lww: equal time and counter, the greater node wins, in both orders",
            steps: [
                Step(node: alice, millis: 100, counter: 3, fields: ["title": "a"]),
                Step(node: bob, millis: 100, counter: 3, fields: ["title": "b"]),
            ],
            fields: ["title": "b"], last: .applied, bothOrders: true
        ),
        Row(
            rule: "lww: equal time, the greater counter wins, in both orders",
            steps: [
                Step(node: bob, millis: 100, counter: 1, fields: ["title": "b"]),
                Step(node: alice, millis: 100, counter: 2, fields: ["title": "a"]),
            ],
            fields: ["title": "a"], last: .applied, bothOrders: true
        ),
        Row(
            rule: "lww: a write that saw the other is not concurrent, whatever its HLC",
            steps: [Step(node: alice, millis: 300, fields: ["title": "a"]), Step(node: bob, millis: 100, fields: ["title": "b"], base: 1)],
            fields: ["title": "b"], last: .applied
        ),
        Row(
            rule: "lww: a device is never concurrent with itself",
            steps: [Step(node: alice, millis: 300, fields: ["title": "a1"]), Step(node: alice, millis: 100, fields: ["title": "a2"])],
            fields: ["title": "a2"], last: .applied
        ),
        Row(
            rule: "lww: fields nobody else wrote take the incoming value; concurrent ones are merged per field",
            steps: [
                Step(node: alice, millis: 300, fields: ["title": "a", "done": false]),
                Step(node: bob, millis: 200, fields: ["title": "b", "note": "n"]),
            ],
            fields: ["title": "a", "done": false, "note": "n"], last: .applied, lost: ["title"], bothOrders: true
        ),
        Row(
            rule: "reject: a concurrent field rejects the whole change and changes nothing",
            steps: [
                Step(node: alice, millis: 100, fields: ["title": "a"]),
                Step(node: bob, millis: 200, fields: ["title": "b", "note": "n"], mode: .reject),
            ],
            fields: ["title": "a"], last: .rejected(["title"]), lost: ["title"]
        ),
        Row(
            rule: "reject: a change that saw every write goes through",
            steps: [Step(node: alice, millis: 100, fields: ["title": "a"]), Step(node: bob, millis: 50, fields: ["title": "b"], base: 1, mode: .reject)],
            fields: ["title": "b"], last: .applied
        ),
        Row(
            rule: "force: the incoming value wins even when older and concurrent",
            steps: [Step(node: alice, millis: 500, fields: ["title": "a"]), Step(node: bob, millis: 100, fields: ["title": "b"], mode: .force)],
            fields: ["title": "b"], last: .applied
        ),
        Row(
            rule: "delete newer than a concurrent write removes the record, in both orders",
            steps: [
                Step(node: alice, millis: 100, fields: ["title": "a", "done": false]),
                Step(node: alice, millis: 150, fields: ["title": "a2"], base: 1),
                Step(node: bob, millis: 200, delete: true, base: 1),
            ],
            fields: nil, last: .applied, bothOrders: true
        ),
        Row(
            rule: "delete older than a concurrent write leaves only the newer field alive, in both orders",
            steps: [
                Step(node: alice, millis: 100, fields: ["title": "a", "done": false]),
                Step(node: alice, millis: 300, fields: ["title": "a2"], base: 1),
                Step(node: bob, millis: 200, delete: true, base: 1),
            ],
            fields: ["title": "a2"], last: .applied, lost: ["title"], bothOrders: true
        ),
        Row(
            rule: "delete that saw every write removes the record whatever the HLCs",
            steps: [Step(node: alice, millis: 300, fields: ["title": "a"]), Step(node: bob, millis: 100, delete: true, base: 1)],
            fields: nil, last: .applied
        ),
        Row(
            rule: "delete in reject mode against a concurrent write is rejected",
            steps: [Step(node: alice, millis: 100, fields: ["title": "a"]), Step(node: bob, millis: 200, delete: true, mode: .reject)],
            fields: ["title": "a"], last: .rejected(["title"]), lost: ["title"]
        ),
        Row(
            rule: "deleting a record that does not exist does nothing",
            steps: [Step(node: bob, millis: 200, delete: true)],
            fields: nil, last: .unchanged
        ),
        Row(
            rule: "revival: a concurrent write newer than the delete brings back only its own fields",
            steps: [
                Step(node: alice, millis: 100, fields: ["title": "a", "done": false]),
                Step(node: bob, millis: 200, delete: true, base: 1),
                Step(node: alice, millis: 300, fields: ["done": true], base: 1),
            ],
            fields: ["done": true], last: .applied
        ),
        Row(
            rule: "revival: a concurrent write older than the delete stays deleted and is told so",
            steps: [
                Step(node: alice, millis: 100, fields: ["title": "a"]),
                Step(node: bob, millis: 200, delete: true, base: 1),
                Step(node: alice, millis: 150, fields: ["title": "a2"], base: 1),
            ],
            fields: nil, last: .unchanged, lost: ["title"]
        ),
        Row(
            rule: "revival: a write that saw the delete brings the record back, whatever its HLC",
            steps: [
                Step(node: alice, millis: 100, fields: ["title": "a", "done": false]),
                Step(node: bob, millis: 200, delete: true, base: 1),
                Step(node: alice, millis: 50, fields: ["title": "new"], base: 2),
            ],
            fields: ["title": "new"], last: .applied
        ),
        Row(
            rule: "reject against a concurrent delete",
            steps: [
                Step(node: alice, millis: 100, fields: ["title": "a"]),
                Step(node: bob, millis: 200, delete: true, base: 1),
                Step(node: alice, millis: 300, fields: ["title": "a2"], base: 1, mode: .reject),
            ],
            fields: nil, last: .rejected(["title"]), lost: ["title"]
        ),
    ]

    @Test(arguments: rows)
    func rule(_ row: Row) throws {
        let (record, outcomes) = try Self.apply(row.steps)
        #expect(Self.visible(record) == row.fields, "record after the steps")
        let last = try #require(outcomes.last)
        #expect(Self.answer(last) == row.last, "answer to the last step")
        #expect(last.lost.sorted() == row.lost, "fields the last step lost")
        if row.bothOrders {
            var swapped = row.steps
            swapped.swapAt(swapped.count - 2, swapped.count - 1)
            let (other, _) = try Self.apply(swapped)
            #expect(Self.visible(other) == row.fields, "the same record when the two concurrent writes arrive the other way round")
        }
    }

    /// Which applied writes the last step replaces (issue 11 item 5): only a concurrent write of
    /// another device that the last step overwrites, removes, or (for a delete) undoes. The
    /// device that made it learns from this in its next pull that it lost.
    @Test func theLastStepNamesTheConcurrentWritesItReplaced() throws {
        let first = Step(node: Self.alice, millis: 50, fields: ["title": "t", "done": false])
        let aliceEdit = Step(node: Self.alice, millis: 100, fields: ["title": "a"], base: 1)
        let aliceHLC = try HLC(wallMillis: 100, counter: 0, node: Self.alice)
        let cases: [(String, [Step], [SupersededWrite])] = [
            ("lww: a later concurrent write replaces", [first, aliceEdit, Step(node: Self.bob, millis: 200, fields: ["title": "b"], base: 1)],
             [SupersededWrite(hlc: aliceHLC, seq: 3, fields: ["title"])]),
            ("lww: a write that saw it replaces nothing concurrent", [first, aliceEdit, Step(node: Self.bob, millis: 200, fields: ["title": "b"], base: 2)], []),
            ("lww: the device's own later write", [first, aliceEdit, Step(node: Self.alice, millis: 200, fields: ["title": "b"], base: 1)], []),
            ("lww: an older concurrent write loses and replaces nothing", [first, aliceEdit, Step(node: Self.bob, millis: 90, fields: ["title": "b"], base: 1)], []),
            ("force replaces even a newer one", [first, aliceEdit, Step(node: Self.bob, millis: 90, fields: ["title": "b"], base: 1, mode: .force)],
             [SupersededWrite(hlc: aliceHLC, seq: 3, fields: ["title"])]),
            ("reject replaces nothing", [first, aliceEdit, Step(node: Self.bob, millis: 200, fields: ["title": "b"], base: 1, mode: .reject)], []),
            ("a later concurrent delete removes the field", [first, aliceEdit, Step(node: Self.bob, millis: 200, delete: true, base: 1)],
             [SupersededWrite(hlc: aliceHLC, seq: 3, fields: ["title"])]),
            ("an older concurrent delete leaves the newer field", [first, aliceEdit, Step(node: Self.bob, millis: 90, delete: true, base: 1)], []),
            ("a later concurrent write undoes a delete", [first, Step(node: Self.alice, millis: 100, delete: true, base: 1), Step(node: Self.bob, millis: 200, fields: ["title": "b"], base: 1)],
             [SupersededWrite(hlc: aliceHLC, seq: 3, fields: ["title"], deleted: true)]),
        ]
        for (rule, steps, expected) in cases {
            let (record, outcomes) = try Self.apply(steps)
            #expect(outcomes.last?.superseded == expected, "\(rule)")
            #expect(record?.superseded == expected, "\(rule): kept on the record")
            // A pull from before the replacement carries it; one from after does not.
            #expect(record?.remoteChange(after: 2).superseded == expected, "\(rule): in a pull after 2")
            #expect(record?.remoteChange(after: 3).superseded.isEmpty != false, "\(rule): not in a pull after 3")
        }
    }

    /// A hot record keeps only the newest ``SupersededWrite/keptPerRecord`` replaced writes.
    @Test func aRecordKeepsABoundedListOfReplacedWrites() throws {
        var steps = [Step(node: Self.alice, millis: 10, fields: ["n": 0])]
        for number in 1...(SupersededWrite.keptPerRecord + 8) {
            // Alternating devices, each not having seen the other's last write.
            steps.append(Step(node: number % 2 == 0 ? Self.alice : Self.bob, millis: UInt64(10 + number), fields: ["n": .int(Int64(number))], base: UInt64(number - 1)))
        }
        let (record, _) = try Self.apply(steps)
        let kept = try #require(record?.superseded)
        #expect(kept.count == SupersededWrite.keptPerRecord)
        #expect(kept.last?.seq == UInt64(steps.count), "the newest is kept")
        #expect(kept.first?.seq == UInt64(steps.count - SupersededWrite.keptPerRecord + 1), "the oldest are dropped")
    }

    /// Applies the steps in order, each at the next seq when it writes, as the engine does.
    static func apply(_ steps: [Step]) throws -> (ServerRecord?, [MergeRules.Outcome]) {
        var record: ServerRecord?
        var head: UInt64 = 0
        var outcomes: [MergeRules.Outcome] = []
        for (number, step) in steps.enumerated() {
            let change = Change(
                id: Sample.eventID(UInt64(number + 1)), collection: Sample.collection(), record: Sample.id("r"),
                operation: step.delete ? .delete : .upsert, fields: step.fields,
                hlc: try HLC(wallMillis: step.millis, counter: step.counter, node: step.node), base: step.base, mode: step.mode
            )
            let outcome = MergeRules.apply(change, to: record, seq: head + 1)
            if outcome.consumedSeq { head += 1 }
            record = outcome.record
            outcomes.append(outcome)
        }
        return (record, outcomes)
    }

    static func visible(_ record: ServerRecord?) -> [String: Value]? {
        guard let record, !record.deleted else { return nil }
        return record.fields.mapValues(\.value)
    }

    static func answer(_ outcome: MergeRules.Outcome) -> Answer {
        switch outcome.result {
        case .rejected(_, let conflicts, _): return .rejected(conflicts)
        case .applied, .duplicate: return outcome.consumedSeq ? .applied : .unchanged
        }
    }
}
