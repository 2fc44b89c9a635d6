import CLevelDB
import Syncline

/// One open LevelDB database and its options. Not thread-safe: one owner uses it at a time.
final class LevelDBDatabase {
    let handle: OpaquePointer
    private let options: OpaquePointer
    private let filterPolicy: OpaquePointer
    private let cache: OpaquePointer
    let writeOptions: OpaquePointer
    let readOptions: OpaquePointer
    let path: String

    init(path: String, createIfMissing: Bool, sync: Bool) throws(SyncError) {
        self.path = path
        options = leveldb_options_create()
        filterPolicy = leveldb_filterpolicy_create_bloom(10)
        cache = leveldb_cache_create_lru(8 * 1024 * 1024)
        leveldb_options_set_create_if_missing(options, createIfMissing ? 1 : 0)
        leveldb_options_set_filter_policy(options, filterPolicy)
        leveldb_options_set_cache(options, cache)
        leveldb_options_set_compression(options, Int32(leveldb_snappy_compression))
        leveldb_options_set_write_buffer_size(options, 8 * 1024 * 1024)
        writeOptions = leveldb_writeoptions_create()
        leveldb_writeoptions_set_sync(writeOptions, sync ? 1 : 0)
        readOptions = leveldb_readoptions_create()
        var error: UnsafeMutablePointer<CChar>?
        let handle = leveldb_open(options, path, &error)
        if let message = Self.take(error) {
            if let handle { leveldb_close(handle) }
            Self.destroy(options, filterPolicy, cache, writeOptions, readOptions)
            throw SyncError(.storage, "cannot open LevelDB database at \(path): \(message)")
        }
        guard let handle else {
            Self.destroy(options, filterPolicy, cache, writeOptions, readOptions)
            throw SyncError(.storage, "cannot open LevelDB database at \(path)")
        }
        self.handle = handle
    }

    deinit {
        leveldb_close(handle)
        Self.destroy(options, filterPolicy, cache, writeOptions, readOptions)
    }

    private static func destroy(
        _ options: OpaquePointer, _ filterPolicy: OpaquePointer, _ cache: OpaquePointer,
        _ writeOptions: OpaquePointer, _ readOptions: OpaquePointer
    ) {
        leveldb_options_destroy(options)
        leveldb_filterpolicy_destroy(filterPolicy)
        leveldb_cache_destroy(cache)
        leveldb_writeoptions_destroy(writeOptions)
        leveldb_readoptions_destroy(readOptions)
    }

    /// Turns a LevelDB error string into Swift and frees it.
    static func take(_ error: UnsafeMutablePointer<CChar>?) -> String? {
        guard let error else { return nil }
        defer { leveldb_free(error) }
        return String(cString: error)
    }

    func get(_ key: [UInt8]) throws(SyncError) -> [UInt8]? {
        var length = 0
        var error: UnsafeMutablePointer<CChar>?
        let value = key.withUnsafeBytes { buffer in
            leveldb_get(
                handle, readOptions, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count,
                &length, &error
            )
        }
        if let message = Self.take(error) { throw SyncError(.storage, "LevelDB read failed in \(path): \(message)") }
        guard let value else { return nil }
        defer { leveldb_free(value) }
        return Array(UnsafeRawBufferPointer(start: value, count: length))
    }

    func write(_ batch: LevelDBWriteBatch) throws(SyncError) {
        var error: UnsafeMutablePointer<CChar>?
        leveldb_write(handle, writeOptions, batch.handle, &error)
        if let message = Self.take(error) { throw SyncError(.storage, "LevelDB write failed in \(path): \(message)") }
    }

    /// Calls `body` with each key and value whose key starts with `prefix`, in key order, until it
    /// returns `false`.
    func scan(prefix: [UInt8], _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        let iterator = leveldb_create_iterator(handle, readOptions)!
        defer { leveldb_iter_destroy(iterator) }
        prefix.withUnsafeBytes { buffer in
            leveldb_iter_seek(iterator, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
        }
        while leveldb_iter_valid(iterator) != 0 {
            var keyLength = 0
            let keyPointer = leveldb_iter_key(iterator, &keyLength)
            let key = Array(UnsafeRawBufferPointer(start: keyPointer, count: keyLength))
            guard key.starts(with: prefix) else { break }
            var valueLength = 0
            let valuePointer = leveldb_iter_value(iterator, &valueLength)
            let value = Array(UnsafeRawBufferPointer(start: valuePointer, count: valueLength))
            guard try body(key, value) else { break }
            leveldb_iter_next(iterator)
        }
        var error: UnsafeMutablePointer<CChar>?
        leveldb_iter_get_error(iterator, &error)
        if let message = Self.take(error) { throw SyncError(.storage, "LevelDB scan failed in \(path): \(message)") }
    }
}

/// A LevelDB write batch: applied atomically by ``LevelDBDatabase/write(_:)``.
final class LevelDBWriteBatch {
    let handle: OpaquePointer

    init() { handle = leveldb_writebatch_create() }
    deinit { leveldb_writebatch_destroy(handle) }

    func put(_ key: [UInt8], _ value: [UInt8]) {
        key.withUnsafeBytes { keyBuffer in
            value.withUnsafeBytes { valueBuffer in
                leveldb_writebatch_put(
                    handle, keyBuffer.baseAddress?.assumingMemoryBound(to: CChar.self), keyBuffer.count,
                    valueBuffer.baseAddress?.assumingMemoryBound(to: CChar.self), valueBuffer.count
                )
            }
        }
    }

    func delete(_ key: [UInt8]) {
        key.withUnsafeBytes { buffer in
            leveldb_writebatch_delete(handle, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
        }
    }

    func clear() { leveldb_writebatch_clear(handle) }

    /// Calls `body` with every put (`value` non-nil) and delete in the batch, in order.
    func forEach(_ body: ([UInt8], [UInt8]?) -> Void) {
        withoutActuallyEscaping(body) { body in
            let box = Unmanaged.passRetained(BatchVisitor(body))
            defer { box.release() }
            leveldb_writebatch_iterate(
                handle, box.toOpaque(),
                { context, key, keyLength, value, valueLength in
                    let visitor = Unmanaged<BatchVisitor>.fromOpaque(context!).takeUnretainedValue()
                    visitor.body(
                        Array(UnsafeRawBufferPointer(start: key, count: keyLength)),
                        Array(UnsafeRawBufferPointer(start: value, count: valueLength))
                    )
                },
                { context, key, keyLength in
                    let visitor = Unmanaged<BatchVisitor>.fromOpaque(context!).takeUnretainedValue()
                    visitor.body(Array(UnsafeRawBufferPointer(start: key, count: keyLength)), nil)
                }
            )
        }
    }
}

/// Carries a Swift closure through LevelDB's C callbacks (which cannot capture context).
private final class BatchVisitor {
    let body: ([UInt8], [UInt8]?) -> Void
    init(_ body: @escaping ([UInt8], [UInt8]?) -> Void) { self.body = body }
}
