//! One user's SQLite file: opening it with the connection pragmas, applying the embedded
//! migrations (tracked with `PRAGMA user_version`), and the write-timestamp high-water mark.

use std::cell::Cell;
use std::os::raw::{c_char, c_int, c_void};
use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::error::StorageError;
use super::timestamp;
use super::vfs::storage_vfs;
use crate::storage::config::SqliteSynchronous;

/// Embedded schema migrations, applied in order; `user_version` = how many were applied.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/storage/0001_initial.sql")];

/// Page cache of a newly opened file. Most files are opened for one sync (a few requests)
/// and closed again, and those pages come from the OS page cache cheaply.
const CACHE_SIZE_KIB_COLD: i64 = 8;
/// Page cache of a file in steady use: 256 such files hold at most 8 MiB (100 users: 123-138
/// µs per request with 32 KiB against 126-129 with 64, 146-148 with 8).
const CACHE_SIZE_KIB_WARM: i64 = 32;
/// Dirty pages a transaction may hold before SQLite writes some of them to the WAL early.
/// By default that limit is the page cache (2 pages for a newly opened file), so a small
/// POST spilled pages mid-transaction and wrote them again at commit. 64 pages (256 KiB)
/// bounds what one transaction holds beyond its cache. Load bench, 10,000 users: 871-886
/// against 904-974 µs per first-sync request, 283-301 against 292-313 per incremental
/// one; 100 users: 108-115 against 115-120 µs; peak RSS +0.5 MiB.
const SPILL_PAGES: i64 = 64;
/// Requests after which an open file counts as in steady use: more than one routine sync.
const WARM_AFTER_USES: u32 = 8;
/// Prepared statements kept per open file: enough for every request kind's statements,
/// with the transactions' BEGIN, COMMIT and ROLLBACK (`Tx`).
const STATEMENT_CACHE: usize = 32;
/// A closed file keeps a WAL of up to this many pages, which the next open reads back
/// (SQLite's WAL recovery); with more, the close folds them into the database first.
/// 128 KiB of 4 KiB pages: several syncs' writes. Each fold costs a WAL fsync, a database
/// fsync and, at the next commit, a fsync of the restarted WAL's header; each page kept
/// costs a read at the next open. Load bench, 10,000 users, alternating runs against 16
/// pages: 306-329 against 325-402 µs per request (4 runs each, all lower); 64 pages was
/// worse than 32 (317-341 against 291-309). Such a fold keeps the WAL file's blocks and
/// marks it empty (`fold_in_place`): the commits after the next open then overwrite blocks
/// instead of growing the file, which would make each fdatasync write the inode as well,
/// and no truncation frees blocks only for them to be allocated again. Load bench, 10,000
/// users, alternating runs against truncating folds: 291-336 against 329-377 µs per
/// request (9 runs each). The purge's visit to an idle user (`OnClose::Fold`) still
/// truncates, so only recently active users keep WAL blocks.
const WAL_KEEP_PAGES: c_int = 32;
/// WAL pages after which the WAL is folded into the database while the file is open
/// (SQLite's default is 1,000): 512 KiB, within `WAL_FILE_BYTES`, so that the restarted
/// log reuses blocks the WAL file already has. Done by `on_commit`, which replaces
/// SQLite's own automatic checkpoint.
const WAL_AUTOCHECKPOINT_PAGES: c_int = 128;
/// What a restarted WAL is cut back to (`journal_size_limit`). Kept allocated, an
/// open file's WAL is overwritten by later commits instead of growing, and with fdatasync
/// (see `.cargo/config.toml`) such a commit flushes no file metadata. Load bench, 100
/// users: 139.5 against 151 µs per request (medians of 6 alternating runs; 147 with
/// fsync).
const WAL_FILE_BYTES: i64 = 1024 * 1024;
/// How long to wait for another process (e.g. `syncserver purge`) holding the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open user database and the largest write timestamp ever issued for the user.
pub struct UserDb {
    pub conn: Connection,
    high_water: i64,
    /// What the close does with the WAL.
    on_close: OnClose,
    /// Requests served, up to `WARM_AFTER_USES`.
    uses: u32,
    /// Pages in the WAL as of the last commit (`on_commit`), copied into the database or
    /// not: the next open reads them all back. Boxed: SQLite holds a pointer to it while
    /// the connection lives (`conn` is dropped first, being declared first).
    wal_frames: Box<Cell<c_int>>,
}

