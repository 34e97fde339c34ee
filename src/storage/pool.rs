//! Open user databases: a bounded LRU of connections plus per-user locks that outlive
//! eviction.
//!
//! Each user has one slot, `Arc<Mutex<Option<UserDb>>>`; the mutex is the user's lock and
//! serializes all of that user's requests. The LRU holds at most `capacity` slots; an evicted
//! slot that a request still holds stays reachable through the weak lock map, so a second
//! request for the same user finds the same lock.
//!
//! An evicted connection whose close only releases memory and file descriptors is closed by
//! the request that evicted it, when nobody holds that user's lock. One whose close folds
//! the WAL (several fsyncs; see `Drop for UserDb`), or whose user is busy, goes to dedicated
//! closer threads: a cold request must not wait for another user's checkpoint. Either way a
//! connection is closed only under its user's lock, and not when the slot is back in the
//! LRU: a connection keeps its file locked until it closes (exclusive locking mode), so a
//! request reopening the file while an old connection still closed outside the lock would
//! wait on that lock.
//!
//! Invariant: a slot holding a connection is in the LRU or queued to the closer.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};
use std::thread::JoinHandle;

use lru::LruCache;

use super::db::UserDb;

pub type Slot = Arc<Mutex<Option<UserDb>>>;

/// Closer threads. Closing is mostly waiting for fsync, and one thread closes fewer files
/// per second than a busy server evicts (measured: a third of the closes then fell back to
/// request threads); a few threads keep up without adding CPU work.
pub(super) const CLOSERS: usize = 3;
/// Evicted slots waiting for the closer. Bounded so a disk slower than the eviction rate
/// cannot pile up open files; when full, the evicting thread closes the slot itself.
pub(super) const CLOSE_QUEUE: usize = 64;

pub struct Pool {
    inner: Arc<Mutex<PoolInner>>,
    closer: Mutex<Option<Closer>>,
}

struct PoolInner {
    lru: LruCache<u64, Slot>,
    locks: HashMap<u64, Weak<Mutex<Option<UserDb>>>>,
}

/// The closer threads and the sending end of their shared queue.
struct Closer {
    queue: SyncSender<Job>,
    threads: Vec<JoinHandle<()>>,
}

enum Job {
    Close(u64, Slot),
    /// One per closer thread: each waits at the barrier, so once all passed it, every job
    /// queued before them is done (tests wait on it instead of sleeping).
    #[cfg(test)]
    Flush(Arc<std::sync::Barrier>),
}

impl Pool {
    pub fn new(capacity: usize) -> Pool {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        let inner = Arc::new(Mutex::new(PoolInner {
            lru: LruCache::new(capacity),
            locks: HashMap::new(),
        }));
        let closer = start_closer(&inner);
        Pool {
            inner,
            closer: Mutex::new(closer),
        }
    }

