/// A typed view of one collection: any `Codable & Identifiable & Sendable` model, bridged to
/// field values losslessly (``ValueEncoder``). The model's id becomes the record id
/// (`String(describing:)`), and when a record's fields have no `id` (a record revived by a
/// single field after a delete, or written untyped) the record id fills it.
///
/// Fields that other devices may leave out are best modelled as optionals (`var note: String?`)
/// or given a default in `init(from:)`: a record that lacks a required field cannot be decoded.
/// `all()` and `observe()` skip such a record and report it once, with its key and the decoding
/// error, as an `.error` event; `get(id:)` throws the decoding error for it.
public struct SyncCollection<Model: Codable & Identifiable & Sendable>: Sendable {
    public let client: SyncClient
    public let name: CollectionName
    public let policy: ConflictPolicy
    public let defaultPriority: Priority

    private func key(_ id: Model.ID) throws(SyncError) -> RecordKey {
        RecordKey(collection: name, id: try RecordID(String(describing: id)))
    }

    /// Writes the whole model; only fields whose value changed are sent, and fields the model
    /// no longer has are set to null.
    /// - Throws: ``SyncError`` when the model does not encode to an object, a field name or the id
    ///   is invalid, or a value is too large; nothing is written then.
    @discardableResult
    public func upsert(_ model: Model, priority: Priority? = nil) async throws -> Change? {
        let fields = try ValueEncoder().encodeFields(model)
        return try await client.upsert(try key(model.id), fields: fields, replacing: true, priority: priority ?? defaultPriority)
    }

    /// Reads the model, lets `mutate` change it, and sends only the fields that changed.
    /// - Throws: ``SyncError`` `.notFound` when there is no such record.
    @discardableResult
    public func update(id: Model.ID, priority: Priority? = nil, _ mutate: (inout Model) throws -> Void) async throws -> Change? {
        let key = try key(id)
        guard let current = try await client.fields(of: key) else {
            throw SyncError(.notFound, "no record \(key) to update")
        }
        var model = try ValueDecoder().decode(Model.self, fromFields: current)
        try mutate(&model)
        let updated = try ValueEncoder().encodeFields(model)
        var changed = updated.filter { current[$0.key] != $0.value }
        for name in current.keys where updated[name] == nil && current[name] != .null { changed[name] = .null }
        if changed.isEmpty { return nil }
        return try await client.upsert(key, fields: changed, priority: priority ?? defaultPriority)
    }

    @discardableResult
    public func delete(id: Model.ID, priority: Priority? = nil) async throws -> Change? {
        try await client.delete(try key(id), priority: priority ?? defaultPriority)
    }

    /// The model, or nil when there is no such record.
    /// - Throws: ``SyncError`` `.invalidValue` when the record's fields do not decode as `Model`.
    public func get(id: Model.ID) async throws -> Model? {
        let key = try key(id)
        guard let fields = try await client.fields(of: key) else { return nil }
        return try decode(fields, id: key.id)
    }

    /// Every visible record that decodes and matches `predicate`, in id order. A record that does
    /// not decode is skipped and reported once on the event bus (`.error` with its key).
    /// - Throws: the store's error when the records cannot be read.
    public func all(where predicate: @Sendable (Model) -> Bool = { _ in true }) async throws -> [Model] {
        let records = try await client.visibleRecords(in: name)
        var models: [Model] = []
        for id in records.keys.sorted() {
            let model: Model
            do {
                model = try decode(records[id]!, id: id)
            } catch {
                client.reportUndecodable(RecordKey(collection: name, id: id), as: "\(Model.self)", error)
                continue
            }
            if predicate(model) { models.append(model) }
        }
        return models
    }

    /// The fields as a model, the record id standing in for a missing `id`.
    func decode(_ fields: [String: Value], id: RecordID) throws -> Model {
        var fields = fields
        if fields["id"] == nil { fields["id"] = .string(id.rawValue) }
        return try ValueDecoder().decode(Model.self, fromFields: fields)
    }

    /// Snapshots of the collection: one now, then one after every committed change to it, local
    /// or remote. The stream keeps the newest snapshot when the reader is slow.
    public func observe() -> AsyncStream<[Model]> { observe(where: { _ in true }) }

    /// Snapshots of the models matching `predicate`, in id order: one now, then one after every
    /// committed change to the collection, local or remote.
    ///
    /// After the first, a snapshot is the previous one with the changed records read again and
    /// put in place, so its cost follows the change, not the collection's size. Changes committed
    /// while the reader is busy are gathered into the next snapshot (the stream keeps the newest).
    /// A record that does not decode is left out and reported once (`.error` with its key); when a
    /// snapshot cannot be read at all, the error is reported and the next change reads the whole
    /// collection again.
    public func observe(where predicate: @escaping @Sendable (Model) -> Bool) -> AsyncStream<[Model]> {
        let collection = self
        let client = self.client
        return AsyncStream(bufferingPolicy: .bufferingNewest(1)) { continuation in
            let changed = ChangedRecords(name)
            // Subscribed before the first read: a change committed during it is applied after.
            let observer = client.observeEvents { changed.note($0) }
            let task = Task {
                var query = LiveQuery(collection, where: predicate)
                var loaded = false
                do {
                    try await query.load()
                    loaded = true
                    continuation.yield(query.models)
                } catch {
                    client.report(error)
                }
                for await _ in changed.signals {
                    let ids = changed.take()
                    guard !ids.isEmpty || !loaded else { continue }
                    do {
                        if loaded { try await query.apply(ids) } else { try await query.load() }
                        loaded = true
                        continuation.yield(query.models)
                    } catch {
                        loaded = false
                        client.report(error)
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in
                client.removeEventObserver(observer)
                changed.finish()
                task.cancel()
            }
        }
    }
}
