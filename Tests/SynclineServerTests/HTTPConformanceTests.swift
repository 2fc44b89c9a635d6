import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import NIOWebSocket
import Syncline
import SynclineServer
import Testing
import WSClient

/// Exact HTTP answers: a refused WebSocket upgrade is answered like REST, a method a served path
/// does not support gets 405 with `Allow`, an unknown path 404 — each with the JSON error body.
@Suite("HTTP conformance", .timeLimit(.minutes(3)))
struct HTTPConformanceTests {
    /// A complete WebSocket handshake (RFC 6455 §4.1), plus `extra`.
    static func handshake(token: String?, _ extra: HTTPFields = [:]) -> HTTPFields {
        var headers: HTTPFields = [
            .upgrade: "websocket", .connection: "Upgrade", .secWebSocketVersion: "13", .secWebSocketKey: "dGhlIHNhbXBsZSBub25jZQ==",
        ]
        if let token { headers[.authorization] = "Bearer \(token)" }
        headers.append(contentsOf: extra)
        return headers
    }

    /// Sends one request on a connection of its own, exactly as given (AsyncHTTPClient would manage
    /// `Connection` and `Upgrade` itself).
    static func send(
        _ server: LiveServer, _ method: HTTPRequest.Method, _ path: String, headers: HTTPFields
    ) async throws -> TestClient.Response {
        try await TestClient.withClient(host: "127.0.0.1", port: server.port) { client in
            try await client.execute(TestClient.Request(path, method: method, headers: headers))
        }
    }

    static func errorCode(_ response: TestClient.Response) -> String? {
        guard let body = response.body,
            case .object(let root)? = try? JSONCodec.decodeValue(Array(body.readableBytesView)),  // not JSON: no code
            case .object(let error)? = root["error"], case .string(let code)? = error["code"]
        else { return nil }
        return code
    }

    @Test func aRefusedLiveUpgradeIsAnsweredLikeREST() async throws {
        try await LiveServer.with { server in
            let live = "/v1/ns/team/live"
            // Tried: a full handshake without a token, and with a token the server does not know.
            for token in [nil, "not-a-token"] {
                let answer = try await Self.send(server, .get, live, headers: Self.handshake(token: token))
                #expect(answer.status == .unauthorized, "token \(token ?? "none")")
                #expect(answer.headers[.wwwAuthenticate] == "Bearer")
                #expect(answer.headers[.contentType] == "application/json")
                #expect(Self.errorCode(answer) == "unauthorized")
                #expect(answer.headers[.connection] == "close", "the refused connection is closed after the answer")
            }
            // Tried: a token for another namespace.
            var answer = try await Self.send(server, .get, live, headers: Self.handshake(token: LiveServer.otherToken))
            #expect(answer.status == .forbidden && Self.errorCode(answer) == "forbidden")
            // Tried: an invalid namespace in the path.
            answer = try await Self.send(server, .get, "/v1/ns/bad%20name/live", headers: Self.handshake(token: LiveServer.token))
            #expect(answer.status == .badRequest && Self.errorCode(answer) == "invalid_namespace")
            // Tried: a good token with an incomplete handshake (no Sec-WebSocket-Key).
            var incomplete = Self.handshake(token: LiveServer.token)
            incomplete[.secWebSocketKey] = nil
            answer = try await Self.send(server, .get, live, headers: incomplete)
            #expect(answer.status == .badRequest && Self.errorCode(answer) == "malformed_input")
            // Tried: a plain GET (no Upgrade) with a good token.
            answer = try await Self.send(server, .get, live, headers: [.authorization: "Bearer \(LiveServer.token)"])
            #expect(answer.status == .upgradeRequired && Self.errorCode(answer) == "upgrade_required")
            #expect(answer.headers[.upgrade] == "websocket")

            // The WebSocket client sees the refusal as a failed upgrade (WebSocketTransport asks for a
            // fresh token on that error), and a good token still upgrades.
            var wrong = WebSocketClientConfiguration()
            wrong.additionalHeaders[.authorization] = "Bearer not-a-token"
            await #expect(throws: WebSocketClientError.webSocketUpgradeFailed) {
                try await WebSocketClient.connect(url: "\(server.liveURL)\(live)", configuration: wrong, logger: Logger(label: "refused")) { _, _, _ in }
            }
            var good = WebSocketClientConfiguration()
            good.additionalHeaders[.authorization] = "Bearer \(LiveServer.token)"
            let close = try await WebSocketClient.connect(
                url: "\(server.liveURL)\(live)", configuration: good, logger: Logger(label: "accepted")
            ) { inbound, outbound, _ in
                try await outbound.write(.text(#"{"type":"hello","cursor":0}"#))
                var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                let welcome = try await messages.next()
                guard case .text(let text)? = welcome else { throw SyncError(.malformedInput, "no welcome: \(String(describing: welcome))") }
                #expect(text.contains(#""type":"welcome""#))
                try await outbound.close(.normalClosure, reason: nil)
            }
            #expect(close?.closeCode == .normalClosure)
        }
    }

    @Test func aMethodThatAServedPathDoesNotSupportGets405WithAllow() async throws {
        try await LiveServer.with { server in
            let auth: HTTPFields = [.authorization: "Bearer \(LiveServer.token)"]
            // Tried: TRACE /healthz and DELETE /v1/ns/x/push, the issue's examples, and PUT on the live route.
            for (method, path, allow) in [
                (HTTPRequest.Method.trace, "/healthz", "GET"), (.delete, "/v1/ns/x/push", "POST"), (.put, "/v1/ns/team/live", "GET"),
            ] {
                let answer = try await Self.send(server, method, path, headers: auth)
                #expect(answer.status == .methodNotAllowed, "\(method) \(path)")
                #expect(answer.headers[.allow] == allow, "\(method) \(path)")
                #expect(Self.errorCode(answer) == "method_not_allowed", "\(method) \(path)")
            }
            // A method the path serves is answered as before.
            var answer = try await Self.send(server, .get, "/healthz", headers: [:])
            #expect(answer.status == .ok)
            answer = try await Self.send(server, .post, "/v1/ns/x/push", headers: auth + [.contentType: "application/json"])
            #expect(answer.status == .badRequest && Self.errorCode(answer) == "malformed_input", "an empty push body is malformed, not 405")
            // Tried: paths no route serves, including an empty namespace segment: 404 with the JSON error.
            for path in ["/nope", "/v1/ns//push", "/v1/ns/team/push/extra"] {
                answer = try await Self.send(server, .get, path, headers: auth)
                #expect(answer.status == .notFound && Self.errorCode(answer) == "not_found", "\(path)")
                #expect(answer.headers[.allow] == nil)
            }
        }
    }
}

extension HTTPFields {
    fileprivate static func + (lhs: HTTPFields, rhs: HTTPFields) -> HTTPFields {
        var result = lhs
        result.append(contentsOf: rhs)
        return result
    }
}
