//! Verifying Firefox Accounts OAuth access tokens (docs/protocol.md §1.3).
//!
//! JWTs are checked locally against FxA's public keys: pinned in the configuration, or
//! fetched lazily from `<fxa_oauth_server_url>/v1/jwks`, cached, refreshed in the
//! background when older than `jwks_refresh_interval`, and refetched (at most once a minute)
//! for an unknown `kid`. Only a token that is not a JWT, or having no usable key at all,
//! falls back to `POST /v1/verify`. Successful verifications are cached by a hash of the
//! token until the token expires, so an hourly token costs one verification.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lru::LruCache;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::auth::fxa_jwt::{self, Jwk, JwtError};
use crate::clock::SharedClock;
use crate::tokenserver::config::TokenserverSettings;

/// An unknown `kid` triggers at most one JWKS fetch per this many milliseconds.
const REFETCH_MIN_INTERVAL_MS: i64 = 60_000;
/// `/v1/verify` answers carry no expiry; they are trusted this long.
const REMOTE_RESULT_TTL_MS: i64 = 5 * 60_000;
/// Verified tokens remembered at once (one per device and hour is typical).
const CACHE_CAPACITY: usize = 10_000;

/// Who the token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub fxa_uid: String,
    /// `fxa-generation`, as sent (0 is left to the caller).
    pub generation: Option<i64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// A definite rejection → 401 invalid-credentials.
    #[error("token rejected: {0}")]
    Rejected(String),
    /// FxA could not be asked → 503.
    #[error("{0}")]
    Unavailable(String),
}

/// The fetched key set and when it was last asked for.
#[derive(Default)]
struct FetchedKeys {
    keys: Arc<Vec<Jwk>>,
    /// Clock time of the last successful fetch.
    fetched_at: Option<i64>,
    /// Clock time of the last attempt, successful or not (rate limit).
    attempted_at: Option<i64>,
}

struct CachedVerification {
    verified: Verified,
    expires_at_ms: i64,
}

pub struct FxaVerifier {
    http: reqwest::Client,
    server_url: String,
    /// Keys from `tokenserver.fxa_oauth_jwks`; when present nothing is fetched.
    pinned: Arc<Vec<Jwk>>,
    fetched: RwLock<FetchedKeys>,
    /// One JWKS fetch at a time; others wait and then use its result.
    fetch_lock: tokio::sync::Mutex<()>,
    refresh_interval_ms: i64,
    cache: Mutex<LruCache<[u8; 32], CachedVerification>>,
    clock: SharedClock,
}

