/// The compact binary codec (`application/vnd.syncline+binary`).
///
/// Every document starts with a 4-byte header: the magic `"SL"`, the format version and the
/// kind of document. Version 1 for every kind, except pull pages and push responses, written in
/// version 2 (which adds the namespace's epoch); their readers accept both. Pull pages are
/// written in version 3: the server's time after the epoch (a presence byte, then a varint), and
/// an entry kind with bit `0x10` set is followed by its ``SupersededWrite`` list; a reader older
/// than that refuses them by version. Integers are LEB128 varints (zigzag for signed), lengths are varints checked
/// against the remaining input, maps in the dictionary's order (readers never depend on it).
public enum BinaryCodec {
    /// The format version this build writes and reads.
    public static let version: UInt8 = 1
    /// The version of pull pages and push responses: 2 carries the namespace's epoch (a presence
    /// byte, then 8 bytes); version 1 (without it) is still read.
    public static let epochVersion: UInt8 = 2
    /// The version of pull pages: 3 adds the server's time and superseded writes.
    public static let supersededVersion: UInt8 = 3
    static let magic: (UInt8, UInt8) = (0x53, 0x4C)

    /// What a binary document holds.
    public enum Kind: UInt8, Sendable {
        case changeBatch = 1
        case pullPage = 2
        case pushResponse = 3
        case recordState = 16
        case outboxEntry = 17
        case storedConflict = 18
        case deadLetters = 19
    }

    // MARK: Change batches

    public static func encode(_ batch: ChangeBatch) -> [UInt8] {
        var writer = header(.changeBatch, capacity: 64 + batch.changes.count * 96)
        writer.writeVarint(UInt64(batch.changes.count))
        for change in batch.changes { writer.write(change) }
        return writer.bytes
    }

    /// - Throws: ``SyncError`` `.malformedInput` or `.unsupportedVersion`.
    public static func decodeChangeBatch(_ bytes: [UInt8]) throws(SyncError) -> ChangeBatch {
        var reader = try open(bytes, .changeBatch)
        let count = try reader.readLength(minimumElementSize: 40, what: "change list")
        var changes = [Change]()
        changes.reserveCapacity(count)
        for _ in 0..<count { changes.append(try reader.readChange()) }
        try reader.expectEnd()
        return ChangeBatch(changes: changes)
    }

    // MARK: Pull pages

    public static func encode(_ page: PullPage) -> [UInt8] {
        var writer = header(.pullPage, capacity: 64 + page.changes.count * 96, version: supersededVersion)
        writer.writeEpoch(page.epoch)
        if let serverTime = page.serverTime {
            writer.writeByte(1)
            writer.writeVarint(serverTime)
        } else {
            writer.writeByte(0)
        }
        writer.writeVarint(page.cursor)
        writer.writeByte(page.hasMore ? 1 : 0)
        writer.writeVarint(page.remaining)
        writer.writeVarint(page.head)
        writer.writeVarint(UInt64(page.changes.count))
        for change in page.changes { writer.write(change) }
        return writer.bytes
    }

    /// - Throws: ``SyncError`` `.malformedInput` or `.unsupportedVersion`.
    public static func decodePullPage(_ bytes: [UInt8]) throws(SyncError) -> PullPage {
        var reader = try open(bytes, .pullPage, newest: supersededVersion)
        let epoch = bytes[2] >= epochVersion ? try reader.readEpoch() : nil
        var serverTime: UInt64?
        if bytes[2] >= supersededVersion {
            let start = reader.offset
            switch try reader.readByte() {
            case 0: break
            case 1: serverTime = try reader.readVarint()
            case let other: throw SyncError.malformed("server time presence byte \(other) at byte \(start) is neither 0 nor 1")
            }
        }
        let cursor = try reader.readVarint()
        let hasMore = try reader.readBool()
        let remaining = try reader.readVarint()
        let head = try reader.readVarint()
        let count = try reader.readLength(minimumElementSize: 6, what: "change list")
        var changes = [RemoteChange]()
        changes.reserveCapacity(count)
        for _ in 0..<count { changes.append(try reader.readRemoteChange(superseded: bytes[2] >= supersededVersion)) }
        try reader.expectEnd()
        return PullPage(
            changes: changes, cursor: cursor, hasMore: hasMore, remaining: remaining, head: head, epoch: epoch, serverTime: serverTime
        )
    }

