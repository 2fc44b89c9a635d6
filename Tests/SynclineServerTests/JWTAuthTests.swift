import Foundation
import HTTPTypes
import JWTKit
import Logging
import NIOHTTP1
import NIOWebSocket
import Synchronization
import Syncline
import SynclineNetwork
import SynclineServer
import SynclineTesting
import Testing
import WSClient

extension RawAnswer {
    /// The `reason` of a protocol error (which authentication rule failed).
    var errorReason: String? {
        guard case .object(let root)? = try? JSONCodec.decodeValue(body),  // not JSON: no reason, and the test says so
            case .object(let error)? = root["error"], case .string(let reason)? = error["reason"]
        else { return nil }
        return reason
    }
}

@Suite("JWT authentication", .timeLimit(.minutes(3)))
struct JWTAuthTests {
    static let issuerName = "https://auth.test"
    static let audience = "syncline"

    /// A server configuration accepting the static test tokens and JWTs from `issuer`.
    static func configuration(
        _ issuer: TokenIssuer, keys algorithms: [TokenIssuer.Algorithm] = TokenIssuer.Algorithm.allCases,
        rules: JWTVerifier.Rules = .init(), leeway: Duration = .seconds(60)
    ) async throws -> SyncServerConfiguration {
        var configuration = LiveServer.configuration()
        var rules = rules
        rules.leeway = leeway
        let keys = try await JSONWebKeySet(json: try issuer.jwks(algorithms))
        configuration.authenticator = Authenticator(
            tokens: TokenStore([LiveServer.token: ["*"], LiveServer.otherToken: ["other"]]), jwt: JWTVerifier(keys: keys, rules: rules)
        )
        return configuration
    }

    static var now: Double { Date().timeIntervalSince1970 }

