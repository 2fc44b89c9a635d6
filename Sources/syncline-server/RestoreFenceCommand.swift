import ArgumentParser
import Foundation
import SynclineServer

/// `syncline-server restore-fence --data DIR`: new epochs and heads moved past any seq a device could
/// hold, for a database put back by other means (server stopped).
struct RestoreFenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore-fence",
        abstract: "Give every namespace a new epoch and move its head past any seq a device could have seen (stop the server first)."
    )

    @Option(help: "The server's data directory.")
    var data = "./syncline-data"

    func run() async throws {
        let report = try await ServerDataDirectory(path: data).fence()
        FileHandle.standardOutput.write(Data("fenced \(report.namespaces.count) namespaces in \(data)\n".utf8))
    }
}