    // MARK: Push responses

    public static func encode(_ response: PushResponse) -> [UInt8] {
        var writer = header(.pushResponse, capacity: 32 + response.results.count * 64, version: epochVersion)
        writer.writeEpoch(response.epoch)
        writer.writeVarint(response.head)
        writer.writeVarint(response.serverTime)
        writer.writeVarint(UInt64(response.results.count))
        for result in response.results {
            switch result {
            case .applied(let id, let seq, let fields):
                writer.writeByte(0)
                writer.write(id)
                writer.writeVarint(seq)
                writer.writeFields(fields) { $0.write($1) }
            case .duplicate(let id, let seq, let fields):
                writer.writeByte(1)
                writer.write(id)
                writer.writeVarint(seq)
                writer.writeFields(fields) { $0.write($1) }
            case .rejected(let id, let conflicts, let current):
                writer.writeByte(2)
                writer.write(id)
                writer.writeVarint(UInt64(conflicts.count))
                for name in conflicts { writer.writeString(name) }
                writer.writeFields(current) { $0.write($1) }
            }
        }
        return writer.bytes
    }

    /// - Throws: ``SyncError`` `.malformedInput` or `.unsupportedVersion`.
    public static func decodePushResponse(_ bytes: [UInt8]) throws(SyncError) -> PushResponse {
        var reader = try open(bytes, .pushResponse, newest: epochVersion)
        let epoch = bytes[2] >= epochVersion ? try reader.readEpoch() : nil
        let head = try reader.readVarint()
        let serverTime = try reader.readVarint()
        let count = try reader.readLength(minimumElementSize: 18, what: "result list")
        var results = [PushResult]()
        results.reserveCapacity(count)
        for _ in 0..<count {
            let start = reader.offset
            let status = try reader.readByte()
            let id = try reader.readEventID()
            switch status {
            case 0:
                let seq = try reader.readVarint()
                let fields = try reader.readFields { reader throws(SyncError) in try reader.readFieldState() }
                results.append(.applied(id: id, seq: seq, fields: fields))
            case 1:
                let seq = try reader.readVarint()
                let fields = try reader.readFields { reader throws(SyncError) in try reader.readFieldState() }
                results.append(.duplicate(id: id, seq: seq, fields: fields))
            case 2:
                let conflictCount = try reader.readLength(what: "conflict list")
                var conflicts = [String]()
                conflicts.reserveCapacity(conflictCount)
                for _ in 0..<conflictCount { conflicts.append(try reader.readString()) }
                let current = try reader.readFields { reader throws(SyncError) in try reader.readFieldState() }
                results.append(.rejected(id: id, conflicts: conflicts, current: current))
            default:
                throw SyncError.malformed("unknown push result status \(status) at byte \(start)")
            }
        }
        try reader.expectEnd()
        return PushResponse(results: results, head: head, serverTime: serverTime, epoch: epoch)
    }

    // MARK: Store documents

