//! Sync 1.5 storage service (PROTOCOL.md §3–4) on one SQLite file per user.
//!
//! Layout: `handlers` (routes and HTTP shapes), `auth` (Hawk + nonce cache), `query`
//! (parameters and preconditions), `bso` (body parsing and validation), `ops` (one
//! transaction per request), `db` (opening files, migrations, timestamps), `pool` (LRU of
//! open files and per-user locks), `fd_limit` (the open-file limit), `purge` (expired data
//! clean-up), `timestamp`, `error`.
//!
//! All process-wide state lives in [`Storage`], built once before the HTTP workers start.

mod auth;
mod bso;
pub mod config;
mod db;
mod error;
mod fd_limit;
mod handlers;
mod info_cache;
mod ops;
mod pool;
mod purge;
mod query;
mod timestamp;
mod user_store;
mod vfs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use actix_web::web;

use crate::config::Settings;
use crate::state::AppState;

pub use error::StorageError;
pub use timestamp::{format_ts, parse_ts};
pub use user_store::OfflineStorage;

use auth::NonceCache;
use db::UserDb;
use info_cache::{CollectionsInfo, InfoCache};
use pool::{Pool, lock};
use query::Precondition;

/// Concurrent SQLite jobs: more only adds threads and memory, not throughput (load bench,
/// 10,000 users: 8 jobs gave 397 µs per request and 64-66 MiB, 16 jobs 410-426 µs and
/// 67 MiB).
pub const MAX_DB_JOBS: usize = 8;

/// Replay-cache capacity (DECISIONS.md): enough for any realistic request rate in the window.
const NONCE_CAPACITY: usize = 1_000_000;