impl UserDb {
    /// Opens (creating if needed) the file at `path`. `floor` is a lower bound for the next
    /// write timestamp (kept in memory when a user's file was deleted).
    pub fn open(path: &Path, sync: SqliteSynchronous, floor: i64) -> Result<UserDb, StorageError> {
        Self::open_with(path, sync, floor, BUSY_TIMEOUT, Create::Yes)
    }

    /// Opens an existing file for a command-line tool, waiting at most `busy` while another
    /// process (a running server) holds it. A file that is gone, perhaps deleted by the
    /// server since it was listed, gives `NotFound` and is not created again.
    pub fn open_existing(
        path: &Path,
        sync: SqliteSynchronous,
        busy: Duration,
    ) -> Result<UserDb, StorageError> {
        Self::open_with(path, sync, 0, busy, Create::No)
    }

    fn open_with(
        path: &Path,
        sync: SqliteSynchronous,
        floor: i64,
        busy: Duration,
        create: Create,
    ) -> Result<UserDb, StorageError> {
        let conn = open_connection(path, sync, busy, create)?;
        let wal_frames = Box::new(Cell::new(0));
        track_wal(&conn, &wal_frames);
        if migrate(&conn)? == FileState::New {
            sync_folders_above(path);
        }
        let stored: i64 =
            conn.query_row("SELECT value FROM meta WHERE key = 'high_water'", [], |r| {
                r.get(0)
            })?;
        Ok(UserDb {
            conn,
            high_water: stored.max(floor),
            on_close: OnClose::BySize,
            uses: 0,
            wal_frames,
        })
    }

    /// Makes the close fold the WAL into the database and truncate it, leaving the file
    /// self-contained: for users gone idle (the purge's visit) and at shutdown.
    pub fn fold_wal_on_close(&mut self) {
        self.on_close = OnClose::Fold;
    }

    /// Makes the close leave the WAL as it is, for a file about to be deleted: folding it
    /// in first would be writes and fsyncs for nothing.
    pub fn keep_wal_on_close(&mut self) {
        self.on_close = OnClose::Keep;
    }

    /// Whether closing the connection now would fold the WAL into the database (writes and
    /// fsyncs) rather than only release memory and file descriptors.
    pub fn close_folds(&self) -> bool {
        match self.on_close {
            OnClose::BySize => self.wal_frames.get() > WAL_KEEP_PAGES,
            OnClose::Fold => true,
            OnClose::Keep => false,
        }
    }

    /// Folds the WAL into the database and marks it empty without shrinking it, so the
    /// next commits, after the file is opened again, overwrite blocks the WAL already has.
    /// False when that did not happen (nothing is lost either way).
    fn fold_in_place(&self) -> bool {
        let done = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            });
        match done {
            // Every page is in the database, which the checkpoint synced: what the WAL
            // holds is no longer needed, and a WAL without a valid header reads as empty.
            Ok((0, log, copied)) if log == copied => invalidate_wal_header(&self.conn),
            Ok(_) => false,
            Err(e) => {
                tracing::debug!(error = %e, "cannot fold the WAL in");
                false
            }
        }
    }

    /// Counts a request; the file's page cache grows once it is in steady use. Small caches
    /// keep the memory of the many files opened for a single sync low, the larger one keeps
    /// busy users fast. Load bench: the first sync of 10,000 users peaks at 62.6-63.2 MiB
    /// against 75.4-77.5 with 32 KiB for every file; 100 users stay at 129-138 µs per
    /// request.
    pub fn count_use(&mut self) {
        if self.uses >= WARM_AFTER_USES {
            return;
        }
        self.uses += 1;
        if self.uses == WARM_AFTER_USES
            && let Err(e) = self
                .conn
                .execute_batch(&format!("PRAGMA cache_size = -{CACHE_SIZE_KIB_WARM}"))
        {
            tracing::debug!(error = %e, "cannot grow the page cache");
        }
    }

    pub fn high_water(&self) -> i64 {
        self.high_water
    }

    /// Starts the request's transaction. Writes take the write lock up front so a concurrent
    /// `syncserver purge` process waits instead of failing half-way.
    pub fn begin(&mut self, write: bool) -> Result<(Tx<'_>, &mut i64), StorageError> {
        let tx = Tx::begin(&self.conn, write)?;
        Ok((tx, &mut self.high_water))
    }
}

/// One request's transaction, rolled back unless committed. Unlike rusqlite's
/// `Transaction`, which compiles its BEGIN and its COMMIT or ROLLBACK anew each time, the
/// three statements come from the connection's statement cache: two compiles fewer per
/// request on a warm file.
pub struct Tx<'c> {
    conn: &'c Connection,
}

