/// The JSON codec (`application/json`): exactly the shapes of DESIGN §5.1, the public wire
/// contract for third-party clients.
///
/// Values are natural JSON except bytes (`{"$b": "<base64>"}`); a double with an integral value is
/// written with a fraction (`1.0`) so it reads back as a double; integers without a fraction or
/// exponent read back as 64-bit integers. HLCs and event ids are strings. Readers ignore unknown
/// keys and reject missing ones with a message naming the key. Output is deterministic (sorted keys).
public enum JSONCodec {
    // MARK: Values

    /// - Throws: ``SyncError`` `.invalidValue` for non-finite doubles or reserved `$` keys.
    public static func encode(_ value: Value) throws(SyncError) -> [UInt8] {
        var writer = JSONWriter()
        try writer.value(value)
        return writer.bytes
    }

    /// - Throws: ``SyncError`` `.malformedInput`.
    public static func decodeValue(_ bytes: [UInt8]) throws(SyncError) -> Value {
        try JSONFields.value(JSONReader.parse(bytes), path: "value", depth: 0)
    }

    // MARK: Change batches

    public static func encode(_ batch: ChangeBatch) throws(SyncError) -> [UInt8] {
        var writer = JSONWriter(capacity: 64 + batch.changes.count * 160)
        writer.raw("{\"changes\":")
        try writer.array(batch.changes) { writer, change throws(SyncError) in try writer.change(change) }
        writer.raw("}")
        return writer.bytes
    }

    public static func decodeChangeBatch(_ bytes: [UInt8]) throws(SyncError) -> ChangeBatch {
        let root = try JSONFields(JSONReader.parse(bytes), path: "batch")
        return ChangeBatch(changes: try root.array("changes").enumerated().map { index, node throws(SyncError) in
            try JSONFields(node, path: "changes[\(index)]").change()
        })
    }

    // MARK: Pull pages

    public static func encode(_ page: PullPage) throws(SyncError) -> [UInt8] {
        var writer = JSONWriter(capacity: 96 + page.changes.count * 160)
        writer.raw("{\"changes\":")
        try writer.array(page.changes) { writer, change throws(SyncError) in try writer.remoteChange(change) }
        writer.raw(",\"cursor\":")
        writer.integer(page.cursor)
        writer.epoch(page.epoch)
        writer.raw(",\"hasMore\":")
        writer.bool(page.hasMore)
        writer.raw(",\"head\":")
        writer.integer(page.head)
        writer.raw(",\"remaining\":")
        writer.integer(page.remaining)
        if let serverTime = page.serverTime {
            writer.raw(",\"serverTime\":")
            writer.integer(serverTime)
        }
        writer.raw("}")
        return writer.bytes
    }

    public static func decodePullPage(_ bytes: [UInt8]) throws(SyncError) -> PullPage {
        let root = try JSONFields(JSONReader.parse(bytes), path: "page")
        let changes = try root.array("changes").enumerated().map { index, node throws(SyncError) in
            try JSONFields(node, path: "changes[\(index)]").remoteChange()
        }
        return PullPage(
            changes: changes, cursor: try root.unsigned("cursor"), hasMore: try root.bool("hasMore"),
            remaining: try root.unsigned("remaining"), head: try root.unsigned("head"), epoch: try root.epoch("epoch"),
            serverTime: root.members["serverTime"] == nil ? nil : try root.unsigned("serverTime")
        )
    }

    // MARK: Push responses

