/// How a collection resolves concurrent edits (DESIGN §4).
public enum ConflictPolicy: Sendable {
    /// Per field, the greater `(hlc, node)` wins; a lost local write is reported. The default.
    case lastWriterWins
    /// The server's value stays; the local edit is dropped and reported.
    case serverWins
    /// The local value is forced.
    case clientWins
    /// The resolver combines the local and server values of the conflicting fields; the result is
    /// pushed as a new edit.
    case merge(@Sendable (_ local: [String: Value], _ server: [String: Value]) -> [String: Value])
    /// The record is flagged and the conflict kept (across restarts) until the app resolves it.
    case manual

    /// The mode the server is asked to use.
    public var mode: ConflictMode {
        switch self {
        case .lastWriterWins: return .lww
        case .clientWins: return .force
        case .serverWins, .merge, .manual: return .reject
        }
    }

    public var name: String {
        switch self {
        case .lastWriterWins: return "lastWriterWins"
        case .serverWins: return "serverWins"
        case .clientWins: return "clientWins"
        case .merge: return "merge"
        case .manual: return "manual"
        }
    }
}
