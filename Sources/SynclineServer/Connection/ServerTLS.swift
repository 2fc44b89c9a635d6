public import Logging
import NIOCore
import NIOSSL
import Syncline
import Synchronization

/// The server's TLS certificate and private key, read from PEM files, that can be read again
/// while the server runs (``reload()``, wired to SIGHUP by the command).
///
/// Every new connection takes the context current when it is accepted, so after a reload new
/// connections present the new certificate while open ones keep the one they started with.
///
/// ```swift
/// let tls = try ServerTLS(certificatePath: "server.pem", keyPath: "server.key", logger: logger)
/// var configuration = SyncServerConfiguration(tokens: tokens)
/// configuration.tls = tls
/// // later, on SIGHUP:
/// try tls.reload()
/// ```
public final class ServerTLS: Sendable {
    /// The certificate chain's PEM file: the server's certificate first, then any intermediates.
    public let certificatePath: String
    /// The private key's PEM file.
    public let keyPath: String
    private let logger: Logger
    private let current: Mutex<NIOSSLContext>

    /// Reads the certificate chain and the key.
    /// - Throws: ``SyncError`` `.invalidParameter` naming the file that cannot be read or parsed,
    ///   or a key that does not match the certificate.
    public init(certificatePath: String, keyPath: String, logger: Logger) throws {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.logger = logger
        current = Mutex(try Self.makeContext(certificatePath: certificatePath, keyPath: keyPath))
    }

    /// Reads the files again; connections accepted afterwards use the new certificate.
    ///
    /// When the new files cannot be read or do not make a valid certificate and key, the current
    /// certificate stays in use and the error is logged and thrown.
    /// - Throws: ``SyncError`` `.invalidParameter`, as ``init(certificatePath:keyPath:logger:)``.
    public func reload() throws {
        let context: NIOSSLContext
        do {
            context = try Self.makeContext(certificatePath: certificatePath, keyPath: keyPath)
        } catch {
            logger.error(
                "TLS certificate reload failed; keeping the current certificate",
                metadata: ["syncline.tls.certificate": "\(certificatePath)", "syncline.error": "\(error)"]
            )
            throw error
        }
        current.withLock { $0 = context }
        logger.info("TLS certificate reloaded", metadata: ["syncline.tls.certificate": "\(certificatePath)"])
    }

    /// The context new connections use.
    var context: NIOSSLContext { current.withLock { $0 } }

    static func makeContext(certificatePath: String, keyPath: String) throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw SyncError(.invalidParameter, "cannot read a PEM certificate from \(certificatePath): \(error)")
        }
        guard !chain.isEmpty else { throw SyncError(.invalidParameter, "no PEM certificate in \(certificatePath)") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw SyncError(.invalidParameter, "cannot read a PEM private key from \(keyPath): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)
        )
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        // How long a closing connection waits for the client's close_notify (NIOSSL's default, 5 s,
        // held every graceful shutdown with idle HTTPS clients for that long).
        configuration.shutdownTimeout = .seconds(1)
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw SyncError(
                .invalidParameter, "the key in \(keyPath) and the certificate in \(certificatePath) do not make a TLS context: \(error)"
            )
        }
    }
}
