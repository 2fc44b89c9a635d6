package import JWTKit

/// A JWT's payload as the server reads it: every claim, decoded leniently, so that a missing or
/// mistyped claim is reported by name (``JWTVerifier`` checks them after the signature).
///
/// Also used to sign tokens in tests and tools: `JWTClaims(["exp": .number(…), "ns": .strings(["alice"])])`.
package struct JWTClaims: JWTPayload, Sendable, Hashable {
    /// One claim's value, as far as the server cares.
    package enum Value: Sendable, Hashable, Codable {
        case string(String)
        case strings([String])
        case number(Double)
        /// Anything else (an object, a boolean, null, a mixed array).
        case other

        package init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) {
                self = .string(text)
            } else if let texts = try? container.decode([String].self) {
                self = .strings(texts)
            } else if let number = try? container.decode(Double.self) {
                self = .number(number)
            } else {
                self = .other
            }
        }

        package func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .string(let text): try container.encode(text)
            case .strings(let texts): try container.encode(texts)
            case .number(let number): try container.encode(number)
            case .other: try container.encodeNil()
            }
        }
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Claim name → value.
    package var claims: [String: Value]

    package init(_ claims: [String: Value]) {
        self.claims = claims
    }

    package subscript(_ name: String) -> Value? { claims[name] }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        var claims: [String: Value] = [:]
        for key in container.allKeys {
            claims[key.stringValue] = try container.decode(Value.self, forKey: key)
        }
        self.claims = claims
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (name, value) in claims {
            try container.encode(value, forKey: Key(stringValue: name))
        }
    }

    /// Nothing here: the claims are checked by ``JWTVerifier`` with the server's clock and leeway,
    /// so each failure names its rule.
    package func verify(using algorithm: some JWTAlgorithm) async throws {}
}
