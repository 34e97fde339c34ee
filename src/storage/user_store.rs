//! Storage's side of [`UserStore`], the tokenserver's only way into storage: the running
//! server's deletes go through the pool and the user's lock ([`Storage`]); the command
//! line's go through [`OfflineStorage`], which must not pull a file from under a server.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use futures_util::future::BoxFuture;

use super::{Storage, db, remove_user_files, user_db_path};
use crate::state::{UserStore, UserUsage};

impl UserStore for Storage {
    fn delete_user(&self, uid: u64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(Storage::delete_user(self, uid))
    }

    fn usage(&self, uid: u64) -> BoxFuture<'_, Result<Option<UserUsage>, String>> {
        Box::pin(usage_of(self.inner.path(uid)))
    }
}

/// Storage files reached from another process (`syncserver users delete`), with no pool.
pub struct OfflineStorage {
    data_dir: PathBuf,
}

impl OfflineStorage {
    pub fn new(data_dir: &Path) -> OfflineStorage {
        OfflineStorage {
            data_dir: data_dir.to_path_buf(),
        }
    }
}

impl UserStore for OfflineStorage {
    /// A running server closes a file before deleting it; another process cannot, so this
    /// refuses a file that a running server holds open (its recently active users), instead
    /// of unlinking it under the server's connection, which would keep writing to the
    /// deleted file.
    fn delete_user(&self, uid: u64) -> BoxFuture<'_, Result<(), String>> {
        let path = user_db_path(&self.data_dir, uid);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                // Held until the files are gone, so a server cannot open the file in between.
                let _claim = db::claim_file(&path).map_err(|()| {
                    format!(
                        "user {uid}'s storage is open in a running syncserver; stop the server \
                         (or wait until the user has been idle for a while) and try again"
                    )
                })?;
                remove_user_files(&path)
            })
            .await
            .map_err(|e| format!("delete of user {uid} did not finish: {e}"))?
        })
    }

    fn usage(&self, uid: u64) -> BoxFuture<'_, Result<Option<UserUsage>, String>> {
        Box::pin(usage_of(user_db_path(&self.data_dir, uid)))
    }
}

/// Bytes of the `.db` and `-wal` files and their latest modification; `None` when the
/// database file does not exist.
async fn usage_of(db_path: PathBuf) -> Result<Option<UserUsage>, String> {
    tokio::task::spawn_blocking(move || usage_blocking(&db_path))
        .await
        .map_err(|e| format!("size of a user's storage: {e}"))?
}

fn usage_blocking(db_path: &Path) -> Result<Option<UserUsage>, String> {
    let mut usage = UserUsage {
        bytes: 0,
        modified_ms: None,
    };
    for suffix in ["", "-wal"] {
        let mut path = db_path.to_path_buf().into_os_string();
        path.push(suffix);
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && suffix.is_empty() => {
                return Ok(None);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", Path::new(&path).display())),
        };
        usage.bytes += meta.len();
        let ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok());
        usage.modified_ms = usage.modified_ms.max(ms);
    }
    Ok(Some(usage))
}
