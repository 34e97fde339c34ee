//! syncserver: a self-hosted Firefox Sync server — the tokenserver and the Sync 1.5 storage
//! service in one process, with one SQLite file per user.
//!
//! Layout: `config` (settings), `secret` (master secret), `clock` (the injectable clock),
//! `durable` (folders and names that survive power loss), `telemetry` (logging), `auth`
//! (tokens, Hawk, FxA JWTs), `state` (the process-wide state, the request's origin and the
//! tokenserver's interface to storage, below everything that uses them), `server` (HTTP wiring), `health`
//! (heartbeat and landing page), `storage` (Sync 1.5), `tokenserver` (FxA OAuth → Hawk
//! credentials).

// Audited exceptions: the two SQLite settings rusqlite has no safe API for, in
// `storage::db` (`configure_sqlite`, `keep_wal_file`).
#![deny(unsafe_code)]

pub mod auth;
pub mod clock;
pub mod config;
pub mod durable;
pub mod health;
pub mod secret;
pub mod server;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod tokenserver;
