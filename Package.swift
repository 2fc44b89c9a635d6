// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
]

let package = Package(
    name: "syncline",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Syncline", targets: ["Syncline"]),
        .library(name: "SynclineSQLite", targets: ["SynclineSQLite"]),
        .library(name: "SynclineLevelDB", targets: ["SynclineLevelDB"]),
        .library(name: "SynclineNetwork", targets: ["SynclineNetwork"]),
        .library(name: "SynclineServer", targets: ["SynclineServer"]),
        .executable(name: "syncline-server", targets: ["syncline-server"]),
        .executable(name: "syncline-sim", targets: ["syncline-sim"]),
        .executable(name: "syncline-bench", targets: ["syncline-bench"]),
        .executable(name: "syncline-store-tour", targets: ["syncline-store-tour"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.0"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.3.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "4.1.0"..<"6.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
        // Tests only: a self-signed certificate generated in the TLS tests.
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.1.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
    ],
    targets: [
        // C libraries from Debian: libsqlite3-dev, libleveldb-dev, zlib1g-dev (Scripts/bootstrap.sh installs them).
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLevelDB", providers: [.apt(["libleveldb-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        .target(
            name: "Syncline",
            dependencies: [
                "CZlib", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "SynclineSQLite", dependencies: ["Syncline", "CSQLite"], swiftSettings: swiftSettings),
        .target(name: "SynclineLevelDB", dependencies: ["Syncline", "CLevelDB"], swiftSettings: swiftSettings),
        .target(
            name: "SynclineNetwork",
            dependencies: [
                "Syncline",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SynclineServer",
            dependencies: [
                "Syncline", "SynclineSQLite", "CSQLite",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // The live upgrade channel (Live/LiveUpgradeChannel.swift).
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "WSCore", package: "swift-websocket"),
                // The PostgreSQL backend (Backend/Postgres/).
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "syncline-server",
            dependencies: [
                "SynclineServer", "Syncline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SynclineTesting",
            dependencies: ["Syncline", "SynclineSQLite", "SynclineLevelDB"],
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "syncline-bench",
            dependencies: [
                "Syncline", "SynclineSQLite", "SynclineLevelDB", "SynclineServer", "SynclineNetwork", "CSQLite", "CLevelDB",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SynclineSimulation",
            dependencies: [
                "Syncline", "SynclineSQLite", "SynclineLevelDB", "SynclineNetwork", "SynclineServer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Samples/MultiDeviceSimulator/Simulation",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "syncline-sim",
            dependencies: ["SynclineSimulation", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Samples/MultiDeviceSimulator/Command",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "syncline-store-tour",
            dependencies: ["Syncline", "SynclineSQLite", "SynclineLevelDB"],
            path: "Samples/StoreTour",
            swiftSettings: swiftSettings
        ),
        // A child process for the crash-safety tests: writes in a loop until it is killed.
        .executableTarget(
            name: "syncline-crash-writer",
            dependencies: ["Syncline", "SynclineSQLite", "SynclineLevelDB", "SynclineTesting"],
            path: "Tests/CrashWriter",
            swiftSettings: swiftSettings
        ),

        .testTarget(name: "SynclineTests", dependencies: ["Syncline", "SynclineTesting"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SynclinePipelineTests",
            dependencies: [
                "Syncline", "SynclineSQLite", "SynclineLevelDB", "SynclineTesting", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SynclineServerTests",
            dependencies: [
                "Syncline", "SynclineServer", "SynclineNetwork", "SynclineSQLite", "SynclineLevelDB", "SynclineTesting",
                "syncline-server", "CSQLite",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Compiles every Swift snippet of README.md and Syncline.docc, and runs Getting Started.
        .testTarget(
            name: "SynclineDocsTests",
            dependencies: [
                "Syncline", "SynclineSQLite", "SynclineNetwork", "SynclineServer", "SynclineTesting",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SynclineSimulationTests",
            dependencies: ["Syncline", "SynclineSimulation"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SynclineStoreTests",
            dependencies: [
                "Syncline", "SynclineSQLite", "SynclineLevelDB", "SynclineTesting", "CSQLite", "syncline-crash-writer",
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
