import Foundation
import HTTPTypes
import Logging
import NIOHTTP1
import NIOWebSocket
import Syncline
import SynclineServer
import SynclineTesting
import Testing
import WSClient

/// `docs/openapi.json` against the running server: every operation it lists is served and answers
/// a valid and an invalid request with status codes the document lists for it.
@Suite("OpenAPI document", .timeLimit(.minutes(1)))
struct OpenAPITests {
    static let documentURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/openapi.json")

    /// Each operation's documented statuses, by "METHOD path".
    static func operations() throws -> [String: Set<UInt>] {
        // Foundation's parser: the document uses `$ref`, which Syncline values reserve.
        let root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: documentURL)) as? [String: Any])
        #expect(root["openapi"] as? String == "3.1.0")
        let paths = try #require(root["paths"] as? [String: [String: Any]])
        var result: [String: Set<UInt>] = [:]
        for (path, methods) in paths {
            for (method, operation) in methods {
                guard let responses = (operation as? [String: Any])?["responses"] as? [String: Any] else { continue }
                result["\(method.uppercased()) \(path)"] = Set(responses.keys.compactMap { UInt($0) })
            }
        }
        return result
    }

    /// A request against one operation, and the status it got.
    typealias Probe = @Sendable (LiveServer) async throws -> UInt

    static let json = [("Content-Type", "application/json")]

    /// For each operation: a valid request, and an invalid one (nil where no request can be
    /// invalid: `/healthz` and `/metrics` take no input).
    static let probes: [String: (valid: Probe, invalid: Probe?)] = [
        "POST /v1/ns/{ns}/push": (
            { try await $0.raw(.POST, "/v1/ns/team/push", body: Array(#"{"changes":[]}"#.utf8), headers: json).status },
            { try await $0.raw(.POST, "/v1/ns/team/push", body: Array(#"{"changes":"#.utf8), headers: json).status }
        ),
        "GET /v1/ns/{ns}/changes": (
            { try await $0.raw(.GET, "/v1/ns/team/changes?after=0&limit=10").status },
            { try await $0.raw(.GET, "/v1/ns/team/changes?after=0", token: LiveServer.otherToken).status }
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
                return 101
            },
            { try await $0.raw(.GET, "/v1/ns/team/live").status }
        ),
        "GET /healthz": ({ try await $0.raw(.GET, "/healthz", token: nil).status }, nil),
        "GET /metrics": ({ try await $0.raw(.GET, "/metrics", token: nil).status }, nil),
    ]

    @Test func everyDocumentedRouteIsServedWithItsDocumentedStatuses() async throws {
        let operations = try Self.operations()
        #expect(Set(operations.keys) == Set(Self.probes.keys), "the document and the probed routes list the same operations")
        try await LiveServer.with { server in
            for (operation, statuses) in operations.sorted(by: { $0.key < $1.key }) {
                let probe = try #require(Self.probes[operation], "no probe for \(operation)")
                let valid = try await probe.valid(server)
                #expect(statuses.contains(valid) && valid < 300, "\(operation): valid request got \(valid), documented \(statuses.sorted())")
                if let invalid = probe.invalid {
                    let status = try await invalid(server)
                    #expect(statuses.contains(status) && (400..<500).contains(status), "\(operation): invalid request got \(status), documented \(statuses.sorted())")
                }
            }
        }
    }
}
