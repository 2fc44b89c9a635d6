import ArgumentParser
import Foundation

@main
struct SynclineBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "syncline-bench",
        abstract: "Syncline benchmarks: each row is a ratio against a baseline doing the same work in the same run.",
        discussion: "Build with -c release; a debug build measures the compiler, not the code.",
        subcommands: [StoreSuiteCommand.self, PipelineSuiteCommand.self, NetworkSuiteCommand.self, GrowthSuiteCommand.self, W1SuiteCommand.self]
    )
}

/// Options every suite takes.
struct SuiteOptions: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON document instead of a table.")
    var json = false

    @Option(name: .long, help: "Multiply the default operation counts (e.g. 0.1 for a quick run).")
    var scale: Double = 1

    @Option(name: .long, help: "Paired repetitions of each row (store and baseline back to back); the median ratio is kept.")
    var repeats: Int = 5

    @Option(name: .long, help: "Directory for temporary files (default: the system's temporary directory).")
    var directory: String?

    @Option(name: .long, help: "Run only the rows whose name contains this text (e.g. leveldb_app_1).")
    var only: String?
}

extension SuiteOptions {
    /// A new directory for a suite's temporary files, under `--directory` or the system's.
    func makeScratchDirectory() throws -> URL {
        let root = URL(fileURLWithPath: directory ?? NSTemporaryDirectory()).appendingPathComponent("syncline-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        return root
    }
}

/// Removes a suite's temporary files (best effort: they are in a temporary directory).
func removeScratchDirectory(_ root: URL) {
    try? FileManager.default.removeItem(at: root)
}
