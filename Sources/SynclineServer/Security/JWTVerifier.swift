import FoundationEssentials
import JWTKit
public import Syncline

/// Verifies a JWT (DESIGN §5) against a ``JSONWebKeySet`` and the server's claim rules, with
/// vapor/jwt-kit doing the cryptography.
///
/// In order, each failure a 401 whose `reason` names the rule: the token's shape
/// (`malformed_token`), its `alg` (`algorithm_not_allowed` for `none` or anything but
/// HS256/RS256/ES256), its `kid` (`unknown_key`), `alg` against the key's type
/// (`algorithm_mismatch`), the signature (`bad_signature`, also for a tampered payload), then the
/// claims: `exp` required (`missing_claim`, `token_expired`), `nbf` honoured (`token_not_yet_valid`),
/// `iss`/`aud` when configured (`missing_claim`, `wrong_issuer`, `wrong_audience`), and the
/// namespaces claim (`missing_claim`, `invalid_claim`). `exp` and `nbf` get ``Rules/leeway``.
public struct JWTVerifier: Sendable {
    /// What a token's claims must say.
    public struct Rules: Sendable {
        /// The claim holding the namespaces (a string or an array of strings; `"*"` is all). Default `ns`.
        public var namespacesClaim: String
        /// When set, `iss` must equal it.
        public var issuer: String?
        /// When set, `aud` (a string or an array) must contain it.
        public var audience: String?
        /// Clock skew allowed for `exp` and `nbf`. Default 60 s.
        public var leeway: Duration

        public init(namespacesClaim: String = "ns", issuer: String? = nil, audience: String? = nil, leeway: Duration = .seconds(60)) {
            self.namespacesClaim = namespacesClaim
            self.issuer = issuer
            self.audience = audience
            self.leeway = leeway
        }
    }

    /// The verification keys; swapped on reload.
    public var keys: JSONWebKeySet
    public var rules: Rules

    public init(keys: JSONWebKeySet, rules: Rules = Rules()) {
        self.keys = keys
        self.rules = rules
    }

    /// Whether `token` has the compact JWS shape (three dot-separated parts), so a static token
    /// that is not one is reported as unknown rather than malformed.
    static func looksLikeJWT(_ token: String) -> Bool {
        token.utf8.lazy.filter { $0 == UInt8(ascii: ".") }.count == 2
    }

