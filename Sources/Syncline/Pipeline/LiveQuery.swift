/// One `observe()` subscriber's snapshot of a collection, kept up to date in place (DESIGN §3,
/// records changed): the first snapshot is read whole; after that only the records a commit
/// changed are read again and applied to it, so an update costs what it changed, not the size of
/// the collection. The snapshot is the models that decode and match the predicate, in id order.
struct LiveQuery<Model: Codable & Identifiable & Sendable> {
    let collection: SyncCollection<Model>
    let predicate: @Sendable (Model) -> Bool
    /// The ids of `models`, index for index, ascending.
    private var ids: [RecordID] = []
    private(set) var models: [Model] = []

    init(_ collection: SyncCollection<Model>, where predicate: @escaping @Sendable (Model) -> Bool) {
        self.collection = collection
        self.predicate = predicate
    }

    /// Reads the whole collection (the first snapshot, or a new start after a failed update).
    mutating func load() async throws {
        let matching = try await collection.all(where: predicate)
        models = matching
        ids = try matching.map { try RecordID(String(describing: $0.id)) }
    }

    /// Reads the records `changed` names and puts each in its place, out of the snapshot when it
    /// is deleted, no longer decodes (reported once, as `all()` does) or no longer matches.
    mutating func apply(_ changed: Set<RecordID>) async throws {
        let name = collection.name
        let keys = changed.map { RecordKey(collection: name, id: $0) }
        let current = try await collection.client.fields(of: keys)
        for id in changed.sorted() {
            var model: Model?
            if let fields = current[RecordKey(collection: name, id: id)] {
                do {
                    model = try collection.decode(fields, id: id)
                } catch {
                    collection.client.reportUndecodable(RecordKey(collection: name, id: id), as: "\(Model.self)", error)
                }
            }
            let index = ids.partitioningIndex { $0 >= id }
            let present = index < ids.count && ids[index] == id
            switch (model.map(predicate) == true ? model : nil, present) {
            case (let model?, true):
                models[index] = model
            case (let model?, false):
                ids.insert(id, at: index)
                models.insert(model, at: index)
            case (nil, true):
                ids.remove(at: index)
                models.remove(at: index)
            case (nil, false):
                break
            }
        }
    }
}

extension RandomAccessCollection where Index == Int {
    /// The first index whose element satisfies `predicate`, for a collection partitioned by it.
    func partitioningIndex(where predicate: (Element) -> Bool) -> Int {
        var low = startIndex
        var high = endIndex
        while low < high {
            let middle = (low + high) / 2
            if predicate(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
