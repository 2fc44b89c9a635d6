import Foundation
import Logging
import Synchronization
import Syncline
import SynclineServer
import SynclineSQLite
import SynclineTesting
import Testing

/// The docs' Swift snippets cannot drift from the API (issue 11: the README's "Transports"
/// snippet did not compile, and the Getting Started one never synced because it awaited
/// `observe()` first). Every ```swift block of README.md and Syncline.docc must stand in
/// Snippets.swift, which this target compiles; Getting Started also runs against a real server.
@Suite("Doc snippets", .timeLimit(.minutes(2)))
struct DocSnippetTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The ```swift blocks of a Markdown file, each as its lines.
    static func swiftBlocks(in relativePath: String) throws -> [[String]] {
        let text = try String(contentsOf: root.appendingPathComponent(relativePath), encoding: .utf8)
        var blocks: [[String]] = []
        var current: [String]?
        for line in text.components(separatedBy: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if current == nil, trimmed == "```swift" {
                current = []
            } else if current != nil, trimmed == "```" {
                blocks.append(current!)
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }

    static var documents: [String] {
        let docc = "Sources/Syncline/Syncline.docc"
        let articles = (try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(docc).path)) ?? []
        return ["README.md"] + articles.filter { $0.hasSuffix(".md") }.sorted().map { "\(docc)/\($0)" }
    }

    @Test func everySnippetIsCompiledHere() throws {
        let source = try String(
            contentsOf: Self.root.appendingPathComponent("Tests/SynclineDocsTests/Snippets.swift"), encoding: .utf8
        ).components(separatedBy: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let imports = Set(source.filter { $0.hasPrefix("import ") })
        var checked = 0
        for document in Self.documents {
            for block in try Self.swiftBlocks(in: document) {
                let lines = block.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                for line in lines where line.hasPrefix("import ") {
                    #expect(imports.contains(line), "\(document): Snippets.swift lacks `\(line)`")
                }
                let body = lines.filter { !$0.hasPrefix("import ") }
                let found = Self.contains(source.filter { !$0.isEmpty }, body)
                #expect(found, "\(document): this snippet is not in Snippets.swift:\n\(body.joined(separator: "\n"))")
                checked += 1
            }
        }
        #expect(checked >= 5, "the README and the articles hold at least five Swift snippets (\(checked) found)")
    }

    /// Whether `lines` appear in `haystack` one after the other.
    static func contains(_ haystack: [String], _ lines: [String]) -> Bool {
        guard !lines.isEmpty, lines.count <= haystack.count else { return lines.isEmpty }
        return (0...(haystack.count - lines.count)).contains { start in Array(haystack[start..<start + lines.count]) == lines }
    }

    @Test func gettingStartedSyncsWithARealServer() async throws {
        let fixture = try StoreFixture(.sqlite)
        let backend = try SQLiteBackend(path: fixture.directory.appendingPathComponent("server.sqlite").path)
        let configuration = SyncServerConfiguration(tokens: TokenStore(["docs-token": ["alice"]]), rateLimit: nil)
        var logger = Logger(label: "docs-server")
        logger.logLevel = .error
        let server = try await SyncServer.start(backend: backend, configuration: configuration, logger: logger)
        let snapshots = Mutex(0)
        let run = Task {
            try await Snippets.gettingStarted(
                serverURL: "http://127.0.0.1:\(server.port)",
                databasePath: fixture.directory.appendingPathComponent("alice.db").path,
                auth: ExampleAuth { "docs-token" },
                render: { _ in snapshots.withLock { $0 += 1 } }, log: { _ in }
            )
        }
        let namespace = try Namespace("alice")
        // Synced: the server holds the to-do with the update applied, without anyone calling sync().
        let synced = try await eventually(within: .seconds(30)) {
            let page = try await backend.pull(
                namespace: namespace, after: 0, from: 0, limit: 10, collections: nil, epoch: nil, configuration: .init()
            )
            return page.changes.first?.fields["done"]?.value == true && page.changes.first?.fields["title"]?.value == "Buy milk"
        }
        run.cancel()
        let (client, view) = try await run.value
        view.cancel()
        await client.stop()
        client.close()
        try await server.stop()
        #expect(synced, "the server holds the Getting Started to-do, done")
        #expect(snapshots.withLock { $0 } >= 1, "the view got a snapshot")
    }
}