    /// Encodes a record for a store.
    public static func encode(_ state: RecordState) -> [UInt8] {
        var writer = header(.recordState, capacity: 64 + (state.fields.count + state.pendingFields.count) * 64)
        writer.writeString(state.collection.rawValue)
        writer.writeString(state.id.rawValue)
        writer.writeVarint(state.seq)
        writer.writeFields(state.fields) { $0.write($1) }
        writer.writeFields(state.pendingFields) { $0.write($1) }
        var flags: UInt8 = 0
        if state.tombstone != nil { flags |= 1 }
        if state.pendingDelete != nil { flags |= 2 }
        if state.conflicted { flags |= 4 }
        if !state.ownWrites.isEmpty { flags |= 8 }
        if !state.lostWrites.isEmpty { flags |= 16 }
        writer.writeByte(flags)
        if let tombstone = state.tombstone { writer.write(tombstone) }
        if let pendingDelete = state.pendingDelete { writer.write(pendingDelete) }
        if !state.ownWrites.isEmpty {
            writer.writeVarint(UInt64(state.ownWrites.count))
            for (hlc, write) in state.ownWrites {
                writer.write(hlc)
                writer.write(write.id)
                writer.writeVarint(write.seq)
            }
        }
        if !state.lostWrites.isEmpty {
            writer.writeVarint(UInt64(state.lostWrites.count))
            for (hlc, names) in state.lostWrites {
                writer.write(hlc)
                writer.writeVarint(UInt64(names.count))
                for name in names { writer.writeString(name) }
            }
        }
        return writer.bytes
    }

    public static func decodeRecordState(_ bytes: [UInt8]) throws(SyncError) -> RecordState {
        var reader = try open(bytes, .recordState)
        let collection = try reader.readCollection()
        let id = try reader.readRecordID()
        let seq = try reader.readVarint()
        let fields = try reader.readFields { reader throws(SyncError) in try reader.readFieldState() }
        let pending = try reader.readFields { reader throws(SyncError) in try reader.readFieldState() }
        let flags = try reader.readByte()
        guard flags & ~31 == 0 else { throw SyncError.malformed("record flags \(flags) are unknown") }
        let tombstone = flags & 1 != 0 ? try reader.readHLC() : nil
        let pendingDelete = flags & 2 != 0 ? try reader.readHLC() : nil
        var ownWrites: [HLC: OwnWrite] = [:]
        if flags & 8 != 0 {
            for _ in 0..<(try reader.readLength(minimumElementSize: 33, what: "own write list")) {
                ownWrites[try reader.readHLC()] = OwnWrite(id: try reader.readEventID(), seq: try reader.readVarint())
            }
        }
        var lostWrites: [HLC: [String]] = [:]
        if flags & 16 != 0 {
            for _ in 0..<(try reader.readLength(minimumElementSize: 17, what: "lost write list")) {
                let hlc = try reader.readHLC()
                let count = try reader.readLength(what: "lost field list")
                var names: [String] = []
                for _ in 0..<count { names.append(try reader.readString()) }
                lostWrites[hlc] = names
            }
        }
        try reader.expectEnd()
        return RecordState(
            collection: collection, id: id, fields: fields, seq: seq, tombstone: tombstone,
            pendingFields: pending, pendingDelete: pendingDelete, conflicted: flags & 4 != 0, ownWrites: ownWrites,
            lostWrites: lostWrites
        )
    }

    /// Encodes an outbox entry for a store.
    public static func encode(_ entry: OutboxEntry) -> [UInt8] {
        var writer = header(.outboxEntry, capacity: 96 + entry.change.fields.count * 48)
        writer.writeVarint(entry.position)
        writer.writeByte(entry.priority.rawValue)
        writer.writeByte(entry.sent ? 1 : 0)
        writer.write(entry.change)
        return writer.bytes
    }

    /// The bytes an outbox entry's document adds around its change (header, position, priority,
    /// sent flag): a stored entry of `n` bytes carries a change of `n - outboxEntryOverhead(seq:)`.
    public static func outboxEntryOverhead(seq: UInt64) -> Int {
        var length = 1
        var rest = seq >> 7
        while rest > 0 {
            length += 1
            rest >>= 7
        }
        return 4 + length + 2
    }