impl<'c> Tx<'c> {
    fn begin(conn: &'c Connection, write: bool) -> Result<Tx<'c>, StorageError> {
        // IMMEDIATE takes the write lock at once, so a write never fails to upgrade a
        // read it already did.
        let sql = if write { "BEGIN IMMEDIATE" } else { "BEGIN" };
        conn.prepare_cached(sql)?.execute([])?;
        Ok(Tx { conn })
    }

    pub fn commit(self) -> Result<(), StorageError> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Tx<'_> {
    /// Rolls back whatever is still open: after an error, or a read (which never commits).
    /// A COMMIT that failed may have ended the transaction already.
    fn drop(&mut self) {
        if self.conn.is_autocommit() {
            return;
        }
        let rolled_back = self
            .conn
            .prepare_cached("ROLLBACK")
            .and_then(|mut stmt| stmt.execute([]));
        if let Err(e) = rolled_back {
            tracing::warn!(error = %e, "cannot roll back a storage transaction");
        }
    }
}

/// What closing a connection does with its WAL.
enum OnClose {
    /// Fold it in, keeping the WAL file's size, when it holds more than `WAL_KEEP_PAGES`.
    BySize,
    /// Fold it in and truncate the WAL file: the file is left self-contained.
    Fold,
    /// Leave the WAL as it is: the file is about to be deleted.
    Keep,
}

impl Drop for UserDb {
    /// Connections close without a checkpoint (see `open_connection`). `OnClose::BySize`
    /// folds the WAL in place first; `OnClose::Fold` (or a failed fold in place) lets SQLite
    /// checkpoint and truncate the WAL as the connection closes.
    fn drop(&mut self) {
        let truncate = match self.on_close {
            OnClose::BySize => self.close_folds() && !self.fold_in_place(),
            OnClose::Fold => true,
            OnClose::Keep => false,
        };
        if truncate
            && let Err(e) = self
                .conn
                .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
        {
            tracing::debug!(error = %e, "cannot re-enable the checkpoint on close");
        }
    }
}

/// Process-wide SQLite settings, applied once before SQLite initialises:
/// - memory statistics off: with them on, every SQLite allocation takes one global mutex,
///   and at 10,000 users (a cold file, so a schema parse, on almost every sync) 16 blocking
///   threads spent more time waiting on it than working (perf: 721 → 515 µs per request).
///   Without statistics no soft heap limit applies; `CACHE_SIZE_KIB_*` bound each cache.
/// - no lookaside buffers: each connection would reserve ~48 KiB of them, 12 MiB for 256
///   open files, and the allocator's per-thread caches serve small allocations as fast.
#[allow(unsafe_code)]
pub fn configure_sqlite() {
    use rusqlite::ffi::{SQLITE_CONFIG_LOOKASIDE, SQLITE_CONFIG_MEMSTATUS, SQLITE_OK};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config takes these int arguments and is only valid before SQLite
        // initialises, with no other thread using SQLite: `Once` calls it before the
        // server's first connection. Called later (tests that opened files first), it
        // returns SQLITE_MISUSE and changes nothing.
        let applied = unsafe {
            rusqlite::ffi::sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0 as c_int) == SQLITE_OK
                && rusqlite::ffi::sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0 as c_int, 0 as c_int)
                    == SQLITE_OK
        };
        if !applied {
            tracing::debug!("SQLite was initialised already; its memory settings stay");
        }
        // Now, with no connection open anywhere, rather than at the first user file's open
        // while the tokenserver's connections may be using SQLite's system calls.
        storage_vfs();
    });
}

/// Issues the write timestamp of a request: after the clock and after every earlier write.
/// It also becomes the storage last-modified, as every write changes the storage
/// (`DELETE /storage` then resets that to 0); one statement persists both, in the same
/// transaction as the write.
pub fn next_timestamp(tx: &Tx<'_>, high_water: &mut i64, now_ms: i64) -> Result<i64, StorageError> {
    let t = timestamp::next_write(now_ms, *high_water);
    tx.prepare_cached(
        "UPDATE meta SET value = ?1 WHERE key IN ('high_water', 'storage_modified')",
    )?
    .execute([t])?;
    *high_water = t;
    Ok(t)
}

/// The storage last-modified (0 when the user has no data).
pub fn storage_modified(tx: &Tx<'_>) -> Result<i64, StorageError> {
    Ok(tx
        .prepare_cached("SELECT value FROM meta WHERE key = 'storage_modified'")?
        .query_row([], |r| r.get(0))?)
}