    /// Verifies `token` at `now` (Unix milliseconds).
    /// - Throws: ``SyncError`` `.unauthorized` with the failed rule as `reason`.
    public func verify(_ token: String, now: UInt64) throws(SyncError) -> AccessGrant {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw SyncError(.unauthorized, "the token is not three base64url parts separated by dots", reason: "malformed_token")
        }
        let header = try Self.header(parts[0])
        guard case .string(let alg)? = header["alg"], JSONWebKeySet.algorithms.contains(alg) else {
            throw SyncError(.unauthorized, "the token's alg must be HS256, RS256 or ES256", reason: "algorithm_not_allowed")
        }
        let kid: String?
        switch header["kid"] {
        case nil: kid = nil
        case .string(let text)?: kid = text
        default: throw SyncError(.unauthorized, "the token's kid is not a string", reason: "malformed_token")
        }
        let key = try keys.key(for: kid)
        guard key.algorithm == alg else {
            throw SyncError(.unauthorized, "the token's alg \(alg) does not fit its key, a \(key.algorithm) key", reason: "algorithm_mismatch")
        }
        // As jwt-kit's own verify does: the key's algorithm checks the signature over `header.payload`.
        let signingInput = token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count)
        let verified: Bool
        if let signature = Base64.decode(url: String(parts[2])) {
            do {
                verified = try key.verifier.verify(signature, signs: Array(signingInput))
            } catch {
                verified = false  // a signature of the wrong size or encoding
            }
        } else {
            verified = false
        }
        guard verified else { throw SyncError(.unauthorized, "the token's signature does not verify", reason: "bad_signature") }
        guard let payload = Base64.decode(url: String(parts[1])),
            let claims = try? JSONDecoder().decode(JWTClaims.self, from: Data(payload))  // the failure is reported just below
        else {
            throw SyncError(.unauthorized, "the token's payload is not a base64url JSON object", reason: "malformed_token")
        }
        return try grant(claims, token: token, now: now)
    }

    /// Checks the claims of a token whose signature verified.
    func grant(_ claims: JWTClaims, token: String, now: UInt64) throws(SyncError) -> AccessGrant {
        let leeway = Double(rules.leeway.components.seconds) + Double(rules.leeway.components.attoseconds) / 1e18
        let seconds = Double(now) / 1000
        guard case .number(let exp)? = claims["exp"] else {
            throw SyncError(.unauthorized, "the token has no numeric exp claim, which is required", reason: "missing_claim")
        }
        guard seconds <= exp + leeway else {
            throw SyncError(.unauthorized, "the token expired at \(Self.text(exp)) (Unix seconds)", reason: "token_expired")
        }
        switch claims["nbf"] {
        case nil: break
        case .number(let nbf)?:
            guard seconds + leeway >= nbf else {
                throw SyncError(.unauthorized, "the token is not valid before \(Self.text(nbf)) (Unix seconds)", reason: "token_not_yet_valid")
            }
        default: throw SyncError(.unauthorized, "the token's nbf claim is not a number", reason: "invalid_claim")
        }
        if let issuer = rules.issuer {
            guard case .string(let iss)? = claims["iss"] else {
                throw SyncError(.unauthorized, "the token has no iss claim, which this server requires", reason: "missing_claim")
            }
            guard iss == issuer else { throw SyncError(.unauthorized, "the token's issuer is not accepted", reason: "wrong_issuer") }
        }
        if let audience = rules.audience {
            let audiences: [String]
            switch claims["aud"] {
            case .string(let aud)?: audiences = [aud]
            case .strings(let auds)?: audiences = auds
            case nil: throw SyncError(.unauthorized, "the token has no aud claim, which this server requires", reason: "missing_claim")
            default: throw SyncError(.unauthorized, "the token's aud claim is not a string or an array of strings", reason: "invalid_claim")
            }
            guard audiences.contains(audience) else {
                throw SyncError(.unauthorized, "the token is not meant for this server (aud)", reason: "wrong_audience")
            }
        }
        let namespaces: [String]
        switch claims[rules.namespacesClaim] {
        case .string(let name)?: namespaces = [name]
        case .strings(let names)?: namespaces = names
        case nil:
            throw SyncError(.unauthorized, "the token has no \(rules.namespacesClaim) claim naming its namespaces", reason: "missing_claim")
        default:
            throw SyncError(
                .unauthorized, "the token's \(rules.namespacesClaim) claim is not a string or an array of strings", reason: "invalid_claim"
            )
        }
        // exp is at least now - leeway here; a huge one means "never" within a UInt64 of milliseconds.
        let millis = ((exp + leeway) * 1000).rounded(.down)
        let expiresAt: UInt64 = millis.isFinite && millis < 1.8e19 ? UInt64(max(0, millis)) : .max
        let subject: String
        if case .string(let sub)? = claims["sub"] { subject = "jwt-sub:" + sub } else { subject = "jwt:" + token }
        return AccessGrant(namespaces: Set(namespaces), expiresAt: expiresAt, rateKey: subject)
    }

    /// A NumericDate for a message: whole seconds when it fits, else as given.
    private static func text(_ seconds: Double) -> String {
        Int64(exactly: seconds.rounded(.down)).map(String.init) ?? "\(seconds)"
    }

    /// The decoded JOSE header, before any key is chosen.
    private static func header(_ encoded: Substring) throws(SyncError) -> [String: Value] {
        guard let bytes = Base64.decode(url: String(encoded)),
            case .object(let header)? = try? Value.fromJSON(bytes)  // the failure is reported just below
        else {
            throw SyncError(.unauthorized, "the token's header is not base64url JSON", reason: "malformed_token")
        }
        return header
    }
}
