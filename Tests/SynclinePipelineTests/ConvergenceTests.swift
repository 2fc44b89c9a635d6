import Syncline
import SynclineTesting
import Testing

/// The randomized convergence test (DESIGN §7) against the in-memory reference server: 5 devices,
/// 2,000 random operations each run, every fault kind, offline periods and restarts; see
/// ``ConvergenceSimulation`` for what is checked. A failure names its seed; rerun it alone.
@Suite("Convergence", .timeLimit(.minutes(5)))
struct ConvergenceTests {
    static let devices = 5
    static let operations = 2_000

    static let cases: [(StoreKind, UInt64)] =
        (1...50).map { (.inMemory, UInt64($0)) } + (101...105).map { (.sqlite, UInt64($0)) } + (201...205).map { (.leveldb, UInt64($0)) }

    @Test(arguments: cases)
    func devicesConverge(_ kind: StoreKind, seed: UInt64) async throws {
        let time = SimulatedTime()
        // The server's clock is the simulation's too: device clocks are within ±2 s of it.
        let server = InMemorySyncServer(configuration: .init(clock: { time.now }))
        let simulation = try await ConvergenceSimulation(
            server: InMemorySimulationServer(server: server), time: time, stores: [kind], devices: Self.devices, seed: seed,
            label: "\(kind)"
        )
        try await simulation.run(operations: Self.operations)
        var problems = try await simulation.quiesce()
        problems += try await simulation.verify()
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }
}
