import Synchronization

/// How often each injected fault happens (probabilities from 0 to 1).
public struct TransportFaults: Sendable {
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

    public static let none = TransportFaults()
}

/// Seeded fault decisions and their counts, shared by the transports that inject faults.
final class FaultPlan: Sendable {
    enum Decision { case proceed, dropRequest, dropResponse, duplicate }

    private struct State {
        var faults: TransportFaults
        var random: SplitMix64
        var connected = true
        var counts: [String: Int] = [:]
    }

    private let state: Mutex<State>

    init(faults: TransportFaults, seed: UInt64) {
        state = Mutex(State(faults: faults, random: SplitMix64(seed: seed)))
    }

    func setConnected(_ connected: Bool) { state.withLock { $0.connected = connected } }
    func setFaults(_ faults: TransportFaults) { state.withLock { $0.faults = faults } }
    var injected: [String: Int] { state.withLock { $0.counts } }

    func checkConnected() throws(SyncError) {
        guard state.withLock({ $0.connected }) else { throw SyncError(.transportUnavailable, "the device is offline") }
    }

    /// Draws this request's fault and its delay.
    func decide() -> (Decision, Duration?) {
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

    /// Runs a push under the drawn fault: lost before the server, lost after it committed,
    /// sent twice, or delayed.
    func push(_ send: () async throws -> PushResponse) async throws -> PushResponse {
        try checkConnected()
        let (decision, delay) = decide()
        if let delay { try await Task.sleep(for: delay) }
        switch decision {
        case .dropRequest:
            throw SyncError(.transportUnavailable, "injected fault: the push request was lost")
        case .dropResponse:
            _ = try await send()
            throw SyncError(.transportUnavailable, "injected fault: the push response was lost after the server committed")
        case .duplicate:
            _ = try await send()
            return try await send()
        case .proceed:
            return try await send()
        }
    }

    /// Runs a pull under the drawn fault (a lost request or answer, or a delay).
    func pull(_ fetch: () async throws -> PullPage) async throws -> PullPage {
        try checkConnected()
        let (decision, delay) = decide()
        if let delay { try await Task.sleep(for: delay) }
        switch decision {
        case .dropRequest, .dropResponse: throw SyncError(.transportUnavailable, "injected fault: the pull was lost")
        case .duplicate, .proceed: return try await fetch()
        }
    }
}

/// Wraps any ``SyncTransport`` with seeded fault injection (the simulator and the tests put it in
/// front of the network transports): requests dropped before the server sees them, answers
/// dropped after it committed, duplicated requests, delays, and disconnection.
public final class FaultInjectingTransport: SyncTransport {
    public let base: any SyncTransport
    private let plan: FaultPlan

    public init(_ base: any SyncTransport, faults: TransportFaults = .none, seed: UInt64 = 1) {
        self.base = base
        plan = FaultPlan(faults: faults, seed: seed)
    }

    /// Takes the device off the network (every call fails) or back on.
    public func setConnected(_ connected: Bool) { plan.setConnected(connected) }
    public func setFaults(_ faults: TransportFaults) { plan.setFaults(faults) }
    /// How many of each fault were injected, by name.
    public var injected: [String: Int] { plan.injected }

    public func push(_ batch: ChangeBatch) async throws -> PushResponse {
        try await plan.push { try await base.push(batch) }
    }

    public func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
        try await plan.pull { try await base.pull(after: cursor, from: position, limit: limit, epoch: epoch) }
    }

    public func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?, leavingOut device: UInt64?) async throws -> PullPage {
        try await plan.pull { try await base.pull(after: cursor, from: position, limit: limit, epoch: epoch, leavingOut: device) }
    }

    public func resume(from cursor: UInt64, epoch: Epoch?) async { await base.resume(from: cursor, epoch: epoch) }

    public func liveHeads() async -> AsyncStream<UInt64> { await base.liveHeads() }

    public func livePages() async -> AsyncStream<LivePage> { await base.livePages() }

    public var traffic: TransportTraffic? { base.traffic }
}