    public static func encode(_ response: PushResponse) throws(SyncError) -> [UInt8] {
        var writer = JSONWriter(capacity: 64 + response.results.count * 128)
        writer.raw("{")
        if let epoch = response.epoch {
            writer.raw("\"epoch\":")
            writer.string(epoch.description)
            writer.raw(",")
        }
        writer.raw("\"head\":")
        writer.integer(response.head)
        writer.raw(",\"results\":")
        try writer.array(response.results) { writer, result throws(SyncError) in
            writer.raw("{\"id\":")
            writer.string(result.id.description)
            switch result {
            case .applied(_, let seq, let fields):
                writer.raw(",\"status\":\"applied\",\"seq\":")
                writer.integer(seq)
                writer.raw(",\"fields\":")
                try writer.fieldStates(fields)
            case .duplicate(_, let seq, let fields):
                writer.raw(",\"status\":\"duplicate\",\"seq\":")
                writer.integer(seq)
                if !fields.isEmpty {
                    writer.raw(",\"fields\":")
                    try writer.fieldStates(fields)
                }
            case .rejected(_, let conflicts, let current):
                writer.raw(",\"status\":\"rejected\",\"conflicts\":")
                try writer.array(conflicts) { writer, name throws(SyncError) in writer.string(name) }
                writer.raw(",\"current\":")
                try writer.fieldStates(current)
            }
            writer.raw("}")
        }
        writer.raw(",\"serverTime\":")
        writer.integer(response.serverTime)
        writer.raw("}")
        return writer.bytes
    }

    public static func decodePushResponse(_ bytes: [UInt8]) throws(SyncError) -> PushResponse {
        let root = try JSONFields(JSONReader.parse(bytes), path: "response")
        let results = try root.array("results").enumerated().map { index, node throws(SyncError) -> PushResult in
            let result = try JSONFields(node, path: "results[\(index)]")
            let id = try result.eventID("id")
            switch try result.string("status") {
            case "applied":
                return .applied(id: id, seq: try result.unsigned("seq"), fields: try result.fieldStates("fields"))
            case "duplicate":
                let fields = result.members["fields"] == nil ? [:] : try result.fieldStates("fields")
                return .duplicate(id: id, seq: try result.unsigned("seq"), fields: fields)
            case "rejected":
                let conflicts = try result.array("conflicts").enumerated().map { offset, node throws(SyncError) in
                    guard case .string(let name) = node else {
                        throw SyncError.malformed("results[\(index)].conflicts[\(offset)] must be a string")
                    }
                    return name
                }
                return .rejected(id: id, conflicts: conflicts, current: try result.fieldStates("current"))
            case let other:
                throw SyncError.malformed("results[\(index)].status \(NameRules.quote(other)) is not applied, duplicate or rejected")
            }
        }
        return PushResponse(
            results: results, head: try root.unsigned("head"), serverTime: try root.unsigned("serverTime"), epoch: try root.epoch("epoch")
        )
    }
}

extension JSONWriter {
    /// `,"epoch":"<hex16>"` when there is one.
    mutating func epoch(_ epoch: Epoch?) {
        guard let epoch else { return }
        raw(",\"epoch\":")
        string(epoch.description)
    }

    mutating func change(_ change: Change) throws(SyncError) {
        raw("{\"base\":")
        integer(change.base)
        raw(",\"collection\":")
        string(change.collection.rawValue)
        if change.operation == .upsert {
            raw(",\"fields\":")
            try object(change.fields) { writer, value throws(SyncError) in try writer.value(value) }
        }
        raw(",\"hlc\":")
        string(change.hlc.description)
        raw(",\"id\":")
        string(change.id.description)
        raw(",\"mode\":")
        string(change.mode.rawValue)
        raw(",\"op\":")
        string(change.operation.rawValue)
        raw(",\"record\":")
        string(change.record.rawValue)
        raw("}")
    }

    mutating func remoteChange(_ change: RemoteChange) throws(SyncError) {
        raw("{\"collection\":")
        string(change.collection.rawValue)
        raw(",\"deleted\":")
        bool(change.deleted)
        if change.deleted {
            raw(",\"hlc\":")
            string((change.hlc ?? .zero).description)
        } else {
            raw(",\"fields\":")
            try fieldStates(change.fields)
        }
        raw(",\"record\":")
        string(change.record.rawValue)
        if change.reset { raw(",\"reset\":true") }
        raw(",\"seq\":")
        integer(change.seq)
        if !change.superseded.isEmpty {
            raw(",\"superseded\":")
            try array(change.superseded) { writer, write throws(SyncError) in
                writer.raw("{")
                if write.deleted { writer.raw("\"deleted\":true,") }
                writer.raw("\"fields\":")
                try writer.array(write.fields) { writer, name throws(SyncError) in writer.string(name) }
                writer.raw(",\"hlc\":")
                writer.string(write.hlc.description)
                writer.raw(",\"seq\":")
                writer.integer(write.seq)
                writer.raw("}")
            }
        }
        raw("}")
    }

