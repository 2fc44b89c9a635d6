public import Syncline

/// A network transport for ``SyncClient``, named by its server URL and a token provider.
///
/// ```swift
/// let client = try SyncClient(namespace: Namespace("alice"), store: SQLiteStore(path: "alice.db"),
///                             transport: .webSocket("http://127.0.0.1:8080", token: { "t0k3n" }))
/// // TLS with a self-signed certificate: https:// (and wss://), trusting that certificate.
/// let secure = NetworkTransport.rest("https://sync.example.org", token: { "t0k3n" },
///                                    trust: try .certificates(pemFile: "server.pem"))
/// ```
public enum NetworkTransport: Sendable {
    /// Protocol v1 over REST (`RESTTransport`).
    case rest(String, token: TokenProvider, trust: ServerTrust = .system)
    /// The live WebSocket, with REST while it is down (`WebSocketTransport`).
    case webSocket(String, token: TokenProvider, trust: ServerTrust = .system)
}

extension SyncClient {
    /// Opens the pipeline with a network transport the client creates and owns: ``close()`` ends it.
    public convenience init(
        namespace: Namespace, store: any SyncStore, transport: NetworkTransport, configuration: Configuration = Configuration()
    ) throws {
        switch transport {
        case .rest(let url, let token, let trust):
            try self.init(
                namespace: namespace, store: store,
                transport: RESTTransport(url: url, namespace: namespace, token: token, configuration: .init(trust: trust)),
                configuration: configuration, closeTransport: nil
            )
        case .webSocket(let url, let token, let trust):
            let socket = WebSocketTransport(url: url, namespace: namespace, token: token, configuration: .init(trust: trust))
            try self.init(namespace: namespace, store: store, transport: socket, configuration: configuration, closeTransport: { socket.close() })
        }
    }
}
