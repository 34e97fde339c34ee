//! Command line: `serve` (the default), `check-config`, `purge`, `users`, `--version`, `--help`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use syncserver::clock::SystemClock;
use syncserver::config::Settings;
use syncserver::server::Server;

#[derive(Parser)]
#[command(
    name = "syncserver",
    version,
    about = "Self-hosted Firefox Sync server"
)]
struct Cli {
    /// Configuration file (default: ./syncserver.toml when present, else built-in defaults).
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve,
    /// Validate the configuration and print the effective settings, secrets redacted.
    CheckConfig,
    /// Delete expired records and stale batches in every user's storage now, and report.
    Purge,
    /// List or delete users.
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Show every user: uid, FxA uid, created, last seen, node, storage bytes.
    List,
    /// Delete a user's records and synced data.
    Delete {
        /// The Sync uid (digits) or the FxA uid (32 hex characters).
        who: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// glibc tuning, measured with the load bench at 10,000 users; must run before any thread
/// starts.
/// - Two shared arenas: glibc gives each thread that allocates its own arena (up to 8 per
///   core), and each keeps the memory its thread freed. The server's threads (HTTP workers,
///   the blocking pool, closers) then hold ~10 MiB more at peak, at no CPU gain.
/// - Allocations of 64 KiB and more (request bodies, large responses, HTTP read buffers) get
///   their own mapping, handed back to the OS when freed, instead of fragmenting the heap:
///   the first sync of 10,000 users peaks at 58.3-58.6 MiB against 62.6-63.2 without. SQLite's
///   32 KiB WAL index and its pages stay below it (a 32 KiB threshold sent those through
///   mmap on every open and cost CPU).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    // SAFETY: mallopt only changes allocator tuning; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => return fail(&e),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            print!("{}", settings.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Command::Serve => serve(settings),
        Command::Purge => run_admin(syncserver::storage::purge_all(&settings)),
        Command::Users(UsersCommand::List) => {
            run_admin(syncserver::tokenserver::list_users(&settings))
        }
        Command::Users(UsersCommand::Delete { who, yes }) => {
            let confirmed = yes || confirm(&format!("Delete user {who} and all synced data?"));
            if !confirmed {
                eprintln!("syncserver: nothing deleted");
                return ExitCode::FAILURE;
            }
            run_admin(syncserver::tokenserver::delete_user(&settings, &who, true))
        }
    }
}

fn serve(settings: Settings) -> ExitCode {
    tune_malloc();
    if let Err(e) = syncserver::telemetry::init(&settings.log) {
        return fail(&e);
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    runtime.block_on(async {
        let server = match Server::build(settings, Arc::new(SystemClock)).await {
            Ok(server) => server,
            Err(e) => return fail(&e),
        };
        match server.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("server failed: {e}")),
        }
    })
}

/// Runs an operator command to completion and prints its report.
fn run_admin(task: impl Future<Output = Result<String, String>>) -> ExitCode {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(task) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok()
        && matches!(answer.trim(), "y" | "Y" | "yes" | "YES")
}

/// One clear line on stderr and a non-zero exit code; no panic, no backtrace.
fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("syncserver: error: {error}");
    ExitCode::FAILURE
}
