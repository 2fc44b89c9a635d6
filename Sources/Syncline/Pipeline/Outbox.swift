import AsyncAlgorithms

/// Drains the durable outbox to the transport in batches (DESIGN §3): higher priorities first,
/// per-record order kept, each batch cut by count and bytes. It sends and forgets: the server's
/// answers go to the ``Reconciler`` on the inbound channel. A failed push is retried with
/// exponential backoff and jitter.
package actor Outbox {
    package struct Configuration: Sendable {
        /// Changes per batch. Default 500.
        package var maxBatchChanges = 500
        /// Encoded bytes per batch. Default 1 MiB.
        package var maxBatchBytes = 1 << 20
        /// Attempts of one batch inside one `sync()` before giving up until the next. Default 5.
        package var attempts = 1
        /// Backoff after the first failure, doubled each time, jittered, capped. Defaults 50 ms and 5 s.
        package var initialBackoff: Duration = .milliseconds(50)
        package var maxBackoff: Duration = .seconds(5)
    }

    private let local: LocalStore
    private let transport: any SyncTransport
    private let bus: EventBus
    private let configuration: Configuration
    private var random = SystemRandomNumberGenerator()

    package init(local: LocalStore, transport: any SyncTransport, bus: EventBus, configuration: Configuration) {
        self.local = local
        self.transport = transport
        self.bus = bus
        self.configuration = configuration
    }

    /// Pushes until the outbox is empty, handing each answer to the reconciler on `inbound` and
    /// going on with the next batch while it applies it (DESIGN §3: the outbox sends and forgets).
    /// Entries pushed but not yet applied are in `inFlight` and are not cut again. Pushes stay one
    /// at a time, so the server applies batches in outbox order.
    /// - Throws: the last transport error when a batch failed every attempt.
    func drain(into inbound: AsyncChannel<Inbound>, inFlight: InFlight, stats: inout SyncStats) async throws {
        let total = try await local.pending()
        var restamps = 0
        while !Task.isCancelled {
            let queued = try await local.nextBatch(
                maxChanges: configuration.maxBatchChanges, maxBytes: configuration.maxBatchBytes, skipping: inFlight.positions
            )
            if queued.isEmpty {
                // Nothing left to cut; what is in flight may still come back (a change the
                // reconciler re-queues after a merge): wait for it, then look again.
                if inFlight.isEmpty { return }
                await inFlight.waitUntilEmpty()
                continue
            }
            inFlight.insert(queued.map(\.entry.position))
            var handed: Set<UInt64> = []
            do {
                try await send(queued, into: inbound, handed: &handed, stats: &stats, total: total)
            } catch let error as SyncError where error.code == .clockSkew && restamps < Self.maxRestamps {
                // Stamped by a clock ahead of the server's: nothing of the batch was applied. The
                // device corrects its clock from the server's time and re-stamps what no one has
                // seen; the next batch carries the new stamps.
                restamps += 1
                inFlight.remove(queued.map(\.entry.position).filter { !handed.contains($0) })
                guard try await local.observeServerTime(error.serverTime, refused: queued.map(\.entry)) else { throw error }
            } catch {
                // Not sent, or sent without an answer: they stay queued for the next drain. The
                // ones handed to the reconciler leave `inFlight` when it has applied them.
                inFlight.remove(queued.map(\.entry.position).filter { !handed.contains($0) })
                throw error
            }
        }
        throw CancellationError()
    }

    /// Re-stamps for clock skew within one drain before it gives up (each is a correction, so one
    /// is the rule; more means the server's time moves under the device).
    static let maxRestamps = 3

    /// Pushes entries; when the server refuses the batch for its content (one bad change) or its
    /// size, the batch is split in halves (order kept) until the bad change stands alone, and that
    /// one goes to the reconciler as refused (it dead-letters it) while the rest flow.
    private func send(
        _ queued: [QueuedChange], into inbound: AsyncChannel<Inbound>, handed: inout Set<UInt64>, stats: inout SyncStats,
        total: (count: Int, bytes: Int)
    ) async throws {
        let batch = ChangeBatch(changes: queued.map(\.entry.change))
        let trafficBefore = transport.traffic
        let response: PushResponse
        do {
            response = try await pushWithRetry(batch, stats: &stats)
        } catch let error as SyncError where error.code.refusesBatchContent {
            if queued.count == 1 {
                handed.insert(queued[0].entry.position)
                await inbound.send(.refused(queued[0], error, total: total))
                return
            }
            let middle = queued.count / 2
            try await send(Array(queued[..<middle]), into: inbound, handed: &handed, stats: &stats, total: total)
            try await send(Array(queued[middle...]), into: inbound, handed: &handed, stats: &stats, total: total)
            return
        }
        if let before = trafficBefore, let after = transport.traffic {
            // What crossed the wire, compressed, retries included.
            stats.bytesUp += after.bytesSent - before.bytesSent
            stats.bytesDown += after.bytesReceived - before.bytesReceived
        } else {
            // The batch's binary size: header, count, and the sizes measured when it was cut.
            var count = BinaryWriter(capacity: 10)
            count.writeVarint(UInt64(queued.count))
            stats.bytesUp += 4 + count.bytes.count + queued.reduce(0) { $0 + $1.bytes }
        }
        handed.formUnion(queued.map(\.entry.position))
        await inbound.send(.answer(queued, response, total: total))
    }

    private func pushWithRetry(_ batch: ChangeBatch, stats: inout SyncStats) async throws -> PushResponse {
        var backoff = Backoff(initial: configuration.initialBackoff, maximum: configuration.maxBackoff)
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await transport.push(batch)
            } catch {
                // Cancelled by the caller (whatever the transport made of it): not a failure.
                if error is CancellationError || Task.isCancelled { throw CancellationError() }
                stats.errors += 1
                let syncError = LocalStore.syncError(error)
                // Content refusals are split and dead-lettered by the caller; a refused token is
                // the transport's to renew (it asks its token provider once): back off until the
                // next sync rather than loop on it here.
                if syncError.code.refusesBatchContent || syncError.code == .clockSkew { throw syncError }
                bus.emit(.error(SyncErrorEvent(error: syncError, key: nil, changeID: batch.changes.first?.id)))
                guard attempt < configuration.attempts, syncError.code != .unauthorized, !Task.isCancelled else { throw syncError }
                try await Task.sleep(for: backoff.next(using: &random))
            }
        }
    }
}
