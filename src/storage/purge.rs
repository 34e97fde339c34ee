//! Removing expired data: expired BSOs, batches older than `max_batch_ttl`, and free pages
//! (incremental vacuum) once a file's free space passes `vacuum_threshold_kb`.
//!
//! The background task walks the storage tree one top-level folder (1% of users) per tick,
//! so a full pass takes `purge_interval` and each tick's work is bounded. `syncserver purge`
//! does a full, unbounded pass at once.

use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::Inner;
use super::db::{HELD_FILE_WAIT, UserDb};
use super::error::StorageError;
use super::pool::lock;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;

/// The storage tree has 100 top-level folders; the background task visits one per tick.
const TOP_FOLDERS: u64 = 100;
/// At most this many expired rows are deleted per user per background visit.
const MAX_ROWS_PER_VISIT: i64 = 5_000;

/// What one purge removed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Purged {
    pub users: u64,
    pub records: u64,
    pub batches: u64,
    pub freed_kib: u64,
}

impl Purged {
    fn add(&mut self, other: Purged) {
        self.users += other.users;
        self.records += other.records;
        self.batches += other.batches;
        self.freed_kib += other.freed_kib;
    }
}

/// Purges one open user database in one transaction, then vacuums if worthwhile.
pub fn purge_db(
    conn: &Connection,
    now: i64,
    batch_ttl_ms: i64,
    vacuum_threshold_kb: u64,
    max_rows: i64,
) -> Result<Purged, StorageError> {
    let tx = conn.unchecked_transaction()?;
    let records = tx.execute(
        "DELETE FROM bso WHERE rowid IN
           (SELECT rowid FROM bso WHERE expiry IS NOT NULL AND expiry <= ?1 LIMIT ?2)",
        params![now, max_rows],
    )?;
    let cutoff = now - batch_ttl_ms;
    tx.execute(
        "DELETE FROM batch_items WHERE batch IN (SELECT id FROM batches WHERE created <= ?1)",
        [cutoff],
    )?;
    let batches = tx.execute("DELETE FROM batches WHERE created <= ?1", [cutoff])?;
    tx.commit()?;
    let free_pages: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let free_kib = (free_pages * page_size / 1024) as u64;
    let freed_kib = if free_kib > vacuum_threshold_kb {
        // The pragma frees pages as it is stepped; run it to the end.
        let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        free_kib
    } else {
        0
    };
    Ok(Purged {
        users: 1,
        records: records as u64,
        batches: batches as u64,
        freed_kib,
    })
}

/// Every `<uid>.db` under one top-level folder of the storage tree.
fn users_in(storage_dir: &Path, d1: u64) -> Vec<(u64, PathBuf)> {
    let mut out = Vec::new();
    let top = storage_dir.join(format!("{d1:02}"));
    let Ok(mids) = std::fs::read_dir(&top) else {
        return out;
    };
    for mid in mids.flatten() {
        let Ok(files) = std::fs::read_dir(mid.path()) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            let uid = path
                .extension()
                .filter(|e| *e == "db")
                .and_then(|_| path.file_stem())
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(uid) = uid {
                out.push((uid, path));
            }
        }
    }
    out
}

