import Foundation
public import Syncline
import Synchronization

/// The server side of a convergence run: where devices connect, and the ground truth the run is
/// checked against.
public protocol SimulationServer: Sendable {
    /// A transport for one device (the simulation wraps it with fault injection).
    func transport(device: Int, namespace: Namespace) async throws -> any SyncTransport
    /// The server's live records of a collection, field by field.
    func liveRecords(namespace: Namespace, collection: CollectionName) async throws -> [RecordID: [String: Value]]
    /// The namespace's head seq.
    func head(namespace: Namespace) async throws -> UInt64
    /// How many times each event id was applied.
    func applications(namespace: Namespace) async -> [EventID: Int]
    /// The changes that lost on some fields (lww) or were rejected, with those fields.
    func losses(namespace: Namespace) async -> [EventID: LossLedger.Loss]
}

/// Simulated time shared by all devices (each adds its own skew), so HLCs replay from the seed.
public final class SimulatedTime: Sendable {
    private let millis: Atomic<UInt64>
    public init(start: UInt64 = 1_800_000_000_000) { millis = Atomic(start) }
    public func advance(_ by: UInt64) { millis.add(by, ordering: .relaxed) }
    public var now: UInt64 { millis.load(ordering: .relaxed) }
}

/// Collects conflict reports across a device's restarts.
actor ReportLog {
    private(set) var reports: [ConflictReport] = []
    func add(_ report: ConflictReport) { reports.append(report) }
}

/// The randomized convergence run (DESIGN §7): devices write concurrently on a small id space (so
/// conflicts are frequent), go offline, restart from their own stores, and meet every fault the
/// transport can inject. ``verify()`` then checks, at quiescence:
/// - every device equals the server, field by field (invariant 2);
/// - every write acknowledged to a caller reached the server (1);
/// - no change was applied twice (4);
/// - every local write that lost was reported exactly once (7).
/// Problems name the seed, so a failing run can be replayed alone.
public final class ConvergenceSimulation {
    struct Device {
        var fixture: StoreFixture
        var transport: FaultInjectingTransport
        var client: SyncClient
        var listener: Task<Void, Never>
        var skew: Int64
        /// The last change returned to the caller per record: it must reach the server.
        var lastChange: [RecordKey: EventID] = [:]
        var online = true
    }

    public static let faults = TransportFaults(
        dropRequest: 0.05, dropResponse: 0.05, duplicate: 0.05, delay: 0.05, delayDuration: .microseconds(100)
    )

    public let seed: UInt64
    let label: String
    let server: any SimulationServer
    let namespace: Namespace
    let collection = try! CollectionName("items")
    let time: SimulatedTime
    let reports = ReportLog()
    let recordCount: Int
    var random: SeededRandom
    var devices: [Device] = []
    public private(set) var restarts = 0
    public private(set) var syncFailures = 0

    /// - Parameters:
    ///   - stores: each device's store kind, in turn.
    ///   - records: the id space (small, so conflicts are frequent).
    public init(
        server: any SimulationServer, time: SimulatedTime, stores: [StoreKind], devices count: Int, seed: UInt64,
        records: Int = 6, namespace: Namespace = try! Namespace("sim"), label: String = ""
    ) async throws {
        self.server = server
        self.time = time
        self.seed = seed
        self.namespace = namespace
        self.recordCount = records
        self.label = label
        random = SeededRandom(seed: seed)
        for index in 0..<count {
            let fixture = try StoreFixture(stores[index % stores.count])
            let base = try await server.transport(device: index, namespace: namespace)
            let transport = FaultInjectingTransport(base, faults: Self.faults, seed: seed &* 31 &+ UInt64(index))
            let skew = Int64(Int.random(in: -2_000...2_000, using: &random))
            let (client, listener) = try open(fixture, transport, skew: skew)
            devices.append(Device(fixture: fixture, transport: transport, client: client, listener: listener, skew: skew))
        }
    }

