import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Testing

@Suite("TLS: https and wss", .timeLimit(.minutes(3)))
struct TLSTests {
    static let logger = Logger(label: "tls-test")

    /// The test configuration serving `certificates`.
    static func configuration(_ tls: ServerTLS) -> SyncServerConfiguration {
        var configuration = LiveServer.configuration()
        configuration.tls = tls
        return configuration
    }

    static func serverTLS(_ certificates: TestCertificates) throws -> ServerTLS {
        try ServerTLS(certificatePath: certificates.certificatePath, keyPath: certificates.keyPath, logger: logger)
    }

    @Test func aDeviceSyncsOverHTTPSAndAnotherOverWSS() async throws {
        try await TestCertificates.withDirectory { directory in
            let certificates = try TestCertificates.make(in: directory)
            try await LiveServer.with(configuration: Self.configuration(try Self.serverTLS(certificates)), trust: try certificates.trust()) { server in
                #expect(server.baseURL.hasPrefix("https://"))
                let namespace = try Namespace("team")
                let overREST = try SyncClient(
                    namespace: namespace, store: InMemoryStore(),
                    // By IP address: the REST transport checks the certificate's IP entry (no SNI needed).
                    transport: .rest("https://127.0.0.1:\(server.port)", token: { LiveServer.token }, trust: server.trust)
                )
                // Given a wss:// URL (an https:// one works the same: the reload test uses it).
                #expect(server.liveURL.hasPrefix("wss://"))
                let socket = WebSocketTransport(
                    url: server.liveURL, namespace: namespace, token: { LiveServer.token }, configuration: .init(trust: server.trust)
                )
                let overSocket = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: socket)
                try await overREST.upsert(Sample.key("a"), fields: ["via": "https"])
                #expect(try await overREST.sync().pushed == 1)
                try await overSocket.upsert(Sample.key("b"), fields: ["via": "wss"])
                #expect(try await overSocket.sync().pushed == 1)
                try await socket.waitUntilConnected()  // the live socket over wss
                try await overSocket.upsert(Sample.key("c"), fields: ["via": "wss"])
                #expect(try await overSocket.sync().pushed == 1)
                _ = try await overREST.sync()
                _ = try await overSocket.sync()
                #expect(try await overREST.record(Sample.key("b"))?.visibleFields["via"] == "wss")
                #expect(try await overSocket.record(Sample.key("a"))?.visibleFields["via"] == "https")
                #expect(socket.statistics.connections == 1)
                overSocket.close()
                socket.close()
            }
        }
    }

    @Test func plainHTTPToTheTLSPortIsRefusedCleanlyAndTLSClientsAreStillServed() async throws {
        try await TestCertificates.withDirectory { directory in
            let certificates = try TestCertificates.make(in: directory)
            try await LiveServer.with(configuration: Self.configuration(try Self.serverTLS(certificates)), trust: try certificates.trust()) { server in
                let namespace = try Namespace("team")
                // Tried: a plain HTTP request, byte for byte, to the TLS port.
                let raw = try await RawConnection.run(port: server.port, deadline: .seconds(10)) { outbound in
                    try await outbound.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                }
                #expect(raw.closedByServer, "the server closes the connection instead of waiting")
                #expect(!raw.text.hasPrefix("HTTP/"), "no plain HTTP answer leaks out: \(raw.text)")
                // Tried: the REST transport given an http:// URL for the TLS port: a clear error, no hang.
                let plain = RESTTransport(
                    url: "http://127.0.0.1:\(server.port)", namespace: namespace, token: { LiveServer.token },
                    configuration: .init(timeout: .seconds(10))
                )
                let started = ContinuousClock.now
                let error = await #expect(throws: SyncError.self) { try await plain.pull(after: 0, from: 0, limit: 10) }
                #expect(error?.code == .transportUnavailable, "\(String(describing: error)) after \(ContinuousClock.now - started)")
                // The server is still up and serving TLS clients.
                let device = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: server.rest(namespace))
                try await device.upsert(Sample.key("after-plain"), fields: ["ok": true])
                #expect(try await device.sync().pushed == 1)
            }
        }
    }

    @Test func aConnectionThatNeverStartsTheHandshakeIsClosedByTheHeaderTimeout() async throws {
        try await TestCertificates.withDirectory { directory in
            let certificates = try TestCertificates.make(in: directory)
            var configuration = Self.configuration(try Self.serverTLS(certificates))
            configuration.headerTimeout = .seconds(3)  // a TLS handshake on a loaded machine fits in it
            configuration.idleTimeout = .seconds(30)
            try await LiveServer.with(configuration: configuration, trust: try certificates.trust()) { server in
                // Tried: a TCP connection to the TLS port that sends nothing (no ClientHello), and one
                // that sends half a ClientHello record header.
                let silent = try await RawConnection.run(port: server.port, deadline: .seconds(20))
                #expect(silent.closedByServer)
                let half = try await RawConnection.run(port: server.port, deadline: .seconds(20)) { outbound in
                    try await outbound.write(ByteBuffer(bytes: [0x16, 0x03, 0x01]))
                }
                #expect(half.closedByServer)
                // A TLS client is still served.
                let namespace = try Namespace("team")
                let device = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: server.rest(namespace))
                try await device.upsert(Sample.key("after-silence"), fields: ["ok": true])
                #expect(try await device.sync().pushed == 1)
            }
        }
    }

    @Test func aClientRefusesACertificateItDoesNotTrust() async throws {
        try await TestCertificates.withDirectory { directory in
            let certificates = try TestCertificates.make(in: directory)
            let stranger = try TestCertificates.make(in: directory, prefix: "stranger", commonName: "Another CA")
            try await LiveServer.with(configuration: Self.configuration(try Self.serverTLS(certificates))) { server in
                let namespace = try Namespace("team")
                // Tried: the system's roots (which do not hold the test CA), and another CA.
                for trust in [ServerTrust.system, try stranger.trust()] {
                    let transport = RESTTransport(
                        url: server.baseURL, namespace: namespace, token: { LiveServer.token }, configuration: .init(timeout: .seconds(3), trust: trust)
                    )
                    let error = await #expect(throws: SyncError.self) {
                        try await transport.push(ChangeBatch(changes: [Sample.change(1, record: "r1", fields: ["v": 1])]))
                    }
                    #expect(error?.code == .transportUnavailable, "\(String(describing: error))")
                }
                #expect(try await server.backend.head(namespace: namespace) == 0, "nothing was sent to an untrusted server")
            }
        }
    }

    @Test func aReloadServesTheNewCertificateToNewConnectionsAndKeepsOpenOnes() async throws {
        try await TestCertificates.withDirectory { directory in
            let first = try TestCertificates.make(in: directory)
            let second = try TestCertificates.make(in: directory, prefix: "next", commonName: "Syncline test CA 2")
            let tls = try Self.serverTLS(first)
            try await LiveServer.with(configuration: Self.configuration(tls), trust: try first.trust()) { server in
                let namespace = try Namespace("team")
                // A live socket opened with the first certificate.
                let socket = server.webSocket(namespace)
                let live = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: socket)
                try await live.upsert(Sample.key("before"), fields: ["n": 1])
                #expect(try await live.sync().pushed == 1)
                try await socket.waitUntilConnected()

                let firstKey = try Data(contentsOf: URL(fileURLWithPath: first.keyPath))
                try second.install(over: first)
                try tls.reload()

                // New connections (a client with no pooled connection) see the second certificate.
                func newConnectionSucceeds(trusting trust: ServerTrust) async throws -> Bool {
                    let client = HTTPClient(eventLoopGroupProvider: .singleton)
                    let transport = RESTTransport(
                        url: server.baseURL, namespace: namespace, token: { LiveServer.token },
                        configuration: .init(timeout: .seconds(3), trust: trust), httpClient: client
                    )
                    let succeeded: Bool
                    do {
                        _ = try await transport.pull(after: 0, from: 0, limit: 1)
                        succeeded = true
                    } catch let error as SyncError where error.code == .transportUnavailable {
                        succeeded = false
                    }
                    try await client.shutdown()
                    return succeeded
                }
                #expect(try await newConnectionSucceeds(trusting: try second.trust()), "the new certificate is served")
                #expect(try await newConnectionSucceeds(trusting: try first.trust()) == false, "the old certificate is no longer served")

                // The socket opened before the reload still works, without reconnecting (it could not: it trusts the first CA only).
                try await live.upsert(Sample.key("after"), fields: ["n": 2])
                #expect(try await live.sync().pushed == 1)
                #expect(socket.statistics.connections == 1)
                live.close()
                socket.close()

                // Tried: reloading a file that is not a certificate, and a key that does not match the
                // certificate. Both throw, and the server keeps serving the second certificate.
                try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: first.certificatePath))
                #expect(throws: SyncError.self) { try tls.reload() }
                try second.install(over: first)
                try firstKey.write(to: URL(fileURLWithPath: first.keyPath))  // the second certificate with the first key
                #expect(throws: SyncError.self) { try tls.reload() }
                #expect(try await newConnectionSucceeds(trusting: try second.trust()), "a failed reload keeps the current certificate")
            }
        }
    }
}

