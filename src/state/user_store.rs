//! The tokenserver's whole view of storage: delete a user's data, and how much data a user
//! has on this node. Nothing else crosses from the tokenserver into storage, so the two can
//! run as separate processes (a remote node can serve this same interface over HTTP).

use futures_util::future::BoxFuture;

/// What one user's data occupies on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserUsage {
    /// Bytes on disk.
    pub bytes: u64,
    /// When the data last changed, in ms since the epoch, when known.
    pub modified_ms: Option<i64>,
}

/// Storage as the tokenserver may use it.
pub trait UserStore: Send + Sync {
    /// Deletes everything stored for `uid` (the user may sync again later, starting empty).
    fn delete_user(&self, uid: u64) -> BoxFuture<'_, Result<(), String>>;

    /// The user's data on this node; `None` when nothing is stored for `uid`. An error means
    /// the answer is unknown (callers that must not share data treat it as "something").
    fn usage(&self, uid: u64) -> BoxFuture<'_, Result<Option<UserUsage>, String>>;
}
