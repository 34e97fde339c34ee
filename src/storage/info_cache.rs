//! A process-wide cache of rendered `info/collections` answers.
//!
//! Firefox asks for `info/collections` at the start of every sync, usually of a user whose
//! data has not changed; a hit answers without a blocking thread, the user's lock or opening
//! the user's file. Correctness rests on two rules, both enforced by the callers in
//! `storage/mod.rs`: entries are filled only while holding the user's lock, and every write
//! path removes the user's entry while holding the lock, before it changes anything. So an
//! entry, when present, is the state after the last completed write.

use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::bso::write_json_str;
use super::pool::lock;
use super::timestamp::write_ts;

/// Rendered bodies kept at most (bytes, plus a per-entry overhead below): ~10,000 typical
/// users in a few MiB, so the cache stays small against the memory target.
const CACHE_BYTES: usize = 4 * 1024 * 1024;
/// Bookkeeping per entry besides the body (key, Arc, LRU node), counted against the bound.
const ENTRY_OVERHEAD: usize = 96;

/// One user's `info/collections` answer: body, `X-Last-Modified`, `X-Weave-Records`.
#[derive(Debug)]
pub struct CollectionsInfo {
    pub body: String,
    pub modified: i64,
    pub records: usize,
}

impl CollectionsInfo {
    /// `{"name":modified,…}` with two-decimal timestamps, in the rows' order.
    pub fn render(rows: &[(String, i64)], modified: i64) -> CollectionsInfo {
        let mut body = String::with_capacity(16 + rows.len() * 32);
        body.push('{');
        for (i, (name, t)) in rows.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            write_json_str(&mut body, name);
            body.push(':');
            write_ts(&mut body, *t);
        }
        body.push('}');
        CollectionsInfo {
            body,
            modified,
            records: rows.len(),
        }
    }

    fn cost(&self) -> usize {
        self.body.len() + ENTRY_OVERHEAD
    }
}

pub struct InfoCache {
    inner: Mutex<Entries>,
}

struct Entries {
    lru: LruCache<u64, Arc<CollectionsInfo>>,
    bytes: usize,
}

impl InfoCache {
    pub fn new() -> InfoCache {
        InfoCache {
            inner: Mutex::new(Entries {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    pub fn get(&self, uid: u64) -> Option<Arc<CollectionsInfo>> {
        lock(&self.inner).lru.get(&uid).cloned()
    }

    /// Stores the user's answer. Call only while holding the user's lock.
    pub fn insert(&self, uid: u64, info: Arc<CollectionsInfo>) {
        let cost = info.cost();
        if cost > CACHE_BYTES / 64 {
            // A user with an unusually large answer is not worth many others' entries.
            return;
        }
        let mut e = lock(&self.inner);
        if let Some(old) = e.lru.put(uid, info) {
            e.bytes -= old.cost();
        }
        e.bytes += cost;
        while e.bytes > CACHE_BYTES {
            match e.lru.pop_lru() {
                Some((_, gone)) => e.bytes -= gone.cost(),
                None => break,
            }
        }
    }

    /// Drops the user's answer. Call while holding the user's lock, before any change.
    pub fn forget(&self, uid: u64) {
        let mut e = lock(&self.inner);
        if let Some(gone) = e.lru.pop(&uid) {
            e.bytes -= gone.cost();
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        lock(&self.inner).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(n: usize) -> Arc<CollectionsInfo> {
        let rows: Vec<(String, i64)> = (0..n).map(|i| (format!("c{i}"), 1_230)).collect();
        Arc::new(CollectionsInfo::render(&rows, 1_230))
    }

    #[test]
    fn renders_two_decimals_and_counts_records() {
        let rows = vec![
            ("bookmarks".to_string(), 1_700_000_000_250),
            ("h".into(), 10),
        ];
        let i = CollectionsInfo::render(&rows, 1_700_000_000_250);
        assert_eq!(i.body, r#"{"bookmarks":1700000000.25,"h":0.01}"#);
        assert_eq!(i.records, 2);
        assert_eq!(CollectionsInfo::render(&[], 0).body, "{}");
    }

    #[test]
    fn forget_and_replace_keep_the_byte_count() {
        let cache = InfoCache::new();
        cache.insert(1, info(3));
        cache.insert(1, info(5));
        assert_eq!(cache.bytes(), info(5).cost());
        cache.forget(1);
        cache.forget(1);
        assert!(cache.get(1).is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn stays_within_its_byte_bound() {
        let cache = InfoCache::new();
        let per = info(4).cost();
        let fits = CACHE_BYTES / per;
        for uid in 0..(fits as u64 + 100) {
            cache.insert(uid, info(4));
        }
        assert!(cache.bytes() <= CACHE_BYTES);
        assert!(cache.get(0).is_none(), "oldest went first");
        assert!(cache.get(fits as u64 + 99).is_some());
    }
}
