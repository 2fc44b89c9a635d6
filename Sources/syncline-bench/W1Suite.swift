import ArgumentParser
import Foundation
import Logging
import Syncline
import SynclineNetwork
import SynclineSQLite
import SynclineServer

/// `syncline-bench w1`: the W1 workload, end to end. Four devices (real `SyncClient`s on SQLite
/// stores, REST, binary codec, deflate) against a release server on loopback (the same code as
/// `syncline-server`, started in this process on a new SQLite backend):
///
/// - A: each device creates 5,000 records and pushes them (batches of 500);
/// - B: every device syncs until it holds all 20,000;
/// - C: each device toggles `done` on 1,000 records written by other devices and pushes;
/// - D: every device syncs the delta;
///
/// then every device's records are compared with the server's, field by field. Wire bytes are
/// counted at each device's transport: HTTP heads and bodies, as sent and received (compressed).
struct W1SuiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "w1",
        abstract: "The W1 workload: 4 devices x 5,000 records over REST to a real server, then 1,000 updates each; time and wire bytes per phase."
    )

    @Flag(name: .long, help: "Print one JSON document instead of a table.")
    var json = false

    @Option(name: .long, help: "Directory for temporary files (default: the system's temporary directory).")
    var directory: String?

    @Option(name: .long, help: "Seed of the generated records.")
    var seed: UInt64 = 1

    func run() async throws {
        let report = try await W1Suite(directory: directory, seed: seed).run()
        print(json ? report.json() : report.table())
    }
}

struct W1Suite {
    static let devices = 4
    static let recordsPerDevice = 5_000
    static let updatesPerDevice = 1_000
    static let batchSize = 500
    static let token = "bench"

    var directory: String?
    var seed: UInt64

    struct Phase {
        var name: String
        var changes: Int
        var seconds: Double
        var bytesUp: Int
        var bytesDown: Int
    }

    struct Report {
        var phases: [Phase]
        var mismatches: Int

        var seconds: Double { phases.reduce(0) { $0 + $1.seconds } }
        var bytesUp: Int { phases.reduce(0) { $0 + $1.bytesUp } }
        var bytesDown: Int { phases.reduce(0) { $0 + $1.bytesDown } }

        func json() -> String {
            func number(_ value: Double) -> String { String(format: "%.3f", value) }
            let phaseList = phases.map { phase in
                "\"\(phase.name)\":{\"seconds\":\(number(phase.seconds)),\"bytes_up\":\(phase.bytesUp),\"bytes_down\":\(phase.bytesDown)}"
            }.joined(separator: ",")
            let rows = phases.map { phase in
                "{\"name\":\"\(phase.name)\",\"changes\":\(phase.changes),\"seconds\":\(number(phase.seconds)),"
                    + "\"changes_per_second\":\(number(Double(phase.changes) / max(phase.seconds, 1e-9))),"
                    + "\"bytes_up\":\(phase.bytesUp),\"bytes_down\":\(phase.bytesDown)}"
            }.joined(separator: ",")
            return "{\"suite\":\"w1\",\"seconds\":\(number(seconds)),\"bytes_up\":\(bytesUp),\"bytes_down\":\(bytesDown),"
                + "\"mismatches\":\(mismatches),\"phases\":{\(phaseList)},\"rows\":[\(rows)]}"
        }

        func table() -> String {
            var lines = ["| phase | changes | seconds | changes/s | bytes up | bytes down |", "|---|---:|---:|---:|---:|---:|"]
            for phase in phases {
                lines.append(
                    "| \(phase.name) | \(phase.changes) | \(String(format: "%.2f", phase.seconds)) | "
                        + "\(Int(Double(phase.changes) / max(phase.seconds, 1e-9))) | \(phase.bytesUp) | \(phase.bytesDown) |"
                )
            }
            lines.append("| total | | \(String(format: "%.2f", seconds)) | | \(bytesUp) | \(bytesDown) |")
            lines.append("mismatches: \(mismatches)")
            return lines.joined(separator: "\n")
        }
    }

