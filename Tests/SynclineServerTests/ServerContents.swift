import Syncline


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
