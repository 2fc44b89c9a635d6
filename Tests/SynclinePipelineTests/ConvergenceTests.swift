import Foundation
import Synchronization
import Syncline
import SynclineTesting
import Testing

/// The randomized convergence test (DESIGN §7): devices write concurrently on a small id space
/// (so conflicts are frequent), go offline, restart from their own stores, and meet every fault
/// the transport can inject. At quiescence:
/// - every device equals the server, field by field (invariant 2);
/// - every write acknowledged to a caller reached the server (1);
/// - no change was applied twice (4);
/// - every local write that lost was reported exactly once (7).
/// A failure names its seed; rerun it with that seed alone.
@Suite("Convergence", .timeLimit(.minutes(5)))
struct ConvergenceTests {
    static let devices = 5
    static let operations = 2_000

    static let cases: [(StoreKind, UInt64)] =
        (1...50).map { (.inMemory, UInt64($0)) } + (101...105).map { (.sqlite, UInt64($0)) } + (201...205).map { (.leveldb, UInt64($0)) }

    @Test(arguments: cases)
    func devicesConverge(_ kind: StoreKind, seed: UInt64) async throws {
        let simulation = try Simulation(kind: kind, seed: seed)
        try await simulation.run(operations: Self.operations)
        try await simulation.quiesce()
        try await simulation.verify()
    }
}

/// Simulated time shared by all devices (each adds its own skew), so HLCs replay from the seed.
final class SimulatedTime: Sendable {
    private let millis = Atomic<UInt64>(1_800_000_000_000)
    func advance(_ by: UInt64) { millis.add(by, ordering: .relaxed) }
    var now: UInt64 { millis.load(ordering: .relaxed) }
}

/// Collects conflict reports across a device's restarts.
actor ReportLog {
    private(set) var reports: [ConflictReport] = []
    func add(_ report: ConflictReport) { reports.append(report) }
}

final class Simulation {
    struct Device {
        var fixture: StoreFixture
        var transport: InMemoryTransport
        var client: SyncClient
        var listener: Task<Void, Never>
        var skew: Int64
        /// The last change returned to the caller per record: it must reach the server.
        var lastChange: [RecordKey: EventID] = [:]
        var online = true
    }

    let kind: StoreKind
    let seed: UInt64
    let server: InMemorySyncServer
    let namespace = try! Namespace("sim")
    let collection = try! CollectionName("items")
    let time = SimulatedTime()
    let reports = ReportLog()
    var random: SeededRandom
    var devices: [Device] = []
    var restarts = 0
    var syncFailures = 0

    static let faults = InMemoryTransport.Faults(
        dropRequest: 0.05, dropResponse: 0.05, duplicate: 0.05, delay: 0.05, delayDuration: .microseconds(100)
    )

    init(kind: StoreKind, seed: UInt64) throws {
        self.kind = kind
        self.seed = seed
        let time = self.time
        // The server's clock is the simulation's too: device clocks are within ±2 s of it.
        server = InMemorySyncServer(configuration: .init(clock: { time.now }))
        random = SeededRandom(seed: seed)
        for index in 0..<ConvergenceTests.devices {
            let fixture = try StoreFixture(kind)
            let transport = InMemoryTransport(server: server, namespace: namespace, faults: Self.faults, seed: seed &* 31 &+ UInt64(index))
            let skew = Int64(Int.random(in: -2_000...2_000, using: &random))
            let (client, listener) = try open(fixture, transport, skew: skew)
            devices.append(Device(fixture: fixture, transport: transport, client: client, listener: listener, skew: skew))
        }
    }

    func open(_ fixture: StoreFixture, _ transport: InMemoryTransport, skew: Int64) throws -> (SyncClient, Task<Void, Never>) {
        let time = self.time
        let client = try SyncClient(
            namespace: namespace, store: try fixture.open(), transport: transport,
            configuration: .init(
                maxBatchChanges: 7, pageSize: 5, pushAttempts: 2, initialBackoff: .microseconds(100),
                maxBackoff: .microseconds(500), eventBufferSize: 1_000_000,
                wallClock: { UInt64(Int64(time.now) + skew) }
            )
        )
        let events = client.events
        let reports = self.reports
        let listener = Task {
            for await event in events {
                if case .conflictDetected(let report) = event { await reports.add(report) }
            }
        }
        return (client, listener)
    }

    func key(_ number: Int) -> RecordKey { RecordKey(collection: collection, id: try! RecordID("r\(number)")) }

    func randomFields(count: Int) -> [String: Value] {
        var fields: [String: Value] = [:]
        let names = ["a", "b", "c", "d"]
        for _ in 0..<count {
            let name = names[Int.random(in: 0..<names.count, using: &random)]
            fields[name] = Int.random(in: 0..<3, using: &random) == 0
                ? .string("s\(Int.random(in: 0..<5, using: &random))") : .int(Int64(Int.random(in: 0..<5, using: &random)))
        }
        return fields
    }

