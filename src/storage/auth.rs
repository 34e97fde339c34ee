//! Hawk authentication of storage requests (PROTOCOL.md §3): token signature and expiry, the
//! uid and node the token was minted for, the request MAC over the effective URL, the
//! timestamp window, nonce replay and the payload hash.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use actix_web::HttpRequest;
use actix_web::http::header;

use super::Storage;
use super::error::StorageError;
use super::pool::lock;
use crate::auth::hawk::{self, HawkHeader};
use crate::auth::token::parse_token;

/// PYSS's grace period for polling `info/collections` with an expired token (§3.6).
const EXPIRED_TOKEN_GRACE_SECS: i64 = 7200;

/// Whether a request may use a recently expired token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Strict,
    /// `GET info/collections` only.
    Grace,
}

/// Verifies everything but the payload hash (the body is read after authentication);
/// returns the header so the caller can check the hash once it has the body.
pub fn authenticate(
    req: &HttpRequest,
    storage: &Storage,
    uid: u64,
    expiry: Expiry,
) -> Result<HawkHeader, StorageError> {
    let deny = |why: &str| StorageError::Unauthorized(why.to_string());
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| deny("no Authorization header"))?
        .to_str()
        .map_err(|_| deny("Authorization header is not ASCII"))?;
    let hawk = hawk::parse_authorization(value).map_err(|e| deny(&e.to_string()))?;
    let token =
        parse_token(&storage.inner.state.tokens, &hawk.id).map_err(|e| deny(&e.to_string()))?;

    let now_secs = storage.inner.state.clock.now_secs();
    if token.is_expired(now_secs) {
        let in_grace =
            expiry == Expiry::Grace && now_secs < token.payload.expires + EXPIRED_TOKEN_GRACE_SECS;
        if !in_grace {
            return Err(deny("token expired"));
        }
    }
    if token.payload.uid != uid {
        return Err(deny("uid in the URL is not the token's uid"));
    }
    let origin = storage
        .inner
        .state
        .origin(req)
        .ok_or_else(|| deny("cannot determine the request's host"))?;
    if token.payload.node != origin.base_url() {
        return Err(StorageError::Unauthorized(format!(
            "token is for node {}, this is {}",
            token.payload.node,
            origin.base_url()
        )));
    }

    let target = request_target(&origin.prefix, req);
    match hawk::verify_mac(
        &hawk,
        token.key.as_bytes(),
        req.method().as_str(),
        &target,
        &origin.host,
        origin.port,
    ) {
        Ok(()) => {}
        Err(hawk::HawkError::BadMac { normalized }) => {
            // The normalized string holds no secret; it shows what the server expected.
            tracing::debug!(normalized = %normalized.escape_debug(), "Hawk MAC mismatch");
            return Err(deny("bad MAC"));
        }
        // Any other failure must refuse too, never fall through to success.
        Err(e) => return Err(deny(&e.to_string())),
    }

    let skew =
        i64::try_from(storage.inner.state.settings.storage.hawk_max_skew).unwrap_or(i64::MAX);
    if (now_secs - hawk.ts).abs() > skew {
        return Err(deny("Hawk timestamp outside the allowed skew"));
    }
    if !storage.inner.nonces.first_use(&hawk, now_secs, skew) {
        return Err(deny("Hawk nonce replayed"));
    }
    crate::server::note_uid(req, uid);
    Ok(hawk)
}

/// §3.3: a `hash` attribute, when present, must match the body received.
pub fn check_body_hash(
    req: &HttpRequest,
    hawk: &HawkHeader,
    body: &[u8],
) -> Result<(), StorageError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    hawk::check_payload_hash(hawk, content_type, body)
        .map_err(|e| StorageError::Unauthorized(e.to_string()))
}

/// The request-target the client signed: public_url's path prefix + the raw path + raw query.
fn request_target(prefix: &str, req: &HttpRequest) -> String {
    let uri = req.uri();
    let path = uri.path();
    let mut target = String::with_capacity(prefix.len() + path.len() + 64);
    target.push_str(prefix);
    target.push_str(path);
    if let Some(q) = uri.query() {
        target.push('?');
        target.push_str(q);
    }
    target
}

/// Remembers `(token id, ts, nonce)` for the skew window so a captured request cannot be
/// replayed. Keys are keyed 64-bit hashes, grouped in sets by the time slice in which they
/// may be forgotten: expiry drops whole sets, so memory is ~10 bytes per remembered request
/// (a busy server remembers a minute of requests). Bounded; the oldest slice goes first.
pub struct NonceCache {
    hasher: RandomState,
    capacity: usize,
    inner: Mutex<NonceInner>,
}