    /// Opens the live socket with `token`, says hello and collects the server's text messages until
    /// it closes (or `stopAfterWelcome`).
    static func live(
        _ server: LiveServer, token: String, namespace: String = "team", stopAfterWelcome: Bool = false
    ) async throws -> (messages: [String], close: WebSocketCloseFrame?) {
        var configuration = WebSocketClientConfiguration()
        configuration.additionalHeaders[.authorization] = "Bearer \(token)"
        let messages = Mutex<[String]>([])
        let close = try await WebSocketClient.connect(
            url: "\(server.liveURL)/v1/ns/\(namespace)/live", configuration: configuration, logger: Logger(label: "jwt-test")
        ) { inbound, outbound, _ in
            try await outbound.write(.text(#"{"type":"hello","cursor":0}"#))
            for try await message in inbound.messages(maxSize: 1 << 20) {
                guard case .text(let text) = message else { continue }
                messages.withLock { $0.append(text) }
                if stopAfterWelcome && text.contains(#""type":"welcome""#) {
                    try await outbound.close(.normalClosure, reason: nil)
                    return
                }
            }
        }
        return (messages.withLock { $0 }, close)
    }

    @Test(arguments: TokenIssuer.Algorithm.allCases)
    func aValidTokenOfEachAlgorithmIsAcceptedOverRESTAndAtTheUpgrade(_ algorithm: TokenIssuer.Algorithm) async throws {
        let issuer = try TokenIssuer(prefix: "main")
        try await LiveServer.with(configuration: try await Self.configuration(issuer)) { server in
            let token = try await issuer.token(algorithm, TokenIssuer.claims(["team"]))
            let pull = try await server.raw(.GET, "/v1/ns/team/changes?after=0", token: token)
            #expect(pull.status == 200, "a valid \(algorithm.rawValue) token pulls: \(String(decoding: pull.body, as: UTF8.self))")

            let namespace = try Namespace("team")
            let device = try SyncClient(namespace: namespace, store: InMemoryStore(), transport: server.rest(namespace, token: token))
            try await device.upsert(Sample.key("jwt-\(algorithm.rawValue)"), fields: ["ok": true])
            #expect(try await device.sync().pushed == 1, "a push with the \(algorithm.rawValue) token is applied")

            let (messages, _) = try await Self.live(server, token: token, stopAfterWelcome: true)
            #expect(messages.first?.contains(#""type":"welcome""#) == true, "the live socket opens with the token: \(messages)")

            // Tried: the same valid token for a namespace it does not name.
            let other = try await server.raw(.GET, "/v1/ns/other/changes?after=0", token: token)
            #expect(other.status == 403 && other.errorCode == "forbidden")
        }
    }

    @Test func everyRefusalIsA401NamingItsRuleAndNeverEchoingTheToken() async throws {
        let issuer = try TokenIssuer(prefix: "main")
        let stranger = try TokenIssuer(prefix: "main")  // same kids, other keys
        let rules = JWTVerifier.Rules(issuer: Self.issuerName, audience: Self.audience)
        try await LiveServer.with(configuration: try await Self.configuration(issuer, rules: rules)) { server in
            var good = TokenIssuer.claims(["team"])
            good["iss"] = .string(Self.issuerName)
            good["aud"] = .strings(["other-app", Self.audience])
            func with(_ changes: [String: JWTClaims.Value?]) -> [String: JWTClaims.Value] {
                var claims = good
                for (name, value) in changes { claims[name] = value }
                return claims
            }
            let valid = try await issuer.token(.hs256, good)
            let parts = valid.split(separator: ".").map(String.init)
            func segment(_ json: String) -> String { Base64.encode(url: Array(json.utf8)) }
            // The RSA public key used as an HMAC secret: the classic algorithm-confusion attack.
            let confusion = JWTKeyCollection()
            await confusion.add(
                hmac: HMACKey(from: Array(issuer.rsa.publicKey.pemRepresentation.utf8)), digestAlgorithm: .sha256,
                kid: JWKIdentifier(string: issuer.kid(.rs256))
            )
            let now = Self.now
            let cases: [(tried: String, token: String, reason: String)] = [
                ("alg none, no signature", segment(#"{"alg":"none","kid":"main-hs"}"#) + "." + parts[1] + ".", "algorithm_not_allowed"),
                ("alg HS512", segment(#"{"alg":"HS512","kid":"main-hs"}"#) + "." + parts[1] + "." + parts[2], "algorithm_not_allowed"),
                (
                    "HS256 naming the RSA key, signed with its public key",
                    try await confusion.sign(JWTClaims(good), kid: JWKIdentifier(string: issuer.kid(.rs256))), "algorithm_mismatch"
                ),
                ("RS256 naming the EC key", try await issuer.token(.rs256, good, kid: issuer.kid(.es256)), "algorithm_mismatch"),
                ("an unknown kid", try await issuer.token(.es256, good, kid: "rotated-out"), "unknown_key"),
                ("no kid while the set has three keys", try await issuer.token(.hs256, good, kid: .some(nil)), "unknown_key"),
                ("HS256 signed with another secret", try await stranger.token(.hs256, good), "bad_signature"),
                ("ES256 signed with another key", try await stranger.token(.es256, good), "bad_signature"),
                (
                    "a tampered payload (ns widened to *)",
                    parts[0] + "." + segment(#"{"exp":\#(Int(now) + 300),"ns":"*","iss":"\#(Self.issuerName)","aud":"syncline"}"#) + "." + parts[2],
                    "bad_signature"
                ),
                ("a truncated signature", [parts[0], parts[1], String(parts[2].dropLast(4))].joined(separator: "."), "bad_signature"),
                ("expired beyond the leeway", try await issuer.token(.rs256, with(["exp": .number(now - 120)])), "token_expired"),
                ("nbf beyond the leeway", try await issuer.token(.es256, with(["nbf": .number(now + 300)])), "token_not_yet_valid"),
                ("nbf at 1e300", try await issuer.token(.es256, with(["nbf": .number(1e300)])), "token_not_yet_valid"),
                ("exp at -1e300", try await issuer.token(.es256, with(["exp": .number(-1e300)])), "token_expired"),
                ("no exp", try await issuer.token(.hs256, with(["exp": nil])), "missing_claim"),
                ("exp as a string", try await issuer.token(.hs256, with(["exp": .string("tomorrow")])), "missing_claim"),
                ("no ns claim", try await issuer.token(.hs256, with(["ns": nil])), "missing_claim"),
                ("ns as a number", try await issuer.token(.hs256, with(["ns": .number(7)])), "invalid_claim"),
                ("no iss", try await issuer.token(.hs256, with(["iss": nil])), "missing_claim"),
                ("another issuer", try await issuer.token(.hs256, with(["iss": .string("https://evil.test")])), "wrong_issuer"),
                ("no aud", try await issuer.token(.hs256, with(["aud": nil])), "missing_claim"),
                ("another audience", try await issuer.token(.hs256, with(["aud": .string("billing")])), "wrong_audience"),
                ("three dots of garbage", "a.b.c", "malformed_token"),
                ("a header that is not JSON", segment("not json") + "." + parts[1] + "." + parts[2], "malformed_token"),
                ("an unknown static token", "not-a-token", "unknown_token"),
            ]
            let secret = Base64.encode(url: issuer.secret)
            for (tried, token, reason) in cases {
                let answer = try await server.raw(.GET, "/v1/ns/team/changes?after=0", token: token)
                let body = String(decoding: answer.body, as: UTF8.self)
                #expect(answer.status == 401 && answer.errorCode == "unauthorized", "\(tried): \(body)")
                #expect(answer.errorReason == reason, "\(tried): \(body)")
                #expect(answer.headers.first(name: "WWW-Authenticate") == "Bearer", "\(tried)")
                #expect(!body.contains(token) && !body.contains(parts[2]) && !body.contains(secret), "\(tried): the body echoes no secret")
                // The same decision at the WebSocket route (before its Upgrade check) and a refused upgrade.
                let upgradeRoute = try await server.raw(.GET, "/v1/ns/team/live", token: token)
                #expect(upgradeRoute.status == 401 && upgradeRoute.errorReason == reason, "\(tried) at /live")
                var configuration = WebSocketClientConfiguration()
                configuration.additionalHeaders[.authorization] = "Bearer \(token)"
                await #expect(throws: (any Error).self, "\(tried): the upgrade is refused") {
                    try await WebSocketClient.connect(
                        url: "\(server.liveURL)/v1/ns/team/live", configuration: configuration, logger: Logger(label: "refused")
                    ) { _, _, _ in }
                }
            }

            // Inside the 60 s leeway: an exp 30 s ago and an nbf 30 s ahead are accepted (the clock
            // is read again here: the refusals above may have taken longer than the leeway).
            let current = Self.now
            let lenient = try await issuer.token(.es256, with(["exp": .number(current - 30), "nbf": .number(current + 30)]))
            #expect(try await server.raw(.GET, "/v1/ns/team/changes?after=0", token: lenient).status == 200)
            // An exp far beyond any clock (1e300 s) is valid and does not overflow the live socket's expiry timer.
            let farFuture = try await issuer.token(.hs256, with(["exp": .number(1e300)]))
            #expect(try await server.raw(.GET, "/v1/ns/team/changes?after=0", token: farFuture).status == 200)
            let (farMessages, _) = try await Self.live(server, token: farFuture, stopAfterWelcome: true)
            #expect(farMessages.first?.contains(#""type":"welcome""#) == true, "\(farMessages)")
            // The good token, and the static tokens beside the JWKS, still work.
            #expect(try await server.raw(.GET, "/v1/ns/team/changes?after=0", token: valid).status == 200)
            #expect(try await server.raw(.GET, "/v1/ns/team/changes?after=0", token: LiveServer.token).status == 200)
            let forbidden = try await server.raw(.GET, "/v1/ns/team/changes?after=0", token: LiveServer.otherToken)
            #expect(forbidden.status == 403 && forbidden.errorCode == "forbidden")
        }
    }

    @Test func theNamespacesClaimIsConfigurableAndStarGrantsAll() async throws {
        let issuer = try TokenIssuer(prefix: "main")
        let rules = JWTVerifier.Rules(namespacesClaim: "https://syncline.dev/ns")
        try await LiveServer.with(configuration: try await Self.configuration(issuer, keys: [.es256], rules: rules)) { server in
            var claims = TokenIssuer.claims()
            claims["ns"] = nil
            claims["https://syncline.dev/ns"] = .string("*")
            // A set of one key: the kid may be left out.
            let all = try await issuer.token(.es256, claims, kid: .some(nil))
            for namespace in ["team", "other", "alice"] {
                #expect(try await server.raw(.GET, "/v1/ns/\(namespace)/changes?after=0", token: all).status == 200)
            }
            // Tried: the namespaces under the default claim name, which this server does not read.
            let wrongClaim = try await issuer.token(.es256, TokenIssuer.claims(["team"]))
            let answer = try await server.raw(.GET, "/v1/ns/team/changes?after=0", token: wrongClaim)
            #expect(answer.status == 401 && answer.errorReason == "missing_claim")
        }
    }

    @Test func aBrokenJWKSIsRefusedWithoutEchoingKeyMaterial() async throws {
        let issuer = try TokenIssuer(prefix: "main")
        let secret = Base64.encode(url: issuer.secret)
        let hs = try issuer.jwk(.hs256)
        var noKid = try issuer.jwk(.es256, kid: .some(nil))
        noKid["use"] = "sig"
        let documents: [(tried: String, json: Value)] = [
            ("not an object", ["keys"]),
            ("no keys array", ["kid": "x"]),
            ("an empty set", ["keys": []]),
            ("only unsupported keys", ["keys": [["kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AAAA"]]]),
            ("two keys with one kid", ["keys": [.object(hs), .object(hs)]]),
            ("a second key without kid", ["keys": [.object(hs), .object(noKid)]]),
            ("a 16-byte HMAC secret", ["keys": [["kty": "oct", "kid": "short", "k": .string(Base64.encode(url: Array(issuer.secret.prefix(16))))]]]),
            ("an RSA key whose n is not base64url", ["keys": [["kty": "RSA", "kid": "r", "n": "***", "e": "AQAB"]]]),
            ("an RSA key of 512 bits", ["keys": [["kty": "RSA", "kid": "r", "n": .string(Base64.encode(url: [0xC1] + [UInt8](repeating: 7, count: 63))), "e": "AQAB"]]]),
            ("an EC point not on P-256", ["keys": [["kty": "EC", "kid": "e", "crv": "P-256", "x": .string(secret), "y": .string(secret)]]]),
            ("an oct key with a secret and a broken sibling", ["keys": [.object(hs), ["kty": "EC", "kid": "e2", "crv": "P-256"]]]),
        ]
        for (tried, json) in documents {
            do {
                _ = try await JSONWebKeySet(json: try JSONCodec.encode(json))
                Issue.record("\(tried): accepted")
            } catch {
                #expect(error.code == .malformedInput, "\(tried): \(error)")
                #expect(!error.message.contains(secret), "\(tried): the message echoes no key material")
            }
        }
        do {
            _ = try await JSONWebKeySet(json: Array("{not json".utf8))
            Issue.record("a JWKS that is not JSON was accepted")
        } catch {
            #expect(error.code == .malformedInput)
        }
        // An encryption key and an unsupported type are skipped beside a usable key, and said so.
        let mixed: Value = [
            "keys": [.object(hs), ["kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"], ["kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AAAA"]],
        ]
        let set = try await JSONWebKeySet(json: try JSONCodec.encode(mixed))
        #expect(set.count == 1 && set.keyIDs == ["main-hs"])
        #expect(set.skipped.count == 2, "\(set.skipped)")
    }

    @Test func aLiveSocketClosesWith4001WhenItsTokenExpires() async throws {
        let issuer = try TokenIssuer(prefix: "main")
        try await LiveServer.with(configuration: try await Self.configuration(issuer, leeway: .zero)) { server in
            // Long enough for the upgrade when the whole suite loads two cores (1.5 s was not, at times).
            let token = try await issuer.token(.hs256, TokenIssuer.claims(["team"], lifetime: 4))
            let (messages, close) = try await Self.live(server, token: token)
            #expect(messages.first?.contains(#""type":"welcome""#) == true, "\(messages)")
            #expect(messages.last?.contains(#""code":"unauthorized""#) == true && messages.last?.contains("token_expired") == true, "\(messages)")
            #expect(close?.closeCode == WebSocketErrorCode(codeNumber: 4001) && close?.reason == "token_expired", "\(String(describing: close))")
            // A socket opened with a static token is not closed by that clock: it stays until the client leaves.
            let (staticMessages, staticClose) = try await Self.live(server, token: LiveServer.token, stopAfterWelcome: true)
            #expect(staticMessages.count == 1 && staticClose?.closeCode != WebSocketErrorCode(codeNumber: 4001))
        }
    }

    @Test func theClientReconnectsWithAFreshTokenAndKeepsReceivingLiveChanges() async throws {
        let issuer = try TokenIssuer(prefix: "main")
        try await LiveServer.with(configuration: try await Self.configuration(issuer, leeway: .zero)) { server in
            let namespace = try Namespace("team")
            let issued = Mutex(0)
            // The app's token provider: every call gets a new token that lives 4 s (long enough
            // to be used on a loaded machine, short enough to expire while the test waits).
            let socket = WebSocketTransport(
                url: server.baseURL, namespace: namespace,
                token: {
                    issued.withLock { $0 += 1 }
                    return try await issuer.token(.es256, TokenIssuer.claims(["team"], lifetime: 4))
                },
                configuration: .init(ackTimeout: .seconds(10), initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(200))
            )
            defer { socket.close() }
            _ = try await socket.pull(after: 0, from: 0, limit: 1)  // the socket opens once the cursor is known
            // Eventually-true checks, polled with a deadline: the first socket opens, its token
            // expires, the server closes it, and the transport opens a second one with a new token.
            let deadline = ContinuousClock.now + .seconds(30)
            while socket.statistics.connections < 2 {
                guard ContinuousClock.now < deadline else { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(socket.statistics.connections >= 2, "the transport reconnected after the token expired")
            #expect(issued.withLock { $0 } >= 2, "the reconnect asked the provider for a fresh token")

            // Live changes still arrive on the new socket: another device commits over REST.
            var heads = await socket.liveHeads().makeAsyncIterator()
            let writer = server.rest(namespace)
            let response = try await writer.push(ChangeBatch(changes: [Sample.change(1, record: "after-renewal", fields: ["v": 1])]))
            var heard: UInt64 = 0
            while heard < response.head, let head = await heads.next() { heard = head }
            #expect(heard >= response.head, "the page for the new commit reached the reconnected socket")
        }
    }

    @Test func reloadSwapsKeysAndAFailedReloadKeepsTheOldOnes() async throws {
        let old = try TokenIssuer(prefix: "old")
        let new = try TokenIssuer(prefix: "new")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("syncline-jwks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }  // temporary files only
        let file = directory.appendingPathComponent("jwks.json")
        let tokensFile = directory.appendingPathComponent("tokens.json")
        try Data(try old.jwks()).write(to: file)
        try Data(#"{"static-old": ["team"]}"#.utf8).write(to: tokensFile)
        let authenticator = Authenticator(
            tokens: TokenStore(["static-old": ["team"]]),
            jwt: JWTVerifier(keys: try await JSONWebKeySet(json: [UInt8](try Data(contentsOf: file))))
        )
        let reloader = await CredentialReloader(
            actions: [
                .init("JWKS") { try authenticator.replaceKeys(await JSONWebKeySet(json: [UInt8](try Data(contentsOf: file)))) },
                .init("tokens") { authenticator.replaceTokens(try TokenStore(json: [UInt8](try Data(contentsOf: tokensFile)))) },
            ],
            logger: Logger(label: "reload-test")
        )
        let team = try Namespace("team")
        let now = UInt64(Self.now * 1000)
        let oldToken = try await old.token(.rs256, TokenIssuer.claims())
        let newToken = try await new.token(.rs256, TokenIssuer.claims())
        #expect(try authenticator.authenticate("Bearer \(oldToken)", namespace: team, now: now).expiresAt != nil)

        try Data(try new.jwks()).write(to: file)
        try Data(#"{"static-new": ["team"]}"#.utf8).write(to: tokensFile)
        #expect(await reloader.reloadAll().isEmpty)
        #expect(try authenticator.authenticate("Bearer \(newToken)", namespace: team, now: now).namespaces == ["team"])
        #expect(throws: SyncError.self) { try authenticator.authenticate("Bearer \(oldToken)", namespace: team, now: now) }
        #expect(try authenticator.authenticate("Bearer static-new", namespace: team, now: now).expiresAt == nil)

        // Tried: a JWKS cut off mid-write. The reload fails, the keys stay, the tokens action still runs.
        try Data(Array(try old.jwks().prefix(40))).write(to: file)
        try Data(#"{"static-third": ["team"]}"#.utf8).write(to: tokensFile)
        #expect(await reloader.reloadAll() == ["JWKS"])
        #expect(try authenticator.authenticate("Bearer \(newToken)", namespace: team, now: now).namespaces == ["team"])
        #expect(try authenticator.authenticate("Bearer static-third", namespace: team, now: now).namespaces == ["team"])
    }

    @Test(.timeLimit(.minutes(2)))
    func sighupRotatesKeysAndTokensOfARunningServerWithoutDroppingItsSockets() async throws {
        let old = try TokenIssuer(prefix: "old")
        let new = try TokenIssuer(prefix: "new")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("syncline-sighup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }  // temporary files only
        let jwks = directory.appendingPathComponent("jwks.json")
        let tokensFile = directory.appendingPathComponent("tokens.json")
        try Data(try old.jwks()).write(to: jwks)
        try Data(#"{"static-old": ["team"]}"#.utf8).write(to: tokensFile)
        let server = try await ServerProcess(
            data: directory.appendingPathComponent("data").path,
            arguments: ["--jwks", jwks.path, "--tokens", tokensFile.path, "--jwt-issuer", Self.issuerName, "--jwt-audience", Self.audience],
            logLevel: "info"
        )
        do {
            try await rotate(server, old: old, new: new, jwks: jwks, tokensFile: tokensFile)
        } catch {
            _ = await server.terminate(within: .seconds(10))
            throw error
        }
        #expect(await server.terminate(within: .seconds(10)), "the server still shuts down gracefully")
    }

    /// The SIGHUP test's steps against the running server.
    private func rotate(_ server: ServerProcess, old: TokenIssuer, new: TokenIssuer, jwks: URL, tokensFile: URL) async throws {
        let live = LiveServer(port: server.port, backend: InMemorySyncServer(), metrics: ServerMetrics())
        func status(_ token: String) async throws -> UInt { try await live.raw(.GET, "/v1/ns/team/changes?after=0", token: token).status }

        var claims = TokenIssuer.claims(lifetime: 600)
        claims["iss"] = .string(Self.issuerName)
        claims["aud"] = .string(Self.audience)
        // `syncline-server --jwks` takes tokens of all three algorithms, and applies --jwt-issuer and --jwt-audience.
        for algorithm in TokenIssuer.Algorithm.allCases {
            #expect(try await status(try await old.token(algorithm, claims)) == 200, "\(algorithm.rawValue)")
        }
        // Tried: a token from another issuer, and one for another audience.
        var foreign = claims
        foreign["iss"] = .string("https://evil.test")
        #expect(try await status(try await old.token(.hs256, foreign)) == 401)
        foreign = claims
        foreign["aud"] = .string("billing")
        #expect(try await status(try await old.token(.hs256, foreign)) == 401)
        let oldToken = try await old.token(.es256, claims)
        let newToken = try await new.token(.rs256, claims)
        #expect(try await status(oldToken) == 200)
        #expect(try await status("static-old") == 200)
        #expect(try await status(newToken) == 401)

        // A live socket opened with the old key before the rotation.
        let namespace = try Namespace("team")
        let socket = WebSocketTransport(url: server.baseURL, namespace: namespace, token: { oldToken })
        defer { socket.close() }
        _ = try await socket.pull(after: 0, from: 0, limit: 1)
        let deadline = ContinuousClock.now + .seconds(10)
        while !socket.isConnected && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(socket.isConnected)

        try Data(try new.jwks()).write(to: jwks)
        try Data(#"{"static-new": ["team"]}"#.utf8).write(to: tokensFile)
        server.send(SIGHUP)
        #expect(try await server.waitForOutput("reloaded", count: 2), "both files were reloaded: \(server.outputText)")
        #expect(try await status(newToken) == 200)
        #expect(try await status(oldToken) == 401)
        #expect(try await status("static-new") == 200)
        #expect(try await status("static-old") == 401)
        #expect(try await status(LiveServer.token) == 200, "the --dev-token grant survives the tokens file's reload")
        #expect(socket.isConnected && socket.statistics.connections == 1, "the socket opened before SIGHUP is still the same one")

        // Tried: a JWKS that does not parse. The server logs it, keeps the new keys, and keeps running.
        try Data("{\"keys\": [".utf8).write(to: jwks)
        server.send(SIGHUP)
        #expect(try await server.waitForOutput("reload failed"), "the failed reload is logged: \(server.outputText)")
        #expect(try await status(newToken) == 200)
    }
}
