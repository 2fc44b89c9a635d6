import Foundation
import Syncline
@testable import SynclineNetwork
import Testing

@Suite struct ServerTrustTests {
    @Test func badTrustRootsAreTypedErrors() async throws {
        // Tried: PEM text with no certificate, a certificate block of garbage, and a missing file.
        for bytes in ["hello", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"] {
            let error = #expect(throws: SyncError.self) { try ServerTrust.certificates(pem: Array(bytes.utf8)) }
            #expect(error?.code == .invalidParameter)
        }
        let missing = #expect(throws: SyncError.self) { try ServerTrust.certificates(pemFile: "/nonexistent/ca.pem") }
        #expect(missing?.code == .invalidParameter)
        try await TestCertificates.withDirectory { directory in
            let certificates = try TestCertificates.make(in: directory)
            let fromFile = try ServerTrust.certificates(pemFile: certificates.caPath)
            #expect(try ServerTrust.certificates(pem: Array(certificates.caPEM.utf8)) == fromFile)
            #expect(fromFile != .system)
        }
    }

    @Test func theWebSocketTransportKnowsAnIPAddressFromAHostName() {
        for authority in ["127.0.0.1:8443", "10.0.0.1", "[::1]:8443", "203.0.113.7/prefix"] {
            #expect(WebSocketTransport.isIPAddress(authority: authority), "\(authority)")
        }
        for authority in ["localhost:8443", "sync.example.org", "1e100.net", "host-1.2.3"] {
            #expect(!WebSocketTransport.isIPAddress(authority: authority), "\(authority)")
        }
    }
}
