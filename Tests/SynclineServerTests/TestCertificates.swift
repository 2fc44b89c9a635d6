import Crypto
import Foundation
import SwiftASN1
import SynclineNetwork
import X509

/// A private CA and a server certificate it signed (P-256, SAN `127.0.0.1` and `localhost`),
/// generated for one test and written as PEM files to a temporary directory; no key material is
/// kept in the repository.
struct TestCertificates: Sendable {
    let directory: URL
    /// The server's certificate chain (leaf, then the CA) and its key: `--tls-cert`, `--tls-key`.
    let certificatePath: String
    let keyPath: String
    /// The CA's certificate: the trust root a client is given.
    let caPath: String
    let caPEM: String

    /// Writes a new CA and server certificate into `directory` (named `prefix-…`).
    static func make(in directory: URL, prefix: String = "server", commonName: String = "Syncline test CA") throws -> TestCertificates {
        let now = Date()
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName { CommonName(commonName) }
        let ca = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
            notValidBefore: now - 3_600, notValidAfter: now + 86_400, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true))
            },
            issuerPrivateKey: .init(caKey)
        )
        let serverKey = P256.Signing.PrivateKey()
        let server = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(serverKey.publicKey),
            notValidBefore: now - 3_600, notValidAfter: now + 86_400, issuer: caName,
            subject: try DistinguishedName { CommonName("127.0.0.1") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))])
            },
            issuerPrivateKey: .init(caKey)
        )
        let caPEM = try ca.serializeAsPEM().pemString
        let files = TestCertificates(
            directory: directory,
            certificatePath: directory.appendingPathComponent("\(prefix)-chain.pem").path,
            keyPath: directory.appendingPathComponent("\(prefix)-key.pem").path,
            caPath: directory.appendingPathComponent("\(prefix)-ca.pem").path,
            caPEM: caPEM
        )
        try Data((try server.serializeAsPEM().pemString + "\n" + caPEM + "\n").utf8).write(to: URL(fileURLWithPath: files.certificatePath))
        try Data(serverKey.pemRepresentation.utf8).write(to: URL(fileURLWithPath: files.keyPath))
        try Data(caPEM.utf8).write(to: URL(fileURLWithPath: files.caPath))
        return files
    }

    /// Trust in this CA only.
    func trust() throws -> ServerTrust { try .certificates(pemFile: caPath) }

    /// Copies this certificate and key over `other`'s files (what an operator does before SIGHUP).
    func install(over other: TestCertificates) throws {
        for (from, to) in [(certificatePath, other.certificatePath), (keyPath, other.keyPath)] {
            try Data(contentsOf: URL(fileURLWithPath: from)).write(to: URL(fileURLWithPath: to))
        }
    }

    /// A temporary directory for `body`, removed afterwards.
    static func withDirectory<Result>(_ body: (URL) async throws -> Result) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("syncline-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }  // temporary files only
        return try await body(directory)
    }
}