    mutating func fieldStates(_ fields: [String: FieldState]) throws(SyncError) {
        try object(fields) { writer, field throws(SyncError) in
            writer.raw("{\"hlc\":")
            writer.string(field.hlc.description)
            writer.raw(",\"seq\":")
            writer.integer(field.seq)
            writer.raw(",\"v\":")
            try writer.value(field.value)
            writer.raw("}")
        }
    }
}

/// Typed access to a JSON object's members, with errors naming the path.
struct JSONFields {
    let members: [String: JSONNode]
    let path: String

    init(_ node: JSONNode, path: String) throws(SyncError) {
        guard case .object(let members) = node else { throw SyncError.malformed("\(path) must be an object, not \(node.kind)") }
        self.members = members
        self.path = path
    }

    func required(_ key: String) throws(SyncError) -> JSONNode {
        guard let node = members[key] else { throw SyncError.malformed("\(path) is missing the key \"\(key)\"") }
        return node
    }

    func wrongType(_ key: String, _ expected: String, _ node: JSONNode) -> SyncError {
        SyncError.malformed("\(path).\(key) must be \(expected), not \(node.kind)")
    }

    func string(_ key: String) throws(SyncError) -> String {
        let node = try required(key)
        guard case .string(let text) = node else { throw wrongType(key, "a string", node) }
        return text
    }

    func bool(_ key: String) throws(SyncError) -> Bool {
        let node = try required(key)
        guard case .bool(let flag) = node else { throw wrongType(key, "a boolean", node) }
        return flag
    }

    func unsigned(_ key: String) throws(SyncError) -> UInt64 {
        let node = try required(key)
        switch node {
        case .int(let number) where number >= 0: return UInt64(number)
        case .unsigned(let number): return number
        // JSON Schema's integers include `5.0`; so do ours (exactly representable values only).
        case .double(let number) where number >= 0 && number < 0x1p64 && number.rounded(.towardZero) == number: return UInt64(number)
        default: throw wrongType(key, "a non-negative integer", node)
        }
    }

    /// An optional epoch (absent, or `null`, from peers older than epochs or devices that know
    /// none yet); present, it must be a string of 16 hex digits.
    func epoch(_ key: String) throws(SyncError) -> Epoch? {
        guard let node = members[key], node != .null else { return nil }
        guard case .string(let text) = node else { throw wrongType(key, "a string of 16 hex digits", node) }
        do {
            return try Epoch(parsing: text)
        } catch {
            throw SyncError.malformed("\(path).\(key): \(error.message)")
        }
    }

    func array(_ key: String) throws(SyncError) -> [JSONNode] {
        let node = try required(key)
        guard case .array(let items) = node else { throw wrongType(key, "an array", node) }
        return items
    }

    func object(_ key: String) throws(SyncError) -> [String: JSONNode] {
        let node = try required(key)
        guard case .object(let members) = node else { throw wrongType(key, "an object", node) }
        return members
    }

    func hlc(_ key: String) throws(SyncError) -> HLC {
        do { return try HLC(parsing: string(key)) } catch { throw SyncError.malformed("\(path).\(key): \(error.message)") }
    }

    func eventID(_ key: String) throws(SyncError) -> EventID {
        do { return try EventID(parsing: string(key)) } catch { throw SyncError.malformed("\(path).\(key): \(error.message)") }
    }

    func collection(_ key: String) throws(SyncError) -> CollectionName {
        do { return try CollectionName(string(key)) } catch { throw SyncError.malformed("\(path).\(key): \(error.message)") }
    }

    func recordID(_ key: String) throws(SyncError) -> RecordID {
        do { return try RecordID(string(key)) } catch { throw SyncError.malformed("\(path).\(key): \(error.message)") }
    }

    func values(_ key: String) throws(SyncError) -> [String: Value] {
        var result = [String: Value]()
        for (name, node) in try object(key) { result[name] = try Self.value(node, path: "\(path).\(key).\(name)", depth: 0) }
        return result
    }

