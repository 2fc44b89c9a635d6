import ArgumentParser
import Foundation
import SynclineServer

/// `syncline-server backup --data DIR --to FILE`: a consistent copy of a (running) server's database.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy the server's database to a new file, consistently, while the server runs (SQLite online backup)."
    )

    @Option(help: "The server's data directory.")
    var data = "./syncline-data"

    @Option(help: "The backup file to create (never overwritten).")
    var to: String

    func run() async throws {
        try ServerDataDirectory(path: data).backup(to: to)
        FileHandle.standardOutput.write(Data("backed up \(ServerDataDirectory(path: data).databasePath) to \(to)\n".utf8))
    }
}