pub fn set_storage_modified(tx: &Tx<'_>, ms: i64) -> Result<(), StorageError> {
    tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'storage_modified'")?
        .execute([ms])?;
    Ok(())
}

/// Whether opening a user's file may create it.
#[derive(Clone, Copy, PartialEq)]
enum Create {
    Yes,
    No,
}

/// Cold opens: with 10,000 users almost every sync opens a file that is not among the
/// `max_open_databases` open ones, so what an open costs is paid per sync. Measured on the
/// bench's 10,000-user files, one thread, page cache warm: `sqlite3_open` takes 16-22 µs
/// with libsqlite3-sys's default build and 9-10 µs without the FTS3/FTS5/R-tree/dbstat
/// extensions (`.cargo/config.toml`), which SQLite sets up on every connection; with the
/// pragmas and the schema load, 61-75 against 55-62 µs.
fn open_connection(
    path: &Path,
    sync: SqliteSynchronous,
    busy: Duration,
    create: Create,
) -> Result<Connection, StorageError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create == Create::Yes {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    // The user's folder usually exists; create it only when SQLite cannot open the file,
    // rather than a mkdir and a stat on every open.
    let vfs = storage_vfs();
    let conn = match Connection::open_with_flags_and_vfs(path, flags, vfs) {
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) => {
            // Only a missing file is "gone"; one that exists but cannot be opened is a
            // failure to report.
            if create == Create::No {
                return Err(if path.exists() {
                    e.into()
                } else {
                    StorageError::NotFound
                });
            }
            create_parent(path)?;
            Connection::open_with_flags_and_vfs(path, flags, vfs)?
        }
        opened => opened?,
    };
    keep_wal_file(&conn);
    // No checkpoint when the connection closes: at 10,000 users almost every sync opens a
    // cold file and evicts another, and the close checkpoint (WAL fsync, database writes
    // and fsync, WAL truncation, then a WAL header fsync on the next write) was most of an
    // eviction's cost. The committed frames stay in the WAL, durable as at commit, and the
    // next open recovers them; `Drop for UserDb` bounds what is left behind.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    // Plans that do not depend on bound values. Otherwise SQLite folds the value of a
    // bound `LIMIT ?` into the plan and marks the statement to be compiled again whenever
    // that parameter is bound: every collection listing was prepared twice, once by
    // `prepare_cached` and again at its first step.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.busy_timeout(busy)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let synchronous = match sync {
        SqliteSynchronous::Full => "FULL",
        SqliteSynchronous::Normal => "NORMAL",
    };
    // Exclusive locking: the connection keeps the file locked while open, so the WAL index
    // lives in its memory and no `-shm` file is ever created, and transactions take no
    // file locks. Only one connection per file exists (the pool's); `syncserver purge`
    // skips files a running server holds.
    conn.execute_batch(&format!(
        "PRAGMA locking_mode = EXCLUSIVE;
         PRAGMA journal_size_limit = {WAL_FILE_BYTES};
         PRAGMA synchronous = {synchronous};
         PRAGMA cache_size = -{CACHE_SIZE_KIB_COLD};
         PRAGMA cache_spill = {SPILL_PAGES};
         PRAGMA temp_store = MEMORY;
         PRAGMA foreign_keys = OFF;"
    ))?;
    Ok(conn)
}

/// How long the command-line tools wait for a file a running server holds open.
pub const HELD_FILE_WAIT: Duration = Duration::from_millis(200);

/// Takes the write lock of a user's file for this process. `Err` when another connection
/// holds it: a running server keeps its open files locked (exclusive locking mode). A file
/// that is missing or not a database is nobody's, and gives `Ok(None)`.
pub fn claim_file(path: &Path) -> Result<Option<Connection>, ()> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let Ok(conn) = Connection::open_with_flags(path, flags) else {
        return Ok(None);
    };
    let claimed = conn
        .busy_timeout(HELD_FILE_WAIT)
        .and_then(|()| conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN IMMEDIATE;"));
    match claimed {
        Ok(()) => Ok(Some(conn)),
        Err(e) => match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Err(()),
            _ => Ok(None),
        },
    }
}

/// Creates the folders above a user's file (synced once the file exists, see
/// `sync_folders_above`).
fn create_parent(path: &Path) -> Result<(), StorageError> {
    match path.parent() {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| {
            StorageError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        }),
        None => Ok(()),
    }
}

