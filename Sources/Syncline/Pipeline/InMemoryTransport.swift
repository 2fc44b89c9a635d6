import Synchronization

/// A ``SyncTransport`` to an ``InMemorySyncServer``, with fault injection: requests dropped before
/// the server sees them, responses dropped after it committed, duplicated requests, delays, and
/// disconnection. Faults are drawn from a seeded generator, so a run replays from its seed.
///
/// With a ``WireCodec``, every request and answer is encoded, compressed above the codec's
/// threshold, and decoded again on the other side, as on a network, and ``traffic`` counts the
/// bytes.
public final class InMemoryTransport: SyncTransport {
    /// How often each fault happens (probabilities from 0 to 1).
    public struct Faults: Sendable {
        public var dropRequest: Double
        public var dropResponse: Double
        public var duplicate: Double
        public var delay: Double
        /// How long a delayed request waits.
        public var delayDuration: Duration

        public init(
            dropRequest: Double = 0, dropResponse: Double = 0, duplicate: Double = 0, delay: Double = 0,
            delayDuration: Duration = .milliseconds(2)
        ) {
            self.dropRequest = dropRequest
            self.dropResponse = dropResponse
            self.duplicate = duplicate
            self.delay = delay
            self.delayDuration = delayDuration
        }

        public static let none = Faults()
    }

    private struct State {
        var faults: Faults
        var random: FaultRandom
        var connected = true
        var counts: [String: Int] = [:]
        var traffic = TransportTraffic()
    }

    public let server: InMemorySyncServer
    public let namespace: Namespace
    /// When set, messages go through this codec's bytes.
    public let wire: WireCodec?
    private let state: Mutex<State>

    public init(server: InMemorySyncServer, namespace: Namespace, faults: Faults = .none, seed: UInt64 = 1, wire: WireCodec? = nil) {
        self.server = server
        self.namespace = namespace
        self.wire = wire
        state = Mutex(State(faults: faults, random: FaultRandom(seed: seed)))
    }

    public var traffic: TransportTraffic? {
        wire == nil ? nil : state.withLock { $0.traffic }
    }

    /// Takes the device off the network (every call fails) or back on.
    public func setConnected(_ connected: Bool) { state.withLock { $0.connected = connected } }

    public func setFaults(_ faults: Faults) { state.withLock { $0.faults = faults } }

    /// How many of each fault were injected, by name.
    public var injected: [String: Int] { state.withLock { $0.counts } }

    private enum Decision { case proceed, dropRequest, dropResponse, duplicate }

    private func decide() -> (Decision, Duration?) {
        state.withLock { state in
            let faults = state.faults
            let delay = state.random.chance(faults.delay) ? faults.delayDuration : nil
            if delay != nil { state.counts["delay", default: 0] += 1 }
            let decision: Decision
            if state.random.chance(faults.dropRequest) {
                decision = .dropRequest
            } else if state.random.chance(faults.dropResponse) {
                decision = .dropResponse
            } else if state.random.chance(faults.duplicate) {
                decision = .duplicate
            } else {
                decision = .proceed
            }
            switch decision {
            case .dropRequest: state.counts["dropRequest", default: 0] += 1
            case .dropResponse: state.counts["dropResponse", default: 0] += 1
            case .duplicate: state.counts["duplicate", default: 0] += 1
            case .proceed: break
            }
            return (decision, delay)
        }
    }

    private func checkConnected() throws(SyncError) {
        guard state.withLock({ $0.connected }) else {
            throw SyncError(.transportUnavailable, "the device is offline")
        }
    }

    public func push(_ batch: ChangeBatch) async throws -> PushResponse {
        try checkConnected()
        let (decision, delay) = decide()
        if let delay { try await Task.sleep(for: delay) }
        switch decision {
        case .dropRequest:
            throw SyncError(.transportUnavailable, "injected fault: the push request was lost")
        case .dropResponse:
            _ = try await exchange(batch)
            throw SyncError(.transportUnavailable, "injected fault: the push response was lost after the server committed")
        case .duplicate:
            _ = try await exchange(batch)
            return try await exchange(batch)
        case .proceed:
            return try await exchange(batch)
        }
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

    private func fetch(after cursor: UInt64, from position: UInt64, limit: Int) async throws -> PullPage {
        let page = try await server.pull(namespace: namespace, after: cursor, from: position, limit: limit)
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

    public func pull(after cursor: UInt64, from position: UInt64, limit: Int) async throws -> PullPage {
        try checkConnected()
        let (decision, delay) = decide()
        if let delay { try await Task.sleep(for: delay) }
        switch decision {
        case .dropRequest, .dropResponse:
            throw SyncError(.transportUnavailable, "injected fault: the pull was lost")
        case .duplicate, .proceed:
            return try await fetch(after: cursor, from: position, limit: limit)
        }
    }

    public func liveHeads() async -> AsyncStream<UInt64> {
        await server.subscribe(namespace: namespace)
    }
}

/// SplitMix64: reproducible fault decisions, and fast random bits for event ids.
struct FaultRandom: RandomNumberGenerator, Sendable {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func chance(_ probability: Double) -> Bool {
        guard probability > 0 else { return false }
        return Double(next() >> 11) / Double(1 << 53) < probability
    }
}
