//! Tokenserver (being built; serves no routes yet).

use actix_web::web;

use crate::server::AppState;
use crate::storage::Storage;

/// Per-process tokenserver state: database pool, FxA verifier and caches.
pub struct Tokenserver {}

impl Tokenserver {
    /// Connects the database, runs migrations, registers this node and starts background tasks.
    pub async fn start(
        _state: web::Data<AppState>,
        _storage: web::Data<Storage>,
    ) -> Result<web::Data<Tokenserver>, String> {
        Ok(web::Data::new(Tokenserver {}))
    }

    /// Health probes for `/__heartbeat__` (the database).
    pub fn health_probes(&self) -> Vec<std::sync::Arc<dyn crate::health::HealthProbe>> {
        Vec::new()
    }

    /// Closes the database pool; called once after the server stopped.
    pub async fn close(&self) {}
}

/// `syncserver users list`: a table of users; returns the text to print.
pub async fn list_users(_settings: &crate::config::Settings) -> Result<String, String> {
    Err("users are not available yet".into())
}

/// `syncserver users delete <uid|fxa-uid>`: removes the user's rows and storage; returns
/// what was removed. `confirmed` is false unless `--yes` was given or the operator agreed.
pub async fn delete_user(
    _settings: &crate::config::Settings,
    _who: &str,
    _confirmed: bool,
) -> Result<String, String> {
    Err("users are not available yet".into())
}

/// Tokenserver routes; `Tokenserver` is registered as app data by the server.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
