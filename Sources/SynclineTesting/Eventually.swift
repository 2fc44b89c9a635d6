/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
/// For "this happens without being asked" checks (a background loop syncs, a socket closes),
/// where no event marks the moment; the timeout bounds a failure, never a speed.
public func eventually(
    within timeout: Duration = .seconds(30), _ condition: () async throws -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try await Task.sleep(for: .milliseconds(10))
    }
}
