import Syncline
import SynclineTesting


extension SyncTransport {
    /// Every record on the server, as a snapshot pull reads it page by page, and the head.
    func serverContents() async throws -> (records: [RecordID: [String: Value]], head: UInt64) {
        var position: UInt64 = 0
        var records: [RecordID: [String: Value]] = [:]
        while true {
            let page = try await pull(after: 0, from: position, limit: 1_000, epoch: nil)
            for entry in page.changes { records[entry.record] = entry.fields.mapValues(\.value) }
            guard page.hasMore else { return (records, page.head) }
            position = page.cursor
        }
    }
}

extension Array where Element == SyncClient {
    /// Each device writes `count` new records (`<phase>-<device>-<n>`), pausing every ten writes
    /// so its background sync runs as it goes.
    func writeNewRecords(_ phase: String, count: Int) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, device) in enumerated() {
                group.addTask {
                    for number in 0..<count {
                        try await device.upsert(Sample.key("\(phase)-\(index)-\(number)"), fields: ["n": .int(Int64(number)), "device": .int(Int64(index))])
                        if number % 10 == 0 { try await Task.sleep(for: .milliseconds(5)) }
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}

