import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Testing

@Suite("Idle, slow and surplus connections", .timeLimit(.minutes(3)))
struct ConnectionLimitTests {
    static func configuration(idle: Duration?, header: Duration?, maxConnections: Int? = nil) -> SyncServerConfiguration {
        var configuration = LiveServer.configuration()
        configuration.idleTimeout = idle
        configuration.headerTimeout = header
        configuration.maxConnections = maxConnections
        return configuration
    }

    @Test func idleAndHalfOpenConnectionsAreClosedWhileADeviceKeepsSyncing() async throws {
        // Timeouts of 3 s: short for a test, long enough for a loaded machine to read a request
        // that was sent at once.
        try await LiveServer.with(configuration: Self.configuration(idle: .seconds(3), header: .seconds(3))) { server in
            let namespace = try Namespace("team")
            let device = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: server.rest(namespace))
            // Tried: connections that send nothing, half a request line, a request line and
            // headers without the blank line that ends them, and a complete request kept alive
            // and then left idle. The deadline is far beyond the 3 s timeouts.
            let misbehaving: [(String, String?)] = [
                ("silent", nil), ("silent", nil), ("silent", nil),
                ("half a request line", "GET /heal"), ("half a request line", "POST /v1/ns/team/pu"),
                ("headers without the end", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"),
                ("headers without the end", "POST /v1/ns/team/push HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"),
                ("idle after a request", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
                ("idle after a request", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"),
            ]
            try await withThrowingTaskGroup(of: (String, String?, RawConnection.Ending).self) { group in
                for (kind, bytes) in misbehaving {
                    group.addTask {
                        let ending = try await RawConnection.run(port: server.port, deadline: .seconds(20)) { outbound in
                            if let bytes { try await outbound.send(bytes) }
                        }
                        return (kind, bytes, ending)
                    }
                }
                // Meanwhile the device pushes and pulls, several rounds, over the 3 s timeouts.
                for round in 0..<6 {
                    try await device.upsert(Sample.key("r\(round)"), fields: ["round": .int(Int64(round))])
                    let stats = try await device.sync()
                    #expect(stats.pushed == 1, "round \(round) pushed its write")
                    try await Task.sleep(for: .milliseconds(700))  // spreads the rounds over the timeouts
                }
                for try await (kind, bytes, ending) in group {
                    #expect(ending.closedByServer, "\(kind) (\(bytes ?? "nothing")) was closed by the server")
                    if kind == "idle after a request" {
                        #expect(ending.text.hasPrefix("HTTP/1.1 200"), "the complete request was answered first: \(ending.text)")
                    } else {
                        #expect(ending.received.isEmpty, "\(kind) got no answer, only a close: \(ending.text)")
                    }
                }
            }
            #expect(try await server.backend.head(namespace: namespace) == 6, "every round of the device reached the server")
        }
    }

    @Test func aClientDrippingItsHeadersIsClosedByTheHeaderTimeoutNotTheIdleOne() async throws {
        // The idle timeout (30 s) would never fire: a byte arrives every 200 ms. The header timeout (1 s) does.
        try await LiveServer.with(configuration: Self.configuration(idle: .seconds(30), header: .seconds(1))) { server in
            let started = ContinuousClock.now
            let ending = try await RawConnection.run(port: server.port, deadline: .seconds(25)) { outbound in
                // Tried: a request head sent one byte at a time, never finished.
                for byte in "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".utf8 {
                    do {
                        try await outbound.write(ByteBuffer(bytes: [byte]))
                    } catch {
                        return  // the server closed the connection
                    }
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            #expect(ending.closedByServer)
            #expect(ending.received.isEmpty, "no answer to an unfinished head: \(ending.text)")
            #expect(ContinuousClock.now - started < .seconds(25), "closed by the header timeout, long before the idle one")
        }
    }

    @Test func aLiveWebSocketOutlivesTheIdleAndHeaderTimeouts() async throws {
        try await LiveServer.with(configuration: Self.configuration(idle: .seconds(2), header: .seconds(2))) { server in
            let namespace = try Namespace("team")
            let socket = server.webSocket(namespace)
            let device = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: socket)
            try await device.upsert(Sample.key("before"), fields: ["n": 1])
            #expect(try await device.sync().pushed == 1)
            try await socket.waitUntilConnected()
            // Quiet for three times both timeouts: only the socket's own ping/pong may end it (it does not).
            try await Task.sleep(for: .seconds(6))
            #expect(socket.isConnected, "the live session survived the HTTP timeouts")
            try await device.upsert(Sample.key("after"), fields: ["n": 2])
            #expect(try await device.sync().pushed == 1)
            #expect(socket.statistics.connections == 1, "no reconnection was needed")
            device.close()
            socket.close()
        }
    }

    @Test func connectionsOverTheCapAreRefusedWith503AndServedOnceOthersClose() async throws {
        try await LiveServer.with(configuration: Self.configuration(idle: .seconds(30), header: .seconds(30), maxConnections: 3)) { server in
            // Three connections hold every slot (they send nothing; the timeouts are long). They
            // hold for 12 s, long enough for a loaded machine to accept them and probe once more.
            let holders = (0..<3).map { _ in
                Task { try await RawConnection.run(port: server.port, deadline: .seconds(12)) }
            }
            // Tried: a fourth connection while the three are open. It is answered 503 with the
            // protocol's JSON error, and closed.
            var refusal: RawConnection.Ending?
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                let ending = try await RawConnection.run(port: server.port, deadline: .seconds(5)) { outbound in
                    try await outbound.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                }
                if ending.text.hasPrefix("HTTP/1.1 503") {
                    refusal = ending
                    break
                }
                try await Task.sleep(for: .milliseconds(20))  // the holders may not all be accepted yet
            }
            let refused = try #require(refusal, "a connection over the cap of 3 was refused")
            #expect(refused.closedByServer)
            #expect(refused.text.contains("Connection: close"))
            #expect(refused.text.contains(#""code":"transport_unavailable""#), "\(refused.text)")
            #expect(refused.text.contains(#""limit":3"#))
            // The holders end (at their 12 s deadline); then requests are served again.
            for holder in holders { _ = try await holder.value }
            var served = false
            let again = ContinuousClock.now + .seconds(10)
            while !served && ContinuousClock.now < again {
                served = try await server.raw(.GET, "/healthz").status == 200
                if !served { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(served, "a request is served once the connections over the cap have closed")
        }
    }

    @Test func aClientOverTheCapGetsAClearErrorOverTLS() async throws {
        try await TestCertificates.withDirectory { directory in
            let certificates = try TestCertificates.make(in: directory)
            var configuration = TLSTests.configuration(try TLSTests.serverTLS(certificates))
            configuration.maxConnections = 1
            try await LiveServer.with(configuration: configuration, trust: try certificates.trust()) { server in
                let namespace = try Namespace("team")
                // The first client's kept-alive connection takes the only slot.
                let first = server.rest(namespace)
                _ = try await first.pull(after: 0, from: 0, limit: 1)
                // Tried: a second client (its own connection pool) while that connection is open.
                let client = HTTPClient(eventLoopGroupProvider: .singleton)
                let second = RESTTransport(
                    url: server.baseURL, namespace: namespace, token: { LiveServer.token },
                    configuration: .init(timeout: .seconds(5), trust: server.trust), httpClient: client
                )
                let error = await #expect(throws: SyncError.self) { try await second.pull(after: 0, from: 0, limit: 1) }
                try await client.shutdown()
                #expect(error?.code == .transportUnavailable, "a 5xx is worth retrying later")
                #expect(error?.message.contains("HTTP 503") == true, "\(String(describing: error))")
                #expect(error?.message.contains("limit of 1 open connections") == true, "\(String(describing: error))")
                // The first client is still served on its connection.
                _ = try await first.pull(after: 0, from: 0, limit: 1)
            }
        }
    }
}
