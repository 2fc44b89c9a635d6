public import Syncline
import Synchronization

/// Decides who a request is (DESIGN §5): a static token from the tokens file, or a JWT verified
/// against the JWKS. REST and the WebSocket upgrade both ask it; it returns the namespaces the
/// token grants and, for a JWT, when it expires.
///
/// The credentials are swapped atomically on reload (SIGHUP): a request reads them once, so it is
/// decided entirely by either the old or the new set, and open connections stay open.
///
/// ```swift
/// let keys = try await JSONWebKeySet(json: jwksBytes)
/// let authenticator = Authenticator(tokens: TokenStore(["t0k3n": ["alice"]]),
///                                   jwt: JWTVerifier(keys: keys, rules: .init(issuer: "https://auth.example")))
/// let grant = try authenticator.authenticate("Bearer eyJ…", namespace: alice, now: WallClock.nowMillis())
/// ```
public final class Authenticator: Sendable {
    private struct Credentials: Sendable {
        var tokens: TokenStore
        var jwt: JWTVerifier?
    }

    // Sendable without `@unchecked`: the only state is this Mutex of Sendable values.
    private let credentials: Mutex<Credentials>

    /// - Parameters:
    ///   - tokens: static bearer tokens (`--tokens`, `--dev-token`).
    ///   - jwt: JWT verification (`--jwks`); `nil` accepts static tokens only.
    public init(tokens: TokenStore = TokenStore(), jwt: JWTVerifier? = nil) {
        credentials = Mutex(Credentials(tokens: tokens, jwt: jwt))
    }

    /// Replaces the static tokens (a reloaded tokens file); requests in flight keep the old ones.
    public func replaceTokens(_ tokens: TokenStore) {
        credentials.withLock { $0.tokens = tokens }
    }

    /// Replaces the JWT verification keys (a reloaded JWKS file), keeping the claim rules.
    /// - Throws: ``SyncError`` `.invalidParameter` when this authenticator was made without JWT
    ///   verification.
    public func replaceKeys(_ keys: JSONWebKeySet) throws(SyncError) {
        try credentials.withLock { (credentials: inout Credentials) throws(SyncError) in
            guard credentials.jwt != nil else {
                throw SyncError(.invalidParameter, "this server was started without a JWKS")
            }
            credentials.jwt?.keys = keys
        }
    }

    /// Checks an `Authorization` header value for a namespace.
    /// - Parameter now: Unix milliseconds, for `exp` and `nbf`.
    /// - Throws: ``SyncError`` `.unauthorized` (HTTP 401) with a `reason` naming the rule that
    ///   failed, or `.forbidden` (HTTP 403) for a valid token that may not use `namespace`.
    ///   Messages never contain the token or key material.
    public func authenticate(_ header: String?, namespace: Namespace, now: UInt64) throws(SyncError) -> AccessGrant {
        let grant = try authenticate(header, now: now)
        guard grant.allows(namespace) else {
            throw SyncError(.forbidden, "the token may not use namespace \(namespace.rawValue)")
        }
        return grant
    }

    /// Verifies an `Authorization` header value without a namespace.
    public func authenticate(_ header: String?, now: UInt64) throws(SyncError) -> AccessGrant {
        guard let header, header.hasPrefix("Bearer ") else {
            throw SyncError(.unauthorized, "an Authorization: Bearer <token> header is required", reason: "missing_token")
        }
        let token = String(header.dropFirst("Bearer ".count))
        let (tokens, jwt) = credentials.withLock { ($0.tokens, $0.jwt) }
        if let namespaces = tokens.namespaces(for: token) {
            return AccessGrant(namespaces: namespaces, rateKey: token)
        }
        if let jwt, JWTVerifier.looksLikeJWT(token) {
            return try jwt.verify(token, now: now)
        }
        throw SyncError(.unauthorized, "the token is not valid", reason: "unknown_token")
    }
}
