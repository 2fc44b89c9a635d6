import Foundation
import Synchronization
import Syncline
import SynclineTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Kills a writing child process with SIGKILL at random moments: after each kill the store opens
/// cleanly, every acknowledged transaction is there in full, and no transaction is half there.
@Suite("Crash safety (SIGKILL)")
struct CrashSafetyTests {
    static let rounds = 24

    @Test(arguments: StoreKind.persistent)
    func acknowledgedWritesSurviveSIGKILL(_ kind: StoreKind) async throws {
        let seed = UInt64(0xC4A5_0000) + (kind == .sqlite ? 1 : 2)
        var random = SeededRandom(seed: seed)
        let fixture = try StoreFixture(kind)
        let writer = try Self.writerExecutable()
        var nextIteration = 1
        var acknowledged = 0  // the highest iteration any child printed
        for round in 0..<Self.rounds {
            let child = try ChildWriter(executable: writer, kind: kind, path: fixture.storePath, first: nextIteration)
            // Let it confirm a few writes, then kill it at a random moment.
            // The waits run on a thread of their own: they react within a millisecond, and they do
            // not hold a thread of the cooperative pool, which the async tests running alongside need.
            let target = nextIteration + 2
            let pause = UInt32.random(in: 0...40_000, using: &random)
            let confirmed = await onOwnThread {
                let confirmed = child.waitForAcknowledgements(atLeast: target, timeout: 20)
                usleep(pause)
                child.kill()
                return confirmed
            }
            guard confirmed else {
                Issue.record("seed \(seed) round \(round): the writer confirmed nothing; stderr: \(child.errorOutput())")
                return
            }
            let printed = child.acknowledged()
            #expect(printed.max() ?? 0 >= nextIteration + 2, "seed \(seed) round \(round)")
            acknowledged = max(acknowledged, printed.max() ?? 0)

            let store = try fixture.open()  // opens cleanly after the kill
            let report = try store.read { tx in try Self.inspect(tx, upTo: acknowledged + 200) }
            store.close()
            #expect(report.halfWritten.isEmpty, "seed \(seed) round \(round): half-written iterations \(report.halfWritten)")
            #expect(report.corrupt.isEmpty, "seed \(seed) round \(round): wrong content in \(report.corrupt.prefix(3))")
            let missing = (1...acknowledged).filter { !report.complete.contains($0) }
            #expect(missing.isEmpty, "seed \(seed) round \(round): acknowledged iterations missing: \(missing.prefix(10))")
            #expect(report.recordCount == report.complete.count * CrashWorkload.recordsPerIteration, "seed \(seed) round \(round)")
            #expect(report.outboxCount == report.recordCount, "seed \(seed) round \(round)")
            nextIteration = (report.complete.max() ?? 0) + 1
        }
        #expect(acknowledged > Self.rounds * 2)
    }

    struct Report {
        var complete: Set<Int> = []
        var halfWritten: [Int] = []
        var corrupt: [String] = []
        var recordCount = 0
        var outboxCount = 0
    }

    static func inspect(_ tx: any StoreReader, upTo last: Int) throws -> Report {
        var report = Report()
        let records = try tx.records(in: CrashWorkload.collection)
        report.recordCount = records.count
        report.outboxCount = try tx.outboxCount()
        let byID = Dictionary(uniqueKeysWithValues: records.map { ($0.id, $0) })
        for iteration in 1...max(last, 1) {
            var present = 0
            for (record, change) in CrashWorkload.group(iteration) {
                guard let stored = byID[record.id] else { continue }
                present += 1
                if stored != record { report.corrupt.append("record \(record.id)") }
                let entries = try tx.outboxEntries(for: record.key)
                if entries.count != 1 || entries.first?.change != change { report.corrupt.append("outbox of \(record.id)") }
            }
            if present == CrashWorkload.recordsPerIteration {
                report.complete.insert(iteration)
            } else if present > 0 {
                report.halfWritten.append(iteration)
            }
        }
        return report
    }

    /// `syncline-crash-writer`, built next to the test bundle.
    static func writerExecutable() throws -> URL {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = testBinary.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("syncline-crash-writer")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        throw SyncError(.storage, "syncline-crash-writer is not built next to \(testBinary.path); run swift build --build-tests")
    }
}

/// A running `syncline-crash-writer` and the iterations it acknowledged.
final class ChildWriter: Sendable {
    private let process: Process
    private let output: Pipe
    private let errors: Pipe
    private let lines = Lines()

    final class Lines: Sendable {
        private let state = Mutex(([Int](), ""))
        func append(_ data: Data) {
            state.withLock { state in
                state.1 += String(decoding: data, as: UTF8.self)
                while let newline = state.1.firstIndex(of: "\n") {
                    if let number = Int(state.1[..<newline]) { state.0.append(number) }
                    state.1 = String(state.1[state.1.index(after: newline)...])
                }
            }
        }
        var numbers: [Int] { state.withLock { $0.0 } }
    }

    init(executable: URL, kind: StoreKind, path: String, first: Int) throws {
        process = Process()
        process.executableURL = executable
        process.arguments = [kind.rawValue, path, String(first)]
        output = Pipe()
        errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        let lines = self.lines
        output.fileHandleForReading.readabilityHandler = { handle in lines.append(handle.availableData) }
        try process.run()
    }

    /// Waits until the child printed iteration `target` (or more), or the timeout passes.
    func waitForAcknowledgements(atLeast target: Int, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (lines.numbers.last ?? 0) >= target { return true }
            if !process.isRunning { return (lines.numbers.last ?? 0) >= target }
            usleep(1_000)
        }
        return false
    }

    func kill() {
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
        // Lines already written to the pipe before the kill are acknowledged writes too.
        lines.append(output.fileHandleForReading.readDataToEndOfFile())
    }

    func acknowledged() -> [Int] { lines.numbers }

    /// What the child wrote to stderr; call after it exited (reads to the end of the pipe).
    func errorOutput() -> String {
        String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }
}
