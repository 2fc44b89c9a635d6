#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Syncline

/// An exclusive `flock` on the data directory's lock file, released when this is deinitialized
/// (or the process ends, even by kill -9).
public final class DataDirectoryLock {
    private let descriptor: Int32

    init(path: String) throws {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw SyncError(.storage, "cannot open the lock file \(path) (errno \(errno))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw SyncError(.storage, "\(path) is locked: a server (or a restore) is using this data directory; stop it first")
        }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }
}
