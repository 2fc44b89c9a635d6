/// Exponential backoff with jitter, the one every retry loop uses (the outbox, the background
/// loop, the WebSocket reconnect, the REST long poll): each delay is the current step times a
/// random factor in 0.5...1 (so devices that failed together do not retry together), and the step
/// doubles up to `maximum`; ``reset()`` after a success.
public struct Backoff: Sendable {
    public let initial: Duration
    public let maximum: Duration
    /// The step the next delay is drawn from.
    public private(set) var step: Duration

    public init(initial: Duration, maximum: Duration) {
        self.initial = initial
        self.maximum = max(initial, maximum)
        step = initial
    }

    /// The delay to wait now; the step doubles for the next one.
    public mutating func next(using random: inout some RandomNumberGenerator) -> Duration {
        let delay = step * Double.random(in: 0.5...1.0, using: &random)
        step = min(step * 2, maximum)
        return delay
    }

    /// Waits the next delay (throws `CancellationError` when the task is cancelled meanwhile).
    public mutating func wait() async throws {
        var random = SystemRandomNumberGenerator()
        try await Task.sleep(for: next(using: &random))
    }

    /// Back to the initial step, after a success.
    public mutating func reset() { step = initial }
}