/// Makes a new file's path survive a power loss before its first write is acknowledged.
/// SQLite syncs the file's folder (`storage/34/12`) when it creates the WAL beside it; this
/// syncs the two above it, which hold the names `12` and `34`. Done for every new file, not
/// only by whoever created the folders: another request may have created them a moment ago
/// and not synced them yet.
fn sync_folders_above(path: &Path) {
    let above = path.ancestors().skip(2).take(2);
    for dir in above.filter(|d| !d.as_os_str().is_empty()) {
        crate::durable::sync_dir(dir);
    }
}

/// Persistent WAL: a checkpointing close truncates the WAL instead of unlinking it, so
/// opening and closing a user's file creates and deletes no files. Creating and deleting
/// `-wal` files on every open and eviction cost more CPU than the checkpoint itself (ext4
/// inode allocation, directory fsyncs), and its cost grew with the churn.
#[allow(unsafe_code)]
fn keep_wal_file(conn: &Connection) {
    let mut on: c_int = 1;
    // SAFETY: the handle is valid while `conn` lives; SQLITE_FCNTL_PERSIST_WAL reads and
    // writes one int through the pointer, which outlives the call.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut on as *mut c_int).cast(),
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        tracing::debug!(rc, "cannot make the WAL file persistent");
    }
}

/// Makes SQLite report the WAL's size after each commit into `frames` (see `on_commit`).
#[allow(unsafe_code)]
fn track_wal(conn: &Connection, frames: &Cell<c_int>) {
    // SAFETY: `frames` is boxed in the `UserDb` that owns `conn` and is dropped after
    // it, so the pointer is valid whenever SQLite calls the hook; the connection is used
    // by one thread at a time, the one calling the hook.
    unsafe {
        rusqlite::ffi::sqlite3_wal_hook(
            conn.handle(),
            Some(on_commit),
            std::ptr::from_ref(frames).cast_mut().cast(),
        );
    }
}

