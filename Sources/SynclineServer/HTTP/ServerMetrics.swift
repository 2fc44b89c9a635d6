public import Prometheus

/// The server's metrics (DESIGN §6), in one Prometheus registry served at `/metrics`.
public struct ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let pushRequests: Counter
    let pullRequests: Counter
    let rejectedRequests: Counter
    let changesApplied: Counter
    let duplicates: Counter
    let conflicts: Counter
    let liveConnections: Gauge
    let liveDeliveries: Counter
    let bytesIn: Counter
    let bytesOut: Counter

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        pushRequests = registry.makeCounter(name: "syncline_requests_total", labels: [("route", "push")])
        pullRequests = registry.makeCounter(name: "syncline_requests_total", labels: [("route", "changes")])
        rejectedRequests = registry.makeCounter(name: "syncline_requests_refused_total")
        changesApplied = registry.makeCounter(name: "syncline_changes_applied_total")
        duplicates = registry.makeCounter(name: "syncline_changes_duplicate_total")
        conflicts = registry.makeCounter(name: "syncline_conflicts_total")
        liveConnections = registry.makeGauge(name: "syncline_live_connections")
        liveDeliveries = registry.makeCounter(name: "syncline_live_pages_sent_total")
        bytesIn = registry.makeCounter(name: "syncline_bytes_in_total")
        bytesOut = registry.makeCounter(name: "syncline_bytes_out_total")
    }

    func record(push outcome: ServerEngineOutcomeSummary) {
        changesApplied.increment(by: Int64(outcome.applied))
        duplicates.increment(by: Int64(outcome.duplicates))
        conflicts.increment(by: Int64(outcome.conflicts))
    }
}

/// Counts from one push, for metrics.
struct ServerEngineOutcomeSummary {
    var applied = 0
    var duplicates = 0
    var conflicts = 0
}
