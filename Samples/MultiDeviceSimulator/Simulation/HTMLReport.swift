import Foundation

/// One self-contained HTML file with SVG charts: outbox depth per device over time, a
/// propagation-latency histogram, conflicts over time.
public enum HTMLReport {
    public static func render(
        summary: SimulationSummary, depth: [[(Double, Int)]], latencies: [Double], conflictTimes: [Double]
    ) -> String {
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        var depthSeries: [(String, String, [(Double, Double)])] = []
        for (index, samples) in depth.enumerated() {
            depthSeries.append(("device \(index)", colors[index % colors.count], samples.map { ($0.0, Double($0.1)) }))
        }
        let histogram = Self.histogram(latencies, buckets: 20)
        let conflictsOverTime = Self.cumulative(conflictTimes)
        let rows = summary.table().split(separator: "\n").map { line -> String in
            "<tr><td><pre>\(escape(String(line)))</pre></td></tr>"
        }.joined()
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Syncline simulation, seed \(summary.seed)</title>
            <style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}
            pre{margin:0}table{border-collapse:collapse}svg{background:#fafafa;border:1px solid #ddd}
            .pass{color:#2ca02c}.fail{color:#d62728}</style></head><body>
            <h1>Syncline multi-device simulation <span class="\(summary.passed ? "pass" : "fail")">\(summary.passed ? "converged" : "FAILED")</span></h1>
            <table>\(rows)</table>
            <h2>Outbox depth per device over time</h2>
            \(lineChart(depthSeries, xLabel: "seconds", yLabel: "pending changes"))
            <h2>Propagation latency (ms)</h2>
            \(barChart(histogram, xLabel: "latency (ms)", yLabel: "observations"))
            <h2>Conflicts over time</h2>
            \(lineChart([("conflicts", "#d62728", conflictsOverTime)], xLabel: "seconds", yLabel: "conflicts so far"))
            </body></html>
            """
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func cumulative(_ times: [Double]) -> [(Double, Double)] {
        var result: [(Double, Double)] = [(0, 0)]
        for (count, time) in times.sorted().enumerated() { result.append((time, Double(count + 1))) }
        return result
    }

    /// Equal-width buckets from 0 to the largest value: (bucket start, count).
    static func histogram(_ values: [Double], buckets: Int) -> [(Double, Double)] {
        guard let maximum = values.max(), maximum > 0 else { return [] }
        let width = maximum / Double(buckets)
        var counts = Array(repeating: 0.0, count: buckets)
        for value in values { counts[min(Int(value / width), buckets - 1)] += 1 }
        return counts.enumerated().map { (Double($0.offset) * width, $0.element) }
    }

    static let width = 760.0
    static let height = 260.0
    static let margin = 48.0

    static func axes(maxX: Double, maxY: Double, xLabel: String, yLabel: String) -> String {
        let plotWidth = width - 2 * margin
        let plotHeight = height - 2 * margin
        var svg = "<line x1='\(margin)' y1='\(height - margin)' x2='\(width - margin)' y2='\(height - margin)' stroke='#444'/>"
        svg += "<line x1='\(margin)' y1='\(margin)' x2='\(margin)' y2='\(height - margin)' stroke='#444'/>"
        for tick in 0...4 {
            let fraction = Double(tick) / 4
            let x = margin + fraction * plotWidth
            let y = height - margin - fraction * plotHeight
            svg += "<text x='\(x)' y='\(height - margin + 16)' font-size='11' text-anchor='middle'>\(format(maxX * fraction))</text>"
            svg += "<text x='\(margin - 6)' y='\(y + 4)' font-size='11' text-anchor='end'>\(format(maxY * fraction))</text>"
        }
        svg += "<text x='\(width / 2)' y='\(height - 8)' font-size='12' text-anchor='middle'>\(escape(xLabel))</text>"
        svg += "<text x='14' y='\(height / 2)' font-size='12' text-anchor='middle' transform='rotate(-90 14 \(height / 2))'>\(escape(yLabel))</text>"
        return svg
    }

    static func format(_ value: Double) -> String {
        value >= 100 || value == value.rounded() ? String(Int(value.rounded())) : String(format: "%.1f", value)
    }

    static func lineChart(_ series: [(String, String, [(Double, Double)])], xLabel: String, yLabel: String) -> String {
        let maxX = max(series.flatMap { $0.2.map(\.0) }.max() ?? 1, 1e-9)
        let maxY = max(series.flatMap { $0.2.map(\.1) }.max() ?? 1, 1)
        let plotWidth = width - 2 * margin
        let plotHeight = height - 2 * margin
        var svg = "<svg xmlns='http://www.w3.org/2000/svg' width='\(width)' height='\(height)' viewBox='0 0 \(width) \(height)'>"
        svg += axes(maxX: maxX, maxY: maxY, xLabel: xLabel, yLabel: yLabel)
        for (index, (name, color, points)) in series.enumerated() where !points.isEmpty {
            let path = points.map { point in
                let x = margin + point.0 / maxX * plotWidth
                let y = height - margin - point.1 / maxY * plotHeight
                return "\(String(format: "%.1f", x)),\(String(format: "%.1f", y))"
            }.joined(separator: " ")
            svg += "<polyline fill='none' stroke='\(color)' stroke-width='1.5' points='\(path)'><title>\(escape(name))</title></polyline>"
            svg += "<text x='\(width - margin + 4)' y='\(margin + Double(index) * 14)' font-size='11' fill='\(color)'>\(escape(name))</text>"
        }
        return svg + "</svg>"
    }

    static func barChart(_ bars: [(Double, Double)], xLabel: String, yLabel: String) -> String {
        var svg = "<svg xmlns='http://www.w3.org/2000/svg' width='\(width)' height='\(height)' viewBox='0 0 \(width) \(height)'>"
        guard !bars.isEmpty else { return svg + "<text x='20' y='40'>no samples</text></svg>" }
        let step = bars.count > 1 ? bars[1].0 - bars[0].0 : 1
        let maxX = (bars.last?.0 ?? 0) + step
        let maxY = max(bars.map(\.1).max() ?? 1, 1)
        let plotWidth = width - 2 * margin
        let plotHeight = height - 2 * margin
        svg += axes(maxX: maxX, maxY: maxY, xLabel: xLabel, yLabel: yLabel)
        let barWidth = plotWidth / Double(bars.count)
        for (index, bar) in bars.enumerated() {
            let barHeight = bar.1 / maxY * plotHeight
            svg += "<rect x='\(margin + Double(index) * barWidth + 1)' y='\(height - margin - barHeight)' width='\(max(barWidth - 2, 1))' height='\(barHeight)' fill='#1f77b4'><title>\(format(bar.0))–\(format(bar.0 + step)) ms: \(Int(bar.1))</title></rect>"
        }
        return svg + "</svg>"
    }
}