/// The background purge: one top-level folder per tick, each user under its own lock,
/// using the pooled connection when open (without disturbing the LRU order) or a
/// temporary one.
pub async fn background(inner: Weak<Inner>) {
    let tick = {
        let Some(inner) = inner.upgrade() else { return };
        Duration::from_secs(inner.state.settings.storage.purge_interval.max(1)) / TOP_FOLDERS as u32
    };
    let mut d1 = 0;
    loop {
        tokio::time::sleep(tick).await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let task = tokio::task::spawn_blocking(move || purge_folder(&strong, d1));
        match task.await {
            Ok(p) if p.records + p.batches > 0 => tracing::info!(
                folder = d1,
                users = p.users,
                records = p.records,
                batches = p.batches,
                freed_kib = p.freed_kib,
                "purged expired data"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purge task failed"),
        }
        d1 = (d1 + 1) % TOP_FOLDERS;
    }
}

fn purge_folder(inner: &Inner, d1: u64) -> Purged {
    let settings = &inner.state.settings.storage;
    let mut total = Purged::default();
    for (uid, path) in users_in(&inner.state.settings.data_dir.join("storage"), d1) {
        let slot = inner.pool.lock_only(uid);
        let guard = lock(&slot);
        // The cached info/collections answer stays valid: purging removes expired records
        // and stale batches, never a collection or a timestamp.
        let now = inner.state.clock.now_ms();
        let ttl_ms = settings.max_batch_ttl as i64 * 1000;
        let result = match &*guard {
            Some(db) => purge_db(
                &db.conn,
                now,
                ttl_ms,
                settings.vacuum_threshold_kb,
                MAX_ROWS_PER_VISIT,
            ),
            // An idle user's file: fold its WAL in as the visit closes it.
            None if path.exists() => {
                UserDb::open(&path, settings.sqlite_synchronous, 0).and_then(|mut db| {
                    db.fold_wal_on_close();
                    purge_db(
                        &db.conn,
                        now,
                        ttl_ms,
                        settings.vacuum_threshold_kb,
                        MAX_ROWS_PER_VISIT,
                    )
                })
            }
            None => Ok(Purged::default()),
        };
        match result {
            Ok(p) => total.add(p),
            Err(e) => tracing::warn!(uid, error = %e, "purge of a user failed"),
        }
    }
    total
}

/// `syncserver purge`: every user, no row bound, real clock.
pub fn purge_all_blocking(settings: &Settings) -> Result<String, String> {
    let storage_dir = settings.data_dir.join("storage");
    let s = &settings.storage;
    let now = SystemClock.now_ms();
    let mut total = Purged::default();
    let mut failures = 0u64;
    let mut in_use = 0u64;
    for d1 in 0..TOP_FOLDERS {
        for (uid, path) in users_in(&storage_dir, d1) {
            let opened = UserDb::open_existing(&path, s.sqlite_synchronous, HELD_FILE_WAIT);
            let result = opened.and_then(|mut db| {
                db.fold_wal_on_close();
                purge_db(
                    &db.conn,
                    now,
                    s.max_batch_ttl as i64 * 1000,
                    s.vacuum_threshold_kb,
                    i64::MAX,
                )
            });
            match result {
                Ok(p) => total.add(p),
                // A running server holds the files of its active users; it purges those itself.
                Err(StorageError::Busy(_)) => in_use += 1,
                // Deleted (by a running server) since it was listed: nothing to purge.
                Err(StorageError::NotFound) => {}
                Err(e) => {
                    failures += 1;
                    eprintln!("syncserver: purge of user {uid} failed: {e}");
                }
            }
        }
    }
    let mut report = format!(
        "purged {} user files: {} expired records, {} stale batches removed, {} KiB vacuumed\n",
        total.users, total.records, total.batches, total.freed_kib
    );
    if in_use > 0 {
        report.push_str(&format!(
            "skipped {in_use} user files in use by the running server (it purges them itself)\n"
        ));
    }
    if failures > 0 {
        return Err(format!("{report}{failures} user files could not be purged"));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix_web::web;

    use super::*;
    use crate::auth::token::TokenSecret;
    use crate::clock::ManualClock;
    use crate::state::AppState;
    use crate::storage::Storage;
    use crate::storage::bso::BsoIn;
    use crate::storage::ops::{self, Env};
    use crate::storage::query::Precondition;

    fn item(id: &str, ttl: Option<i64>) -> BsoIn {
        BsoIn {
            id: id.into(),
            payload: Some("x".repeat(100)),
            sortindex: None,
            ttl,
        }
    }

    fn storage_with_one_open_file(
        dir: &tempfile::TempDir,
    ) -> (web::Data<Storage>, Arc<ManualClock>, Env) {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let mut settings = Settings {
            data_dir: dir.path().to_path_buf(),
            ..Settings::default()
        };
        settings.storage.max_open_databases = 1;
        let state = web::Data::new(AppState {
            settings,
            public_url: None,
            clock: clock.clone(),
            tokens: TokenSecret::new("secret"),
        });
        let env = Env {
            now: clock.now_ms(),
            quota: 0,
        };
        (Storage::open(state).expect("open"), clock, env)
    }

    /// A closed file keeps a small WAL; the purge's visit folds it into the database.
    #[test]
    fn background_visit_folds_an_idle_users_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, _clock, env) = storage_with_one_open_file(&dir);
        let inner = &storage.inner;
        let write = |uid: u64, id: &str| {
            inner
                .with_user_blocking(uid, |db| {
                    ops::post_bsos(db, "xxx_col1", &[item(id, None)], Precondition::None, &env)
                })
                .expect("write");
        };
        // A new file's first session (the schema) is large and folded in when it closes;
        // user 5's second, small one stays in the WAL when 105 evicts it.
        for (uid, id) in [(5, "a"), (105, "a"), (5, "b"), (105, "b")] {
            write(uid, id);
        }
        inner.pool.flush();
        let wal = dir.path().join("storage/05/00/5.db-wal");
        let wal_len = || std::fs::metadata(&wal).expect("persistent WAL").len();
        assert!(wal_len() > 0, "closed without a checkpoint");
        assert_eq!(purge_folder(inner, 5).users, 2);
        assert_eq!(wal_len(), 0, "folded in");
        let rows: i64 = inner
            .with_user_blocking(5, |db| {
                Ok(db
                    .conn
                    .query_row("SELECT count(*) FROM bso", [], |r| r.get(0))?)
            })
            .expect("read");
        assert_eq!(rows, 2, "nothing lost");
    }

    /// The background visit purges both a user whose connection is pooled and one whose
    /// file is only on disk, without putting the latter into the pool.
    #[test]
    fn background_visit_purges_open_and_closed_users() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, clock, env) = storage_with_one_open_file(&dir);
        let inner = &storage.inner;
        // uids 5 and 105 share the top folder 05; writing 105 evicts 5 from the pool of one.
        for uid in [5, 105] {
            inner
                .with_user_blocking(uid, |db| {
                    ops::post_bsos(
                        db,
                        "xxx_col1",
                        &[item("short", Some(10)), item("long", None)],
                        Precondition::None,
                        &env,
                    )
                })
                .expect("write");
        }
        inner
            .with_user_blocking(105, |db| {
                ops::batch_create(
                    db,
                    "xxx_col1",
                    &[item("p", None)],
                    Precondition::None,
                    &env,
                    ops::BatchLimits {
                        ttl_ms: 7_200_000,
                        max_total_records: 100,
                        max_total_bytes: 1_000_000,
                    },
                )
            })
            .expect("batch");
        clock.advance_ms(3 * 3600 * 1000);
        let purged = purge_folder(inner, 5);
        assert_eq!(purged.users, 2);
        assert_eq!(purged.records, 2);
        assert_eq!(purged.batches, 1);
        assert_eq!(inner.pool.len(), 1, "the closed user was not pooled");
        assert_eq!(purge_folder(inner, 5).records, 0);
    }
}