impl FxaVerifier {
    pub fn new(settings: &TokenserverSettings, clock: SharedClock) -> Result<Arc<Self>, String> {
        let pinned = settings
            .fxa_oauth_jwks
            .iter()
            .map(|v| serde_json::from_value::<Jwk>(v.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("tokenserver.fxa_oauth_jwks: not a JWK: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.fxa_request_timeout.max(1)))
            .user_agent(concat!("syncserver/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for FxA: {e}"))?;
        let capacity = NonZeroUsize::new(CACHE_CAPACITY).unwrap_or(NonZeroUsize::MIN);
        Ok(Arc::new(FxaVerifier {
            http,
            server_url: settings
                .fxa_oauth_server_url
                .trim_end_matches('/')
                .to_string(),
            pinned: Arc::new(pinned),
            fetched: RwLock::new(FetchedKeys::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
            refresh_interval_ms: i64::try_from(settings.jwks_refresh_interval)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
            cache: Mutex::new(LruCache::new(capacity)),
            clock,
        }))
    }

    /// Verifies `token`, from the cache when it was verified before.
    pub async fn verify(self: &Arc<Self>, token: &str) -> Result<Verified, VerifyError> {
        let key = cache_key(token);
        let now = self.clock.now_ms();
        if let Some(hit) = self.cached(&key, now) {
            return Ok(hit);
        }
        let (verified, expires_at_ms) = self.verify_uncached(token).await?;
        if expires_at_ms > now
            && let Ok(mut cache) = self.cache.lock()
        {
            cache.put(
                key,
                CachedVerification {
                    verified: verified.clone(),
                    expires_at_ms,
                },
            );
        }
        Ok(verified)
    }

    fn cached(&self, key: &[u8; 32], now: i64) -> Option<Verified> {
        let mut cache = self.cache.lock().ok()?;
        match cache.get(key) {
            Some(hit) if hit.expires_at_ms > now => Some(hit.verified.clone()),
            Some(_) => {
                cache.pop(key);
                None
            }
            None => None,
        }
    }

    async fn verify_uncached(
        self: &Arc<Self>,
        token: &str,
    ) -> Result<(Verified, i64), VerifyError> {
        // With no keys, a JWT fails on its algorithm or on the missing keys, while anything
        // else is "not a JWT" and goes to FxA without our fetching keys for it.
        if fxa_jwt::verify_access_token(token, &[], self.now_secs()) == Err(JwtError::NotAJwt) {
            return self.verify_remote(token).await;
        }
        let keys = self.current_keys().await;
        match self.verify_local(token, &keys) {
            Err(JwtError::UnknownKid(_)) if self.pinned.is_empty() => {
                let keys = self.refetch_for_unknown_kid(&keys).await;
                self.finish_local(token, &keys).await
            }
            _ => self.finish_local(token, &keys).await,
        }
    }

    /// Local result, with the remote fallback for "no usable keys at all".
    async fn finish_local(
        self: &Arc<Self>,
        token: &str,
        keys: &[Jwk],
    ) -> Result<(Verified, i64), VerifyError> {
        match self.verify_local(token, keys) {
            Ok(claims) => Ok((
                Verified {
                    fxa_uid: claims.fxa_uid,
                    generation: claims.generation,
                },
                self.cache_until(token),
            )),
            Err(e) if e.wants_remote_verify() => self.verify_remote(token).await,
            Err(e) => Err(VerifyError::Rejected(e.to_string())),
        }
    }

    fn verify_local(&self, token: &str, keys: &[Jwk]) -> Result<fxa_jwt::AccessClaims, JwtError> {
        fxa_jwt::verify_access_token(token, keys, self.now_secs())
    }

    fn now_secs(&self) -> u64 {
        u64::try_from(self.clock.now_secs()).unwrap_or(0)
    }

    /// Pinned keys, or the fetched set (fetching it the first time; refreshing it in the
    /// background once it is older than the refresh interval).
    async fn current_keys(self: &Arc<Self>) -> Arc<Vec<Jwk>> {
        if !self.pinned.is_empty() {
            return self.pinned.clone();
        }
        let now = self.clock.now_ms();
        let (keys, fetched_at, attempted_at) = self.snapshot();
        match fetched_at {
            Some(at) if now.saturating_sub(at) >= self.refresh_interval_ms => {
                if attempted_at.is_none_or(|a| now.saturating_sub(a) >= REFETCH_MIN_INTERVAL_MS) {
                    let this = Arc::clone(self);
                    tokio::spawn(async move { this.fetch_jwks(attempted_at).await });
                }
                keys
            }
            Some(_) => keys,
            // Never fetched: this request needs them now (failed attempts are retried at
            // most once a minute; meanwhile /v1/verify is used).
            None if attempted_at
                .is_none_or(|a| now.saturating_sub(a) >= REFETCH_MIN_INTERVAL_MS) =>
            {
                self.fetch_jwks(attempted_at).await
            }
            None => keys,
        }
    }

    async fn refetch_for_unknown_kid(&self, seen: &Arc<Vec<Jwk>>) -> Arc<Vec<Jwk>> {
        let (keys, _, attempted_at) = self.snapshot();
        if !Arc::ptr_eq(&keys, seen) {
            return keys; // someone else fetched meanwhile
        }
        let now = self.clock.now_ms();
        if attempted_at.is_some_and(|a| now.saturating_sub(a) < REFETCH_MIN_INTERVAL_MS) {
            return keys;
        }
        self.fetch_jwks(attempted_at).await
    }

    fn snapshot(&self) -> (Arc<Vec<Jwk>>, Option<i64>, Option<i64>) {
        match self.fetched.read() {
            Ok(f) => (f.keys.clone(), f.fetched_at, f.attempted_at),
            Err(_) => (Arc::new(Vec::new()), None, None),
        }
    }

    /// Fetches the JWKS unless another fetch happened since `seen_attempt`; returns the
    /// keys in effect afterwards (the old ones when the fetch failed).
    async fn fetch_jwks(&self, seen_attempt: Option<i64>) -> Arc<Vec<Jwk>> {
        let _one_at_a_time = self.fetch_lock.lock().await;
        let (keys, _, attempted_at) = self.snapshot();
        if attempted_at != seen_attempt && attempted_at.is_some() {
            return keys;
        }
        let now = self.clock.now_ms();
        let result = self.download_jwks().await;
        let Ok(mut state) = self.fetched.write() else {
            return keys;
        };
        state.attempted_at = Some(now);
        match result {
            Ok(new_keys) => {
                tracing::info!(keys = new_keys.len(), "fetched FxA public keys");
                state.keys = Arc::new(new_keys);
                state.fetched_at = Some(now);
            }
            Err(e) => tracing::warn!(error = %e, "cannot fetch FxA public keys"),
        }
        state.keys.clone()
    }

    async fn download_jwks(&self) -> Result<Vec<Jwk>, String> {
        #[derive(Deserialize)]
        struct KeySet {
            keys: Vec<serde_json::Value>,
        }
        let url = format!("{}/v1/jwks", self.server_url);
        let res = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("{url}: HTTP {}", res.status()));
        }
        let set: KeySet = res.json().await.map_err(|e| format!("{url}: {e}"))?;
        // A key we cannot parse is skipped, not fatal to the others.
        Ok(set
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value(k).ok())
            .collect())
    }

    /// `POST /v1/verify` (§1.3.2): network trouble and FxA's own 5xx are 503, anything
    /// else that is not a good answer is a rejection.
    async fn verify_remote(&self, token: &str) -> Result<(Verified, i64), VerifyError> {
        #[derive(Deserialize)]
        struct Answer {
            user: String,
            scope: Vec<String>,
            #[serde(default)]
            generation: Option<i64>,
        }
        let url = format!("{}/v1/verify", self.server_url);
        let res = self
            .http
            .post(&url)
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .map_err(|e| VerifyError::Unavailable(format!("{url}: {}", without_url(&e))))?;
        let status = res.status();
        if status.is_server_error() {
            return Err(VerifyError::Unavailable(format!("{url}: HTTP {status}")));
        }
        if !status.is_success() {
            return Err(VerifyError::Rejected(format!("/v1/verify: HTTP {status}")));
        }
        let answer: Answer = res
            .json()
            .await
            .map_err(|e| VerifyError::Rejected(format!("/v1/verify: bad answer: {e}")))?;
        if answer.user.is_empty() || !fxa_jwt::scopes_contain_oldsync(&answer.scope) {
            return Err(VerifyError::Rejected(
                "/v1/verify: no user or no oldsync scope".into(),
            ));
        }
        Ok((
            Verified {
                fxa_uid: answer.user,
                generation: answer.generation,
            },
            self.cache_until(token),
        ))
    }

    /// How long a verified token may be served from the cache: until its own `exp` when
    /// it is a JWT (whichever way it was verified), else `REMOTE_RESULT_TTL_MS`.
    fn cache_until(&self, token: &str) -> i64 {
        jwt_exp_ms(token).unwrap_or(self.clock.now_ms() + REMOTE_RESULT_TTL_MS)
    }
}

/// SHA-256 of the token: the cache never holds the token itself.
fn cache_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The `exp` claim of an already verified JWT, in ms.
fn jwt_exp_ms(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let exp = claims.get("exp")?;
    let secs = exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))?;
    secs.checked_mul(1000)
}

/// A short reason for the log (the URL is already part of the message).
fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"exp":1700000000,"sub":"x"}"#);
        assert_eq!(
            jwt_exp_ms(&format!("h.{payload}.s")),
            Some(1_700_000_000_000)
        );
        assert_eq!(jwt_exp_ms("opaque"), None);
    }

    #[test]
    fn cache_key_is_a_hash() {
        let k = cache_key("token");
        assert_eq!(hex::encode(k), hex::encode(Sha256::digest(b"token")));
        assert_ne!(cache_key("token"), cache_key("token2"));
    }
}
