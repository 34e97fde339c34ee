//! Open user databases: a bounded LRU of connections plus per-user locks that outlive
//! eviction.
//!
//! Each user has one slot, `Arc<Mutex<Option<UserDb>>>`; the mutex is the user's lock and
//! serializes all of that user's requests. The LRU holds at most `capacity` slots; an evicted
//! slot that a request still holds stays reachable through the weak lock map, so a second
//! request for the same user finds the same lock, and the connection closes when the last
//! holder lets go.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use lru::LruCache;

use super::db::UserDb;

pub type Slot = Arc<Mutex<Option<UserDb>>>;

pub struct Pool {
    inner: Mutex<PoolInner>,
}

struct PoolInner {
    lru: LruCache<u64, Slot>,
    locks: HashMap<u64, Weak<Mutex<Option<UserDb>>>>,
}

impl Pool {
    pub fn new(capacity: usize) -> Pool {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Pool {
            inner: Mutex::new(PoolInner {
                lru: LruCache::new(capacity),
                locks: HashMap::new(),
            }),
        }
    }

    /// The user's slot (its lock and, once opened, its connection), marked most recently used.
    /// Call from a blocking thread: an evicted connection may close (checkpoint) here.
    pub fn slot(&self, uid: u64) -> Slot {
        let (slot, evicted) = {
            let mut inner = lock(&self.inner);
            if let Some(slot) = inner.lru.get(&uid) {
                return slot.clone();
            }
            let slot = match inner.locks.get(&uid).and_then(Weak::upgrade) {
                Some(live) => live,
                None => {
                    let fresh: Slot = Arc::new(Mutex::new(None));
                    inner.locks.insert(uid, Arc::downgrade(&fresh));
                    fresh
                }
            };
            let evicted = inner.lru.push(uid, slot.clone());
            inner.prune_dead_locks();
            (slot, evicted)
        };
        // Dropped outside the pool lock: closing a connection does I/O.
        drop(evicted);
        slot
    }

    /// The user's lock without touching the LRU order (for background work): the pooled
    /// slot if there is one, else the live lock a request holds, else a fresh lock.
    pub fn lock_only(&self, uid: u64) -> Slot {
        let mut inner = lock(&self.inner);
        if let Some(slot) = inner.lru.peek(&uid) {
            return slot.clone();
        }
        if let Some(live) = inner.locks.get(&uid).and_then(Weak::upgrade) {
            return live;
        }
        let fresh: Slot = Arc::new(Mutex::new(None));
        inner.locks.insert(uid, Arc::downgrade(&fresh));
        inner.prune_dead_locks();
        fresh
    }

    /// Number of connections currently held by the LRU (open or about to be).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.inner).lru.len()
    }

    /// Drops every pooled slot; connections close as their last holders finish.
    pub fn clear(&self) {
        let drained: Vec<Slot> = {
            let mut inner = lock(&self.inner);
            let mut out = Vec::with_capacity(inner.lru.len());
            while let Some((_, slot)) = inner.lru.pop_lru() {
                out.push(slot);
            }
            out
        };
        for slot in drained {
            // Close the connection now rather than whenever the Arc goes.
            lock(&slot).take();
        }
    }
}

impl PoolInner {
    /// Forgets locks nobody holds any more, so the map stays proportional to the LRU.
    fn prune_dead_locks(&mut self) {
        if self.locks.len() > 2 * self.lru.cap().get() + 64 {
            self.locks.retain(|_, w| w.strong_count() > 0);
        }
    }
}

/// Locks a mutex, recovering from poisoning: a panicking request must not lock a user out
/// (SQLite rolled its transaction back when the panic unwound).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicted_slot_in_use_is_shared_not_duplicated() {
        let pool = Pool::new(2);
        let held = pool.slot(1);
        pool.slot(2);
        pool.slot(3); // evicts 1 from the LRU while `held` is still in use
        assert_eq!(pool.len(), 2);
        let again = pool.slot(1);
        assert!(Arc::ptr_eq(&held, &again), "same lock after eviction");
    }

    #[test]
    fn unused_evicted_slot_is_dropped() {
        let pool = Pool::new(1);
        let weak = Arc::downgrade(&pool.slot(1));
        pool.slot(2);
        assert!(weak.upgrade().is_none());
    }
}
