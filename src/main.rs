//! Command line: `serve` (the default), `check-config`, `purge`, `users`, `--version`, `--help`.

// The commands' output (check-config, reports) goes to stdout.
#![allow(clippy::print_stdout)]

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

/// jemalloc serves every allocation of the server, SQLite's included (its `malloc` replaces
/// glibc's). It costs less CPU per request than a tuned glibc, the most where many users
/// sync at once (SQLite's schema allocations on every cold open contended on glibc's arena
/// locks), for about the same peak memory (docs/performance.md §7.5).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, tuned for memory at the load bench's 10,000 users (untuned, it held
/// noticeably more than glibc): one arena; small per-thread caches, as the blocking pool
/// runs dozens of threads; freed pages go back to the OS after 250 ms
/// (docs/performance.md §7.5). `MALLOC_CONF` in the environment still overrides them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code, non_upper_case_globals)]
// SAFETY: jemalloc declares `malloc_conf` as a weak `const char *` and reads it once, when
// it initialises; this is a NUL-terminated string that lives for the whole process.
#[unsafe(no_mangle)]
static malloc_conf: &[u8; 86] =
    b"narenas:1,tcache_max:1024,lg_tcache_nslots_mul:-1,dirty_decay_ms:250,muzzy_decay_ms:0\0";

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
        Command::Users(UsersCommand::List) => run_admin(syncserver::tokenserver::list_users(
            &settings,
            offline_storage(&settings),
        )),
        Command::Users(UsersCommand::Delete { who, yes }) => {
            let confirmed = yes || confirm(&format!("Delete user {who} and all synced data?"));
            if !confirmed {
                eprintln!("syncserver: nothing deleted");
                return ExitCode::FAILURE;
            }
            run_admin(syncserver::tokenserver::delete_user(
                &settings,
                offline_storage(&settings),
                &who,
                true,
            ))
        }
    }
}

/// The command line's way into the storage files, for the tokenserver's user commands.
fn offline_storage(settings: &Settings) -> std::sync::Arc<dyn syncserver::state::UserStore> {
    std::sync::Arc::new(syncserver::storage::OfflineStorage::new(&settings.data_dir))
}

fn serve(settings: Settings) -> ExitCode {
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
