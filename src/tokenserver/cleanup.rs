//! Frees the storage of replaced users (issue 4, item 4).
//!
//! When a key change replaces a user row, the old uid's data can never be reached again.
//! Once `replaced_user_retention` has passed since `replaced_at`, its storage is deleted
//! through `Storage::delete_user`. The rows themselves stay: they are Mozilla's record of
//! old client states (rule 3 of §1.5.1) and keep the uid from ever being handed out again.
//!
//! Passes are driven by the injectable clock: one is due every [`CHECK_INTERVAL_MS`] of
//! clock time, tried by a slow real-time timer and after token requests, so tests move the
//! `ManualClock` instead of sleeping.

use std::sync::Arc;
use std::time::Duration;

use super::db::Db;
use crate::clock::SharedClock;
use crate::state::UserStore;

/// Clock time between passes.
const CHECK_INTERVAL_MS: i64 = 10 * 60_000;

#[derive(Default)]
struct Progress {
    /// Rows replaced at or before this were handled by an earlier pass of this process.
    watermark: i64,
    last_run: Option<i64>,
}

pub struct Cleanup {
    db: Arc<Db>,
    storage: Arc<dyn UserStore>,
    clock: SharedClock,
    retention_ms: i64,
    progress: tokio::sync::Mutex<Progress>,
}

impl Cleanup {
    pub fn new(
        db: Arc<Db>,
        storage: Arc<dyn UserStore>,
        clock: SharedClock,
        retention_secs: u64,
    ) -> Arc<Self> {
        Arc::new(Cleanup {
            db,
            storage,
            clock,
            retention_ms: i64::try_from(retention_secs)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
            progress: tokio::sync::Mutex::new(Progress::default()),
        })
    }

    /// Tries a pass every check interval of real time, for servers nobody asks for tokens.
    pub fn spawn_timer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        let period = Duration::from_millis(u64::try_from(CHECK_INTERVAL_MS).unwrap_or(600_000));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            loop {
                ticks.tick().await;
                this.run_if_due().await;
            }
        })
    }

    /// Runs a pass if one is due and none is running; cheap otherwise.
    pub async fn run_if_due(&self) {
        let Ok(mut progress) = self.progress.try_lock() else {
            return;
        };
        let now = self.clock.now_ms();
        if progress
            .last_run
            .is_some_and(|last| now.saturating_sub(last) < CHECK_INTERVAL_MS)
        {
            return;
        }
        progress.last_run = Some(now);
        let cutoff = now.saturating_sub(self.retention_ms);
        match self.db.replaced_between(progress.watermark, cutoff).await {
            Ok(rows) => {
                for (uid, replaced_at) in rows {
                    if let Err(e) = self.delete_storage(uid).await {
                        // Retried by the next pass.
                        tracing::warn!(uid, error = %e, "cannot delete a replaced user's storage");
                        return;
                    }
                    progress.watermark = replaced_at;
                }
                progress.watermark = progress.watermark.max(cutoff);
            }
            Err(e) => tracing::warn!(error = %e, "replaced-user clean-up: database error"),
        }
    }

    async fn delete_storage(&self, uid: i64) -> Result<(), String> {
        let uid = u64::try_from(uid).map_err(|_| format!("negative uid {uid}"))?;
        self.storage.delete_user(uid).await?;
        tracing::info!(uid, "deleted the storage of a replaced user");
        Ok(())
    }
}
