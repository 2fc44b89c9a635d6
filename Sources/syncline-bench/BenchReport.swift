import Foundation

/// One measured row: the operation rate of Syncline's code and of the baseline doing the same work.
struct BenchRow {
    var name: String
    var store: String
    var perTransaction: Int
    var durability: String
    var opsPerSecond: Double
    var baselineOpsPerSecond: Double
    /// What the two numbers count: `ops/s` unless a row measures something else (`bytes/change`).
    var unit = "ops/s"
    var ratio: Double { baselineOpsPerSecond > 0 ? opsPerSecond / baselineOpsPerSecond : 0 }
}

/// Prints a suite's rows as JSON (`{"suite":…,"rows":[…]}`) or as a readable table.
struct BenchReport {
    var suite: String
    var rows: [BenchRow] = []
    var notes: [String] = []

    func render(json: Bool) -> String {
        json ? renderJSON() : renderTable()
    }

    private func renderJSON() -> String {
        let rows = rows.map { row -> [String: Any] in
            [
                "name": row.name, "store": row.store, "per_tx": row.perTransaction, "durability": row.durability,
                "ops_per_s": (row.opsPerSecond * 10).rounded() / 10, "baseline_ops_per_s": (row.baselineOpsPerSecond * 10).rounded() / 10,
                "ratio": (row.ratio * 1000).rounded() / 1000, "unit": row.unit,
            ]
        }
        let document: [String: Any] = ["suite": suite, "rows": rows]
        // The document is built from strings and numbers only, which always serialize.
        let data = try! JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    private func renderTable() -> String {
        let header = ["name", "store", "per_tx", "durability", "value", "baseline", "unit", "ratio"]
        let body = rows.map { row in
            [
                row.name, row.store, String(row.perTransaction), row.durability, Self.format(row.opsPerSecond),
                Self.format(row.baselineOpsPerSecond), row.unit, String(format: "%.2f", row.ratio),
            ]
        }
        let widths = header.indices.map { column in ([header] + body).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            "| " + cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: " | ") + " |"
        }
        var lines = ["suite: \(suite)", line(header), "|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|"]
        lines += body.map(line)
        lines += notes.map { "note: \($0)" }
        return lines.joined(separator: "\n")
    }

    static func format(_ value: Double) -> String {
        let number = NumberFormatter()
        number.numberStyle = .decimal
        number.maximumFractionDigits = value < 100 ? 1 : 0
        return number.string(from: NSNumber(value: value < 100 ? value : value.rounded())) ?? String(Int(value))
    }
}

/// Times an async `body` that performs `operations` operations; returns operations per second.
func measureAsync(operations: Int, _ body: () async throws -> Void) async rethrows -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    try await body()
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Double(operations) / max(seconds, 1e-9)
}

/// Times `body`, which performs `operations` operations, and returns operations per second.
func measure(operations: Int, _ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    let elapsed = try clock.measure(body)
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Double(operations) / max(seconds, 1e-9)
}

/// The pair whose ratio is the median (paired runs: the machine's drift cancels within a pair).
func medianByRatio<Pair>(_ pairs: [Pair], _ ratio: (Pair) -> Double) -> Pair {
    pairs.sorted { ratio($0) < ratio($1) }[pairs.count / 2]
}