    /// The user's slot (its lock and, once opened, its connection), marked most recently used.
    /// An evicted slot goes to the closer threads.
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
        // `push` also returns the pushed entry when the key was already there; that is not
        // an eviction (it cannot happen after the `get` above, but stay safe).
        if let Some((old_uid, old)) = evicted
            && !Arc::ptr_eq(&old, &slot)
        {
            self.retire(old_uid, old);
        }
        slot
    }

    /// Called by a request that just opened a connection into `slot`, holding its lock. If
    /// the slot was evicted while the request waited for the lock, nobody would close the new
    /// connection: queue the slot to the closer. Returns false when that was not possible;
    /// the caller must then close the connection itself before it lets go of the lock.
    pub fn track_opened(&self, uid: u64, slot: &Slot) -> bool {
        if lock(&self.inner).holds(uid, slot) {
            return true;
        }
        // Never close here: the caller holds this slot's lock.
        self.try_queue(Job::Close(uid, slot.clone())).is_none()
    }

    /// Closes a slot that left the LRU here when that is cheap (see `close_if_cheap`), else
    /// hands it to the closer; closes it here all the same when there is no closer or its
    /// queue is full (the caller holds no user lock).
    fn retire(&self, uid: u64, slot: Slot) {
        if close_if_cheap(&self.inner, uid, &slot) {
            return;
        }
        if let Some(Job::Close(uid, slot)) = self.try_queue(Job::Close(uid, slot)) {
            close_evicted(&self.inner, uid, &slot);
        }
    }

    /// Queues a job without blocking; gives it back when there is no room or no closer.
    fn try_queue(&self, job: Job) -> Option<Job> {
        match &*lock(&self.closer) {
            Some(closer) => match closer.queue.try_send(job) {
                Ok(()) => None,
                Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => Some(job),
            },
            None => Some(job),
        }
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

    /// Waits until the closer has handled every slot queued so far.
    #[cfg(test)]
    pub fn flush(&self) {
        let queue = lock(&self.closer).as_ref().map(|c| c.queue.clone());
        if let Some(queue) = queue {
            let barrier = Arc::new(std::sync::Barrier::new(CLOSERS + 1));
            for _ in 0..CLOSERS {
                if queue.send(Job::Flush(barrier.clone())).is_err() {
                    return;
                }
            }
            barrier.wait();
        }
    }

    /// Shutdown: lets the closer finish its queue and stops it, then closes every pooled
    /// connection, each under its user's lock.
    pub fn clear(&self) {
        // Taken before the join, not in the `if let`: its guard would live through the
        // join, while a closer thread may wait for a user's lock held by a request that
        // is about to queue an eviction, which takes this mutex: neither would finish.
        let closer = lock(&self.closer).take();
        if let Some(closer) = closer {
            // Dropping the sender ends the threads once the queue is empty.
            drop(closer.queue);
            for thread in closer.threads {
                if thread.join().is_err() {
                    tracing::warn!("a database closer thread panicked");
                }
            }
        }
        let drained: Vec<Slot> = {
            let mut inner = lock(&self.inner);
            let mut out = Vec::with_capacity(inner.lru.len());
            while let Some((_, slot)) = inner.lru.pop_lru() {
                out.push(slot);
            }
            out
        };
        for slot in drained {
            // Close the connection now rather than whenever the Arc goes; the most recently
            // active users' files are left self-contained (WAL folded in) after a shutdown.
            if let Some(mut db) = lock(&slot).take() {
                db.fold_wal_on_close();
            }
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

    /// Whether the LRU holds exactly this slot for the user.
    fn holds(&self, uid: u64, slot: &Slot) -> bool {
        self.lru.peek(&uid).is_some_and(|s| Arc::ptr_eq(s, slot))
    }
}

/// Starts the closer threads; without any (spawn failed), evicting threads close slots.
fn start_closer(inner: &Arc<Mutex<PoolInner>>) -> Option<Closer> {
    let (queue, jobs) = mpsc::sync_channel(CLOSE_QUEUE);
    let jobs = Arc::new(Mutex::new(jobs));
    let mut threads = Vec::with_capacity(CLOSERS);
    for i in 0..CLOSERS {
        let (pool, jobs) = (inner.clone(), jobs.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("db-closer-{i}"))
            .spawn(move || run_closer(&pool, &jobs));
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => tracing::warn!(error = %e, "cannot start a database closer thread"),
        }
    }
    if threads.len() < CLOSERS {
        // `flush` counts on all of them; stop the ones that started and close inline.
        drop(queue);
        for thread in threads {
            let _ = thread.join();
        }
        return None;
    }
    Some(Closer { queue, threads })
}

fn run_closer(pool: &Mutex<PoolInner>, jobs: &Mutex<Receiver<Job>>) {
    loop {
        // The receiver's lock is held only while waiting for the next job, not while closing.
        let next = lock(jobs).recv();
        match next {
            Ok(Job::Close(uid, slot)) => close_evicted(pool, uid, &slot),
            #[cfg(test)]
            Ok(Job::Flush(barrier)) => {
                barrier.wait();
            }
            Err(_) => return,
        }
    }
}

/// Closes an evicted slot's connection under the user's lock (waiting for a request that
/// still uses it), unless the slot went back into the LRU meanwhile. Lock order: user lock,
/// then pool lock; nothing takes them the other way round.
fn close_evicted(pool: &Mutex<PoolInner>, uid: u64, slot: &Slot) {
    let mut guard = lock(slot);
    if lock(pool).holds(uid, slot) {
        return;
    }
    // Drops the connection (and any checkpoint) while the lock is held.
    guard.take();
}

/// Closes an evicted slot's connection on the evicting thread when nobody holds the user's
/// lock and the close only releases memory and file descriptors (no WAL fold). At 10,000
/// users almost every sync evicts a file, and handing each to a closer thread cost about
/// three context switches. Returns whether the slot needs nothing more; a busy user or a
/// close that folds (fsyncs, which a request must not wait for) goes to the closer.
fn close_if_cheap(pool: &Mutex<PoolInner>, uid: u64, slot: &Slot) -> bool {
    let mut guard = match slot.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return false,
    };
    // Same lock order as `close_evicted`: user lock, then pool lock.
    if lock(pool).holds(uid, slot) {
        return true;
    }
    match guard.as_ref() {
        Some(db) if db.close_folds() => false,
        _ => {
            guard.take();
            true
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Ends the closer once its queue is empty; not joined here because a drop may run
        // on an async worker. `clear` is the orderly shutdown that waits.
        if let Some(closer) = lock(&self.closer).take() {
            drop(closer.queue);
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
    use crate::storage::config::SqliteSynchronous;

    fn open(dir: &tempfile::TempDir, uid: u64) -> UserDb {
        UserDb::open(
            &dir.path().join(format!("{uid}.db")),
            SqliteSynchronous::Full,
            0,
        )
        .expect("open")
    }

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
        pool.flush();
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn evicted_slot_in_use_is_not_closed_under_the_holder_but_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = Pool::new(1);
        let slot = pool.slot(1);
        let mut guard = lock(&slot);
        *guard = Some(open(&dir, 1));
        assert!(pool.track_opened(1, &slot));
        pool.slot(2); // evicts user 1 while its request holds the lock
        // The closer is now waiting for the lock; the holder's connection still works.
        let db = guard.as_ref().expect("still open under the holder");
        let one: i64 = db
            .conn
            .query_row("SELECT 1", [], |r| r.get(0))
            .expect("usable");
        assert_eq!(one, 1);
        drop(guard);
        pool.flush();
        assert!(lock(&slot).is_none(), "closed once the holder let go");
    }

    /// Occupies every closer thread: evicts users whose locks helper threads hold until
    /// `release` is dropped, so each closer waits for one. The pool then holds `next`.
    fn block_closers(pool: &Pool, next: u64) -> std::sync::mpsc::Sender<()> {
        use std::sync::mpsc::channel;
        let (release, released) = channel::<()>();
        let released = Arc::new(Mutex::new(released));
        let uids: Vec<u64> = (100..100 + CLOSERS as u64).chain([next]).collect();
        for pair in uids.windows(2) {
            let slot = pool.slot(pair[0]);
            let (locked, is_locked) = channel();
            let released = released.clone();
            std::thread::spawn(move || {
                let _guard = lock(&slot);
                let _ = locked.send(());
                let _ = lock(&released).recv();
            });
            is_locked.recv().expect("helper holds the lock");
            pool.slot(pair[1]); // evicts pair[0], whose lock is held: queued to a closer
        }
        release
    }

    #[test]
    fn idle_evicted_file_is_closed_by_the_eviction_and_a_folding_one_by_the_closer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = Pool::new(1);
        let release = block_closers(&pool, 1);
        let idle = pool.slot(1);
        *lock(&idle) = Some(open(&dir, 1));
        let folding = pool.slot(2); // evicts 1: nothing to fold, so closed right here
        assert!(lock(&idle).is_none(), "closed without waiting for a closer");
        let mut db = open(&dir, 2);
        db.fold_wal_on_close();
        *lock(&folding) = Some(db);
        pool.slot(3); // evicts 2, whose close folds: that is the closers' work
        assert!(lock(&folding).is_some(), "left to the (busy) closers");
        drop(release);
        pool.flush();
        assert!(lock(&folding).is_none(), "closed by a closer");
    }

    #[test]
    fn evicted_slot_back_in_the_lru_stays_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = Pool::new(1);
        let slot = pool.slot(1);
        let guard = {
            let mut g = lock(&slot);
            *g = Some(open(&dir, 1));
            g
        };
        pool.slot(2); // evicts 1 ...
        let again = pool.slot(1); // ... and a new request brings it back (evicting 2)
        assert!(Arc::ptr_eq(&slot, &again));
        drop(guard);
        pool.flush();
        assert!(lock(&slot).is_some(), "a pooled connection is not closed");
    }

    #[test]
    fn connection_opened_after_eviction_is_closed_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = Pool::new(1);
        let slot = pool.slot(1);
        pool.slot(2); // evicted before the request got the lock
        pool.flush(); // the closer found nothing to close
        let mut guard = lock(&slot);
        *guard = Some(open(&dir, 1));
        assert!(pool.track_opened(1, &slot));
        drop(guard);
        pool.flush();
        assert!(lock(&slot).is_none());
    }

    /// Shutdown while a request holds an evicted user's lock and then opens its file: the
    /// closer waits for that lock, `clear` waits for the closer, and the request must still
    /// get through `track_opened` (which once blocked on the closer mutex `clear` held).
    #[test]
    fn clear_lets_a_request_on_an_evicted_user_finish() {
        use std::sync::mpsc::channel;
        use std::time::Duration;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let pool = Arc::new(Pool::new(1));
        let slot = pool.slot(1);
        let (locked_tx, locked) = channel();
        let (go, go_rx) = channel::<()>();
        let (done_tx, done) = channel();
        let request = {
            let (pool, slot) = (pool.clone(), slot.clone());
            std::thread::spawn(move || {
                let mut guard = lock(&slot);
                locked_tx.send(()).expect("send");
                go_rx.recv().expect("go");
                *guard = Some(
                    UserDb::open(&path.join("1.db"), SqliteSynchronous::Full, 0).expect("open"),
                );
                if !pool.track_opened(1, &slot) {
                    guard.take();
                }
                drop(guard);
                done_tx.send(()).expect("send");
            })
        };
        locked.recv().expect("request holds the lock");
        pool.slot(2); // evicts user 1: a closer now waits for its lock
        let (cleared_tx, cleared) = channel();
        let clearing = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                pool.clear();
                cleared_tx.send(()).expect("send");
            })
        };
        // Until `clear` has taken the closer (and is joining its threads).
        while matches!(pool.closer.try_lock(), Ok(closer) if closer.is_some()) {
            std::thread::yield_now();
        }
        go.send(()).expect("go");
        done.recv_timeout(Duration::from_secs(10))
            .expect("the request finished during shutdown");
        cleared
            .recv_timeout(Duration::from_secs(10))
            .expect("shutdown finished");
        request.join().expect("request thread");
        clearing.join().expect("clearing thread");
        assert!(lock(&slot).is_none());
    }

    #[test]
    fn clear_closes_queued_and_pooled_connections() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = Pool::new(1);
        let first = pool.slot(1);
        *lock(&first) = Some(open(&dir, 1));
        let second = pool.slot(2);
        *lock(&second) = Some(open(&dir, 2));
        pool.clear();
        assert!(lock(&first).is_none());
        assert!(lock(&second).is_none());
        assert_eq!(pool.len(), 0);
        // User 2 was still pooled: its WAL (the schema's pages) was folded in.
        let wal = std::fs::metadata(dir.path().join("2.db-wal")).expect("persistent WAL");
        assert_eq!(wal.len(), 0, "folded at shutdown");
    }
}
