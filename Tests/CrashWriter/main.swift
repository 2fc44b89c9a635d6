// The child process of the crash-safety tests: writes transactions in a loop until it is killed.
//
//     syncline-crash-writer <sqlite|leveldb> <path> <first-iteration>
//
// Iteration i is ONE transaction: three records `k<i>-0`…`k<i>-2` and one outbox entry for each.
// After the transaction's commit returns, the process prints `i` on its own line and flushes, so
// the parent knows exactly which writes were acknowledged.
import Foundation
import Syncline
import SynclineTesting

#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments
guard arguments.count == 4, let kind = StoreKind(rawValue: arguments[1]), kind != .inMemory,
    let first = Int(arguments[3])
else {
    FileHandle.standardError.write(Data("usage: syncline-crash-writer <sqlite|leveldb> <path> <first-iteration>\n".utf8))
    exit(2)
}

do {
    let store = try StoreFixture.openPersistent(kind, path: arguments[2], configuration: StoreConfiguration())
    var iteration = first
    while true {
        let group = CrashWorkload.group(iteration)
        try store.write { tx in
            for (record, change) in group {
                try tx.putRecord(record)
                try tx.enqueue(change, priority: .normal)
            }
        }
        FileHandle.standardOutput.write(Data("\(iteration)\n".utf8))
        iteration += 1
    }
} catch {
    FileHandle.standardError.write(Data("syncline-crash-writer: \(error)\n".utf8))
    exit(1)
}