    func open(_ fixture: StoreFixture, _ transport: FaultInjectingTransport, skew: Int64) throws -> (SyncClient, Task<Void, Never>) {
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

    /// Random operations: upserts (partial and whole), deletes, syncs, offline periods, restarts.
    public func run(operations: Int) async throws {
        for step in 0..<operations {
            // Long synchronous runs would starve other tests on a small cooperative pool.
            if step % 500 == 499 { await Task.yield() }
            time.advance(UInt64.random(in: 0...3, using: &random))
            let index = Int.random(in: 0..<devices.count, using: &random)
            let roll = Int.random(in: 0..<100, using: &random)
            let client = devices[index].client
            switch roll {
            case 0..<40:
                let key = key(Int.random(in: 0..<recordCount, using: &random))
                let fields = randomFields(count: Int.random(in: 1...3, using: &random))
                if let change = try await client.upsert(key, fields: fields, replacing: false) { devices[index].lastChange[key] = change.id }
            case 40..<55:
                let key = key(Int.random(in: 0..<recordCount, using: &random))
                let fields = randomFields(count: Int.random(in: 1...4, using: &random))
                if let change = try await client.upsert(key, fields: fields, replacing: true) { devices[index].lastChange[key] = change.id }
            case 55..<67:
                let key = key(Int.random(in: 0..<recordCount, using: &random))
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

    /// Closes a device's client and opens it again from its own store.
    public func restart(_ index: Int) async throws {
        restarts += 1
        devices[index].client.close()
        await devices[index].listener.value
        let (client, listener) = try open(devices[index].fixture, devices[index].transport, skew: devices[index].skew)
        devices[index].client = client
        devices[index].listener = listener
    }

    /// Everyone online, no faults; syncs until every outbox is empty and everyone has the head.
    /// - Returns: a problem when the outboxes did not drain.
    public func quiesce(rounds: Int = 20) async throws -> [String] {
        for device in devices {
            device.transport.setConnected(true)
            device.transport.setFaults(.none)
        }
        for _ in 0..<rounds {
            for device in devices { try await device.client.sync() }
            var pending = 0
            for device in devices { pending += try await device.client.pendingCount() }
            if pending == 0 {
                // Quiet: every device pulls until it has the head (a live transport's pages may
                // trail the server by a moment).
                let head = try await server.head(namespace: namespace)
                for device in devices {
                    var attempts = 0
                    while try await device.client.pullCursor() < head {
                        attempts += 1
                        if attempts > 100 { return ["\(context): a device did not reach the head \(head)"] }
                        try await device.client.sync()
                    }
                }
                return []
            }
        }
        return ["\(context): outboxes did not drain"]
    }

    var context: String { "seed \(seed) (\(label), \(restarts) restarts, \(syncFailures) failed syncs)" }

    /// Checks invariants 1, 2, 4 and 7, then closes the devices.
    /// - Parameter checkReports: check invariant 7 (every lost write reported once) against the
    ///   server's ``SimulationServer/losses(namespace:)``; `false` for a server that keeps no ledger
    ///   of its merges (server processes that are killed mid-run).
    /// - Returns: every problem found, each naming the seed.
    public func verify(expectConflicts: Bool = true, checkReports: Bool = true) async throws -> [String] {
        var problems: [String] = []
        let expected = try await server.liveRecords(namespace: namespace, collection: collection)
        // Invariant 2: every device equals the server, field by field.
        for (index, device) in devices.enumerated() {
            let visible = try await device.client.visibleRecords(in: collection)
            if visible != expected {
                let differing = Set(visible.keys).union(expected.keys).filter { visible[$0] != expected[$0] }.map(\.rawValue).sorted()
                problems.append("\(context): device \(index) differs from the server on \(differing)")
                if ProcessInfo.processInfo.environment["SYNCLINE_SIM_DEBUG"] != nil {
                    for id in differing {
                        let key = RecordKey(collection: collection, id: try RecordID(id))
                        print("DIFF \(ObjectIdentifier(device.transport.base as AnyObject)) device \(index) \(id): device \(String(describing: visible[key.id])) server \(String(describing: expected[key.id]))")
                        print("  device record: \(String(describing: try await device.client.record(key)))")
                    }
                }
            }
        }
        // Invariant 1: every write acknowledged to a caller reached the server.
        let applications = await server.applications(namespace: namespace)
        for (index, device) in devices.enumerated() {
            let missing = device.lastChange.filter { applications[$0.value] == nil }
            if !missing.isEmpty { problems.append("\(context): device \(index) lost acknowledged writes \(missing.keys.map(\.id.rawValue).sorted())") }
        }
        // Invariant 4: nothing applied twice.
        let twice = applications.filter { $0.value != 1 }
        if !twice.isEmpty { problems.append("\(context): \(twice.count) changes applied more than once") }
        // Invariant 7: every lost write reported exactly once, and only those.
        for device in devices {
            device.client.close()
            await device.listener.value
        }
        guard checkReports else { return problems }
        let losses = await server.losses(namespace: namespace)
        // A change may be reported twice for different fields (lost on some at its push, and
        // replaced on others later); a field reported twice for one change is a duplicate. Every
        // field reported must have been lost; every lost field must be reported, except those
        // the device wrote again itself after losing them (see `LossLedger`).
        var reportedByChange: [EventID: Set<String>] = [:]
        var duplicates = 0
        for report in await reports.reports {
            let before = reportedByChange[report.changeID]
            if let before, !before.isDisjoint(with: report.fields) || report.fields.isEmpty { duplicates += 1 }
            reportedByChange[report.changeID, default: []].formUnion(report.fields)
        }
        if duplicates > 0 { problems.append("\(context): \(duplicates) conflicts reported twice") }
        var unfounded: [EventID] = []
        var unreported: [EventID] = []
        for id in Set(reportedByChange.keys).union(losses.keys) {
            let reported = reportedByChange[id] ?? []
            let loss = losses[id] ?? LossLedger.Loss()
            if !reported.isSubset(of: loss.fields) || (reportedByChange[id] != nil && losses[id] == nil) { unfounded.append(id) }
            if !loss.required.isSubset(of: reported) { unreported.append(id) }
            if ProcessInfo.processInfo.environment["SYNCLINE_SIM_DEBUG"] != nil, unfounded.last == id || unreported.last == id {
                print("LOSS \(id): reported \(reported.sorted()) lost \(loss.fields.sorted()) overwritten \(loss.overwritten.sorted())")
            }
        }
        if !unfounded.isEmpty { problems.append("\(context): \(unfounded.count) changes reported as lost on fields they did not lose") }
        if !unreported.isEmpty { problems.append("\(context): \(unreported.count) lost changes not reported (of \(losses.count))") }
        if expectConflicts && losses.isEmpty { problems.append("\(context): a run this contended should have conflicts") }
        return problems
    }
}

/// The in-memory reference server as a simulation server.
public struct InMemorySimulationServer: SimulationServer {
    public let server: InMemorySyncServer

    public init(server: InMemorySyncServer) { self.server = server }

    public func transport(device: Int, namespace: Namespace) -> any SyncTransport {
        InMemoryTransport(server: server, namespace: namespace)
    }

    public func liveRecords(namespace: Namespace, collection: CollectionName) async -> [RecordID: [String: Value]] {
        var result: [RecordID: [String: Value]] = [:]
        for (key, record) in await server.records(namespace: namespace) where !record.deleted && key.collection == collection {
            result[key.id] = record.fields.mapValues(\.value)
        }
        return result
    }

    public func head(namespace: Namespace) async -> UInt64 { await server.head(namespace: namespace) }

    public func applications(namespace: Namespace) async -> [EventID: Int] { await server.applications(namespace: namespace) }

    public func losses(namespace: Namespace) async -> [EventID: LossLedger.Loss] { await server.losses(namespace: namespace) }
}
