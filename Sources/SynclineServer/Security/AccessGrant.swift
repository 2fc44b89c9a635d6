public import Syncline

/// What a verified bearer token may do: the namespaces it may use and, for a JWT, until when.
public struct AccessGrant: Sendable, Hashable {
    /// Namespace names, or `"*"` for every namespace.
    public var namespaces: Set<String>
    /// Unix milliseconds after which the token is refused (a JWT's `exp` plus the leeway); `nil`
    /// for a static token, which does not expire.
    public var expiresAt: UInt64?
    /// The key requests are rate-limited by (the static token, or the JWT's subject).
    public var rateKey: String

    public init(namespaces: Set<String>, expiresAt: UInt64? = nil, rateKey: String) {
        self.namespaces = namespaces
        self.expiresAt = expiresAt
        self.rateKey = rateKey
    }

    /// Whether the token may use `namespace`.
    public func allows(_ namespace: Namespace) -> Bool {
        namespaces.contains("*") || namespaces.contains(namespace.rawValue)
    }
}