/// SQLite's WAL hook, called after each commit with the WAL's size in pages. Records it,
/// and folds the WAL in past `WAL_AUTOCHECKPOINT_PAGES`, as SQLite's own automatic
/// checkpoint (which this hook replaces) would; the next commit then restarts the WAL.
#[allow(unsafe_code)]
unsafe extern "C" fn on_commit(
    frames: *mut c_void,
    db: *mut rusqlite::ffi::sqlite3,
    name: *const c_char,
    pages: c_int,
) -> c_int {
    // SAFETY: `frames` is the `Cell` registered by `track_wal`, alive (see there).
    let frames = unsafe { &*(frames as *const Cell<c_int>) };
    frames.set(pages);
    if pages >= WAL_AUTOCHECKPOINT_PAGES {
        // SAFETY: `db` and `name` come from SQLite for this call; a checkpoint from the WAL
        // hook is what SQLite's own automatic checkpoint does. A failure leaves the WAL to
        // a later checkpoint, as SQLite's does.
        unsafe {
            rusqlite::ffi::sqlite3_wal_checkpoint_v2(
                db,
                name,
                rusqlite::ffi::SQLITE_CHECKPOINT_PASSIVE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }
    rusqlite::ffi::SQLITE_OK
}

/// Overwrites the WAL's header with zeros through SQLite's own handle of the WAL file.
/// SQLite then reads the WAL as empty on the next open and starts it afresh at its first
/// commit, with a new salt, so the old frames after it never count again.
#[allow(unsafe_code)]
fn invalidate_wal_header(conn: &Connection) -> bool {
    use rusqlite::ffi;
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: SQLITE_FCNTL_JOURNAL_POINTER writes one `sqlite3_file *` (the WAL's, once
    // the WAL is open) through the pointer, which outlives the call.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            (&raw mut file).cast(),
        )
    };
    if rc != ffi::SQLITE_OK || file.is_null() {
        return false;
    }
    // SAFETY: `file` is SQLite's open WAL file (methods are null when it is not open);
    // xWrite takes a buffer of the given length and an offset. The connection holds the
    // file's exclusive lock and is about to close; no other handle writes to the WAL.
    unsafe {
        let methods = (*file).pMethods;
        match methods.as_ref().and_then(|m| m.xWrite) {
            Some(write) => {
                let zeros = [0u8; 32];
                write(file, zeros.as_ptr().cast(), zeros.len() as c_int, 0) == ffi::SQLITE_OK
            }
            None => false,
        }
    }
}

/// Whether a file existed with a schema, or was just created.
#[derive(Debug, PartialEq, Eq)]
enum FileState {
    Existing,
    New,
}

/// Applies the migrations this file has not seen yet; refuses a file from a newer version.
fn migrate(conn: &Connection) -> Result<FileState, StorageError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StorageError::Internal(format!(
            "storage file has schema version {version}, newer than this server's {known}"
        )));
    }
    if version == 0 {
        // A new file. auto_vacuum only takes effect before the first page is written, so it
        // comes before journal_mode (which writes the header). Both persist in the file, so
        // later opens skip them.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL;")?;
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let batch = format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        );
        if let Err(e) = conn.execute_batch(&batch) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    }
    Ok(if version == 0 {
        FileState::New
    } else {
        FileState::Existing
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `syncserver purge` lists files, then opens them: one the server deleted meanwhile
    /// must stay deleted, not come back as an empty database (or folders).
    #[test]
    fn open_existing_does_not_create_a_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("34/12/1234.db");
        let missing = UserDb::open_existing(&path, SqliteSynchronous::Full, HELD_FILE_WAIT);
        assert!(matches!(missing, Err(StorageError::NotFound)));
        assert!(!dir.path().join("34").exists());
        drop(open_file(&path));
        let existing = UserDb::open_existing(&path, SqliteSynchronous::Full, HELD_FILE_WAIT);
        assert!(existing.is_ok());
        drop(existing);
        std::fs::remove_file(&path).expect("delete the database");
        let deleted = UserDb::open_existing(&path, SqliteSynchronous::Full, HELD_FILE_WAIT);
        assert!(matches!(deleted, Err(StorageError::NotFound)));
        assert!(!path.exists());
        // Something there that SQLite cannot open is not "gone".
        std::fs::create_dir(&path).expect("a folder where the file was");
        let unopenable = UserDb::open_existing(&path, SqliteSynchronous::Full, HELD_FILE_WAIT);
        assert!(
            matches!(unopenable, Err(StorageError::Unavailable(_))),
            "{:?}",
            unopenable.err()
        );
    }

    #[test]
    fn new_file_gets_schema_wal_and_incremental_vacuum() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/1.db");
        let db = open_file(&path);
        let q = |sql: &str| -> String {
            db.conn
                .query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0))
                .map(|v| format!("{v:?}"))
                .expect(sql)
        };
        assert_eq!(q("PRAGMA user_version"), "Integer(1)");
        assert_eq!(q("PRAGMA auto_vacuum"), "Integer(2)");
        assert_eq!(q("PRAGMA journal_mode"), "Text(\"wal\")");
        assert_eq!(q("PRAGMA synchronous"), "Integer(2)");
        assert_eq!(q("PRAGMA cache_spill"), format!("Integer({SPILL_PAGES})"));
        drop(db);
        // Reopening applies nothing twice and keeps the floor.
        let db = UserDb::open(&path, SqliteSynchronous::Normal, 500).expect("reopen");
        assert_eq!(db.high_water(), 500);
    }

    #[test]
    fn migrate_tells_a_new_file_from_an_existing_one() {
        let (_dir, path) = user_file();
        let busy = Duration::from_millis(10);
        let conn =
            open_connection(&path, SqliteSynchronous::Full, busy, Create::Yes).expect("open");
        assert_eq!(migrate(&conn).expect("migrate"), FileState::New);
        assert_eq!(migrate(&conn).expect("again"), FileState::Existing);
        drop(conn);
        let conn =
            open_connection(&path, SqliteSynchronous::Full, busy, Create::Yes).expect("reopen");
        assert_eq!(migrate(&conn).expect("reopened"), FileState::Existing);
    }

    #[test]
    fn page_cache_grows_once_a_file_is_in_steady_use() {
        let (_dir, path) = user_file();
        let mut db = open_file(&path);
        let cache = |db: &UserDb| -> i64 {
            db.conn
                .query_row("PRAGMA cache_size", [], |r| r.get(0))
                .expect("cache_size")
        };
        for _ in 1..WARM_AFTER_USES {
            db.count_use();
            assert_eq!(cache(&db), -CACHE_SIZE_KIB_COLD);
        }
        db.count_use();
        assert_eq!(cache(&db), -CACHE_SIZE_KIB_WARM);
        db.count_use();
        assert_eq!(cache(&db), -CACHE_SIZE_KIB_WARM);
    }

    /// Opens a user file as the server does (synchronous=FULL, no timestamp floor).
    fn open_file(path: &Path) -> UserDb {
        UserDb::open(path, SqliteSynchronous::Full, 0).expect("open")
    }

    /// A temporary folder and the path of a user file in it (not created yet).
    fn user_file() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("1.db");
        (dir, path)
    }

    fn wal_path(path: &Path) -> std::path::PathBuf {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        wal.into()
    }

    fn wal_len(path: &Path) -> u64 {
        std::fs::metadata(wal_path(path))
            .expect("persistent WAL")
            .len()
    }

    /// Bytes of a WAL holding `pages` pages of 4 KiB.
    fn wal_bytes(pages: c_int) -> u64 {
        32 + pages as u64 * (24 + 4096)
    }

    /// Whether the WAL's header is zeroed: SQLite reads such a WAL as empty.
    fn wal_marked_empty(path: &Path) -> bool {
        let wal = std::fs::read(wal_path(path)).expect("read WAL");
        wal[..32].iter().all(|&b| b == 0)
    }

    /// The ids a query returns.
    fn ids(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
        conn.prepare_cached(sql)
            .expect("prepare")
            .query_map(params, |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// Rows in the database file alone, without its WAL: what was folded in.
    fn count_without_wal(path: &Path) -> i64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let copy = dir.path().join("copy.db");
        std::fs::copy(path, &copy).expect("copy");
        count(&copy)
    }

    fn insert(db: &UserDb, first: i64, count: i64, size: usize) {
        let tx = db.conn.unchecked_transaction().expect("begin");
        for i in first..first + count {
            tx.execute(
                "INSERT INTO bso (collection, id, modified, payload, payload_size)
                 VALUES (1, ?1, 0, ?2, ?3)",
                rusqlite::params![format!("r{i}"), "x".repeat(size), size as i64],
            )
            .expect("insert");
        }
        tx.commit().expect("commit");
    }

    fn count(path: &Path) -> i64 {
        let db = open_file(path);
        db.conn
            .query_row("SELECT count(*) FROM bso", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn small_wal_is_kept_at_close_and_recovered_on_open() {
        let (_dir, path) = user_file();
        let db = open_file(&path);
        insert(&db, 0, 3, 100);
        drop(db);
        let kept = wal_len(&path);
        assert!(
            kept > 0 && kept <= wal_bytes(WAL_KEEP_PAGES),
            "WAL kept: {kept} bytes"
        );
        // Not checkpointed: the reopened connection recovers the rows from the WAL.
        assert_eq!(count(&path), 3);
    }

    /// A close with more than `WAL_KEEP_PAGES` pending folds them into the database and
    /// leaves the WAL file's blocks for the next commits, which overwrite them from the
    /// start. The frames left behind after those (here all 40 rows, which the next session
    /// deletes) never count again: the next WAL starts with a new salt.
    #[test]
    fn large_wal_is_folded_in_at_close_and_its_blocks_kept() {
        let (_dir, path) = user_file();
        let db = open_file(&path);
        insert(&db, 0, 40, 3000);
        assert!(db.close_folds());
        let size = wal_len(&path);
        assert!(size > wal_bytes(WAL_KEEP_PAGES));
        drop(db);
        assert_eq!(count_without_wal(&path), 40, "folded into the .db");
        assert_eq!(wal_len(&path), size, "WAL blocks kept");
        assert!(wal_marked_empty(&path));
        let db = open_file(&path);
        db.conn.execute("DELETE FROM bso", []).expect("delete");
        insert(&db, 40, 2, 100);
        assert!(!db.close_folds());
        drop(db);
        assert_eq!(
            wal_len(&path),
            size,
            "overwritten from the start, not grown"
        );
        assert_eq!(count(&path), 2);
    }

    /// A WAL that the automatic checkpoint already copied into the database still holds
    /// its pages, which the next open would read back: the close marks it empty too.
    #[test]
    fn wal_folded_while_open_is_marked_empty_at_close() {
        let (_dir, path) = user_file();
        let db = open_file(&path);
        insert(&db, 0, 200, 3000);
        assert!(db.wal_frames.get() >= WAL_AUTOCHECKPOINT_PAGES);
        assert_eq!(count_without_wal(&path), 200, "checkpointed by on_commit");
        drop(db);
        assert!(wal_marked_empty(&path));
        assert_eq!(count(&path), 200);
    }

    /// The storage VFS first opens a WAL without the create flag; a missing one (here
    /// deleted by hand, as a restore without `-wal` files would leave it) is still created.
    #[test]
    fn missing_wal_is_created_again() {
        let (_dir, path) = user_file();
        let mut db = open_file(&path);
        insert(&db, 0, 3, 100);
        db.fold_wal_on_close();
        drop(db);
        std::fs::remove_file(wal_path(&path)).expect("remove WAL");
        let db = open_file(&path);
        insert(&db, 3, 2, 100);
        drop(db);
        assert!(wal_len(&path) > 0, "WAL created again");
        assert_eq!(count(&path), 5);
    }

    #[test]
    fn transaction_commits_or_rolls_back_when_dropped() {
        let (_dir, path) = user_file();
        let mut db = open_file(&path);
        let write = |db: &mut UserDb, id: &str, commit: bool| {
            let (tx, _) = db.begin(true).expect("begin");
            tx.execute(
                "INSERT INTO bso (collection, id, modified, payload, payload_size)
                 VALUES (1, ?1, 0, '', 0)",
                [id],
            )
            .expect("insert");
            if commit {
                tx.commit().expect("commit");
            }
        };
        write(&mut db, "dropped", false);
        assert!(db.conn.is_autocommit(), "rolled back");
        write(&mut db, "kept", true);
        assert!(db.conn.is_autocommit(), "committed");
        let (tx, _) = db.begin(false).expect("read");
        assert_eq!(ids(&tx, "SELECT id FROM bso", []), ["kept"]);
        drop(tx);
        assert!(db.conn.is_autocommit(), "read ended");
        drop(db);
        assert_eq!(count(&path), 1);
    }

    /// A statement with a bound LIMIT runs again without being compiled again: SQLite
    /// only recompiles when a bound value shaped the plan, which QPSG turns off.
    #[test]
    fn bound_limit_does_not_recompile_the_statement() {
        let (_dir, path) = user_file();
        let db = open_file(&path);
        insert(&db, 0, 5, 10);
        let sql = "SELECT id FROM bso WHERE collection = ?1 ORDER BY modified LIMIT ?2";
        for limit in [2, 3, 4] {
            assert_eq!(ids(&db.conn, sql, [1, limit]).len(), limit as usize);
        }
        let stmt = db.conn.prepare_cached(sql).expect("prepare");
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    /// Opening a file changes nothing of its WAL on disk. Running as root, SQLite chowned
    /// the WAL at every open, and the new ctime cost an inode write at the next commit.
    #[test]
    fn reopening_a_file_leaves_its_wal_untouched() {
        use std::os::unix::fs::MetadataExt;
        let (_dir, path) = user_file();
        let db = open_file(&path);
        insert(&db, 0, 3, 100);
        drop(db);
        let ctime = |p: &Path| {
            let m = std::fs::metadata(p).expect("WAL");
            (m.ctime(), m.ctime_nsec())
        };
        let before = ctime(&wal_path(&path));
        // Past the kernel's timestamp granularity (one tick, at most 10 ms).
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(count(&path), 3, "reopened and read");
        assert_eq!(ctime(&wal_path(&path)), before, "WAL's ctime changed");
    }

    #[test]
    fn keep_on_close_leaves_even_a_large_wal() {
        let (_dir, path) = user_file();
        let mut db = open_file(&path);
        insert(&db, 0, 40, 3000);
        let before = wal_len(&path);
        assert!(before > wal_bytes(WAL_KEEP_PAGES));
        db.keep_wal_on_close();
        drop(db);
        assert_eq!(wal_len(&path), before, "not folded in");
        assert_eq!(count(&path), 40);
    }

    /// An open file's WAL keeps its blocks across automatic checkpoints, so later commits
    /// overwrite them rather than grow the file; folding it at close still empties it.
    #[test]
    fn open_wal_is_reused_after_a_checkpoint_and_emptied_by_a_fold() {
        let (_dir, path) = user_file();
        let mut db = open_file(&path);
        let cycle = wal_bytes(WAL_AUTOCHECKPOINT_PAGES);
        let mut next = 0;
        // One page per commit until the WAL has passed its checkpoint size.
        while wal_len(&path) <= cycle {
            insert(&db, next, 1, 3000);
            next += 1;
        }
        let grown = wal_len(&path);
        let mut smallest = grown;
        for _ in 0..2 * next {
            insert(&db, next, 1, 3000);
            next += 1;
            let len = wal_len(&path);
            smallest = smallest.min(len);
            assert!(len <= WAL_FILE_BYTES as u64, "WAL of {len} bytes");
        }
        assert!(
            smallest >= cycle,
            "the restarted WAL was cut back to {smallest} bytes"
        );
        db.fold_wal_on_close();
        drop(db);
        assert_eq!(wal_len(&path), 0);
        assert_eq!(count(&path), next);
    }

    #[test]
    fn fold_on_close_empties_a_small_wal() {
        let (_dir, path) = user_file();
        let mut db = open_file(&path);
        insert(&db, 0, 3, 100);
        db.fold_wal_on_close();
        drop(db);
        assert_eq!(wal_len(&path), 0);
        assert_eq!(count(&path), 3);
    }
}
