import Foundation
import Synchronization
import Syncline
import SynclineLevelDB
import SynclineNetwork
import SynclineSQLite
import SynclineServer

/// Counts the plain binary size of what a transport carries, to report the compression ratio, and
/// the server's answers that show a change applied twice (against a running server, whose
/// applications cannot be inspected): an event id answered `applied` at two different seqs.
final class MeasuringTransport: SyncTransport {
    let base: any SyncTransport
    private let plain = Mutex(0)
    private let applied = Mutex<(seqs: [EventID: UInt64], twice: Set<EventID>)>(([:], []))

    init(_ base: any SyncTransport) { self.base = base }

    var plainBytes: Int { plain.withLock { $0 } }

    /// Event ids the server answered `applied` at two different seqs.
    var appliedTwice: Set<EventID> { applied.withLock { $0.twice } }

    func push(_ batch: ChangeBatch) async throws -> PushResponse {
        let response = try await base.push(batch)
        plain.withLock { $0 += BinaryCodec.encode(batch).count + BinaryCodec.encode(response).count }
        applied.withLock { applied in
            for result in response.results {
                guard case .applied(let id, let seq, _) = result else { continue }
                if let earlier = applied.seqs.updateValue(seq, forKey: id), earlier != seq { applied.twice.insert(id) }
            }
        }
        return response
    }

    func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
        let page = try await base.pull(after: cursor, from: position, limit: limit, epoch: epoch)
        plain.withLock { $0 += BinaryCodec.encode(page).count }
        return page
    }

    func liveHeads() async -> AsyncStream<UInt64> { await base.liveHeads() }
    var traffic: TransportTraffic? { base.traffic }
}

/// What the run observed while it ran: latencies, conflicts, outbox depth over time.
final class Observations: Sendable {
    struct State {
        var writes: [Int64: ContinuousClock.Instant] = [:]
        var seen: Set<String> = []
        var latencies: [Double] = []
        var conflicts: [String: Int] = [:]
        var conflictTimes: [Double] = []
        var depth: [[(Double, Int)]] = []
    }

    let start = ContinuousClock.now
    private let state: Mutex<State>

    init(devices: Int) {
        state = Mutex(State(depth: Array(repeating: [], count: devices)))
    }

    var elapsed: Double { Self.seconds(ContinuousClock.now - start) }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    func wrote(stamp: Int64) { state.withLock { $0.writes[stamp] = .now } }

    /// A device saw a stamp for the first time: its propagation latency.
    func observed(stamp: Int64, device: Int) {
        let now = ContinuousClock.now
        state.withLock { state in
            guard let written = state.writes[stamp], state.seen.insert("\(stamp)/\(device)").inserted else { return }
            state.latencies.append(Self.seconds(now - written) * 1_000)
        }
    }

    func conflict(policy: String) {
        let time = elapsed
        state.withLock {
            $0.conflicts[policy, default: 0] += 1
            $0.conflictTimes.append(time)
        }
    }

    func depth(device: Int, pending: Int) {
        let time = elapsed
        state.withLock { $0.depth[device].append((time, pending)) }
    }

    var snapshot: State { state.withLock { $0 } }
}

/// The multi-device simulation: devices with their own stores edit a shared to-do list, count in
/// per-device registers, delete and re-create, go offline, crash and restart, while the server
/// restarts once; then everything quiesces and is verified field by field.
public final class Simulator {
    public typealias Progress = @Sendable (_ done: Int, _ total: Int, _ line: String) -> Void

    final class Device {
        let index: Int
        let store: SimulationOptions.Store
        let transportKind: SimulationOptions.Transport
        let path: String
        let faults: FaultInjectingTransport
        let measuring: MeasuringTransport
        /// Its live sockets, one per server node.
        let sockets: [WebSocketTransport]
        /// Its way to the nodes (the one it uses, and the next when that one fails).
        let nodes: FailoverTransport
        let memory = InMemoryStore.Database()
        var client: SyncClient!
        var listener: Task<Void, Never>?
        var online = true
        var counter = 0
        var lastChange: [RecordKey: EventID] = [:]

        /// - Parameter urls: the server nodes; the device starts on the one its index picks (round robin).
        init(index: Int, store: SimulationOptions.Store, transport: SimulationOptions.Transport, path: String, urls: [String], token: String, namespace: Namespace, seed: UInt64) {
            self.index = index
            self.store = store
            self.transportKind = transport
            self.path = path
            switch transport {
            case .rest:
                sockets = []
                nodes = FailoverTransport(
                    urls.map { RESTTransport(url: $0, namespace: namespace, token: { token }, configuration: .init(timeout: .seconds(10))) },
                    first: index
                )
            case .websocket:
                sockets = urls.map { url in
                    WebSocketTransport(
                        url: url, namespace: namespace, token: { token },
                        configuration: .init(ackTimeout: .seconds(10), initialBackoff: .milliseconds(50), maxBackoff: .seconds(1))
                    )
                }
                nodes = FailoverTransport(sockets, first: index)
            }
            measuring = MeasuringTransport(nodes.nodes.count == 1 ? nodes.nodes[0] : nodes)
            faults = FaultInjectingTransport(measuring, faults: .none, seed: seed)
        }