/// Whether a request may create the user's file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// Per-process storage state: the per-user database pool, locks and nonce cache.
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    state: web::Data<AppState>,
    pool: Pool,
    nonces: NonceCache,
    /// Rendered `info/collections` answers of users whose data did not change since.
    info: InfoCache,
    /// Bounds the blocking threads doing SQLite work at once.
    jobs: tokio::sync::Semaphore,
    /// Timestamp floors of users whose file was deleted during this process's life, so
    /// their next write still gets a later timestamp than any before.
    floors: Mutex<HashMap<u64, i64>>,
    purge_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Storage {
    /// Builds the storage state once per process and starts its background tasks.
    pub fn open(state: web::Data<AppState>) -> Result<web::Data<Storage>, String> {
        let dir = state.settings.data_dir.join("storage");
        crate::durable::create_dir_all(&dir)
            .map_err(|e| format!("cannot create storage directory {}: {e}", dir.display()))?;
        db::configure_sqlite();
        fd_limit::raise(state.settings.storage.max_open_databases);
        let inner = Arc::new(Inner {
            pool: Pool::new(state.settings.storage.max_open_databases),
            nonces: NonceCache::new(NONCE_CAPACITY),
            info: InfoCache::new(),
            jobs: tokio::sync::Semaphore::new(MAX_DB_JOBS),
            floors: Mutex::new(HashMap::new()),
            purge_task: Mutex::new(None),
            state,
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let task = rt.spawn(purge::background(Arc::downgrade(&inner)));
            *lock(&inner.purge_task) = Some(task);
        }
        Ok(web::Data::new(Storage { inner }))
    }

    /// The one way to delete a user's storage (DELETE /1.5/{uid} through
    /// [`Storage::delete_user_if`], purge, `users delete`, the tokenserver's replaced-user
    /// clean-up): takes the user's lock, drops the pooled connection, then unlinks the
    /// `.db`, `-wal` and `-shm` files.
    pub async fn delete_user(&self, uid: u64) -> Result<(), String> {
        self.delete_user_if(uid, Precondition::None)
            .await
            .map_err(|e| format!("delete of user {uid} failed: {e}"))
    }

    /// [`Storage::delete_user`] for `DELETE /1.5/{uid}`, whose `X-If-Unmodified-Since` is
    /// checked against the storage last-modified, as for `DELETE /storage`.
    async fn delete_user_if(&self, uid: u64, pre: Precondition) -> Result<(), StorageError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.delete_user_blocking(uid, pre))
            .await
            .map_err(|e| {
                StorageError::Internal(format!("delete of user {uid} did not finish: {e}"))
            })?
    }

    /// Closes every open user database; called once after the server stopped.
    pub async fn close(&self) {
        if let Some(task) = lock(&self.inner.purge_task).take() {
            task.abort();
        }
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || inner.pool.clear()).await;
    }

    /// Runs a write `f` on the user's database on the blocking pool, holding the user's
    /// lock; creates the file when the user has none yet.
    async fn with_user<R, F>(&self, uid: u64, f: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce(&mut UserDb) -> Result<R, StorageError> + Send + 'static,
    {
        let inner = self.inner.clone();
        self.blocking(move || inner.with_user_blocking(uid, f))
            .await
    }

    /// Runs a read `f` like [`Storage::with_user`], but a user without a file gets `None`
    /// (and still has none afterwards): reads must not create files.
    async fn read_user<R, F>(&self, uid: u64, f: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce(Option<&mut UserDb>) -> Result<R, StorageError> + Send + 'static,
    {
        let inner = self.inner.clone();
        self.blocking(move || inner.run_blocking(uid, Access::Read, f))
            .await
    }

    /// `info/collections`: from the cache when the user did not write since it was filled
    /// (no blocking thread, no lock, no file), else read and cached under the user's lock.
    async fn info_collections(&self, uid: u64) -> Result<Arc<CollectionsInfo>, StorageError> {
        if let Some(hit) = self.inner.info.get(uid) {
            return Ok(hit);
        }
        let inner = self.inner.clone();
        self.read_user(uid, move |db| {
            let (rows, modified) = ops::info_collections(db)?;
            let info = Arc::new(CollectionsInfo::render(&rows, modified));
            inner.info.insert(uid, info.clone());
            Ok(info)
        })
        .await
    }

    /// Runs `job` on the blocking pool within the bound on concurrent SQLite jobs.
    async fn blocking<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<R, StorageError> + Send + 'static,
    ) -> Result<R, StorageError> {
        let _permit = self
            .inner
            .jobs
            .acquire()
            .await
            .map_err(|e| StorageError::Internal(format!("storage is closed: {e}")))?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| StorageError::Internal(format!("storage task failed: {e}")))?
    }

    fn settings(&self) -> &crate::storage::config::StorageSettings {
        &self.inner.state.settings.storage
    }

    fn now_ms(&self) -> i64 {
        self.inner.state.clock.now_ms()
    }
}

impl Inner {
    fn path(&self, uid: u64) -> PathBuf {
        user_db_path(&self.state.settings.data_dir, uid)
    }

    fn floor(&self, uid: u64) -> i64 {
        lock(&self.floors).get(&uid).copied().unwrap_or(0)
    }

    fn with_user_blocking<R>(
        &self,
        uid: u64,
        f: impl FnOnce(&mut UserDb) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        self.run_blocking(uid, Access::Write, |db| match db {
            Some(db) => f(db),
            // Writes always open (creating) the file; this arm cannot be reached.
            None => Err(StorageError::Internal("no database for a write".into())),
        })
    }

    /// The one path to a user's database: takes the user's lock, opens the file unless it
    /// is pooled (a read of a user without a file gets `None` instead), runs `f`.
    fn run_blocking<R>(
        &self,
        uid: u64,
        access: Access,
        f: impl FnOnce(Option<&mut UserDb>) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        let slot = self.pool.slot(uid);
        let mut guard = lock(&slot);
        if access == Access::Write {
            // Every write path passes here: the cached answer goes before anything changes.
            self.info.forget(uid);
        }
        let mut tracked = true;
        let db = match &mut *guard {
            Some(db) => db,
            empty => {
                let path = self.path(uid);
                if access == Access::Read && !file_exists(&path)? {
                    return f(None);
                }
                let opened = UserDb::open(
                    &path,
                    self.state.settings.storage.sqlite_synchronous,
                    self.floor(uid),
                )?;
                // The slot may have been evicted while this request waited for the lock.
                tracked = self.pool.track_opened(uid, &slot);
                empty.insert(opened)
            }
        };
        db.count_use();
        let result = f(Some(db));
        let failed = matches!(&result, Err(e) if e.drops_connection());
        if failed || !tracked {
            // Reopen on the next request rather than reuse a connection the disk failed or
            // another process blocked; an untracked connection closes here, under the lock,
            // as nobody else would close it.
            *guard = None;
        }
        result
    }

