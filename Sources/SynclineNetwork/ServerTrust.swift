public import NIOSSL
import Syncline

/// Which certificates a client trusts when it talks to an `https://` (and `wss://`) server.
///
/// ```swift
/// // A self-signed deployment: trust its certificate (or its private CA) only.
/// let trust = try ServerTrust.certificates(pemFile: "syncline-ca.pem")
/// let client = try SyncClient(namespace: ns, store: store,
///                             transport: .webSocket("https://sync.example.org", token: { token }, trust: trust))
/// ```
public struct ServerTrust: Sendable, Hashable {
    /// `nil`: the system's trust store.
    let roots: [NIOSSLCertificate]?

    /// The system's trust store (the default).
    public static let system = ServerTrust(roots: nil)

    /// Trusts only these certificates as roots (a private CA, or a self-signed server certificate).
    public static func certificates(_ roots: [NIOSSLCertificate]) -> ServerTrust { ServerTrust(roots: roots) }

    /// Trusts only the certificates in a PEM file.
    /// - Throws: ``SyncError`` `.invalidParameter` when the file cannot be read or holds no certificate.
    public static func certificates(pemFile path: String) throws -> ServerTrust {
        let roots: [NIOSSLCertificate]
        do {
            roots = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw SyncError(.invalidParameter, "cannot read PEM certificates from \(path): \(error)")
        }
        guard !roots.isEmpty else { throw SyncError(.invalidParameter, "no PEM certificate in \(path)") }
        return ServerTrust(roots: roots)
    }

    /// Trusts only the certificates in PEM text.
    /// - Throws: ``SyncError`` `.invalidParameter` when the bytes hold no valid certificate.
    public static func certificates(pem bytes: [UInt8]) throws -> ServerTrust {
        let roots: [NIOSSLCertificate]
        do {
            roots = try NIOSSLCertificate.fromPEMBytes(bytes)
        } catch {
            throw SyncError(.invalidParameter, "cannot read PEM certificates: \(error)")
        }
        guard !roots.isEmpty else { throw SyncError(.invalidParameter, "no PEM certificate in the given bytes") }
        return ServerTrust(roots: roots)
    }

    /// The client TLS configuration: full verification (chain and host name) against these roots.
    var tlsConfiguration: TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let roots { configuration.trustRoots = .certificates(roots) }
        return configuration
    }
}