        func openStore() throws -> any SyncStore {
            switch store {
            case .sqlite: return try SQLiteStore(path: path + ".sqlite")
            case .leveldb: return try LevelDBStore(path: path + ".leveldb")
            case .memory: return InMemoryStore(database: memory)
            }
        }
    }

    public let options: SimulationOptions
    let namespace: Namespace
    static let todos = try! CollectionName("todos")
    static let counters = try! CollectionName("counters")
    static let notes = try! CollectionName("notes")
    static let collections = [todos, counters, notes]
    static let policies: [CollectionName: ConflictPolicy] = [todos: .lastWriterWins, counters: .lastWriterWins, notes: .serverWins]

    var random: SplitMix64
    var devices: [Device] = []
    let observations: Observations
    let clients = ClientRegistry()
    var server: EmbeddedServer?
    var restarts = 0
    var serverRestarts = 0
    var offlinePeriods = 0
    var operationsDone = 0
    /// FNV-1a over every choice the workload made.
    var digest: UInt64 = 0xCBF2_9CE4_8422_2325

    func record(_ choice: String) {
        for byte in choice.utf8 {
            digest ^= UInt64(byte)
            digest &*= 0x100_0000_01B3
        }
    }

    /// - Throws: ``SyncError`` `.invalidNamespace` for a bad namespace name.
    public init(options: SimulationOptions) throws {
        self.options = options
        namespace = try Namespace(options.namespace)
        random = SplitMix64(seed: options.seed)
        observations = Observations(devices: options.devices)
    }

    /// Runs the workload, quiesces, verifies.
    public func run(progress: Progress = { _, _, _ in }) async throws -> SimulationSummary {
        let directory = options.directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("syncline-sim-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer {
            if options.directory == nil { try? FileManager.default.removeItem(at: directory) }  // our own temporary files
        }
        let urls: [String]
        if !options.serverURLs.isEmpty {
            urls = options.serverURLs
        } else {
            let server = EmbeddedServer(databasePath: directory.appendingPathComponent("server.sqlite").path, token: options.token)
            try await server.start()
            self.server = server
            urls = [server.baseURL]
        }
        defer { devices.forEach { $0.sockets.forEach { $0.close() } } }
        for index in 0..<options.devices {
            let device = Device(
                index: index, store: options.stores[index % options.stores.count],
                transport: options.transports[index % options.transports.count],
                path: directory.appendingPathComponent("device-\(index)").path, urls: urls, token: options.token,
                namespace: namespace, seed: options.seed &* 31 &+ UInt64(index)
            )
            try open(device)
            devices.append(device)
        }
        let sampler = Task { [clients, observations] in
            while !Task.isCancelled {
                for (index, client) in clients.all {
                    // A sample: a store being reopened right now is skipped.
                    if let pending = try? await client.pendingCount() { observations.depth(device: index, pending: pending) }
                }
                do { try await Task.sleep(for: .milliseconds(200)) } catch { return }
            }
        }
        defer { sampler.cancel() }

        try await workload(progress: progress)
        let quiesceStart = ContinuousClock.now
        progress(options.operations, options.operations, "quiescing: every device online, syncing until outboxes are empty")
        let settled = try await quiesce()
        let convergeSeconds = Observations.seconds(ContinuousClock.now - quiesceStart)
        sampler.cancel()
        return try await verify(settled: settled, convergeSeconds: convergeSeconds)
    }

    func open(_ device: Device) throws {
        var configuration = SyncClient.Configuration(
            pushAttempts: 3, initialBackoff: .milliseconds(20), maxBackoff: .seconds(1), eventBufferSize: 100_000,
            syncInterval: .milliseconds(500)
        )
        configuration.maxBatchChanges = 200
        let client = try SyncClient(namespace: namespace, store: try device.openStore(), transport: device.faults, configuration: configuration)
        for (collection, policy) in Self.policies { client.setPolicy(policy, for: collection) }
        let events = client.events
        let observations = self.observations
        let index = device.index
        let listener = Task { await Simulator.listen(events, client: client, device: index, observations: observations) }
        device.listener = listener
        clients.set(index, client)
        device.client = client
        client.start()
    }

