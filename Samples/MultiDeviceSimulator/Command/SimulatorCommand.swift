import ArgumentParser
import Foundation
import SynclineSimulation

/// `syncline-sim`: devices converging under faults against an embedded (or a running) server.
@main
struct SimulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "syncline-sim",
        abstract: "Runs many devices against a sync server with faults, then verifies they converged.",
        discussion: "Exit status 0 only when every device equals the server and nothing was lost or applied twice."
    )

    @Option(help: "Number of devices.") var devices = 6
    @Option(help: "Operations in the workload.") var ops = 3_000
    @Option(help: "Stop the workload after this many seconds even if operations remain.") var duration: Double?
    @Option(help: "Seed of the workload (a run's workload replays from it).") var seed: UInt64 = 1
    @Option(help: "Stores, given to devices in turn: sqlite, leveldb, memory (comma-separated).") var store = "sqlite,leveldb"
    @Option(help: "Transports, given to devices in turn: rest, websocket (comma-separated).") var transport = "rest,websocket"
    @Option(help: "Use a running server (http://host:port) instead of the embedded one, or several nodes of one cluster (http://a:8081,http://b:8082): devices are spread over them round robin and fail over to the next.") var server: String?
    @Option(help: "Bearer token for the server.") var token = "syncline-sim"
    @Option(help: "Namespace the devices share.") var namespace = "sim"
    @Option(help: "Chance per operation that a device goes offline or comes back.") var offlineRate = 0.02
    @Option(help: "Chance per operation that a device crashes and restarts from its store.") var crashRate = 0.01
    @Flag(help: "Do not restart the embedded server halfway.") var noServerRestart = false
    @Flag(help: "Print the summary as one JSON document.") var json = false
    @Option(help: "Write a self-contained HTML report with charts to this file.") var report: String?

    func validate() throws {
        guard devices >= 1 else { throw ValidationError("--devices must be at least 1") }
        guard ops >= 0 else { throw ValidationError("--ops must not be negative") }
        guard (0...1).contains(offlineRate), (0...1).contains(crashRate) else {
            throw ValidationError("--offline-rate and --crash-rate are probabilities from 0 to 1")
        }
        _ = try stores()
        _ = try transports()
    }

    func stores() throws -> [SimulationOptions.Store] {
        try store.split(separator: ",").map { name in
            guard let store = SimulationOptions.Store(rawValue: String(name)) else {
                throw ValidationError("unknown store \(name); use sqlite, leveldb or memory")
            }
            return store
        }
    }

    func transports() throws -> [SimulationOptions.Transport] {
        try transport.split(separator: ",").map { name in
            guard let transport = SimulationOptions.Transport(rawValue: String(name)) else {
                throw ValidationError("unknown transport \(name); use rest or websocket")
            }
            return transport
        }
    }

    func run() async throws {
        let options = SimulationOptions(
            devices: devices, operations: ops, duration: duration.map { .milliseconds(Int($0 * 1_000)) }, seed: seed,
            stores: try stores(), transports: try transports(), serverURL: server, token: token, namespace: namespace, offlineRate: offlineRate,
            crashRate: crashRate, restartServer: !noServerRestart && server == nil
        )
        let simulator = try Simulator(options: options)
        let progress = ProgressDisplay(enabled: !json)
        let summary = try await simulator.run(progress: { done, total, line in progress.update(done: done, total: total, line: line) })
        progress.finish()
        if let report {
            let chart = simulator.chartData
            let html = HTMLReport.render(summary: summary, depth: chart.depth, latencies: chart.latencies, conflictTimes: chart.conflictTimes)
            try html.write(toFile: report, atomically: true, encoding: .utf8)
        }
        print(json ? summary.json() : "Syncline simulation summary\n" + summary.table())
        if let report, !json { print("report: \(report)") }
        if !summary.passed { throw ExitCode(1) }
    }
}

/// A live progress bar on a terminal; plain lines (every 10%) otherwise.
final class ProgressDisplay: Sendable {
    let enabled: Bool
    let terminal = isatty(STDOUT_FILENO) == 1

    init(enabled: Bool) { self.enabled = enabled }

    func update(done: Int, total: Int, line: String) {
        guard enabled else { return }
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        if terminal {
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardOutput.write(Data("\r\u{1B}[K[\(bar)] \(Int(fraction * 100))% \(done)/\(total) \(line)".utf8))
        } else if done == total || done % max(total / 10, 1) == 0 {
            FileHandle.standardOutput.write(Data("progress \(Int(fraction * 100))% (\(done)/\(total)): \(line)\n".utf8))
        }
    }

    func finish() {
        if enabled && terminal { FileHandle.standardOutput.write(Data("\n".utf8)) }
    }
}
