import Foundation
import Logging
import Syncline
import SynclineServer
import Testing

/// The PostgreSQL the tests use: `SYNCLINE_TEST_POSTGRES_URL` (Scripts/test.sh starts a disposable
/// cluster and exports it). Each test gets a schema of its own, so tests stay independent and
/// may run in parallel; without a reachable PostgreSQL they fail, saying why.
enum PostgresTestDatabase {
    static let variable = "SYNCLINE_TEST_POSTGRES_URL"

    /// A configuration for a new, empty schema.
    static func configuration(schema: String = freshSchema()) throws -> PostgresBackend.Configuration {
        guard let url = ProcessInfo.processInfo.environment[variable], !url.isEmpty else {
            throw SyncError(
                .transportUnavailable,
                "the PostgreSQL tests need \(variable)=postgres://USER@HOST:PORT/DB; Scripts/test.sh starts a disposable cluster and sets it"
            )
        }
        var configuration = try PostgresBackend.Configuration(url: url)
        configuration.schema = schema
        configuration.poolSize = 8
        configuration.connectTimeout = .seconds(5)
        // The whole suite on two cores: a request may wait seconds for a thread (see LiveServer.patience).
        configuration.operationTimeout = .seconds(30)
        return configuration
    }

    static func freshSchema() -> String { "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() }

    static func logger() -> Logger {
        var logger = Logger(label: "test-postgres")
        logger.logLevel = ProcessInfo.processInfo.environment["SYNCLINE_TEST_POSTGRES_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        return logger
    }

    /// Waits until `backend` (running) serves requests.
    /// - Throws: ``SyncError`` with the backend's reason when it does not within `limit`.
    static func waitUntilAvailable(_ backend: any ServerBackend, within limit: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + limit
        while let reason = await backend.outage() {
            guard ContinuousClock.now < deadline else {
                throw SyncError(.transportUnavailable, "PostgreSQL is not usable for the tests (\(variable)): \(reason)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
