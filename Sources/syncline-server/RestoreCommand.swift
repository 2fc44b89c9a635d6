import ArgumentParser
import Foundation
import Logging
import SynclineServer

/// `syncline-server restore --from FILE --data DIR`: puts a backup in place (server stopped) and fences.
struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Replace the data directory's database with a backup and fence it (stop the server first)."
    )

    @Option(help: "The backup file made by `syncline-server backup`.")
    var from: String

    @Option(help: "The server's data directory.")
    var data = "./syncline-data"

    func run() async throws {
        let report = try await ServerDataDirectory(path: data).restore(from: from, logger: Logger(label: "syncline-server"))
        FileHandle.standardOutput.write(
            Data("restored \(from) into \(data) and fenced \(report.namespaces.count) namespaces\n".utf8)
        )
    }
}