/// Forget times are rounded up to multiples of a slice (seconds): a key may be kept up to a
/// slice longer than needed, which only costs memory. Slices are at least this long, and at
/// least a sixth of the window, so a lookup checks about a dozen sets whatever the skew.
const MIN_SLICE_SECS: i64 = 10;

#[derive(Default)]
struct NonceInner {
    /// Ordered by `until`, oldest first.
    slices: VecDeque<Slice>,
    len: usize,
}

/// Keys whose forget time falls in the slice that ends at `until`.
struct Slice {
    until: i64,
    keys: HashSet<u64>,
}

impl NonceCache {
    pub fn new(capacity: usize) -> NonceCache {
        NonceCache {
            hasher: RandomState::new(),
            capacity: capacity.max(1),
            inner: Mutex::new(NonceInner::default()),
        }
    }

    /// True the first time a nonce is seen within the window; records it.
    pub fn first_use(&self, hawk: &HawkHeader, now_secs: i64, window_secs: i64) -> bool {
        let key = self.hasher.hash_one((&hawk.id, hawk.ts, &hawk.nonce));
        // A ts stays acceptable until now = ts + window; remember the nonce that long.
        let forget_at = hawk.ts.saturating_add(window_secs).saturating_add(1);
        let mut inner = lock(&self.inner);
        inner.expire(now_secs);
        if inner.slices.iter().any(|s| s.keys.contains(&key)) {
            return false;
        }
        while inner.len >= self.capacity {
            inner.pop_oldest();
        }
        inner.insert(key, forget_at, (window_secs / 6).max(MIN_SLICE_SECS));
        true
    }
}

impl NonceInner {
    /// Drops the slices whose every key's forget time has passed.
    fn expire(&mut self, now_secs: i64) {
        while self.slices.front().is_some_and(|s| s.until <= now_secs) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some(slice) = self.slices.pop_front() {
            self.len -= slice.keys.len();
        }
    }

    fn insert(&mut self, key: u64, forget_at: i64, slice_secs: i64) {
        let until = forget_at
            .div_euclid(slice_secs)
            .saturating_add(i64::from(forget_at.rem_euclid(slice_secs) != 0))
            .saturating_mul(slice_secs);
        // Client timestamps vary within the skew window, so there are only a handful of
        // slices; the one for `until` is usually the last.
        let at = self.slices.partition_point(|s| s.until < until);
        if self.slices.get(at).is_none_or(|s| s.until != until) {
            self.slices.insert(
                at,
                Slice {
                    until,
                    keys: HashSet::new(),
                },
            );
        }
        if let Some(slice) = self.slices.get_mut(at)
            && slice.keys.insert(key)
        {
            self.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(nonce: &str, ts: i64) -> HawkHeader {
        HawkHeader {
            id: "id".into(),
            ts,
            nonce: nonce.into(),
            mac: String::new(),
            hash: None,
            ext: None,
        }
    }

    #[test]
    fn nonce_seen_twice_within_window_is_refused() {
        let cache = NonceCache::new(10);
        assert!(cache.first_use(&header("a", 100), 100, 60));
        assert!(!cache.first_use(&header("a", 100), 130, 60));
        assert!(cache.first_use(&header("b", 100), 130, 60));
        // After the window the entry is forgotten (the skew check refuses the ts anyway).
        assert!(cache.first_use(&header("a", 100), 200, 60));
    }

    #[test]
    fn full_cache_evicts_the_oldest_slice() {
        let cache = NonceCache::new(2);
        assert!(cache.first_use(&header("a", 100), 100, 60));
        assert!(cache.first_use(&header("b", 130), 100, 60));
        assert!(cache.first_use(&header("c", 130), 100, 60)); // full: a's slice goes
        assert_eq!(lock(&cache.inner).len, 2);
        assert!(!cache.first_use(&header("c", 130), 100, 60));
        assert!(!cache.first_use(&header("b", 130), 100, 60));
        assert!(
            cache.first_use(&header("a", 100), 100, 60),
            "a was forgotten"
        );
    }

    #[test]
    fn nonce_is_kept_until_its_timestamp_leaves_the_window() {
        let cache = NonceCache::new(100);
        // ts 105 is acceptable until now = 165; the slice rounding may keep it longer.
        assert!(cache.first_use(&header("a", 105), 100, 60));
        for now in [120, 150, 165] {
            assert!(!cache.first_use(&header("a", 105), now, 60), "now = {now}");
        }
        assert!(cache.first_use(&header("a", 105), 200, 60));
        assert_eq!(lock(&cache.inner).len, 1, "expired slices were dropped");
    }
}