    public static func decodeOutboxEntry(_ bytes: [UInt8]) throws(SyncError) -> OutboxEntry {
        var reader = try open(bytes, .outboxEntry)
        let seq = try reader.readVarint()
        let rawPriority = try reader.readByte()
        guard let priority = Priority(rawValue: rawPriority) else {
            throw SyncError.malformed("outbox priority \(rawPriority) is unknown")
        }
        let sent = try reader.readBool()
        let change = try reader.readChange()
        try reader.expectEnd()
        return OutboxEntry(position: seq, priority: priority, change: change, sent: sent)
    }

    /// Reads only the position, priority and record of an outbox entry (what an index needs),
    /// without decoding the change's values.
    /// The position of a stored outbox entry, read from its first bytes without decoding the rest.
    public static func outboxEntryPosition(_ bytes: [UInt8]) throws(SyncError) -> UInt64 {
        var reader = try open(bytes, .outboxEntry)
        return try reader.readVarint()
    }

    public static func decodeOutboxEntryIndex(_ bytes: [UInt8]) throws(SyncError) -> (position: UInt64, priority: Priority, key: RecordKey) {
        var reader = try open(bytes, .outboxEntry)
        let seq = try reader.readVarint()
        let rawPriority = try reader.readByte()
        guard let priority = Priority(rawValue: rawPriority) else {
            throw SyncError.malformed("outbox priority \(rawPriority) is unknown")
        }
        _ = try reader.readBool()
        _ = try reader.readEventID()
        let collection = try reader.readCollection()
        let record = try reader.readRecordID()
        return (seq, priority, RecordKey(collection: collection, id: record))
    }

    /// Encodes the dead letters for a store: a count, then per letter its outbox entry (as a
    /// nested document), the error's code and message, and when it was set aside.
    public static func encode(_ letters: [DeadLetter]) -> [UInt8] {
        var writer = header(.deadLetters, capacity: 64 + letters.count * 160)
        writeDeadLetters(letters, into: &writer)
        return writer.bytes
    }

    /// Reads dead letters: the versioned document, or the list stores kept before it had a header
    /// (the same body without the 4-byte header; told apart by the header's magic, version and
    /// kind, which that body cannot start with: its third byte begins a nested document, `"S"`).
    public static func decodeDeadLetters(_ bytes: [UInt8]) throws(SyncError) -> [DeadLetter] {
        var reader = isHeadedDeadLetters(bytes) ? try open(bytes, .deadLetters) : BinaryReader(bytes)
        let count = try reader.readLength(minimumElementSize: 8, what: "dead letter list")
        var letters: [DeadLetter] = []
        for _ in 0..<count {
            let entry = try decodeOutboxEntry(try reader.readBytes())
            let codeText = try reader.readString()
            let message = try reader.readString()
            let failedAt = try reader.readVarint()
            let code = SyncError.Code(description: codeText) ?? .storage
            letters.append(DeadLetter(change: entry.change, priority: entry.priority, error: SyncError(code, message), failedAt: failedAt))
        }
        try reader.expectEnd()
        return letters
    }

    /// Whether stored dead letters are the versioned document (not the headerless list before it).
    public static func isHeadedDeadLetters(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 4 && bytes[0] == magic.0 && bytes[1] == magic.1 && bytes[2] != magic.0 && bytes[3] == Kind.deadLetters.rawValue
    }

    static func writeDeadLetters(_ letters: [DeadLetter], into writer: inout BinaryWriter) {
        writer.writeVarint(UInt64(letters.count))
        for letter in letters {
            writer.writeBytes(encode(OutboxEntry(position: 0, priority: letter.priority, change: letter.change)))
            writer.writeString(letter.error.code.description)
            writer.writeString(letter.error.message)
            writer.writeVarint(letter.failedAt)
        }
    }

    /// Encodes a stored conflict for a store.
    public static func encode(_ conflict: StoredConflict) -> [UInt8] {
        var writer = header(.storedConflict, capacity: 128)
        writer.write(conflict.id)
        writer.writeString(conflict.collection.rawValue)
        writer.writeString(conflict.record.rawValue)
        writer.writeVarint(UInt64(conflict.fieldNames.count))
        for name in conflict.fieldNames { writer.writeString(name) }
        writer.writeFields(conflict.local) { $0.write($1) }
        writer.writeFields(conflict.server) { $0.write($1) }
        writer.write(conflict.detected)
        return writer.bytes
    }