@Suite("syncline-server with TLS", .timeLimit(.minutes(3)))
struct TLSCommandTests {
    @Test func theCommandServesHTTPSFromPEMFiles() async throws {
        try await TestCertificates.withDirectory { directory in
            let certificates = try TestCertificates.make(in: directory)
            let server = try await ServerProcess(
                data: directory.appendingPathComponent("data").path,
                arguments: ["--tls-cert", certificates.certificatePath, "--tls-key", certificates.keyPath]
            )
            let namespace = try Namespace("team")
            let socket = WebSocketTransport(
                url: "https://localhost:\(server.port)", namespace: namespace, token: { LiveServer.token },
                configuration: .init(trust: try certificates.trust())
            )
            defer { socket.close() }
            let device = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: socket)
            try await device.upsert(Sample.key("over-https"), fields: ["ok": true])
            #expect(try await device.sync().pushed == 1)  // over REST: the socket opens after the first pull
            try await socket.waitUntilConnected()
            try await device.upsert(Sample.key("over-wss"), fields: ["ok": true])
            #expect(try await device.sync().pushed == 1)
            #expect(socket.statistics.connections == 1, "the socket is up over wss")
            #expect(await server.terminate(within: .seconds(20)))
        }
    }

    @Test func theCommandRefusesToStartWithBadTLSFilesOrLimits() async throws {
        try await TestCertificates.withDirectory { directory in
            let certificates = try TestCertificates.make(in: directory)
            let garbage = directory.appendingPathComponent("garbage.pem").path
            try Data("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n".utf8).write(to: URL(fileURLWithPath: garbage))
            // Tried: a certificate without a key, a key without a certificate, a key file that is not
            // a key, a certificate file that does not exist, and out-of-range timeouts and cap. Each
            // stops the server before it listens.
            let attempts: [[String]] = [
                ["--tls-cert", certificates.certificatePath],
                ["--tls-key", certificates.keyPath],
                ["--tls-cert", certificates.certificatePath, "--tls-key", garbage],
                ["--tls-cert", directory.appendingPathComponent("missing.pem").path, "--tls-key", certificates.keyPath],
                // and timeouts and caps out of range
                ["--idle-timeout", "inf"], ["--header-timeout=-1"], ["--idle-timeout", "1e300"], ["--max-connections=-5"],
            ]
            for arguments in attempts {
                await #expect(throws: SyncError.self, "\(arguments)") {
                    _ = try await ServerProcess(data: directory.appendingPathComponent("data").path, arguments: arguments)
                }
            }
        }
    }
}
