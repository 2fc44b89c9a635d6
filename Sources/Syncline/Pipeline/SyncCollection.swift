/// A typed view of one collection: any `Codable & Identifiable & Sendable` model, bridged to
/// field values losslessly (``ValueEncoder``). The model's id becomes the record id
/// (`String(describing:)`).
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

    public func get(id: Model.ID) async throws -> Model? {
        guard let fields = try await client.fields(of: try key(id)) else { return nil }
        return try ValueDecoder().decode(Model.self, fromFields: fields)
    }

    /// Every visible record that decodes and matches `predicate`, in id order.
    public func all(where predicate: @Sendable (Model) -> Bool = { _ in true }) async throws -> [Model] {
        let records = try await client.visibleRecords(in: name)
        return try records.keys.sorted().compactMap { id in
            let model = try ValueDecoder().decode(Model.self, fromFields: records[id]!)
            return predicate(model) ? model : nil
        }
    }

    /// Snapshots of the collection: one now, then one after every committed change to it, local
    /// or remote. The stream keeps the newest snapshot when the reader is slow.
    public func observe() -> AsyncStream<[Model]> {
        let events = client.events
        let collection = self
        let name = self.name
        return AsyncStream(bufferingPolicy: .bufferingNewest(1)) { continuation in
            let task = Task {
                // A snapshot that cannot be read or decoded is skipped (the stream cannot throw);
                // the next change brings a new one.
                if let snapshot = try? await collection.all() { continuation.yield(snapshot) }
                for await event in events {
                    guard case .recordsChanged(let keys, _) = event, keys.contains(where: { $0.collection == name }) else { continue }
                    if let snapshot = try? await collection.all() { continuation.yield(snapshot) }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
