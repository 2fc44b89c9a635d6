/// The error every Syncline API throws.
///
/// `code` says what kind of failure it is; `message` says what exactly went wrong and names the
/// offending value. Store errors keep the native error code of the C library (`SQLITE_BUSY`,
/// a LevelDB status string) in `message` and `nativeCode`.
public struct SyncError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A kind of failure. Compare with the static members: `error.code == .invalidRecordID`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidNamespace = "invalid_namespace"
            case invalidCollection = "invalid_collection"
            case invalidRecordID = "invalid_record_id"
            case invalidFieldName = "invalid_field_name"
            case invalidValue = "invalid_value"
            case fieldTooLarge = "field_too_large"
            case recordTooLarge = "record_too_large"
            case malformedInput = "malformed_input"
            case unsupportedVersion = "unsupported_version"
            case decompressionLimit = "decompression_limit"
            case compressionFailed = "compression_failed"
            case notASynclineStore = "not_a_syncline_store"
            case newerSchema = "newer_schema"
            case storage = "storage"
            case storeClosed = "store_closed"
            case clock = "clock"
            case batchTooLarge = "batch_too_large"
            case invalidCursor = "invalid_cursor"
            case resyncRequired = "resync_required"
            case transportUnavailable = "transport_unavailable"
            case unauthorized = "unauthorized"
            case invalidPage = "invalid_page"
            case notFound = "not_found"
            case clientStopped = "client_stopped"
            case forbidden = "forbidden"
            case rateLimited = "rate_limited"
            case clockSkew = "clock_skew"
            case unsupportedMediaType = "unsupported_media_type"
            case invalidParameter = "invalid_parameter"
            case upgradeRequired = "upgrade_required"
            case methodNotAllowed = "method_not_allowed"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A namespace name outside `[A-Za-z0-9._-]{1,64}`.
        public static let invalidNamespace = Code(.invalidNamespace)
        /// A collection name outside `[A-Za-z0-9._-]{1,64}`.
        public static let invalidCollection = Code(.invalidCollection)
        /// A record id that is empty or longer than 256 bytes of UTF-8.
        public static let invalidRecordID = Code(.invalidRecordID)
        /// A field name that is empty, too long, or starts with the reserved `$`.
        public static let invalidFieldName = Code(.invalidFieldName)
        /// A value that cannot be represented (a non-finite double in JSON, nesting too deep, ...).
        public static let invalidValue = Code(.invalidValue)
        /// One field's encoded value is larger than the limit.
        public static let fieldTooLarge = Code(.fieldTooLarge)
        /// A whole record or change is larger than the limit.
        public static let recordTooLarge = Code(.recordTooLarge)
        /// Bytes that do not decode: truncated, wrong tag, bad UTF-8, lengths beyond the input.
        public static let malformedInput = Code(.malformedInput)
        /// Encoded data of a format version this build does not read.
        public static let unsupportedVersion = Code(.unsupportedVersion)
        /// Inflating would exceed the configured output size or ratio (a zip bomb guard).
        public static let decompressionLimit = Code(.decompressionLimit)
        /// zlib reported an error while compressing.
        public static let compressionFailed = Code(.compressionFailed)
        /// The file or directory exists but is not a Syncline store; it was left untouched.
        public static let notASynclineStore = Code(.notASynclineStore)
        /// The store was written by a newer schema version; it was left untouched.
        public static let newerSchema = Code(.newerSchema)
        /// The storage engine failed (I/O error, disk full, corruption); see `nativeCode`.
        public static let storage = Code(.storage)
        /// The store was closed.
        public static let storeClosed = Code(.storeClosed)
        /// A clock value is out of range (an HLC whose counter or time overflowed).
        public static let clock = Code(.clock)
        /// A push batch with more changes than the server accepts.
        public static let batchTooLarge = Code(.batchTooLarge)
        /// A pull cursor beyond the namespace's head.
        public static let invalidCursor = Code(.invalidCursor)
        /// The pull cursor is older than the tombstone horizon: the device must pull again from 0.
        public static let resyncRequired = Code(.resyncRequired)
        /// The server could not be reached, or its answer was lost: retried with backoff.
        public static let transportUnavailable = Code(.transportUnavailable)
        /// The token was refused.
        public static let unauthorized = Code(.unauthorized)
        /// A pull page that cannot be applied (seq going backwards, entries before the cursor).
        public static let invalidPage = Code(.invalidPage)
        /// No such record or conflict.
        public static let notFound = Code(.notFound)
        /// The client was stopped.
        public static let clientStopped = Code(.clientStopped)

        /// The token may not use this namespace (HTTP 403).
        public static let forbidden = Code(.forbidden)
        /// Too many requests for this token; retry after the time the server names (HTTP 429).
        public static let rateLimited = Code(.rateLimited)
        /// A change's HLC is too far ahead of the server's clock; re-stamp and push again.
        public static let clockSkew = Code(.clockSkew)
        /// A request parameter that is missing, not a number, or out of range (HTTP 400).
        public static let invalidParameter = Code(.invalidParameter)
        /// A plain request to a WebSocket route (HTTP 426).
        public static let upgradeRequired = Code(.upgradeRequired)
        /// A body in a format the server does not speak (HTTP 415).
        public static let unsupportedMediaType = Code(.unsupportedMediaType)
        /// A method the route does not serve; the answer's `Allow` lists those it does (HTTP 405).
        public static let methodNotAllowed = Code(.methodNotAllowed)

        public var description: String { base.rawValue }

        /// Reads a code back from its description (for codes stored or sent as text).
        public init?(description: String) {
            guard let base = Base(rawValue: description) else { return nil }
            self.base = base
        }

        /// Whether retrying the same request cannot help: the server refused this content.
        public var isPermanentForContent: Bool {
            switch base {
            case .invalidNamespace, .invalidCollection, .invalidRecordID, .invalidFieldName, .invalidValue,
                .fieldTooLarge, .recordTooLarge, .malformedInput:
                return true
            default:
                return false
            }
        }

        /// Whether the server refused a pushed batch for what it holds: its content, or its size
        /// as sent or inflated (400s and 413s). The outbox then splits the batch until the change
        /// the server will not take stands alone, and dead-letters that one.
        public var refusesBatchContent: Bool {
            isPermanentForContent || base == .batchTooLarge || base == .decompressionLimit
        }
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong, naming the offending value.
    public var message: String
    /// The C library's own error code, for storage errors.
    public var nativeCode: Int32?
    /// The limit that was passed, for limit errors (sent as `"limit"` in protocol errors).
    public var limit: Int?
    /// Which rule refused a request, for authentication errors (`"token_expired"`, `"bad_signature"`;
    /// sent as `"reason"` in protocol errors).
    public var reason: String?
    /// The server's clock (Unix ms), for `clockSkew` refusals (sent as `"serverTime"`): the
    /// device corrects its clock and re-stamps.
    public var serverTime: UInt64?

    public init(
        _ code: Code, _ message: String, nativeCode: Int32? = nil, limit: Int? = nil, reason: String? = nil,
        serverTime: UInt64? = nil
    ) {
        self.code = code
        self.message = message
        self.nativeCode = nativeCode
        self.limit = limit
        self.reason = reason
        self.serverTime = serverTime
    }

    public var description: String {
        if let nativeCode { return "\(code) (\(nativeCode)): \(message)" }
        return "\(code): \(message)"
    }
}

extension SyncError {
    static func malformed(_ message: String) -> SyncError { SyncError(.malformedInput, message) }
}
