import CryptoExtras
import Foundation
import JWTKit
import Syncline
import SynclineServer
import Testing

/// A stand-in for an app's auth server: it holds one private key per algorithm (generated here, never
/// committed), publishes their public halves as a JWKS, and signs tokens.
struct TokenIssuer: Sendable {
    enum Algorithm: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case hs256 = "HS256", rs256 = "RS256", es256 = "ES256"

        var testDescription: String { rawValue }
    }

    /// Key ids are `<prefix>-hs`, `<prefix>-rs`, `<prefix>-es`.
    let prefix: String
    let secret: [UInt8]
    let rsa: JWTKit.Insecure.RSA.PrivateKey
    let ec: ES256PrivateKey

    init(prefix: String) throws {
        self.prefix = prefix
        var generator = SystemRandomNumberGenerator()
        secret = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        rsa = try Self.rsaKey()
        ec = ES256PrivateKey()
    }

    /// RSA key generation is slow in a debug build: one key per process, shared by the issuers (so
    /// two issuers' RS256 tokens differ only by kid: "signed with another key" cases use HS256/ES256).
    private static let sharedRSA = Result { try _RSA.Signing.PrivateKey(keySize: .bits2048) }
    private static func rsaKey() throws -> JWTKit.Insecure.RSA.PrivateKey { try JWTKit.Insecure.RSA.PrivateKey(backing: sharedRSA.get()) }

    func kid(_ algorithm: Algorithm) -> String {
        switch algorithm {
        case .hs256: "\(prefix)-hs"
        case .rs256: "\(prefix)-rs"
        case .es256: "\(prefix)-es"
        }
    }

    /// The JWK (public half, except for the shared HMAC secret) of one key.
    func jwk(_ algorithm: Algorithm, kid: String?? = .none) throws -> [String: Value] {
        var key: [String: Value]
        switch algorithm {
        case .hs256:
            key = ["kty": "oct", "k": .string(Base64.encode(url: secret))]
        case .rs256:
            let (modulus, exponent) = try rsa.publicKey.getKeyPrimitives()
            key = ["kty": "RSA", "n": .string(Base64.encode(url: [UInt8](modulus))), "e": .string(Base64.encode(url: [UInt8](exponent)))]
        case .es256:
            guard let parameters = ec.parameters else { throw SyncError(.invalidValue, "the P-256 key has no coordinates") }
            key = ["kty": "EC", "crv": "P-256", "x": .string(parameters.x), "y": .string(parameters.y)]
        }
        switch kid {
        case .none: key["kid"] = .string(self.kid(algorithm))
        case .some(.some(let kid)): key["kid"] = .string(kid)
        case .some(.none): break
        }
        return key
    }

    /// A JWKS document of the given keys.
    func jwks(_ algorithms: [Algorithm] = Algorithm.allCases) throws -> [UInt8] {
        try JSONCodec.encode(.object(["keys": .array(try algorithms.map { .object(try jwk($0)) })]))
    }

    /// A signed token. `kid: .some(nil)` leaves the header without a kid.
    func token(_ algorithm: Algorithm, _ claims: [String: JWTClaims.Value], kid: String?? = .none) async throws -> String {
        let keyID: String? =
            switch kid {
            case .none: self.kid(algorithm)
            case .some(let explicit): explicit
            }
        let keys = JWTKeyCollection()
        let id = keyID.map { JWKIdentifier(string: $0) }
        switch algorithm {
        case .hs256: await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256, kid: id)
        case .rs256: await keys.add(rsa: rsa, digestAlgorithm: .sha256, kid: id)
        case .es256: await keys.add(ecdsa: ec, kid: id)
        }
        return try await keys.sign(JWTClaims(claims), kid: id)
    }

    /// Claims valid for `lifetime` from now, for `namespaces`.
    static func claims(_ namespaces: [String] = ["team"], lifetime: Double = 300, now: Double = Date().timeIntervalSince1970)
        -> [String: JWTClaims.Value]
    {
        ["exp": .number(now + lifetime), "ns": .strings(namespaces), "sub": .string("device-1")]
    }
}