    /// Counts conflicts by policy and notes when a device first sees each write's stamp.
    static func listen(_ events: AsyncStream<SyncEvent>, client: SyncClient, device: Int, observations: Observations) async {
        for await event in events {
            switch event {
            case .conflictDetected(let report):
                observations.conflict(policy: report.policy)
            case .recordsChanged(let keys, let origin) where origin == .remote:
                for key in keys where key.collection == todos {
                    let record: RecordState?
                    do { record = try await client.record(key) } catch { continue }  // the store closed by a restart
                    if case .int(let stamp)? = record?.visibleFields["stamp"] { observations.observed(stamp: stamp, device: device) }
                }
            default:
                break
            }
        }
    }

    func restart(_ device: Device) async throws {
        restarts += 1
        device.client.close()
        await device.listener?.value
        try open(device)
    }

    // MARK: Workload

    func workload(progress: Progress) async throws {
        let deadline = options.duration.map { ContinuousClock.now + $0 }
        let total = options.operations
        var nextReport = 0
        var stamp: Int64 = 0
        for step in 0..<total {
            if let deadline, ContinuousClock.now > deadline { break }
            operationsDone = step + 1
            if step >= nextReport {
                nextReport += max(total / 100, 1)
                let online = devices.filter(\.online).count
                progress(step, total, "devices online \(online)/\(devices.count), restarts \(restarts), server restarts \(serverRestarts)")
            }
            if options.restartServer, let server, step == total / 2 {
                serverRestarts += 1
                try await server.restart()
            }
            let device = devices[random.int(devices.count)]
            record("\(step):\(device.index)")
            if random.chance(options.offlineRate) {
                device.online.toggle()
                if !device.online { offlinePeriods += 1 }
                device.faults.setConnected(device.online)
            }
            if random.chance(options.crashRate) {
                try await restart(device)
                continue
            }
            let client = device.client!
            let roll = random.int(100)
            switch roll {
            case 0..<35:
                stamp += 1
                let key = RecordKey(collection: Self.todos, id: try RecordID("todo-\(random.int(24))"))
                var fields: [String: Value] = ["stamp": .int(stamp)]
                if random.chance(0.7) { fields["title"] = .string(Self.titles[random.int(Self.titles.count)]) }
                if random.chance(0.5) { fields["done"] = .bool(random.chance(0.5)) }
                if random.chance(0.3) { fields["assignee"] = .string("device-\(device.index)") }
                observations.wrote(stamp: stamp)
                record("\(key)=\(fields.sorted { $0.key < $1.key })")
                if let change = try await client.upsert(key, fields: fields) { device.lastChange[key] = change.id }
            case 35..<43:
                let key = RecordKey(collection: Self.todos, id: try RecordID("todo-\(random.int(24))"))
                record("delete \(key)")
                if let change = try await client.delete(key) { device.lastChange[key] = change.id }
            case 43..<60:
                device.counter += 1
                let key = RecordKey(collection: Self.counters, id: try RecordID("totals"))
                if let change = try await client.upsert(key, fields: ["device-\(device.index)": .int(Int64(device.counter))]) {
                    device.lastChange[key] = change.id
                }
            case 60..<70:
                let key = RecordKey(collection: Self.notes, id: try RecordID("note-\(random.int(6))"))
                if let change = try await client.upsert(key, fields: ["text": .string("note by device \(device.index) at op \(step)")]) {
                    device.lastChange[key] = change.id
                }
            case 70..<85:
                do {
                    try await client.sync()
                } catch let error as SyncError where error.code == .transportUnavailable {
                    // offline or a socket reconnecting: the changes stay queued
                }
            default:
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        progress(total, total, "workload done")
    }

    static let titles = ["Buy milk", "Call the plumber", "Water the plants", "Book tickets", "Pay rent", "Fix the bike"]

    // MARK: Quiescence and verification

    /// Every device online, syncing until its outbox is empty and it has the server's head.
    func quiesce() async throws -> Bool {
        for device in devices {
            device.online = true
            device.faults.setConnected(true)
        }
        let deadline = ContinuousClock.now + options.quiesceTimeout
        while ContinuousClock.now < deadline {
            let head = try await serverHead()
            var settled = true
            for device in devices {
                let pending = try await device.client.pendingCount()
                let cursor = try await device.client.pullCursor()
                if pending > 0 || cursor < head {
                    settled = false
                    do {
                        try await device.client.sync()
                    } catch let error as SyncError where error.code == .transportUnavailable {
                        try await Task.sleep(for: .milliseconds(20))  // a socket reconnecting after the server restart
                    }
                }
            }
            if settled {
                let after = try await serverHead()
                if after == head { return true }
            }
        }
        return false
    }

    /// The server as the verification reads it: the embedded one, or the running nodes (the next
    /// one when a node is unavailable).
    func probe() -> any SyncTransport {
        let urls = server.map { [$0.baseURL] } ?? options.serverURLs
        return FailoverTransport(
            urls.map { RESTTransport(url: $0, namespace: namespace, token: { [token = options.token] in token }) }, first: 0
        )
    }

    func serverHead() async throws -> UInt64 {
        if let backend = server?.backend { return try await backend.head(namespace: namespace) }
        return try await probe().pull(after: 0, from: 0, limit: 1).head
    }

    /// The server's live records, field by field, read as a snapshot pull.
    func serverRecords() async throws -> [RecordKey: [String: Value]] {
        let transport = probe()
        var result: [RecordKey: [String: Value]] = [:]
        var position: UInt64 = 0
        while true {
            let page = try await transport.pull(after: 0, from: position, limit: 1_000)
            for entry in page.changes where !entry.deleted {
                result[RecordKey(collection: entry.collection, id: entry.record)] = entry.fields.mapValues(\.value)
            }
            guard page.hasMore else { return result }
            position = page.cursor
        }
    }

    func verify(settled: Bool, convergeSeconds: Double) async throws -> SimulationSummary {
        for device in devices { await device.client.stop() }
        let server = try await serverRecords()
        var views: [[RecordKey: [String: Value]]] = []
        for device in devices {
            var view: [RecordKey: [String: Value]] = [:]
            for collection in Self.collections {
                for (id, fields) in try await device.client.visibleRecords(in: collection) { view[RecordKey(collection: collection, id: id)] = fields }
            }
            views.append(view)
        }
        var differences = ConvergenceCheck.differences(server: server, devices: views)
        if !settled { differences.insert("the devices did not settle within \(options.quiesceTimeout)", at: 0) }

        // Lost: a device's last acknowledged change to a record never applied (embedded server),
        // or a counter register behind the device's own count (any server).
        var lost = 0
        var duplicated = 0
        if let embedded = self.server {
            let applications = embedded.applications
            let rejected = embedded.rejected
            for device in devices {
                let missing = device.lastChange.filter { applications[$0.value] == nil && !rejected.contains($0.value) }
                lost += missing.count
                for key in missing.keys.sorted(by: { "\($0)" < "\($1)" }) {
                    differences.append("device \(device.index)'s last change to \(key) never reached the server")
                }
            }
            duplicated = applications.values.filter { $0 > 1 }.count
        } else {
            for device in devices {
                let twice = device.measuring.appliedTwice
                duplicated += twice.count
                for id in twice.sorted() { differences.append("device \(device.index)'s change \(id) was applied at two seqs") }
            }
        }
        let totals = server[RecordKey(collection: Self.counters, id: try RecordID("totals"))] ?? [:]
        for device in devices where device.counter > 0 && totals["device-\(device.index)"] != .int(Int64(device.counter)) {
            lost += 1
            differences.append("device \(device.index)'s counter register is \(String(describing: totals["device-\(device.index)"])), its count is \(device.counter)")
        }

        var bytesUp = 0
        var bytesDown = 0
        var plain = 0
        for device in devices {
            let traffic = device.faults.traffic ?? TransportTraffic()
            bytesUp += traffic.bytesSent
            bytesDown += traffic.bytesReceived
            plain += device.measuring.plainBytes
            device.client.close()
            await device.listener?.value
        }
        try await self.server?.stop()
        let observed = observations.snapshot
        return SimulationSummary(
            converged: differences.isEmpty, seed: options.seed, devices: devices.count, ops: operationsDone, lost: lost,
            duplicated: duplicated, conflicts: observed.conflicts, bytesUp: bytesUp, bytesDown: bytesDown,
            compressionRatio: plain > 0 ? Double(bytesUp + bytesDown) / Double(plain) : 0,
            latencyMs: .init(
                p50: ConvergenceCheck.percentile(observed.latencies, 0.5), p95: ConvergenceCheck.percentile(observed.latencies, 0.95),
                p99: ConvergenceCheck.percentile(observed.latencies, 0.99), samples: observed.latencies.count
            ),
            convergeSeconds: convergeSeconds, restarts: restarts, serverRestarts: serverRestarts, offlinePeriods: offlinePeriods,
            differences: differences, workloadDigest: String(digest, radix: 16)
        )
    }

    /// The samples the HTML report draws.
    public var chartData: (depth: [[(Double, Int)]], latencies: [Double], conflictTimes: [Double]) {
        let observed = observations.snapshot
        return (observed.depth, observed.latencies, observed.conflictTimes)
    }
}

/// The devices' current clients, for the sampler.
final class ClientRegistry: Sendable {
    private let clients = Mutex([Int: SyncClient]())
    func set(_ index: Int, _ client: SyncClient) { clients.withLock { $0[index] = client } }
    var all: [(Int, SyncClient)] { clients.withLock { $0.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } } }
}
