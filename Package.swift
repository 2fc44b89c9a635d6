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
        .executable(name: "syncline-bench", targets: ["syncline-bench"]),
        .executable(name: "syncline-store-tour", targets: ["syncline-store-tour"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
    ],
    targets: [
        // C libraries from Debian: libsqlite3-dev, libleveldb-dev, zlib1g-dev (Scripts/bootstrap.sh installs them).
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLevelDB", providers: [.apt(["libleveldb-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        .target(name: "Syncline", dependencies: ["CZlib"], swiftSettings: swiftSettings),
        .target(name: "SynclineSQLite", dependencies: ["Syncline", "CSQLite"], swiftSettings: swiftSettings),
        .target(name: "SynclineLevelDB", dependencies: ["Syncline", "CLevelDB"], swiftSettings: swiftSettings),
        .target(
            name: "SynclineTesting",
            dependencies: ["Syncline", "SynclineSQLite", "SynclineLevelDB"],
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "syncline-bench",
            dependencies: [
                "Syncline", "SynclineSQLite", "SynclineLevelDB", "CSQLite", "CLevelDB",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
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
            dependencies: ["Syncline", "SynclineSQLite", "SynclineLevelDB", "SynclineTesting"],
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
