import Synchronization

/// A ``SyncTransport`` to an ``InMemorySyncServer``, with fault injection: requests dropped before
/// the server sees them, responses dropped after it committed, duplicated requests, delays, and
/// disconnection. Faults are drawn from a seeded generator, so a run replays from its seed.
///
/// With a ``WireCodec``, every request and answer is encoded, compressed above the codec's
/// threshold, and decoded again on the other side, as on a network, and ``traffic`` counts the
/// bytes.
public final class InMemoryTransport: SyncTransport {
    /// How often each fault happens.
    public typealias Faults = TransportFaults

    private struct State {
        var traffic = TransportTraffic()
    }

    public let server: InMemorySyncServer
    public let namespace: Namespace
    /// When set, messages go through this codec's bytes.
    public let wire: WireCodec?
    private let state: Mutex<State>
    private let plan: FaultPlan

    public init(server: InMemorySyncServer, namespace: Namespace, faults: Faults = .none, seed: UInt64 = 1, wire: WireCodec? = nil) {
        self.server = server
        self.namespace = namespace
        self.wire = wire
        plan = FaultPlan(faults: faults, seed: seed)
        state = Mutex(State())
    }

    public var traffic: TransportTraffic? {
        wire == nil ? nil : state.withLock { $0.traffic }
    }

    /// Takes the device off the network (every call fails) or back on.
    public func setConnected(_ connected: Bool) { plan.setConnected(connected) }

    public func setFaults(_ faults: Faults) { plan.setFaults(faults) }

    /// How many of each fault were injected, by name.
    public var injected: [String: Int] { plan.injected }

    public func push(_ batch: ChangeBatch) async throws -> PushResponse {
        try await plan.push { try await exchange(batch) }
    }

    public func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
        try await pull(after: cursor, from: position, limit: limit, epoch: epoch, leavingOut: nil)
    }

    public func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?, leavingOut device: UInt64?) async throws -> PullPage {
        try await plan.pull { try await fetch(after: cursor, from: position, limit: limit, epoch: epoch, leavingOut: device) }
    }

    public func liveHeads() async -> AsyncStream<UInt64> {
        await server.subscribe(namespace: namespace)
    }

    /// One push as the server sees it: through the wire codec's bytes when there is one.
    private func exchange(_ batch: ChangeBatch) async throws -> PushResponse {
        guard let wire else { return try await server.push(batch, namespace: namespace) }
        let request = try wire.encode(batch)
        count(sent: request.bytes.count)
        let response = try wire.encode(try await server.push(wire.decodeChangeBatch(request), namespace: namespace))
        count(received: response.bytes.count)
        return try wire.decodePushResponse(response)
    }

    private func fetch(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?, leavingOut device: UInt64?) async throws -> PullPage {
        let page = try await server.pull(namespace: namespace, after: cursor, from: position, limit: limit, epoch: epoch, leavingOut: device)
        guard let wire else { return page }
        let body = try wire.encode(page)
        count(received: body.bytes.count)
        return try wire.decodePullPage(body)
    }

    private func count(sent: Int = 0, received: Int = 0) {
        state.withLock {
            $0.traffic.bytesSent += sent
            $0.traffic.bytesReceived += received
        }
    }
}
