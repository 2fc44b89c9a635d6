public import Foundation

/// How a simulation runs. Every choice of the workload comes from `seed`, so a run's workload
/// replays from it (timing on a real network does not).
public struct SimulationOptions: Sendable {
    public enum Store: String, Sendable, CaseIterable {
        case sqlite, leveldb, memory
    }

    public enum Transport: String, Sendable, CaseIterable {
        case rest, websocket
    }

    /// Devices; stores and transports are given to them in turn. Default 6.
    public var devices: Int
    /// Operations in the workload. Default 3,000.
    public var operations: Int
    /// Stop the workload after this long even if operations remain.
    public var duration: Duration?
    public var seed: UInt64
    public var stores: [Store]
    public var transports: [Transport]
    /// A running server to use instead of the embedded one (its namespace must accept `token`), or
    /// several nodes of one cluster, comma-separated: devices are spread over them round robin and
    /// fail over to the next node when theirs is unavailable.
    public var serverURL: String?

    /// The nodes of ``serverURL`` (empty: the embedded server).
    public var serverURLs: [String] {
        (serverURL ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
    public var token: String
    /// The namespace the devices share (several simulators on one server use different ones).
    public var namespace: String
    /// Chance per operation that a device goes offline or comes back. Default 0.02.
    public var offlineRate: Double
    /// Chance per operation that a device crashes and restarts from its store. Default 0.01.
    public var crashRate: Double
    /// Restart the embedded server once, halfway. Default true.
    public var restartServer: Bool
    /// Where stores and the embedded server's database live (a new temporary directory by default).
    public var directory: URL?
    /// How long quiescence may take before the run is declared not converged. Default 120 s.
    public var quiesceTimeout: Duration

    public init(
        devices: Int = 6, operations: Int = 3_000, duration: Duration? = nil, seed: UInt64 = 1,
        stores: [Store] = [.sqlite, .leveldb], transports: [Transport] = [.rest, .websocket], serverURL: String? = nil,
        token: String = "syncline-sim", namespace: String = "sim", offlineRate: Double = 0.02, crashRate: Double = 0.01, restartServer: Bool = true,
        directory: URL? = nil, quiesceTimeout: Duration = .seconds(120)
    ) {
        self.devices = devices
        self.operations = operations
        self.duration = duration
        self.seed = seed
        self.stores = stores
        self.transports = transports
        self.serverURL = serverURL
        self.token = token
        self.namespace = namespace
        self.offlineRate = offlineRate
        self.crashRate = crashRate
        self.restartServer = restartServer
        self.directory = directory
        self.quiesceTimeout = quiesceTimeout
    }
}
