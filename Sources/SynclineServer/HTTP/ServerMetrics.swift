import CoreMetrics
public import Prometheus

/// The server's metrics (DESIGN §6), made through the swift-metrics API with a Prometheus
/// factory bound to one registry, which `/metrics` serves. Each server owns its registry, so
/// several servers in one process (tests, the simulator) keep separate counts, and nothing
/// depends on the process-wide `MetricsSystem` bootstrap.
public struct ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let pushRequests: CoreMetrics.Counter
    let pullRequests: CoreMetrics.Counter
    let rejectedRequests: CoreMetrics.Counter
    let changesApplied: CoreMetrics.Counter
    let duplicates: CoreMetrics.Counter
    let conflicts: CoreMetrics.Counter
    let liveConnections: Meter
    let liveDeliveries: CoreMetrics.Counter
    let bytesIn: CoreMetrics.Counter
    let bytesOut: CoreMetrics.Counter

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let factory = PrometheusMetricsFactory(registry: registry)
        pushRequests = CoreMetrics.Counter(label: "syncline_requests_total", dimensions: [("route", "push")], factory: factory)
        pullRequests = CoreMetrics.Counter(label: "syncline_requests_total", dimensions: [("route", "changes")], factory: factory)
        rejectedRequests = CoreMetrics.Counter(label: "syncline_requests_refused_total", factory: factory)
        changesApplied = CoreMetrics.Counter(label: "syncline_changes_applied_total", factory: factory)
        duplicates = CoreMetrics.Counter(label: "syncline_changes_duplicate_total", factory: factory)
        conflicts = CoreMetrics.Counter(label: "syncline_conflicts_total", factory: factory)
        liveConnections = Meter(label: "syncline_live_connections", factory: factory)
        liveDeliveries = CoreMetrics.Counter(label: "syncline_live_pages_sent_total", factory: factory)
        bytesIn = CoreMetrics.Counter(label: "syncline_bytes_in_total", factory: factory)
        bytesOut = CoreMetrics.Counter(label: "syncline_bytes_out_total", factory: factory)
    }

    func record(push outcome: ServerEngineOutcomeSummary) {
        changesApplied.increment(by: outcome.applied)
        duplicates.increment(by: outcome.duplicates)
        conflicts.increment(by: outcome.conflicts)
    }
}

/// Counts from one push, for metrics.
struct ServerEngineOutcomeSummary {
    var applied = 0
    var duplicates = 0
    var conflicts = 0
}
