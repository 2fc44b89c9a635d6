import Synchronization

/// A token bucket per bearer token: `burst` requests at once, refilled at `perSecond`. A request
/// over the limit gets 429 with `Retry-After`.
public final class RateLimiter: Sendable {
    public struct Configuration: Sendable {
        /// Sustained requests per second per token. Default 200.
        public var perSecond: Double
        /// Requests allowed at once. Default 400.
        public var burst: Double

        public init(perSecond: Double = 200, burst: Double = 400) {
            self.perSecond = perSecond
            self.burst = burst
        }
    }

    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let configuration: Configuration
    private let buckets = Mutex<[String: Bucket]>([:])

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Takes one request from the token's bucket.
    /// - Returns: `nil` when allowed, else the seconds to wait.
    public func take(_ token: String, now: ContinuousClock.Instant = .now) -> Int? {
        buckets.withLock { buckets in
            var bucket = buckets[token] ?? Bucket(tokens: configuration.burst, updated: now)
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(configuration.burst, bucket.tokens + seconds * configuration.perSecond)
            bucket.updated = now
            defer {
                buckets[token] = bucket
                if buckets.count > 100_000 { buckets = buckets.filter { $0.value.tokens < configuration.burst } }
            }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / configuration.perSecond).rounded(.up)))
        }
    }
}
