import Foundation
import NIOHTTP1
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Testing

/// A device is not sent back its own writes (issue 12 §8, W1: after pushing 20,000 changes a
/// device pulled 19,968 of them back). A pull with `device=<node>` leaves out the entries that
/// carry only that device's writes; a snapshot (after 0), an entry with another device's field, a
/// reset and an entry reporting a replaced write still come.
@Suite("Own writes are not pulled back", .timeLimit(.minutes(2)))
struct OwnWritesTests {
    static let alice: UInt64 = 0xA11CE
    static let bob: UInt64 = 0xB0B

    func change(_ number: UInt64, _ record: String, _ fields: [String: Value], node: UInt64, base: UInt64 = 0, delete: Bool = false) -> Change {
        Change(
            id: EventID(high: (1_700_000_000_000 + number) << 16 | 0x7000, low: 0x8000_0000_0000_0000 | number),
            collection: Sample.collection(), record: Sample.id(record), operation: delete ? .delete : .upsert,
            fields: delete ? [:] : fields, hlc: HLC(packed: (WallClock.nowMillis() + number) << 16, node: node), base: base
        )
    }

    @Test(arguments: WireCodec.Format.allCases)
    func aPullLeavesOutWhatOnlyTheAskingDeviceWrote(_ format: WireCodec.Format) async throws {
        try await LiveServer.with { server in
            let namespace = try Namespace("own")
            let transport = server.rest(namespace, format: format)
            _ = try await transport.push(ChangeBatch(changes: [change(1, "first", ["n": 0], node: Self.bob)]))
            let cursor = try await transport.pull(after: 0, from: 0, limit: 10).cursor
            _ = try await transport.push(ChangeBatch(changes: [
                change(2, "mine", ["n": 1], node: Self.alice),  // only Alice's field: left out for her
                change(3, "mixed", ["a": 1], node: Self.alice),
                change(4, "mixed", ["b": 2], node: Self.bob),  // Bob's field too: it comes
                change(5, "gone", ["n": 1], node: Self.alice),
            ]))
            _ = try await transport.push(ChangeBatch(changes: [change(6, "gone", [:], node: Self.alice, base: 5, delete: true)]))
            let all = try await transport.pull(after: cursor, from: cursor, limit: 10)
            #expect(all.changes.map(\.record.rawValue) == ["mine", "mixed", "gone"], "without device=, everything")
            let forAlice = try await transport.pull(after: cursor, from: cursor, limit: 10, collections: nil, leavingOut: Self.alice)
            #expect(forAlice.changes.map(\.record.rawValue) == ["mixed"], "her write and her delete are left out")
            #expect(forAlice.cursor == all.cursor && forAlice.hasMore == all.hasMore, "paging is the page's as read")
            let forBob = try await transport.pull(after: cursor, from: cursor, limit: 10, collections: nil, leavingOut: Self.bob)
            #expect(forBob.changes.map(\.record.rawValue) == ["mine", "mixed", "gone"])
            let snapshot = try await transport.pull(after: 0, from: 0, limit: 10, collections: nil, leavingOut: Self.alice)
            #expect(snapshot.changes.map(\.record.rawValue) == ["first", "mine", "mixed"], "a snapshot carries everything live")

            // A write of Alice that replaced a concurrent one of Bob's still comes: the entry reports
            // Bob's replaced write (and a device is never sent less than it needs).
            let before = try await transport.pull(after: 0, from: 0, limit: 10).cursor
            _ = try await transport.push(ChangeBatch(changes: [change(7, "raced", ["t": "bob"], node: Self.bob)]))
            _ = try await transport.push(ChangeBatch(changes: [change(8, "raced", ["t": "alice"], node: Self.alice, base: 0)]))
            let raced = try await transport.pull(after: before, from: before, limit: 10, collections: nil, leavingOut: Self.alice)
            #expect(raced.changes.map(\.record.rawValue) == ["raced"])
            #expect(raced.changes.first?.superseded.isEmpty == false)
        }
    }

    @Test func aBadDeviceParameterIs400() async throws {
        try await LiveServer.with { server in
            for bad in ["xyz", "", "12345678901234567", "-1"] {
                let answer = try await server.raw(.GET, "/v1/ns/own/changes?after=0&device=\(bad)")
                #expect(answer.status == 400, "device=\(bad)")
                #expect(answer.errorCode == "invalid_parameter", "device=\(bad): \(answer.errorCode ?? "no code")")
            }
        }
    }

    /// Through the client: a device that pushed 500 changes pulls none of them back in the same
    /// sync, while another device's writes still reach it.
    @Test func aSyncingDevicePullsNoneOfItsOwnWritesBack() async throws {
        try await LiveServer.with { server in
            let namespace = try Namespace("own-client")
            let alice = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: server.rest(namespace))
            let bob = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: server.rest(namespace))
            // A namespace that has something, so Alice's cursor is past 0 (a pull from 0 is a
            // snapshot, which carries everything: it tells the device which records are gone).
            _ = try await bob.upsert(Sample.key("seed"), fields: ["n": 0])
            try await bob.sync()
            try await alice.sync()
            #expect(try await alice.pullCursor() > 0)
            for index in 0..<500 { _ = try await alice.upsert(Sample.key("a\(index)"), fields: ["n": .int(Int64(index))]) }
            let first = try await alice.sync()
            #expect(first.pushed == 500)
            #expect(first.pulled == 0, "its own 500 writes did not come back (\(first.pulled))")
            _ = try await bob.upsert(Sample.key("from-bob"), fields: ["n": 1])
            #expect(try await bob.sync().pulled == 500, "Bob gets all of Alice's, not his own")
            let second = try await alice.sync()
            #expect(second.pulled == 1, "Bob's write still comes")
            #expect(try await alice.fields(of: Sample.key("a499")) == ["n": 499])
        }
    }
}
