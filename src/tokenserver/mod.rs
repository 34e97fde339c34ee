//! Tokenserver: exchanges a Firefox Accounts OAuth token for storage credentials
//! (docs/protocol.md §1–2).
//!
//! * [`handler`] — the `GET /1.0/sync/1.5` endpoint.
//! * [`fxa`] — OAuth token verification (local JWT, `/v1/verify` fallback, caches).
//! * [`db`] — Mozilla's `services` / `nodes` / `users` tables and node assignment.
//! * [`rules`] — the user-record rules of §1.4–1.5 as pure functions.
//! * [`cleanup`] — deletes the storage of replaced users after the retention period.
//! * [`admin`] — `syncserver users list|delete`.
//!
//! Everything shared (pool, caches, secrets) is built once in [`Tokenserver::start`].

mod admin;
mod cleanup;
pub mod config;
pub mod db;
pub mod error;
mod fxa;
mod handler;
pub mod rules;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use actix_web::web;
use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::health::HealthProbe;
use crate::state::AppState;
use crate::state::UserStore;

pub use admin::{delete_user, list_users};

/// Per-process tokenserver state: database, FxA verifier, caches and the clean-up task.
pub struct Tokenserver {
    db: Arc<db::Db>,
    fxa: Arc<fxa::FxaVerifier>,
    cleanup: Arc<cleanup::Cleanup>,
    /// Key for `hashed_fxa_uid` / `hashed_device_id`.
    metrics_secret: String,
    allowed_fxa_uids: HashSet<String>,
    new_user_policy: db::NewUserPolicy,
    timer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Tokenserver {
    /// Connects the database, runs migrations, registers this node and starts background tasks.
    pub async fn start(
        state: web::Data<AppState>,
        storage: Arc<dyn UserStore>,
    ) -> Result<web::Data<Tokenserver>, String> {
        let settings = &state.settings;
        let ts = &settings.tokenserver;
        let pool = db::connect(&settings.tokenserver_database_url()).await?;
        let db = Arc::new(db::Db::open(pool, storage.clone()).await?);
        // Without public_url the row's URL is only a label: tokens always name the URL
        // the client used.
        let fallback_url = format!("http://{}:{}", settings.host, settings.port);
        let public = state.public_url.as_ref().map(|u| u.origin_with_prefix());
        db.ensure_node(public.as_deref(), &fallback_url, ts.node_capacity)
            .await
            .map_err(|e| format!("cannot register this node in the tokenserver database: {e}"))?;
        let fxa = fxa::FxaVerifier::new(ts, state.clock.clone())?;
        let cleanup = cleanup::Cleanup::new(
            db.clone(),
            storage,
            state.clock.clone(),
            ts.replaced_user_retention,
        );
        let timer = cleanup.spawn_timer();
        let metrics_secret = match &ts.fxa_metrics_hash_secret {
            Some(secret) => secret.expose().to_string(),
            None => derived_metrics_secret(settings)?,
        };
        Ok(web::Data::new(Tokenserver {
            db,
            fxa,
            cleanup,
            metrics_secret,
            allowed_fxa_uids: ts.allowed_fxa_uids.iter().cloned().collect(),
            new_user_policy: db::NewUserPolicy {
                allowed: ts.allow_new_users,
                max_users: ts.max_users,
            },
            timer: Mutex::new(Some(timer)),
        }))
    }

    /// Health probes for `/__heartbeat__` (the database; never FxA).
    pub fn health_probes(&self) -> Vec<Arc<dyn HealthProbe>> {
        vec![Arc::new(DbProbe(self.db.clone()))]
    }

    /// Stops the clean-up task and closes the database pool; called once after the server stopped.
    pub async fn close(&self) {
        if let Some(timer) = self.timer.lock().ok().and_then(|mut t| t.take()) {
            timer.abort();
        }
        self.db.pool.close().await;
    }

    /// A short, stable stand-in for an FxA uid in logs (never the uid itself).
    fn log_id(&self, fxa_uid: &str) -> String {
        log_hash(fxa_uid)
    }
}

/// First 12 hex characters of SHA-256: enough to correlate log lines, useless to look up.
pub fn log_hash(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    hex::encode(&digest[..6])
}

/// The default `fxa_metrics_hash_secret`: an HMAC of a fixed label under the master secret,
/// so it is stable across restarts without another secret to manage.
fn derived_metrics_secret(settings: &crate::config::Settings) -> Result<String, String> {
    let (master, _) = crate::secret::master_secret(settings).map_err(|e| e.to_string())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(master.expose().as_bytes())
        .map_err(|e| format!("master secret: {e}"))?;
    mac.update(b"syncserver/tokenserver/fxa_metrics_hash_secret/v1");
    Ok(hex::encode(mac.finalize().into_bytes()))
}

struct DbProbe(Arc<db::Db>);

impl HealthProbe for DbProbe {
    fn name(&self) -> &'static str {
        "tokenserver_database"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.ping().await.map_err(|e| e.to_string()) })
    }
}

/// Tokenserver routes, also under `/token` (the old Python server's path). The public_url
/// path prefix is stripped by the server before routing.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for path in [
        "/1.0/{application}/{version}",
        "/token/1.0/{application}/{version}",
    ] {
        cfg.service(
            web::resource(path)
                .route(web::get().to(handler::get_token))
                .default_service(web::to(handler::method_not_allowed)),
        );
    }
}
