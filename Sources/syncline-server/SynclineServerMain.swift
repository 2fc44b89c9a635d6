import ArgumentParser

/// `syncline-server`: `serve` (the default, so `syncline-server --port … --data …` serves), and the
/// operator's `backup`, `restore` and `restore-fence` (README "Backup and restore").
///
/// ```
/// syncline-server --port 8080 --data ./syncline-data --tokens tokens.json
/// syncline-server backup --data ./syncline-data --to /backups/syncline-2026-12-07.sqlite
/// syncline-server restore --from /backups/syncline-2026-12-07.sqlite --data ./syncline-data
/// ```
@main
struct SynclineServerMain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "syncline-server",
        abstract: "The Syncline sync server (protocol v1: REST + live WebSocket) with an embedded SQLite backend.",
        subcommands: [SynclineServerCommand.self, BackupCommand.self, RestoreCommand.self, RestoreFenceCommand.self],
        defaultSubcommand: SynclineServerCommand.self
    )
}