    /// One device: its client, its transport (for the bytes) and the ids of the records it made.
    struct Device {
        var client: SyncClient
        var transport: RESTTransport
        var ids: [String]
    }

    func run() async throws -> Report {
        let root = URL(fileURLWithPath: directory ?? NSTemporaryDirectory()).appendingPathComponent("syncline-w1-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { removeScratchDirectory(root) }
        let backend = try SQLiteBackend(path: root.appendingPathComponent("server.sqlite").path)
        var logger = Logger(label: "w1-server")
        logger.logLevel = .error
        let running = try await SyncServer.start(
            backend: backend,
            configuration: SyncServerConfiguration(tokens: TokenStore([Self.token: ["*"]]), rateLimit: nil),
            logger: logger
        )
        let namespace = try Namespace("w1")
        let collection = try CollectionName("todos")
        var random = SplitMix64(seed: seed)
        var devices: [Device] = []
        for index in 0..<Self.devices {
            let transport = RESTTransport(
                url: "http://127.0.0.1:\(running.port)", namespace: namespace, token: { Self.token },
                configuration: .init(wire: WireCodec(format: .binary), longPoll: nil)
            )
            let store = try SQLiteStore(path: root.appendingPathComponent("device-\(index).sqlite").path)
            let client = try SyncClient(
                namespace: namespace, store: store, transport: transport,
                configuration: .init(maxBatchChanges: Self.batchSize, pageSize: 1_000)
            )
            let ids = (0..<Self.recordsPerDevice).map { _ in Self.uuid(&random) }
            devices.append(Device(client: client, transport: transport, ids: ids))
        }
        var phases: [Phase] = []

        // A: create and push.
        var records: [[(RecordKey, [String: Value])]] = []
        for device in devices {
            records.append(try device.ids.map { id in (RecordKey(collection: collection, id: try RecordID(id)), Self.record(id, &random)) })
        }
        let created = records
        phases.append(
            try await phase("A_push", changes: Self.devices * Self.recordsPerDevice, devices) { index, device in
                for (key, fields) in created[index] { _ = try await device.client.upsert(key, fields: fields) }
                _ = try await device.client.push()
            }
        )
        // B: every device pulls until it has everything.
        let headAfterA = try await backend.head(namespace: namespace)
        phases.append(
            try await phase("B_pull_all", changes: Self.devices * Self.devices * Self.recordsPerDevice, devices) { _, device in
                try await Self.syncUntil(headAfterA, device.client)
            }
        )
        // C: toggle `done` on records written by the other devices.
        var updates: [[RecordKey]] = []
        for index in devices.indices {
            let others = devices.indices.filter { $0 != index }.flatMap { devices[$0].ids }
            updates.append(
                try (0..<Self.updatesPerDevice).map { _ in
                    RecordKey(collection: collection, id: try RecordID(others[Int(random.next() % UInt64(others.count))]))
                }
            )
        }
        let toggled = updates
        phases.append(
            try await phase("C_push_updates", changes: Self.devices * Self.updatesPerDevice, devices) { index, device in
                for key in toggled[index] {
                    let done = try await device.client.fields(of: key)?["done"] == .bool(true)
                    _ = try await device.client.upsert(key, fields: ["done": .bool(!done)])
                }
                _ = try await device.client.push()
            }
        )
        // D: every device pulls the delta.
        let headAfterC = try await backend.head(namespace: namespace)
        phases.append(
            try await phase("D_pull_delta", changes: Self.devices * Self.devices * Self.updatesPerDevice, devices) { _, device in
                try await Self.syncUntil(headAfterC, device.client)
            }
        )

        let mismatches = try await Self.mismatches(devices, backend: backend, namespace: namespace, collection: collection)
        for device in devices { device.client.close() }
        try await running.stop()
        return Report(phases: phases, mismatches: mismatches)
    }

    /// Runs `body` on every device at once; the phase's time and the bytes its transports moved.
    func phase(
        _ name: String, changes: Int, _ devices: [Device], _ body: @escaping @Sendable (Int, Device) async throws -> Void
    ) async throws -> Phase {
        let before = devices.map { $0.transport.traffic ?? TransportTraffic() }
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, device) in devices.enumerated() { group.addTask { try await body(index, device) } }
            try await group.waitForAll()
        }
        let elapsed = clock.now - start
        let after = devices.map { $0.transport.traffic ?? TransportTraffic() }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Phase(
            name: name, changes: changes, seconds: seconds,
            bytesUp: zip(before, after).reduce(0) { $0 + ($1.1.bytesSent + $1.1.headBytesSent) - ($1.0.bytesSent + $1.0.headBytesSent) },
            bytesDown: zip(before, after).reduce(0) {
                $0 + ($1.1.bytesReceived + $1.1.headBytesReceived) - ($1.0.bytesReceived + $1.0.headBytesReceived)
            }
        )
    }

    static func syncUntil(_ head: UInt64, _ client: SyncClient) async throws {
        for _ in 0..<100 {
            try await client.sync()
            if try await client.pullCursor() >= head { return }
        }
        throw SyncError(.transportUnavailable, "a device did not reach the head \(head) in 100 syncs")
    }

    /// Records (of all devices) whose visible fields differ from the server's, or are missing.
    static func mismatches(_ devices: [Device], backend: SQLiteBackend, namespace: Namespace, collection: CollectionName) async throws -> Int {
        var server: [RecordID: [String: Value]] = [:]
        var position: UInt64 = 0
        while true {
            let page = try await backend.pull(
                namespace: namespace, after: 0, from: position, limit: 1_000, collections: nil, epoch: nil, configuration: .init()
            )
            for change in page.changes where !change.deleted { server[change.record] = change.fields.mapValues(\.value) }
            if !page.hasMore { break }
            position = page.cursor
        }
        var mismatches = 0
        for device in devices {
            let local = try await device.client.local.records(in: collection)
            var seen = Set<RecordID>()
            for record in local where !record.isDeleted {
                seen.insert(record.id)
                if server[record.id] != record.visibleFields { mismatches += 1 }
            }
            mismatches += server.keys.filter { !seen.contains($0) }.count
        }
        return mismatches
    }

    // MARK: The records

    static let words = [
        "buy", "milk", "call", "mom", "fix", "the", "bike", "read", "book", "plan", "trip", "send", "invoice", "water", "plants",
        "clean", "desk", "book", "dentist", "pay", "rent", "walk", "dog", "cook", "dinner",
    ]
    static let tags = ["home", "work", "urgent", "later", "errand", "family", "health", "money"]

    static func uuid(_ random: inout SplitMix64) -> String {
        let high = random.next()
        let low = random.next()
        let hex = String(format: "%016llx%016llx", high, low)
        let chars = Array(hex)
        return "\(String(chars[0..<8]))-\(String(chars[8..<12]))-\(String(chars[12..<16]))-\(String(chars[16..<20]))-\(String(chars[20..<32]))"
    }

    /// `{id, title: 20–40 chars of words, done, priority: 0–3, notes: 90–110 letters and spaces, tags: 2 of 8}`.
    static func record(_ id: String, _ random: inout SplitMix64) -> [String: Value] {
        let titleLength = 20 + Int(random.next() % 21)
        var title = ""
        while title.count < titleLength { title += (title.isEmpty ? "" : " ") + words[Int(random.next() % UInt64(words.count))] }
        title = String(title.prefix(titleLength))
        let notesLength = 90 + Int(random.next() % 21)
        let letters = Array("abcdefghijklmnopqrstuvwxyz     ")
        let notes = String((0..<notesLength).map { _ in letters[Int(random.next() % UInt64(letters.count))] })
        let first = Int(random.next() % 8)
        let second = (first + 1 + Int(random.next() % 7)) % 8
        return [
            "id": .string(id), "title": .string(title), "done": .bool(random.next() % 2 == 0), "priority": .int(Int64(random.next() % 4)),
            "notes": .string(notes), "tags": .array([.string(tags[first]), .string(tags[second])]),
        ]
    }
}
