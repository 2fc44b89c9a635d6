import Foundation
public import Syncline

/// What a simulation run found: the verdict and the figures the summary table shows.
public struct SimulationSummary: Codable, Sendable {
    public struct Latency: Codable, Sendable {
        public var p50: Double
        public var p95: Double
        public var p99: Double
        public var samples: Int
    }

    public var converged: Bool
    public var seed: UInt64
    public var devices: Int
    public var ops: Int
    /// Acknowledged writes the server does not hold (`nil` when the server cannot be inspected).
    public var lost: Int
    /// Changes the server applied more than once (against a running server: changes it answered `applied` at two seqs).
    public var duplicated: Int
    /// Conflicts reported to devices, by the collection's policy.
    public var conflicts: [String: Int]
    public var bytesUp: Int
    public var bytesDown: Int
    /// Bytes on the wire over the same changes in uncompressed binary (lower is better).
    public var compressionRatio: Double
    public var latencyMs: Latency
    public var convergeSeconds: Double
    public var restarts: Int
    public var serverRestarts: Int
    public var offlinePeriods: Int
    /// Field-by-field differences found at quiescence (empty when converged).
    public var differences: [String]
    /// A digest of every operation the workload chose (same seed and options, same digest).
    public var workloadDigest: String

    public var passed: Bool { converged && lost == 0 && duplicated == 0 }

    enum CodingKeys: String, CodingKey {
        case converged, seed, devices, ops, lost, duplicated, conflicts
        case bytesUp = "bytes_up", bytesDown = "bytes_down", compressionRatio = "compression_ratio"
        case latencyMs = "latency_ms", convergeSeconds = "converge_seconds", restarts, serverRestarts = "server_restarts"
        case offlinePeriods = "offline_periods", differences, workloadDigest = "workload_digest"
    }

    /// The summary as one JSON document.
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        // Only numbers, strings and booleans: encoding cannot fail.
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }

    /// The summary as a table for a terminal.
    public func table() -> String {
        let conflictText = conflicts.isEmpty ? "0" : conflicts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let rows: [(String, String)] = [
            ("verdict", passed ? "CONVERGED, nothing lost or duplicated" : "FAILED"),
            ("seed / workload digest", "\(seed) / \(workloadDigest)"),
            ("devices", String(devices)),
            ("operations", String(ops)),
            ("device restarts / server restarts", "\(restarts) / \(serverRestarts)"),
            ("offline periods", String(offlinePeriods)),
            ("conflicts by policy", conflictText),
            ("bytes up / down", "\(bytesUp) / \(bytesDown)"),
            ("compression (wire / plain binary)", String(format: "%.2f", compressionRatio)),
            ("propagation latency p50 / p95 / p99", String(format: "%.0f / %.0f / %.0f ms (%d samples)", latencyMs.p50, latencyMs.p95, latencyMs.p99, latencyMs.samples)),
            ("time to converge", String(format: "%.2f s", convergeSeconds)),
            ("lost / duplicated changes", "\(lost) / \(duplicated)"),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        var lines = rows.map { "  " + $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }
        for difference in differences.prefix(20) { lines.append("  difference: \(difference)") }
        if differences.count > 20 { lines.append("  … \(differences.count - 20) more differences") }
        return lines.joined(separator: "\n")
    }
}

/// The verdict logic: every device's visible records against the server's, field by field.
public enum ConvergenceCheck {
    /// - Returns: one line per difference (device, record, field, both values); empty when all agree.
    public static func differences(
        server: [RecordKey: [String: Value]], devices: [[RecordKey: [String: Value]]]
    ) -> [String] {
        var result: [String] = []
        for (index, device) in devices.enumerated() {
            for key in Set(server.keys).union(device.keys).sorted(by: { "\($0)" < "\($1)" }) {
                let expected = server[key]
                let actual = device[key]
                if expected == actual { continue }
                guard let expected, let actual else {
                    result.append("device \(index) \(key): \(actual == nil ? "missing" : "present") but \(expected == nil ? "absent" : "present") on the server")
                    continue
                }
                for field in Set(expected.keys).union(actual.keys).sorted() where expected[field] != actual[field] {
                    result.append(
                        "device \(index) \(key).\(field): \(actual[field].map { "\($0)" } ?? "missing") vs server \(expected[field].map { "\($0)" } ?? "missing")"
                    )
                }
            }
        }
        return result
    }

    /// The `q`-quantile of `values` (nearest rank), 0 when empty.
    public static func percentile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = Int((q * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }
}