    public static func decodeStoredConflict(_ bytes: [UInt8]) throws(SyncError) -> StoredConflict {
        var reader = try open(bytes, .storedConflict)
        let id = try reader.readEventID()
        let collection = try reader.readCollection()
        let record = try reader.readRecordID()
        let nameCount = try reader.readLength(what: "field name list")
        var names = [String]()
        names.reserveCapacity(nameCount)
        for _ in 0..<nameCount { names.append(try reader.readString()) }
        let local = try reader.readFields { reader throws(SyncError) in try reader.readValue() }
        let server = try reader.readFields { reader throws(SyncError) in try reader.readFieldState() }
        let detected = try reader.readHLC()
        try reader.expectEnd()
        return StoredConflict(
            id: id, collection: collection, record: record, fieldNames: names, local: local, server: server,
            detected: detected
        )
    }

    // MARK: Header

    static func header(_ kind: Kind, capacity: Int, version: UInt8 = version) -> BinaryWriter {
        var writer = BinaryWriter(capacity: capacity)
        writer.writeByte(magic.0)
        writer.writeByte(magic.1)
        writer.writeByte(version)
        writer.writeByte(kind.rawValue)
        return writer
    }

    /// Checks the header: a `kind` document in a version from 1 to `newest`.
    static func open(_ bytes: [UInt8], _ kind: Kind, newest: UInt8 = version) throws(SyncError) -> BinaryReader {
        guard bytes.count >= 4, bytes[0] == magic.0, bytes[1] == magic.1 else {
            throw SyncError.malformed("not a Syncline binary document (bad magic)")
        }
        guard bytes[2] >= 1 && bytes[2] <= newest else {
            throw SyncError(
                .unsupportedVersion, "binary format version \(bytes[2]) of a \(kind) is not supported (this build reads 1 to \(newest))"
            )
        }
        guard bytes[3] == kind.rawValue else {
            throw SyncError.malformed("expected a \(kind) document, found kind \(bytes[3])")
        }
        return BinaryReader(bytes, offset: 4)
    }
}

extension BinaryWriter {
    /// An optional epoch: a presence byte (0 or 1), then 8 bytes.
    mutating func writeEpoch(_ epoch: Epoch?) {
        guard let epoch else { return writeByte(0) }
        writeByte(1)
        writeFixed64(epoch.rawValue)
    }

    public mutating func write(_ change: Change) {
        writeChangeHeader(change)
        if change.operation == .upsert { writeFields(change.fields) { $0.write($1) } }
    }

    /// A change up to its fields.
    mutating func writeChangeHeader(_ change: Change) {
        write(change.id)
        writeString(change.collection.rawValue)
        writeString(change.record.rawValue)
        writeByte(change.operation == .upsert ? 0 : 1)
        writeByte(change.mode.tag)
        write(change.hlc)
        writeVarint(change.base)
    }

    public mutating func write(_ change: RemoteChange) {
        writeVarint(change.seq)
        writeString(change.collection.rawValue)
        writeString(change.record.rawValue)
        let carries: UInt8 = change.superseded.isEmpty ? 0 : 0x10
        if change.deleted {
            writeByte(1 | carries)
            write(change.hlc ?? .zero)
        } else {
            writeByte((change.reset ? 2 : 0) | carries)
            writeFields(change.fields) { $0.write($1) }
        }
        if carries != 0 { write(change.superseded) }
    }

    /// A list of superseded writes: a count, then per write its HLC, the seq that replaced it, a
    /// byte (1 for a delete undone), and its field names.
    public mutating func write(_ superseded: [SupersededWrite]) {
        writeVarint(UInt64(superseded.count))
        for write in superseded {
            self.write(write.hlc)
            writeVarint(write.seq)
            writeByte(write.deleted ? 1 : 0)
            writeVarint(UInt64(write.fields.count))
            for name in write.fields { writeString(name) }
        }
    }
}

