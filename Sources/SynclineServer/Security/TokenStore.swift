public import Syncline

/// Which namespaces each bearer token may use (DESIGN §5): a token maps to namespace names, or to
/// `"*"` for every namespace.
///
/// The file form (`--tokens tokens.json`) is one JSON object: `{"<token>": ["alice", "team"],
/// "<admin-token>": ["*"]}`.
public struct TokenStore: Sendable {
    private var grants: [String: Set<String>]

    public init(_ grants: [String: [String]] = [:]) {
        self.grants = grants.mapValues(Set.init)
    }

    /// Reads the JSON file form.
    /// - Throws: ``SyncError`` `.malformedInput` naming what is wrong.
    public init(json bytes: [UInt8]) throws(SyncError) {
        guard case .object(let members) = try Value.fromJSON(bytes) else {
            throw SyncError(.malformedInput, "a tokens file must be a JSON object of token → [namespace]")
        }
        var grants: [String: [String]] = [:]
        for (token, value) in members {
            guard case .array(let items) = value, !token.isEmpty else {
                throw SyncError(.malformedInput, "token entry \(token.prefix(4))… must map to an array of namespaces")
            }
            grants[token] = try items.map { item throws(SyncError) in
                guard case .string(let name) = item else {
                    throw SyncError(.malformedInput, "token \(token.prefix(4))… lists a namespace that is not a string")
                }
                if name != "*" { _ = try Namespace(name) }
                return name
            }
        }
        self.init(grants)
    }

    public mutating func grant(_ token: String, namespaces: [String]) {
        grants[token, default: []].formUnion(namespaces)
    }

    /// The namespaces a token may use (`"*"` for all), or `nil` for an unknown token.
    public func namespaces(for token: String) -> Set<String>? { grants[token] }
}

extension Value {
    /// Parses JSON into a value (bytes objects come back as bytes).
    static func fromJSON(_ bytes: [UInt8]) throws(SyncError) -> Value { try JSONCodec.decodeValue(bytes) }
}
