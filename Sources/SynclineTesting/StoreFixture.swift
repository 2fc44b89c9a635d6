public import Foundation
public import Syncline
import SynclineLevelDB
import SynclineSQLite

/// The three stores every conformance test runs against.
public enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case inMemory
    case sqlite
    case leveldb

    public var description: String { rawValue }

    /// The two stores that live on disk.
    public static let persistent: [StoreKind] = [.sqlite, .leveldb]
}

/// A place for one store that can be opened, closed and opened again (a restart). Files live in
/// a fresh temporary directory, removed when the fixture goes away.
public final class StoreFixture: Sendable {
    public let kind: StoreKind
    public let directory: URL
    public let configuration: StoreConfiguration
    private let memory = InMemoryStore.Database()

    public init(_ kind: StoreKind, configuration: StoreConfiguration = StoreConfiguration()) throws {
        self.kind = kind
        self.configuration = configuration
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("syncline-test-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)  // best-effort clean-up of a temp dir
    }

    /// Where the store's file (SQLite) or directory (LevelDB) is.
    public var storePath: String {
        switch kind {
        case .inMemory: return ""
        case .sqlite: return directory.appendingPathComponent("store.sqlite").path
        case .leveldb: return directory.appendingPathComponent("store.leveldb").path
        }
    }

    /// Opens the store; call again after `close()` to reopen it with everything committed.
    public func open() throws -> any SyncStore {
        try Self.open(kind, path: storePath, configuration: configuration, memory: memory)
    }

    static func open(
        _ kind: StoreKind, path: String, configuration: StoreConfiguration, memory: InMemoryStore.Database
    ) throws -> any SyncStore {
        switch kind {
        case .inMemory: return InMemoryStore(database: memory, configuration: configuration)
        case .sqlite: return try SQLiteStore(path: path, configuration: configuration)
        case .leveldb: return try LevelDBStore(path: path, configuration: configuration)
        }
    }

    /// Opens a persistent store at an explicit path (for child processes).
    public static func openPersistent(_ kind: StoreKind, path: String, configuration: StoreConfiguration) throws
        -> any SyncStore
    {
        try open(kind, path: path, configuration: configuration, memory: InMemoryStore.Database())
    }
}

/// Builders for test data.
public enum Sample {
    public static func collection(_ name: String = "todos") -> CollectionName { try! CollectionName(name) }
    public static func id(_ text: String) -> RecordID { try! RecordID(text) }
    public static func key(_ id: String, in collection: String = "todos") -> RecordKey {
        RecordKey(collection: Sample.collection(collection), id: Sample.id(id))
    }

    public static func hlc(_ millis: UInt64, node: UInt64 = 0xA1) -> HLC {
        try! HLC(wallMillis: millis, counter: 0, node: node)
    }

    public static func eventID(_ number: UInt64) -> EventID {
        EventID(high: number << 16 | 0x7000, low: 0x8000_0000_0000_0000 | number)
    }

    /// A record with confirmed fields at `seq`.
    public static func record(
        _ id: String, in collection: String = "todos", fields: [String: Value], seq: UInt64 = 1
    ) -> RecordState {
        RecordState(
            collection: Sample.collection(collection), id: Sample.id(id),
            fields: fields.mapValues { FieldState(value: $0, hlc: hlc(1_700_000_000_000 + seq), seq: seq) },
            seq: seq
        )
    }

    public static func change(
        _ number: UInt64, record id: String, in collection: String = "todos", _ operation: ChangeOperation = .upsert,
        fields: [String: Value] = [:], base: UInt64 = 0
    ) -> Change {
        Change(
            id: eventID(number), collection: Sample.collection(collection), record: Sample.id(id),
            operation: operation, fields: fields, hlc: hlc(1_700_000_000_000 + number), base: base
        )
    }
}

/// Runs a blocking wait (a child process, a sleep-poll loop) on a thread of its own and resumes
/// the caller with its result, so the wait does not hold a thread of the cooperative pool that
/// the async tests running alongside need.
public func onOwnThread<Result: Sendable>(_ body: @escaping @Sendable () -> Result) async -> Result {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}