extension BinaryReader {
    /// Reads what ``BinaryWriter/writeEpoch(_:)`` wrote.
    /// - Throws: ``SyncError`` `.malformedInput` for a presence byte other than 0 or 1.
    mutating func readEpoch() throws(SyncError) -> Epoch? {
        switch try readByte() {
        case 0: return nil
        case 1: return Epoch(rawValue: try readFixed64())
        case let other: throw SyncError.malformed("epoch presence byte \(other) is neither 0 nor 1")
        }
    }

    public mutating func readChange() throws(SyncError) -> Change {
        let id = try readEventID()
        let collection = try readCollection()
        let record = try readRecordID()
        let start = offset
        let operation: ChangeOperation
        switch try readByte() {
        case 0: operation = .upsert
        case 1: operation = .delete
        case let other: throw SyncError.malformed("unknown operation \(other) at byte \(start)")
        }
        let modeTag = try readByte()
        guard let mode = ConflictMode(tag: modeTag) else {
            throw SyncError.malformed("unknown conflict mode \(modeTag) at byte \(start + 1)")
        }
        let hlc = try readHLC()
        let base = try readVarint()
        let fields = operation == .upsert ? try readFields { reader throws(SyncError) in try reader.readValue() } : [:]
        return Change(
            id: id, collection: collection, record: record, operation: operation, fields: fields, hlc: hlc,
            base: base, mode: mode
        )
    }

    /// - Parameter superseded: whether the entry's kind may say a superseded list follows (pages
    ///   of version 3 and later).
    public mutating func readRemoteChange(superseded: Bool = true) throws(SyncError) -> RemoteChange {
        let seq = try readVarint()
        let collection = try readCollection()
        let record = try readRecordID()
        let start = offset
        let byte = try readByte()
        let carries = superseded && byte & 0x10 != 0
        var change: RemoteChange
        switch carries ? byte & ~0x10 : byte {
        case 1:
            change = RemoteChange(seq: seq, collection: collection, record: record, deleted: true, hlc: try readHLC())
        case let kind where kind == 0 || kind == 2:
            let fields = try readFields { reader throws(SyncError) in try reader.readFieldState() }
            change = RemoteChange(seq: seq, collection: collection, record: record, deleted: false, fields: fields, reset: kind == 2)
        case let other:
            throw SyncError.malformed("unknown remote change kind \(other) at byte \(start)")
        }
        if carries { change.superseded = try readSupersededWrites() }
        return change
    }

    /// Reads a list of superseded writes (see `BinaryWriter.write(_ superseded:)`).
    public mutating func readSupersededWrites() throws(SyncError) -> [SupersededWrite] {
        let count = try readLength(minimumElementSize: 19, what: "superseded write list")
        var writes: [SupersededWrite] = []
        writes.reserveCapacity(count)
        for _ in 0..<count {
            let hlc = try readHLC()
            let seq = try readVarint()
            let start = offset
            let deleted: Bool
            switch try readByte() {
            case 0: deleted = false
            case 1: deleted = true
            case let other: throw SyncError.malformed("superseded write flag \(other) at byte \(start) is neither 0 nor 1")
            }
            let nameCount = try readLength(what: "superseded field list")
            var names: [String] = []
            names.reserveCapacity(nameCount)
            for _ in 0..<nameCount { names.append(try readString()) }
            writes.append(SupersededWrite(hlc: hlc, seq: seq, fields: names, deleted: deleted))
        }
        return writes
    }
}

extension ConflictMode {
    var tag: UInt8 {
        switch self {
        case .lww: return 0
        case .reject: return 1
        case .force: return 2
        }
    }

    init?(tag: UInt8) {
        switch tag {
        case 0: self = .lww
        case 1: self = .reject
        case 2: self = .force
        default: return nil
        }
    }
}
