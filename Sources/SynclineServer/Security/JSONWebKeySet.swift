import FoundationEssentials
import JWTKit
public import Syncline

/// The verification keys of a JWKS document (RFC 7517), as `--jwks FILE` gives them:
/// `oct` keys for HS256, `RSA` keys for RS256, `EC` P-256 keys for ES256.
///
/// Each key verifies only with its own algorithm (a token whose `alg` does not fit its key's type is
/// refused before any signature check). A key marked `"use": "enc"`, or of a type or algorithm the
/// server does not verify (`OKP`, `RS384`, …), is skipped and listed in ``skipped``; a key of a
/// supported type that is broken makes the whole document fail, so a typo never half-loads a set.
///
/// ```json
/// {"keys": [{"kty": "oct", "kid": "k1", "k": "<base64url, at least 32 bytes>"},
///           {"kty": "EC", "kid": "k2", "crv": "P-256", "x": "…", "y": "…"}]}
/// ```
public struct JSONWebKeySet: Sendable {
    /// One verification key.
    struct Key: Sendable {
        /// The JWK's `kid` (optional only in a set of one key).
        let id: String?
        /// `HS256`, `RS256` or `ES256`.
        let algorithm: String
        /// jwt-kit's algorithm for this one key: stateless and `Sendable`, so requests verify in
        /// parallel instead of queueing on a key collection's actor.
        let verifier: any JWTAlgorithm
    }

    /// The algorithms a key can verify.
    static let algorithms: Set<String> = ["HS256", "RS256", "ES256"]

    private let keys: [Key]
    /// Keys that were skipped, described without key material (`"kid k3: kty OKP is not supported"`).
    public let skipped: [String]

    /// How many keys verify tokens.
    public var count: Int { keys.count }
    /// The keys' ids, in document order.
    public var keyIDs: [String?] { keys.map(\.id) }

    /// Reads a JWKS document.
    /// - Throws: ``SyncError`` `.malformedInput` naming the key and what is wrong with it (never
    ///   its material): not JSON, no usable key, a duplicate or missing `kid`, a short HMAC secret,
    ///   an RSA key under 2048 bits, a point not on P-256.
    public init(json bytes: [UInt8]) async throws(SyncError) {
        guard case .object(let root) = try Value.fromJSON(bytes), case .array(let entries)? = root["keys"] else {
            throw SyncError(.malformedInput, "a JWKS must be a JSON object with a \"keys\" array")
        }
        var keys: [Key] = []
        var skipped: [String] = []
        var seen: Set<String> = []
        for (index, entry) in entries.enumerated() {
            guard case .object(let members) = entry else {
                throw SyncError(.malformedInput, "JWKS key #\(index) is not a JSON object")
            }
            let name: String
            if case .string(let kid)? = members["kid"] {
                name = "key \"\(kid.prefix(64))\""
                guard seen.insert(kid).inserted else { throw SyncError(.malformedInput, "JWKS has two keys with kid \"\(kid.prefix(64))\"") }
            } else {
                name = "key #\(index)"
            }
            guard let key = try await Self.key(members, name: name) else {
                skipped.append("\(name): \(Self.skipReason(members))")
                continue
            }
            keys.append(key)
        }
        guard !keys.isEmpty else {
            throw SyncError(.malformedInput, "the JWKS has no HS256, RS256 or ES256 verification key")
        }
        if keys.count > 1, keys.contains(where: { $0.id == nil }) {
            throw SyncError(.malformedInput, "every key needs a kid when the JWKS has more than one")
        }
        self.keys = keys
        self.skipped = skipped
    }

    /// The key a token's header names.
    /// - Throws: ``SyncError`` `.unauthorized`: `unknown_key` (a `kid` not in the set, or no `kid`
    ///   while the set has several keys).
    func key(for kid: String?) throws(SyncError) -> Key {
        if let kid {
            guard let key = keys.first(where: { $0.id == kid }) else {
                throw SyncError(.unauthorized, "the token's kid names no key of this server", reason: "unknown_key")
            }
            return key
        }
        guard keys.count == 1 else {
            throw SyncError(.unauthorized, "the token has no kid, which is required with several keys", reason: "unknown_key")
        }
        return keys[0]
    }

    // MARK: Reading one key

    private static func string(_ members: [String: Value], _ name: String) -> String? {
        if case .string(let text)? = members[name] { return text }
        return nil
    }

    private static func algorithm(for keyType: String?, curve: String?) -> String? {
        switch (keyType, curve) {
        case ("oct", _): return "HS256"
        case ("RSA", _): return "RS256"
        case ("EC", "P-256"): return "ES256"
        default: return nil
        }
    }

    private static func skipReason(_ members: [String: Value]) -> String {
        if string(members, "use") == "enc" { return "an encryption key (use enc)" }
        let keyType = string(members, "kty") ?? "missing"
        if let alg = string(members, "alg") { return "kty \(keyType.prefix(16)) with alg \(alg.prefix(16)) is not verified by this server" }
        return "kty \(keyType.prefix(16)) (crv \(string(members, "crv")?.prefix(16) ?? "none")) is not verified by this server"
    }

    /// A verification key, `nil` for one the server skips.
    private static func key(_ members: [String: Value], name: String) async throws(SyncError) -> Key? {
        if let use = string(members, "use"), use != "sig" { return nil }
        guard let algorithm = algorithm(for: string(members, "kty"), curve: string(members, "crv")) else { return nil }
        if let alg = string(members, "alg"), alg != algorithm { return nil }
        let kid = string(members, "kid")
        let verifier = JWTKeyCollection()  // only to build the key's algorithm
        func component(_ field: String) throws(SyncError) -> String {
            guard let text = string(members, field), Base64.decode(url: text) != nil else {
                throw SyncError(.malformedInput, "JWKS \(name): \"\(field)\" is missing or not base64url")
            }
            return text
        }
        do {
            switch algorithm {
            case "HS256":
                guard let secret = Base64.decode(url: try component("k")), secret.count >= 32 else {
                    throw SyncError(.malformedInput, "JWKS \(name): an HS256 secret must have at least 32 bytes")
                }
                await verifier.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
            case "RS256":
                let key = try JWTKit.Insecure.RSA.PublicKey(modulus: try component("n"), exponent: try component("e"))
                await verifier.add(rsa: key, digestAlgorithm: .sha256)
            default:
                let key = try ES256PublicKey(parameters: (x: try component("x"), y: try component("y")))
                await verifier.add(ecdsa: key)
            }
        } catch let error as SyncError {
            throw error
        } catch {
            // jwt-kit's message names the failed check (key size, curve point), not the material.
            throw SyncError(.malformedInput, "JWKS \(name) is not a valid \(algorithm) key: \(String(describing: error).prefix(200))")
        }
        do {
            return Key(id: kid, algorithm: algorithm, verifier: try await verifier.getKey())
        } catch {
            throw SyncError(.malformedInput, "JWKS \(name) gave no \(algorithm) verifier")
        }
    }
}