    func fieldStates(_ key: String) throws(SyncError) -> [String: FieldState] {
        var result = [String: FieldState]()
        for (name, node) in try object(key) {
            let field = try JSONFields(node, path: "\(path).\(key).\(name)")
            result[name] = FieldState(
                value: try Self.value(field.required("v"), path: "\(field.path).v", depth: 0), hlc: try field.hlc("hlc"),
                seq: try field.unsigned("seq")
            )
        }
        return result
    }

    func change() throws(SyncError) -> Change {
        let operation: ChangeOperation
        switch try string("op") {
        case "upsert": operation = .upsert
        case "delete": operation = .delete
        case let other: throw SyncError.malformed("\(path).op \(NameRules.quote(other)) is not upsert or delete")
        }
        let mode: ConflictMode
        switch members["mode"] == nil ? "lww" : try string("mode") {
        case "lww": mode = .lww
        case "reject": mode = .reject
        case "force": mode = .force
        case let other: throw SyncError.malformed("\(path).mode \(NameRules.quote(other)) is not lww, reject or force")
        }
        return Change(
            id: try eventID("id"), collection: try collection("collection"), record: try recordID("record"),
            operation: operation, fields: operation == .upsert && members["fields"] != nil ? try values("fields") : [:],
            hlc: try hlc("hlc"), base: try unsigned("base"), mode: mode
        )
    }

    func remoteChange() throws(SyncError) -> RemoteChange {
        let deleted = try bool("deleted")
        return RemoteChange(
            seq: try unsigned("seq"), collection: try collection("collection"), record: try recordID("record"),
            deleted: deleted, hlc: deleted ? try hlc("hlc") : nil, fields: deleted ? [:] : try fieldStates("fields"),
            reset: members["reset"] == nil ? false : try bool("reset"),
            superseded: members["superseded"] == nil ? [] : try supersededWrites("superseded")
        )
    }

    func supersededWrites(_ key: String) throws(SyncError) -> [SupersededWrite] {
        try array(key).enumerated().map { index, node throws(SyncError) in
            let write = try JSONFields(node, path: "\(path).\(key)[\(index)]")
            let names = try write.array("fields").enumerated().map { offset, name throws(SyncError) in
                guard case .string(let text) = name else {
                    throw SyncError.malformed("\(write.path).fields[\(offset)] must be a string")
                }
                return text
            }
            return SupersededWrite(
                hlc: try write.hlc("hlc"), seq: try write.unsigned("seq"), fields: names,
                deleted: write.members["deleted"] == nil ? false : try write.bool("deleted")
            )
        }
    }

    /// A field value: `{"$b": …}` is bytes; any other `$` key is refused.
    static func value(_ node: JSONNode, path: String, depth: Int) throws(SyncError) -> Value {
        guard depth <= Value.maxDepth else { throw SyncError.malformed("\(path) nests deeper than \(Value.maxDepth) levels") }
        switch node {
        case .null: return .null
        case .bool(let flag): return .bool(flag)
        case .int(let number): return .int(number)
        case .unsigned(let number): throw SyncError.malformed("\(path): \(number) does not fit in a 64-bit signed integer")
        case .double(let number): return .double(number)
        case .string(let text): return .string(text)
        case .array(let items):
            var values = [Value]()
            values.reserveCapacity(items.count)
            for (index, item) in items.enumerated() { values.append(try value(item, path: "\(path)[\(index)]", depth: depth + 1)) }
            return .array(values)
        case .object(let members):
            if members.count == 1, let encoded = members["$b"] {
                guard case .string(let text) = encoded, let data = Base64.decode(text) else {
                    throw SyncError.malformed("\(path).$b must be a base64 string")
                }
                return .bytes(data)
            }
            var values = [String: Value](minimumCapacity: members.count)
            for (key, item) in members {
                if key.hasPrefix("$") { throw SyncError.malformed("\(path) has the reserved key \(NameRules.quote(key))") }
                values[key] = try value(item, path: "\(path).\(key)", depth: depth + 1)
            }
            return .object(values)
        }
    }
}