    func run(operations: Int) async throws {
        for _ in 0..<operations {
            time.advance(UInt64.random(in: 0...3, using: &random))
            let index = Int.random(in: 0..<devices.count, using: &random)
            let roll = Int.random(in: 0..<100, using: &random)
            let client = devices[index].client
            switch roll {
            case 0..<40:
                let key = key(Int.random(in: 0..<6, using: &random))
                let fields = randomFields(count: Int.random(in: 1...3, using: &random))
                if let change = try await client.upsert(key, fields: fields, replacing: false) { devices[index].lastChange[key] = change.id }
            case 40..<55:
                let key = key(Int.random(in: 0..<6, using: &random))
                let fields = randomFields(count: Int.random(in: 1...4, using: &random))
                if let change = try await client.upsert(key, fields: fields, replacing: true) { devices[index].lastChange[key] = change.id }
            case 55..<67:
                let key = key(Int.random(in: 0..<6, using: &random))
                if let change = try await client.delete(key) { devices[index].lastChange[key] = change.id }
            case 67..<90:
                do {
                    try await client.sync()
                } catch let error as SyncError where error.code == .transportUnavailable {
                    syncFailures += 1  // an injected fault or an offline device: the changes stay queued
                }
            case 90..<95:
                devices[index].online.toggle()
                devices[index].transport.setConnected(devices[index].online)
            default:
                try await restart(index)
            }
        }
    }

    func restart(_ index: Int) async throws {
        restarts += 1
        devices[index].client.close()
        await devices[index].listener.value
        let (client, listener) = try open(devices[index].fixture, devices[index].transport, skew: devices[index].skew)
        devices[index].client = client
        devices[index].listener = listener
    }

    /// Everyone online, no faults, sync until every outbox is empty and everyone has the head.
    func quiesce() async throws {
        for device in devices {
            device.transport.setConnected(true)
            device.transport.setFaults(.none)
        }
        for _ in 0..<20 {
            for device in devices { try await device.client.sync() }
            var pending = 0
            for device in devices { pending += try await device.client.pendingCount() }
            if pending == 0 {
                for device in devices { try await device.client.sync() }
                return
            }
        }
        Issue.record("seed \(seed) (\(kind)): outboxes did not drain")
    }

    func verify() async throws {
        let context = "seed \(seed) (\(kind), \(restarts) restarts, \(syncFailures) failed syncs)"
        let serverRecords = await server.records(namespace: namespace)
        var expected: [RecordID: [String: Value]] = [:]
        for (key, record) in serverRecords where !record.deleted { expected[key.id] = record.fields.mapValues(\.value) }

        // Invariant 2: every device equals the server, field by field.
        for (index, device) in devices.enumerated() {
            let visible = try await device.client.visibleRecords(in: collection)
            #expect(visible == expected, "\(context): device \(index) differs from the server")
            if visible != expected, ProcessInfo.processInfo.environment["SYNCLINE_SIM_DEBUG"] != nil {
                for id in Set(visible.keys).union(expected.keys).sorted() where visible[id] != expected[id] {
                    let key = RecordKey(collection: collection, id: id)
                    print("DIFF device \(index) \(id): device \(String(describing: visible[id])) server \(String(describing: expected[id]))")
                    print("  device record: \(String(describing: try await device.client.record(key)))")
                    print("  server record: \(String(describing: serverRecords[key]))")
                }
            }
        }
        // Invariant 1: every write acknowledged to a caller reached the server.
        let applications = await server.applications(namespace: namespace)
        for (index, device) in devices.enumerated() {
            let missing = device.lastChange.filter { applications[$0.value] == nil }
            #expect(missing.isEmpty, "\(context): device \(index) lost acknowledged writes \(missing.keys.sorted())")
        }
        // Invariant 4: nothing applied twice.
        let twice = applications.filter { $0.value != 1 }
        #expect(twice.isEmpty, "\(context): changes applied more than once: \(twice.count)")
        // Invariant 7: every lost write reported exactly once, and only those.
        for device in devices {
            device.client.close()
            await device.listener.value
        }
        let losses = await server.losses(namespace: namespace)
        let reported = await reports.reports
        var reportedByChange: [EventID: [String]] = [:]
        var duplicates = 0
        for report in reported {
            if reportedByChange.updateValue(report.fields.sorted(), forKey: report.changeID) != nil { duplicates += 1 }
        }
        #expect(duplicates == 0, "\(context): \(duplicates) conflicts reported twice")
        #expect(reportedByChange == losses.mapValues { $0.sorted() }, "\(context): reported conflicts differ from the server's losses (\(reportedByChange.count) vs \(losses.count))")
        #expect(!losses.isEmpty, "\(context): a run this contended should have conflicts")
    }
}
