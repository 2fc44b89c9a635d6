import Synchronization
import Syncline
import SynclineTesting
import Testing

/// What an app developer hit in the first hour (issue 11), one regression test per item.
@Suite("First-hour regressions", .timeLimit(.minutes(1)))
struct FirstHourTests {
    /// Item 1: an app going to the background stops the client and starts it again on return;
    /// the restarted loop must still sync each new write (before the fix, its trigger stream was
    /// finished for good and the next write never left the device).
    @Test(arguments: [StoreKind.inMemory, .sqlite])
    func backgroundSyncSurvivesStopThenStart(_ kind: StoreKind) async throws {
        let harness = Harness()
        let (client, _, _) = try harness.device(kind)
        client.start()
        _ = try await client.upsert(Sample.key("before"), fields: ["n": 1])
        #expect(try await eventually { try await harness.server.head(namespace: harness.namespace) == 1 })
        await client.stop()
        client.start()
        _ = try await client.upsert(Sample.key("after"), fields: ["n": 2])
        #expect(
            try await eventually { try await harness.server.head(namespace: harness.namespace) == 2 },
            "the write after stop() and start() reached the server without sync() (syncInterval is 30 s)"
        )
        #expect(try await client.pendingCount() == 0)
        await client.stop()
    }

    /// Item 6: resolving a kept conflict queues a change; the background loop must push it at
    /// once, not at the next `syncInterval` tick (30 s here).
    @Test func resolvingAConflictWakesTheBackgroundLoop() async throws {
        let harness = Harness()
        let (alice, _, _) = try harness.device()
        let (bob, _, _) = try harness.device()
        let key = Sample.key("t1")
        alice.setPolicy(.manual, for: key.collection)
        _ = try await bob.upsert(key, fields: ["title": "bob"])
        try await bob.sync()
        _ = try await alice.upsert(key, fields: ["title": "alice"])
        try await alice.sync()
        let conflict = try #require(try await alice.conflicts().first, "a concurrent edit under .manual is kept")
        let head = try await harness.server.head(namespace: harness.namespace)

        let idle = Mutex(false)
        alice.observeEvents { event in
            if case .syncFinished = event { idle.withLock { $0 = true } }
        }
        alice.start()
        #expect(try await eventually { idle.withLock { $0 } }, "the loop's first sync ran")
        try await alice.resolveConflict(conflict.id, with: ["title": "both"])
        #expect(
            try await eventually { try await harness.server.head(namespace: harness.namespace) > head },
            "the resolution reached the server without sync()"
        )
        try await bob.sync()
        #expect(try await bob.fields(of: key) == ["title": "both"])
        await alice.stop()
    }

    /// Item 7: cancelling `sync()` is neither an error event nor a sign of being offline; it
    /// throws `CancellationError`. Tried: a push held by the transport for 60 s, cancelled.
    @Test func cancellingSyncIsNotAnErrorNorOffline() async throws {
        let harness = Harness()
        let (client, transport, _) = try harness.device(faults: TransportFaults(delay: 1, delayDuration: .seconds(60)))
        _ = try await client.upsert(Sample.key("t1"), fields: ["n": 1])
        let events = Mutex<[SyncEvent]>([])
        let started = AsyncStream<Void>.makeStream()
        client.observeEvents { event in
            events.withLock { $0.append(event) }
            if case .syncStarted = event { started.continuation.yield() }
        }
        let sync = Task { try await client.sync() }
        for await _ in started.stream { break }
        sync.cancel()
        let result = await sync.result
        #expect(throws: CancellationError.self) { try result.get() }
        let seen = events.withLock { $0 }
        #expect(!seen.contains { if case .error = $0 { true } else { false } }, "no error event: \(seen)")
        #expect(!seen.contains { if case .connectivity(.offline) = $0 { true } else { false } }, "not offline: \(seen)")
        #expect(await client.status.connectivity != .offline)
        #expect(await client.status.lastError == nil)
        // Nothing was lost: the change is still queued and goes through once the delay is gone.
        transport.setFaults(.none)
        try await client.sync()
        #expect(try await harness.server.head(namespace: harness.namespace) == 1)
    }
}
