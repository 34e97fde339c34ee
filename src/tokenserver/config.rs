//! The `[tokenserver]` settings: where FxA is, the tokenserver database, who may sync and
//! for how long a token lasts.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::values::{InvalidSetting, Secret, list_or_json, string_list};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TokenserverSettings {
    /// Firefox Accounts OAuth server (Mozilla's production accounts by default).
    pub fxa_oauth_server_url: String,
    /// Pinned FxA public keys (JWKs); when empty they are fetched from `<fxa_oauth_server_url>/v1/jwks`.
    #[serde(deserialize_with = "list_or_json")]
    pub fxa_oauth_jwks: Vec<serde_json::Value>,
    /// Seconds between background refreshes of the fetched JWKS.
    pub jwks_refresh_interval: u64,
    /// Seconds before a request to FxA is given up (the client then gets 503).
    pub fxa_request_timeout: u64,
    /// Label appended to FxA uids to form the `users.email` lookup key; never change it.
    pub fxa_email_domain: String,
    /// Tokenserver database; unset = `sqlite://<data_dir>/tokenserver.db`.
    pub database_url: Option<String>,
    /// Users the single storage node may hold.
    pub node_capacity: i64,
    /// Seconds a replaced user's storage is kept before it is deleted.
    pub replaced_user_retention: u64,
    /// Whether accounts never seen before may start syncing.
    pub allow_new_users: bool,
    /// When non-empty, only these FxA uids may sync.
    #[serde(deserialize_with = "string_list")]
    pub allowed_fxa_uids: Vec<String>,
    /// Maximum number of users (0 = no limit).
    pub max_users: u64,
    /// Lifetime of an issued token in seconds.
    pub token_duration: u64,
    /// Secret for `hashed_fxa_uid`; unset = derived from the master secret.
    pub fxa_metrics_hash_secret: Option<Secret>,
}

impl Default for TokenserverSettings {
    fn default() -> Self {
        TokenserverSettings {
            fxa_oauth_server_url: "https://oauth.accounts.firefox.com".into(),
            fxa_oauth_jwks: Vec::new(),
            jwks_refresh_interval: 3600,
            fxa_request_timeout: 10,
            fxa_email_domain: "api.accounts.firefox.com".into(),
            database_url: None,
            node_capacity: i64::from(i32::MAX),
            replaced_user_retention: 86_400,
            allow_new_users: true,
            allowed_fxa_uids: Vec::new(),
            max_users: 0,
            token_duration: 3600,
            fxa_metrics_hash_secret: None,
        }
    }
}

impl TokenserverSettings {
    /// Keys of this section that are unset by default (absent from the serialized defaults).
    pub const OPTIONAL_KEYS: &[&str] = &["database_url", "fxa_metrics_hash_secret"];

    pub fn validate(&self) -> Result<(), InvalidSetting> {
        Url::parse(&self.fxa_oauth_server_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                InvalidSetting::new(
                    "tokenserver.fxa_oauth_server_url",
                    "expected an http(s) URL such as https://oauth.accounts.firefox.com",
                )
            })?;
        for jwk in &self.fxa_oauth_jwks {
            if !jwk.is_object() {
                return Err(InvalidSetting::new(
                    "tokenserver.fxa_oauth_jwks",
                    "expected a list of JWK objects (tables)",
                ));
            }
        }
        if self.token_duration == 0 {
            return Err(InvalidSetting::new(
                "tokenserver.token_duration",
                "expected a positive number of seconds",
            ));
        }
        if self.node_capacity <= 0 {
            return Err(InvalidSetting::new(
                "tokenserver.node_capacity",
                "expected a positive number of users",
            ));
        }
        Ok(())
    }
}