    fn delete_user_blocking(&self, uid: u64, pre: Precondition) -> Result<(), StorageError> {
        let slot = self.pool.slot(uid);
        let mut guard = lock(&slot);
        let path = self.path(uid);
        // A closed file is opened for its high-water mark (and the precondition).
        let mut closed = None;
        if guard.is_none() && file_exists(&path)? {
            match UserDb::open(&path, self.state.settings.storage.sqlite_synchronous, 0) {
                Ok(db) => closed = Some(db),
                // A file that cannot be read is deleted all the same, unless the request's
                // precondition needs its last-modified.
                Err(e) if pre != Precondition::None => return Err(e),
                Err(_) => {}
            }
        }
        if pre != Precondition::None {
            let db = guard.as_mut().or(closed.as_mut());
            pre.check(db.map_or(Ok(0), ops::storage_last_modified)?)?;
        }
        self.info.forget(uid);
        let high_water = guard.take().or(closed).map_or(0, |mut db| {
            db.keep_wal_on_close();
            db.high_water()
        });
        {
            let mut floors = lock(&self.floors);
            let floor = floors.entry(uid).or_insert(0);
            *floor = (*floor).max(high_water);
        }
        remove_user_files(&path).map_err(StorageError::Unavailable)?;
        drop(guard);
        Ok(())
    }
}

/// Whether the user's file exists; a disk that cannot tell (e.g. a file where a folder
/// should be) is a disk fault (503), as opening the file would have been.
fn file_exists(path: &Path) -> Result<bool, StorageError> {
    path.try_exists()
        .map_err(|e| StorageError::Unavailable(format!("cannot look for {}: {e}", path.display())))
}

/// Unlinks a user's `.db`, `-wal` and `-shm` (missing files are fine). Only the two delete
/// paths call it: [`Storage::delete_user`] (under the user's lock) and [`OfflineStorage`].
fn remove_user_files(path: &Path) -> Result<(), String> {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.to_path_buf().into_os_string();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!("cannot delete {}: {e}", Path::new(&file).display()));
            }
        }
    }
    Ok(())
}

/// `<data_dir>/storage/<d1>/<d2>/<uid>.db`: d1 = last two digits of the uid, d2 = the two
/// before them (uid 100001234 → `34/12/100001234.db`).
pub fn user_db_path(data_dir: &Path, uid: u64) -> PathBuf {
    let d1 = uid % 100;
    let d2 = (uid / 100) % 100;
    data_dir
        .join("storage")
        .join(format!("{d1:02}"))
        .join(format!("{d2:02}"))
        .join(format!("{uid}.db"))
}

/// `syncserver purge`: one full pass over every user file; returns a human-readable report.
pub async fn purge_all(settings: &Settings) -> Result<String, String> {
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || purge::purge_all_blocking(&settings))
        .await
        .map_err(|e| format!("purge did not finish: {e}"))?
}

/// Storage routes; `Storage` is registered as app data by the server.
pub fn configure(cfg: &mut web::ServiceConfig) {
    handlers::configure(cfg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_path_layout() {
        let p = user_db_path(Path::new("/d"), 100_001_234);
        assert_eq!(p, PathBuf::from("/d/storage/34/12/100001234.db"));
        let p = user_db_path(Path::new("/d"), 7);
        assert_eq!(p, PathBuf::from("/d/storage/07/00/7.db"));
    }
}
