//! Sync 1.5 storage service (being built; serves no routes yet).

use std::path::{Path, PathBuf};

use actix_web::web;

use crate::config::Settings;
use crate::server::AppState;

/// Per-process storage state: the per-user database pool, locks and nonce cache.
pub struct Storage {}

impl Storage {
    /// Builds the storage state once per process and starts its background tasks.
    pub fn open(_state: web::Data<AppState>) -> Result<web::Data<Storage>, String> {
        Ok(web::Data::new(Storage {}))
    }

    /// The one way to delete a user's storage (DELETE /1.5/{uid}, purge, `users delete`,
    /// the tokenserver's replaced-user clean-up): takes the user's lock, drops the pooled
    /// connection, then unlinks the `.db`, `-wal` and `-shm` files.
    pub async fn delete_user(&self, _uid: u64) -> Result<(), String> {
        Ok(())
    }

    /// Closes every open user database; called once after the server stopped.
    pub async fn close(&self) {}
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
pub async fn purge_all(_settings: &Settings) -> Result<String, String> {
    Err("purge is not available yet".into())
}

/// Storage routes; `Storage` is registered as app data by the server.
pub fn configure(_cfg: &mut web::ServiceConfig) {}

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
