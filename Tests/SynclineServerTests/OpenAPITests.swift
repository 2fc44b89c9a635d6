import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOHTTP1
import NIOWebSocket
import Syncline
import SynclineServer
import SynclineTesting
import Testing
import WSClient

/// `docs/openapi.json` against the running server: every operation it lists is served and answers
/// valid and invalid requests with statuses (and required headers) the document lists for it, and
/// the name and syntax rules it states are the ones the server enforces.
@Suite("OpenAPI document", .timeLimit(.minutes(1)))
struct OpenAPITests {
    static let documentURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/openapi.json")

    /// The document, parsed by Foundation: it uses `$ref`, which Syncline values reserve.
    static func document() throws -> [String: Any] {
        let root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: documentURL)) as? [String: Any])
        #expect(root["openapi"] as? String == "3.1.0")
        return root
    }

    /// Follows a local `$ref` (`#/components/...`) until it reaches an object that is not one.
    static func resolve(_ node: Any?, in root: [String: Any]) throws -> [String: Any] {
        var object = try #require(node as? [String: Any])
        while let ref = object["$ref"] as? String {
            var current: Any = root
            for key in ref.dropFirst(2).split(separator: "/") {
                current = try #require((current as? [String: Any])?[String(key)], "unresolved \(ref)")
            }
            object = try #require(current as? [String: Any])
        }
        return object
    }

    /// Each operation's documented responses (status → the header names it requires), by "METHOD path".
    static func operations() throws -> [String: [UInt: Set<String>]] {
        let root = try document()
        let paths = try #require(root["paths"] as? [String: [String: Any]])
        var result: [String: [UInt: Set<String>]] = [:]
        for (path, methods) in paths {
            for (method, operation) in methods {
                guard let responses = (operation as? [String: Any])?["responses"] as? [String: Any] else { continue }
                var statuses: [UInt: Set<String>] = [:]
                for (status, response) in responses {
                    let headers = try resolve(response, in: root)["headers"] as? [String: Any] ?? [:]
                    statuses[try #require(UInt(status))] = Set(
                        try headers.filter { try resolve($0.value, in: root)["required"] as? Bool == true }.keys.map { $0.lowercased() }
                    )
                }
                result["\(method.uppercased()) \(path)"] = statuses
            }
        }
        return result
    }

    /// A status and headers (names lowercased) a request got.
    struct Answer: Sendable {
        var status: UInt
        var headers: [String: String] = [:]

        init(status: UInt, headers: [String: String] = [:]) {
            self.status = status
            self.headers = headers
        }

        init(_ raw: RawAnswer) {
            status = raw.status
            for header in raw.headers { headers[header.name.lowercased()] = header.value }
        }

        init(_ response: TestClient.Response) {
            status = UInt(response.status.code)
            for field in response.headers { headers[field.name.canonicalName] = field.value }
        }
    }

    /// A request against one operation, and what it got.
    typealias Probe = @Sendable (LiveServer) async throws -> Answer

    static let json = [("Content-Type", "application/json")]

    static func upgrade(_ server: LiveServer, _ path: String, token: String?) async throws -> Answer {
        Answer(try await HTTPConformanceTests.send(server, .get, path, headers: HTTPConformanceTests.handshake(token: token)))
    }

    /// For each operation: a valid request, and invalid ones (none where no request can be
    /// invalid: `/healthz` and `/metrics` take no input).
    static let probes: [String: (valid: Probe, invalid: [Probe])] = [
        "POST /v1/ns/{ns}/push": (
            { Answer(try await $0.raw(.POST, "/v1/ns/team/push", body: Array(#"{"changes":[]}"#.utf8), headers: json)) },
            [
                // Tried: truncated JSON, no token, another namespace's token, an HLC an hour ahead.
                { Answer(try await $0.raw(.POST, "/v1/ns/team/push", body: Array(#"{"changes":"#.utf8), headers: json)) },
                { Answer(try await $0.raw(.POST, "/v1/ns/team/push", body: Array(#"{"changes":[]}"#.utf8), token: nil, headers: json)) },
                { Answer(try await $0.raw(.POST, "/v1/ns/team/push", body: Array(#"{"changes":[]}"#.utf8), token: LiveServer.otherToken, headers: json)) },
                { server in
                    let ahead = WallClock.nowMillis() + 3_600_000
                    let body = #"{"changes":[{"id":"0193520a-7c1e-7b3f-8d2a-4f0e9c1b2a3d","collection":"c","record":"r","op":"upsert","#
                        + #""fields":{"a":1},"hlc":"\#(ahead).0@9f1c2a7b3d4e5f60","base":0}]}"#
                    return Answer(try await server.raw(.POST, "/v1/ns/team/push", body: Array(body.utf8), headers: json))
                },
            ]
        ),
        "GET /v1/ns/{ns}/changes": (
            { Answer(try await $0.raw(.GET, "/v1/ns/team/changes?after=0&limit=10&collections=todos,notes")) },
            [
                // Tried: another namespace's token, a cursor beyond the head, an empty collection name.
                { Answer(try await $0.raw(.GET, "/v1/ns/team/changes?after=0", token: LiveServer.otherToken)) },
                { Answer(try await $0.raw(.GET, "/v1/ns/team/changes?after=99")) },
                { Answer(try await $0.raw(.GET, "/v1/ns/team/changes?collections=todos,,notes")) },
            ]
        ),
        "GET /v1/ns/{ns}/live": (
            { server in
                var configuration = WebSocketClientConfiguration()
                configuration.additionalHeaders[.authorization] = "Bearer \(LiveServer.token)"
                // The client's connect succeeds only on 101 Switching Protocols.
                try await WebSocketClient.connect(
                    url: "\(server.liveURL)/v1/ns/team/live", configuration: configuration, logger: Logger(label: "openapi")
                ) { _, outbound, _ in
                    try await outbound.close(.normalClosure, reason: nil)
                }
                return Answer(status: 101)
            },
            [
                // Tried: the upgrade without a token, with another namespace's token, and a plain GET.
                { try await upgrade($0, "/v1/ns/team/live", token: nil) },
                { try await upgrade($0, "/v1/ns/team/live", token: LiveServer.otherToken) },
                { Answer(try await $0.raw(.GET, "/v1/ns/team/live")) },
            ]
        ),
        "GET /healthz": ({ Answer(try await $0.raw(.GET, "/healthz", token: nil)) }, []),
        "GET /metrics": ({ Answer(try await $0.raw(.GET, "/metrics", token: nil)) }, []),
    ]

    @Test func everyDocumentedRouteIsServedWithItsDocumentedStatuses() async throws {
        let operations = try Self.operations()
        #expect(Set(operations.keys) == Set(Self.probes.keys), "the document and the probed routes list the same operations")
        try await LiveServer.with { server in
            for (operation, responses) in operations.sorted(by: { $0.key < $1.key }) {
                let probe = try #require(Self.probes[operation], "no probe for \(operation)")
                let valid = try await probe.valid(server)
                #expect(responses[valid.status] != nil && valid.status < 300, "\(operation): valid request got \(valid.status), documented \(responses.keys.sorted())")
                var refusals: Set<UInt> = []
                for invalid in probe.invalid {
                    let answer = try await invalid(server)
                    refusals.insert(answer.status)
                    let required = try #require(responses[answer.status], "\(operation): invalid request got undocumented \(answer.status)")
                    #expect((400..<500).contains(answer.status), "\(operation): invalid request got \(answer.status)")
                    for header in required {
                        #expect(answer.headers[header] != nil, "\(operation) \(answer.status) lacks the documented header \(header)")
                    }
                }
                #expect(refusals.count == probe.invalid.count, "\(operation): each invalid request probes its own status: \(refusals.sorted())")
            }
        }
    }

    /// Whether `text` satisfies a string schema's length, `pattern` and `not: {pattern}`.
    static func accepts(_ schema: [String: Any], _ text: String) throws -> Bool {
        func matches(_ pattern: String) throws -> Bool {
            let regex = try NSRegularExpression(pattern: pattern)
            return regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
        }
        let length = text.count
        if let minimum = schema["minLength"] as? Int, length < minimum { return false }
        if let maximum = schema["maxLength"] as? Int, length > maximum { return false }
        if let pattern = schema["pattern"] as? String, !(try matches(pattern)) { return false }
        if let pattern = (schema["not"] as? [String: Any])?["pattern"] as? String, try matches(pattern) { return false }
        return true
    }

    @Test func theDocumentStatesTheNameAndSyntaxRulesTheServerEnforces() throws {
        let root = try Self.document()
        let schemas = try #require((root["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let parameters = try #require((root["components"] as? [String: Any])?["parameters"] as? [String: Any])
        let change = try #require(try Self.resolve(schemas["Change"], in: root)["properties"] as? [String: Any])
        let namespace = try #require(try Self.resolve(parameters["Namespace"], in: root)["schema"] as? [String: Any])
        let collectionList = try #require(try Self.resolve(parameters["Collections"], in: root)["schema"] as? [String: Any])

        // ASCII candidates: the document counts characters where the server counts UTF-8 bytes.
        let names = ["a", "A-z_0.9", String(repeating: "n", count: 64), String(repeating: "n", count: 65), "", "a b", "a/b", "é", "$x"]
        for name in names {
            let valid = (try? Namespace(name)) != nil  // the rule under test: valid or not
            #expect(try Self.accepts(namespace, name) == valid, "namespace \(name)")
            #expect(try Self.accepts(Self.resolve(change["collection"], in: root), name) == valid, "collection \(name)")
        }
        for list in ["", "todos", "todos,notes", "todos,,notes", "todos,", ",todos", "to dos"] {
            let valid = list.isEmpty || list.split(separator: ",", omittingEmptySubsequences: false).allSatisfy { (try? CollectionName(String($0))) != nil }
            #expect(try Self.accepts(collectionList, list) == valid, "collections=\(list)")
        }
        let fieldName = try Self.resolve(schemas["FieldName"], in: root)
        for name in ["title", "a$", "", "$b", "$", String(repeating: "f", count: 128), String(repeating: "f", count: 129), "nul\u{0}here"] {
            let valid = (try? FieldName.validate(name)) != nil
            #expect(try Self.accepts(fieldName, name) == valid, "field name \(name.debugDescription)")
        }
        let record = try Self.resolve(change["record"], in: root)
        for id in ["t1", "", String(repeating: "r", count: 256), String(repeating: "r", count: 257), "a\u{0}b", "with space/and:colon"] {
            #expect(try Self.accepts(record, id) == ((try? RecordID(id)) != nil), "record \(id.debugDescription)")
        }
        let hlc = try Self.resolve(schemas["HLC"], in: root)
        let node = "@9f1c2a7b3d4e5f60"
        for text in ["1732300000000.3" + node, "0.0" + node, "1.65535" + node, "1.65536" + node, "1.3@9F1C2A7B3D4E5F60", "1.3@9f1c", "x.3" + node, "1@" + node] {
            #expect(try Self.accepts(hlc, text) == ((try? HLC(parsing: text)) != nil), "HLC \(text)")
        }
        // 15 digits of milliseconds parse, but are always more than 5 minutes ahead of the server's
        // clock (refused with 409 clock_skew): the document allows 14.
        #expect(try !Self.accepts(hlc, "281474976710655.0" + node) && (try? HLC(parsing: "281474976710655.0" + node)) != nil)
        let id = try Self.resolve(change["id"], in: root)
        for text in ["0193520a-7c1e-7b3f-8d2a-4f0e9c1b2a3d", "0193520A-7C1E-7B3F-8D2A-4F0E9C1B2A3D", "0193520a7c1e7b3f8d2a4f0e9c1b2a3d", "nope"] {
            #expect(try Self.accepts(id, text) == ((try? EventID(parsing: text)) != nil), "id \(text)")
        }
    }
}
