// A tour of Syncline's two on-disk stores: typed models bridged to field values, records and
// their outbox entries written in one transaction, coalescing, priorities, and a restart.
// `Scripts/demo.sh` runs it until the multi-device simulator lands.
import Foundation
import Syncline
import SynclineLevelDB
import SynclineSQLite

struct Todo: Codable, Equatable {
    var id: String
    var title: String
    var done: Bool
    var tags: [String]
}

func tour(_ name: String, open: () throws -> any SyncStore) throws {
    print("== \(name)")
    let todos = try CollectionName("todos")
    let node: UInt64 = 0x9F1C_2A7B_3D4E_5F60
    var clock = HybridClock(node: node)
    var ids = EventIDGenerator()
    let encoder = ValueEncoder()
    let decoder = ValueDecoder()
    func now() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    var store = try open()
    let items = [
        Todo(id: "t1", title: "Buy milk", done: false, tags: ["shop"]),
        Todo(id: "t2", title: "Call mum", done: false, tags: []),
        Todo(id: "t3", title: "Write the report", done: true, tags: ["work", "q4"]),
    ]
    for (index, todo) in items.enumerated() {
        let fields = try encoder.encodeFields(todo)
        let hlc = try clock.now(wallMillis: now())
        let change = Change(
            id: ids.next(wallMillis: now()), collection: todos, record: try RecordID(todo.id), operation: .upsert,
            fields: fields, hlc: hlc, base: 0
        )
        try change.validate()
        let record = RecordState(
            collection: todos, id: change.record,
            pendingFields: fields.mapValues { FieldState(value: $0, hlc: hlc, seq: 0) }
        )
        let priority: Priority = index == 1 ? .high : .normal
        let entry = try store.write { tx in
            try tx.putRecord(record)
            return try tx.enqueue(change, priority: priority)
        }
        print("  wrote \(todo.id) (\(fields.count) fields) and queued it as outbox #\(entry.position), priority \(priority)")
    }

    // Editing t1 again before it was sent folds the edit into its queued change.
    let edit = Change(
        id: ids.next(wallMillis: now()), collection: todos, record: try RecordID("t1"), operation: .upsert,
        fields: ["done": true], hlc: try clock.now(wallMillis: now()), base: 0
    )
    let coalesced = try store.write { tx in
        guard var record = try tx.record(edit.key) else { throw SyncError(.storage, "t1 vanished") }
        record.pendingFields["done"] = FieldState(value: true, hlc: edit.hlc, seq: 0)
        try tx.putRecord(record)
        return try tx.enqueue(edit, priority: .normal)
    }
    print("  edited t1: coalesced into outbox #\(coalesced.position), now sends \(coalesced.change.fields.keys.sorted())")
    try store.write { tx in
        try tx.setPullCursor(0)
        try tx.setDeviceMetadata(DeviceMetadata(deviceID: node, lastHLC: clock.last))
    }

    store.close()
    store = try open()
    print("  reopened")
    try store.read { tx in
        for record in try tx.records(in: todos) {
            let todo = try decoder.decode(Todo.self, fromFields: record.visibleFields)
            print("  read \(todo.id): \"\(todo.title)\" done=\(todo.done) tags=\(todo.tags)")
        }
        let queue = try tx.outbox(limit: 10).map { "#\($0.position) \($0.change.record) (\($0.priority))" }
        print("  outbox in drain order: \(queue.joined(separator: ", "))")
        if let device = try tx.deviceMetadata() { print("  device \(String(device.deviceID, radix: 16)), clock \(device.lastHLC)") }
    }
    store.close()
}

let directory = FileManager.default.temporaryDirectory.appendingPathComponent("syncline-tour-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: directory) }  // temporary files only

do {
    let sqlitePath = directory.appendingPathComponent("tour.sqlite").path
    try tour("SQLiteStore (\(sqlitePath))") { try SQLiteStore(path: sqlitePath) }
    let leveldbPath = directory.appendingPathComponent("tour.leveldb").path
    try tour("LevelDBStore (\(leveldbPath))") { try LevelDBStore(path: leveldbPath) }
    print("done: both stores kept every write across a restart")
} catch {
    print("error: \(error)")
    exit(1)
}
