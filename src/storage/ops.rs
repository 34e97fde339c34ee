//! What each storage request does to a user's database, one transaction per request
//! (PROTOCOL.md §4.2–4.9, §4.11). Handlers call exactly one of these per request.

use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, params};

use super::bso::BsoIn;
use super::db::{Tx, UserDb, next_timestamp, set_storage_modified, storage_modified};
use super::error::{StorageError, WEAVE_SIZE_LIMIT};
use super::query::{CollectionQuery, Offset, Precondition, Sort};

/// A stored BSO as returned to clients.
#[derive(Debug, Clone)]
pub struct BsoOut {
    pub id: String,
    pub modified: i64,
    pub payload: String,
    pub sortindex: Option<i64>,
}

/// One page of a collection listing.
pub struct Listing {
    pub items: Vec<BsoOut>,
    pub last_modified: i64,
    pub next_offset: Option<Offset>,
}

/// The result of a write: its timestamp and, with a quota, the bytes left.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub t: i64,
    pub quota_remaining: Option<i64>,
}

impl Written {
    /// A write that reports no quota.
    pub fn at(t: i64) -> Written {
        Written {
            t,
            quota_remaining: None,
        }
    }
}

/// Per-request inputs every operation needs.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    /// Clock reading (ms).
    pub now: i64,
    /// Quota in bytes, 0 = off.
    pub quota: u64,
}

impl Env {
    /// With a quota, the bytes left to a user who stores nothing.
    pub fn whole_quota(&self) -> Option<i64> {
        (self.quota > 0).then_some(self.quota as i64)
    }
}

/// Expiry is judged against the later of the clock and the last write, so an item written
/// with ttl 0 is invisible at once even when the clock stands still.
fn visible_now(env: &Env, high_water: i64) -> i64 {
    env.now.max(high_water)
}

fn collection(tx: &Tx<'_>, name: &str) -> Result<Option<(i64, i64)>, StorageError> {
    Ok(tx
        .prepare_cached("SELECT id, modified FROM collections WHERE name = ?1")?
        .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Sets the collection's last-modified to `t`, creating the collection. (`next_timestamp`
/// already made `t` the storage last-modified.)
fn touch_collection(tx: &Tx<'_>, name: &str, t: i64) -> Result<i64, StorageError> {
    let id = tx
        .prepare_cached(
            "INSERT INTO collections (name, modified) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET modified = excluded.modified RETURNING id",
        )?
        .query_row(params![name, t], |r| r.get(0))?;
    Ok(id)
}

/// §4.5: update the supplied fields of a live row (a ttl-only update keeps `modified`), or
/// create the row (replacing an expired one) with defaults for the rest. Liveness is judged
/// at the write's timestamp `t`.
fn apply_bso(tx: &Tx<'_>, coll: i64, bso: &BsoIn, t: i64) -> Result<(), StorageError> {
    let size = bso.payload.as_ref().map(|p| p.len() as i64);
    let values = params![coll, bso.id, bso.payload, size, bso.sortindex, bso.ttl, t];
    // One statement for a new row and for a live one (unsent fields kept). An expired row
    // fails the update's WHERE and is left as it was (0 rows changed); replacing it is rare,
    // so that case gets a statement of its own rather than a liveness test in every SET
    // expression, which made this the costliest statement to compile on each newly opened
    // file: 31 against 19 µs.
    let written = tx
        .prepare_cached(
            "INSERT INTO bso (collection, id, sortindex, modified, payload, payload_size, expiry)
             VALUES (?1, ?2, ?5, ?7, coalesce(?3, ''), coalesce(?4, 0),
                     CASE WHEN ?6 IS NULL THEN NULL ELSE ?7 + ?6 * 1000 END)
             ON CONFLICT (collection, id) DO UPDATE SET
                payload = coalesce(?3, payload),
                payload_size = coalesce(?4, payload_size),
                sortindex = coalesce(?5, sortindex),
                expiry = CASE WHEN ?6 IS NULL THEN expiry ELSE ?7 + ?6 * 1000 END,
                modified = CASE WHEN ?3 IS NULL AND ?5 IS NULL THEN modified ELSE ?7 END
             WHERE expiry IS NULL OR expiry > ?7",
        )?
        .execute(values)?;
    if written == 0 {
        tx.prepare_cached(
            "UPDATE bso SET payload = coalesce(?3, ''), payload_size = coalesce(?4, 0),
                sortindex = ?5, expiry = CASE WHEN ?6 IS NULL THEN NULL ELSE ?7 + ?6 * 1000 END,
                modified = ?7
             WHERE collection = ?1 AND id = ?2",
        )?
        .execute(values)?;
    }
    Ok(())
}

/// Bytes of live payload the user stores.
fn usage_bytes(tx: &Tx<'_>, now: i64) -> Result<i64, StorageError> {
    Ok(tx
        .prepare_cached(
            "SELECT coalesce(sum(payload_size), 0) FROM bso WHERE expiry IS NULL OR expiry > ?1",
        )?
        .query_row([now], |r| r.get(0))?)
}

/// With a quota, the bytes the user stores; `None` without one.
fn usage(tx: &Tx<'_>, env: &Env, now: i64) -> Result<Option<i64>, StorageError> {
    if env.quota == 0 {
        return Ok(None);
    }
    Ok(Some(usage_bytes(tx, now)?))
}

/// With a quota: refuse (403/14) a write when usage already reached it; else the usage.
fn check_quota(tx: &Tx<'_>, env: &Env, now: i64) -> Result<Option<i64>, StorageError> {
    let used = usage(tx, env, now)?;
    if used.is_some_and(|u| u as u64 >= env.quota) {
        return Err(StorageError::OverQuota);
    }
    Ok(used)
}

/// With a quota (`used` is `Some`): the bytes left once `items` are stored on top of `used`.
fn remaining(env: &Env, used: Option<i64>, items: &[BsoIn]) -> Option<i64> {
    let added: i64 = items.iter().map(|b| b.payload_size() as i64).sum();
    used.map(|u| env.quota as i64 - u - added)
}

/// A user without a file reads as an empty one: every timestamp is 0.
fn no_file<T>(pre: Precondition, empty: T) -> Result<T, StorageError> {
    pre.check(0)?;
    Ok(empty)
}

/// `info/collections` rows and the storage last-modified. Preconditions are checked by the
/// handler, because the answer may come from the cache instead.
pub fn info_collections(
    db: Option<&mut UserDb>,
) -> Result<(Vec<(String, i64)>, i64), StorageError> {
    let Some(db) = db else {
        return Ok((Vec::new(), 0));
    };
    let (tx, _) = db.begin(false)?;
    // One statement for both (a cold file prepares every statement afresh): the storage
    // last-modified comes first, as the row without a name.
    let mut stmt = tx.prepare_cached(
        "SELECT NULL, value FROM meta WHERE key = 'storage_modified'
         UNION ALL SELECT name, modified FROM collections ORDER BY 1",
    )?;
    let mut ts = 0;
    let mut rows = Vec::new();
    let mut query = stmt.query([])?;
    while let Some(r) = query.next()? {
        match r.get::<_, Option<String>>(0)? {
            Some(name) => rows.push((name, r.get(1)?)),
            None => ts = r.get(1)?,
        }
    }
    Ok((rows, ts))
}

/// What `info/collection_counts` and `info/collection_usage` aggregate.
#[derive(Clone, Copy)]
pub enum Aggregate {
    Count,
    Bytes,
}

pub fn info_aggregate(
    db: Option<&mut UserDb>,
    what: Aggregate,
    pre: Precondition,
    env: &Env,
) -> Result<(Vec<(String, i64)>, i64), StorageError> {
    let Some(db) = db else {
        return no_file(pre, (Vec::new(), 0));
    };
    let (tx, hw) = db.begin(false)?;
    let now = visible_now(env, *hw);
    let ts = storage_modified(&tx)?;
    pre.check(ts)?;
    let sql = match what {
        Aggregate::Count => {
            "SELECT c.name, count(*) FROM bso b JOIN collections c ON c.id = b.collection
             WHERE b.expiry IS NULL OR b.expiry > ?1 GROUP BY c.name ORDER BY c.name"
        }
        Aggregate::Bytes => {
            "SELECT c.name, sum(b.payload_size) FROM bso b JOIN collections c ON c.id = b.collection
             WHERE b.expiry IS NULL OR b.expiry > ?1 GROUP BY c.name ORDER BY c.name"
        }
    };
    let mut stmt = tx.prepare_cached(sql)?;
    let rows = stmt
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((rows, ts))
}

/// `info/quota`: bytes used and the storage last-modified.
pub fn info_quota(
    db: Option<&mut UserDb>,
    pre: Precondition,
    env: &Env,
) -> Result<(i64, i64), StorageError> {
    let Some(db) = db else {
        return no_file(pre, (0, 0));
    };
    let (tx, hw) = db.begin(false)?;
    let now = visible_now(env, *hw);
    let ts = storage_modified(&tx)?;
    pre.check(ts)?;
    Ok((usage_bytes(&tx, now)?, ts))
}

/// `GET /storage/{collection}` (§4.3). `cap` bounds a page when no `limit` was given.
pub fn get_collection(
    db: Option<&mut UserDb>,
    name: &str,
    q: &CollectionQuery,
    pre: Precondition,
    env: &Env,
    cap: u64,
) -> Result<Listing, StorageError> {
    let empty = || Listing {
        items: Vec::new(),
        last_modified: 0,
        next_offset: None,
    };
    let Some(db) = db else {
        return no_file(pre, empty());
    };
    let (tx, hw) = db.begin(false)?;
    let now = visible_now(env, *hw);
    let Some((coll, last_modified)) = collection(&tx, name)? else {
        return no_file(pre, empty());
    };
    pre.check(last_modified)?;
    let page = q.limit.unwrap_or(cap).min(cap);
    if page == 0 {
        return Ok(Listing {
            items: Vec::new(),
            last_modified,
            next_offset: None,
        });
    }
    let (bound, skip) = match (q.sort, q.offset) {
        (Sort::Index, Some(Offset::Bound { skip, .. })) => (None, skip),
        (_, Some(Offset::Bound { bound, skip })) => (Some(bound), skip),
        (_, Some(Offset::Rows(n))) => (None, n),
        (_, None) => (None, 0),
    };
    let sql = listing_sql(q, bound.is_some());
    let ids_json = q
        .ids
        .as_ref()
        .map(|ids| serde_json::to_string(ids).unwrap_or_default());
    let params: [SqlValue; 8] = [
        coll.into(),
        now.into(),
        q.newer.unwrap_or(-1).into(),
        q.older.unwrap_or(i64::MAX).into(),
        ids_json.map_or(SqlValue::Null, SqlValue::Text),
        bound.map_or(SqlValue::Null, SqlValue::Integer),
        i64::try_from(page + 1).unwrap_or(i64::MAX).into(),
        i64::try_from(skip).unwrap_or(i64::MAX).into(),
    ];
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut items = stmt
        .query_map(rusqlite::params_from_iter(params), |r| {
            Ok(BsoOut {
                id: r.get(0)?,
                modified: r.get(1)?,
                payload: if q.full { r.get(2)? } else { String::new() },
                sortindex: if q.full { r.get(3)? } else { None },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let more = items.len() as u64 > page;
    items.truncate(page as usize);
    let next_offset = more.then(|| next_offset(q, &items, skip));
    Ok(Listing {
        items,
        last_modified,
        next_offset,
    })
}

fn listing_sql(q: &CollectionQuery, bounded: bool) -> String {
    let cols = if q.full {
        "id, modified, payload, sortindex"
    } else {
        "id, modified"
    };
    let ids = if q.ids.is_some() {
        "id IN (SELECT value FROM json_each(?5))"
    } else {
        "?5 IS NULL"
    };
    let (bound, order) = match q.sort {
        Sort::Newest => ("modified <= ?6", "modified DESC, id DESC"),
        Sort::Oldest => ("modified >= ?6", "modified ASC, id ASC"),
        Sort::Index => ("?6 IS NULL", "sortindex DESC NULLS LAST, id DESC"),
    };
    let bound = if bounded { bound } else { "?6 IS NULL" };
    format!(
        "SELECT {cols} FROM bso WHERE collection = ?1 AND (expiry IS NULL OR expiry > ?2)
         AND modified > ?3 AND modified < ?4 AND {ids} AND {bound}
         ORDER BY {order} LIMIT ?7 OFFSET ?8"
    )
}

/// The continuation token after `items` (§4.3): a row count for index sorts and for clients
/// that sent a plain number, else `bound:skip` over the rows sharing the last timestamp.
fn next_offset(q: &CollectionQuery, items: &[BsoOut], skip: u64) -> Offset {
    let plain = q.sort == Sort::Index || matches!(q.offset, Some(Offset::Rows(_)));
    if plain {
        return Offset::Rows(skip + items.len() as u64);
    }
    let last = items.last().map_or(0, |b| b.modified);
    let same = items
        .iter()
        .rev()
        .take_while(|b| b.modified == last)
        .count() as u64;
    let skip = match q.offset {
        Some(Offset::Bound { bound, skip }) if bound == last && same == items.len() as u64 => {
            skip + same
        }
        _ => same,
    };
    Offset::Bound { bound: last, skip }
}

/// `GET /storage/{collection}/{id}`; preconditions compare the item's modified (0 if absent).
pub fn get_bso(
    db: Option<&mut UserDb>,
    name: &str,
    id: &str,
    pre: Precondition,
    env: &Env,
) -> Result<BsoOut, StorageError> {
    let Some(db) = db else {
        pre.check(0)?;
        return Err(StorageError::NotFound);
    };
    let (tx, hw) = db.begin(false)?;
    let now = visible_now(env, *hw);
    let found = match collection(&tx, name)? {
        Some((coll, _)) => find_bso(&tx, coll, id, now)?,
        None => None,
    };
    pre.check(found.as_ref().map_or(0, |b| b.modified))?;
    found.ok_or(StorageError::NotFound)
}

fn find_bso(tx: &Tx<'_>, coll: i64, id: &str, now: i64) -> Result<Option<BsoOut>, StorageError> {
    Ok(tx
        .prepare_cached(
            "SELECT modified, payload, sortindex FROM bso
             WHERE collection = ?1 AND id = ?2 AND (expiry IS NULL OR expiry > ?3)",
        )?
        .query_row(params![coll, id, now], |r| {
            Ok(BsoOut {
                id: id.to_string(),
                modified: r.get(0)?,
                payload: r.get(1)?,
                sortindex: r.get(2)?,
            })
        })
        .optional()?)
}

fn bso_modified(tx: &Tx<'_>, coll: i64, id: &str, now: i64) -> Result<Option<i64>, StorageError> {
    Ok(tx
        .prepare_cached(
            "SELECT modified FROM bso
             WHERE collection = ?1 AND id = ?2 AND (expiry IS NULL OR expiry > ?3)",
        )?
        .query_row(params![coll, id, now], |r| r.get(0))
        .optional()?)
}

/// `PUT /storage/{collection}/{id}`; `X-If-Unmodified-Since` compares the item.
pub fn put_bso(
    db: &mut UserDb,
    name: &str,
    bso: &BsoIn,
    pre: Precondition,
    env: &Env,
) -> Result<Written, StorageError> {
    let (tx, hw) = db.begin(true)?;
    let now = visible_now(env, *hw);
    let current = match collection(&tx, name)? {
        Some((coll, _)) => bso_modified(&tx, coll, &bso.id, now)?,
        None => None,
    };
    pre.check(current.unwrap_or(0))?;
    let used = check_quota(&tx, env, now)?;
    let t = next_timestamp(&tx, hw, env.now)?;
    let coll = touch_collection(&tx, name, t)?;
    apply_bso(&tx, coll, bso, t)?;
    tx.commit()?;
    Ok(Written {
        t,
        quota_remaining: remaining(env, used, std::slice::from_ref(bso)),
    })
}

/// Non-batch `POST /storage/{collection}` (and `batch=true&commit=true`): all items with one
/// timestamp; `X-If-Unmodified-Since` compares the collection.
pub fn post_bsos(
    db: &mut UserDb,
    name: &str,
    items: &[BsoIn],
    pre: Precondition,
    env: &Env,
) -> Result<Written, StorageError> {
    let (tx, hw) = db.begin(true)?;
    let now = visible_now(env, *hw);
    pre.check(collection(&tx, name)?.map_or(0, |c| c.1))?;
    let used = check_quota(&tx, env, now)?;
    let t = next_timestamp(&tx, hw, env.now)?;
    let coll = touch_collection(&tx, name, t)?;
    for bso in items {
        apply_bso(&tx, coll, bso, t)?;
    }
    tx.commit()?;
    Ok(Written {
        t,
        quota_remaining: remaining(env, used, items),
    })
}

/// `DELETE /storage/{collection}[?ids=…]`. A missing collection is a no-op answered with the
/// storage timestamp (`wrote` false); ids-deletes keep the (possibly empty) collection.
pub fn delete_collection(
    db: &mut UserDb,
    name: &str,
    ids: Option<&[String]>,
    pre: Precondition,
    env: &Env,
) -> Result<(Written, bool), StorageError> {
    let (tx, hw) = db.begin(true)?;
    let Some((coll, modified)) = collection(&tx, name)? else {
        pre.check(0)?;
        return Ok((Written::at(storage_modified(&tx)?), false));
    };
    pre.check(modified)?;
    let t = next_timestamp(&tx, hw, env.now)?;
    match ids {
        Some(ids) => {
            let json = serde_json::to_string(ids).unwrap_or_default();
            tx.prepare_cached(
                "DELETE FROM bso WHERE collection = ?1 AND id IN (SELECT value FROM json_each(?2))",
            )?
            .execute(params![coll, json])?;
            touch_collection(&tx, name, t)?;
        }
        None => {
            tx.prepare_cached("DELETE FROM bso WHERE collection = ?1")?
                .execute([coll])?;
            tx.prepare_cached("DELETE FROM collections WHERE id = ?1")?
                .execute([coll])?;
            delete_batches_of(&tx, name)?;
        }
    }
    // With a quota: the bytes left once the deletes are in.
    let quota_remaining = remaining(env, usage(&tx, env, visible_now(env, t))?, &[]);
    tx.commit()?;
    Ok((Written { t, quota_remaining }, true))
}

/// `DELETE /storage/{collection}/{id}`: 404 when the item is missing or expired.
pub fn delete_bso(
    db: &mut UserDb,
    name: &str,
    id: &str,
    pre: Precondition,
    env: &Env,
) -> Result<Written, StorageError> {
    let (tx, hw) = db.begin(true)?;
    let now = visible_now(env, *hw);
    let Some((coll, _)) = collection(&tx, name)? else {
        pre.check(0)?;
        return Err(StorageError::NotFound);
    };
    let current = bso_modified(&tx, coll, id, now)?;
    pre.check(current.unwrap_or(0))?;
    if current.is_none() {
        return Err(StorageError::NotFound);
    }
    let t = next_timestamp(&tx, hw, env.now)?;
    tx.prepare_cached("DELETE FROM bso WHERE collection = ?1 AND id = ?2")?
        .execute(params![coll, id])?;
    touch_collection(&tx, name, t)?;
    let quota_remaining = remaining(env, usage(&tx, env, now)?, &[]);
    tx.commit()?;
    Ok(Written { t, quota_remaining })
}

/// The storage last-modified (0 when the user has no data).
pub fn storage_last_modified(db: &mut UserDb) -> Result<i64, StorageError> {
    let (tx, _) = db.begin(false)?;
    storage_modified(&tx)
}

/// `DELETE /storage`: everything goes and every timestamp reads 0 again, but the high-water
/// mark stays, so later writes still get later timestamps.
pub fn delete_storage(
    db: &mut UserDb,
    pre: Precondition,
    env: &Env,
) -> Result<Written, StorageError> {
    let (tx, hw) = db.begin(true)?;
    pre.check(storage_modified(&tx)?)?;
    let t = next_timestamp(&tx, hw, env.now)?;
    tx.execute_batch(
        "DELETE FROM bso; DELETE FROM collections; DELETE FROM batch_items; DELETE FROM batches;",
    )?;
    set_storage_modified(&tx, 0)?;
    tx.commit()?;
    Ok(Written {
        t,
        quota_remaining: env.whole_quota(),
    })
}

fn delete_batches_of(tx: &Tx<'_>, name: &str) -> Result<(), StorageError> {
    tx.prepare_cached(
        "DELETE FROM batch_items WHERE batch IN (SELECT id FROM batches WHERE collection = ?1)",
    )?
    .execute([name])?;
    tx.prepare_cached("DELETE FROM batches WHERE collection = ?1")?
        .execute([name])?;
    Ok(())
}

/// Limits on a batch as a whole.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub ttl_ms: i64,
    pub max_total_records: u64,
    pub max_total_bytes: u64,
}

/// `POST ?batch=true`: a new batch holding the valid items, invisible until commit. Returns
/// the batch id, the collection's (unchanged) last-modified and, with a quota, the bytes
/// left (pending items count once committed).
pub fn batch_create(
    db: &mut UserDb,
    name: &str,
    items: &[BsoIn],
    pre: Precondition,
    env: &Env,
    limits: BatchLimits,
) -> Result<(i64, i64, Option<i64>), StorageError> {
    let (tx, hw) = db.begin(true)?;
    let now = visible_now(env, *hw);
    let modified = collection(&tx, name)?.map_or(0, |c| c.1);
    pre.check(modified)?;
    let used = check_quota(&tx, env, now)?;
    let id = loop {
        let candidate = (rand::random::<u64>() >> 2) as i64 + 1;
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO batches (id, collection, created) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![candidate, name, env.now])?;
        if inserted == 1 {
            break candidate;
        }
    };
    add_batch_items(&tx, id, items, limits)?;
    tx.commit()?;
    Ok((id, modified, remaining(env, used, &[])))
}

/// `POST ?batch=<id>`: merges more items into a live batch of this collection. Returns the
/// collection's (unchanged) last-modified and, with a quota, the bytes left.
pub fn batch_append(
    db: &mut UserDb,
    name: &str,
    batch: i64,
    items: &[BsoIn],
    pre: Precondition,
    env: &Env,
    limits: BatchLimits,
) -> Result<(i64, Option<i64>), StorageError> {
    let (tx, hw) = db.begin(true)?;
    let now = visible_now(env, *hw);
    let modified = collection(&tx, name)?.map_or(0, |c| c.1);
    pre.check(modified)?;
    // The append adds to the stored totals itself (`add_batch_items`).
    live_batch_totals(&tx, name, batch, env, limits)?;
    let used = check_quota(&tx, env, now)?;
    add_batch_items(&tx, batch, items, limits)?;
    tx.commit()?;
    Ok((modified, remaining(env, used, &[])))
}

/// `POST ?batch=<id>&commit=true`: applies the pending items, then this request's, with one
/// timestamp, and forgets the batch. Atomic: one transaction.
pub fn batch_commit(
    db: &mut UserDb,
    name: &str,
    batch: i64,
    items: &[BsoIn],
    pre: Precondition,
    env: &Env,
    limits: BatchLimits,
) -> Result<Written, StorageError> {
    let (tx, hw) = db.begin(true)?;
    let now = visible_now(env, *hw);
    pre.check(collection(&tx, name)?.map_or(0, |c| c.1))?;
    let (records, bytes) = live_batch_totals(&tx, name, batch, env, limits)?;
    // The commit's own items count like an append's.
    let (more_records, more_bytes) = merge_delta(&tx, batch, items)?;
    check_batch_totals((records + more_records, bytes + more_bytes), limits)?;
    let used = check_quota(&tx, env, now)?;
    let t = next_timestamp(&tx, hw, env.now)?;
    let coll = touch_collection(&tx, name, t)?;
    {
        let mut pending = tx.prepare_cached(
            "SELECT id, payload, sortindex, ttl FROM batch_items WHERE batch = ?1",
        )?;
        let mut rows = pending.query([batch])?;
        while let Some(r) = rows.next()? {
            let bso = BsoIn {
                id: r.get(0)?,
                payload: r.get(1)?,
                sortindex: r.get(2)?,
                ttl: r.get(3)?,
            };
            apply_bso(&tx, coll, &bso, t)?;
        }
    }
    for bso in items {
        apply_bso(&tx, coll, bso, t)?;
    }
    tx.prepare_cached("DELETE FROM batch_items WHERE batch = ?1")?
        .execute([batch])?;
    tx.prepare_cached("DELETE FROM batches WHERE id = ?1")?
        .execute([batch])?;
    // With a quota: what is left once the pending items and this request's are in. The
    // usage before (`used`) plus this request's items would miss the pending ones.
    let quota_remaining = match used {
        Some(_) => remaining(env, usage(&tx, env, visible_now(env, t))?, &[]),
        None => None,
    };
    tx.commit()?;
    Ok(Written { t, quota_remaining })
}

/// The records and payload bytes a batch holds so far. The batch must exist, belong to this
/// collection and be younger than the batch ttl (400).
fn live_batch_totals(
    tx: &Tx<'_>,
    name: &str,
    batch: i64,
    env: &Env,
    limits: BatchLimits,
) -> Result<(i64, i64), StorageError> {
    tx.prepare_cached(
        "SELECT total_records, total_bytes FROM batches
         WHERE id = ?1 AND collection = ?2 AND created > ?3",
    )?
    .query_row(params![batch, name, env.now - limits.ttl_ms], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()?
    .ok_or_else(StorageError::bad_request)
}

/// Merges items into the pending set field by field and enforces the batch totals (400/17).
fn add_batch_items(
    tx: &Tx<'_>,
    batch: i64,
    items: &[BsoIn],
    limits: BatchLimits,
) -> Result<(), StorageError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO batch_items (batch, id, sortindex, payload, payload_size, ttl)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (batch, id) DO UPDATE SET
            sortindex = coalesce(excluded.sortindex, sortindex),
            payload = coalesce(excluded.payload, payload),
            payload_size = coalesce(excluded.payload_size, payload_size),
            ttl = coalesce(excluded.ttl, ttl)",
    )?;
    // Measured before the merge changes the pending rows.
    let (records, bytes) = merge_delta(tx, batch, items)?;
    for bso in items {
        let size = bso.payload.as_ref().map(|p| p.len() as i64);
        stmt.execute(params![
            batch,
            bso.id,
            bso.sortindex,
            bso.payload,
            size,
            bso.ttl
        ])?;
    }
    let totals: (i64, i64) = tx
        .prepare_cached(
            "UPDATE batches SET total_records = total_records + ?2, total_bytes = total_bytes + ?3
             WHERE id = ?1 RETURNING total_records, total_bytes",
        )?
        .query_row(params![batch, records, bytes], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    check_batch_totals(totals, limits)
}

/// What merging `items` into a batch's pending set adds to its totals: an item that
/// replaces a pending one adds no record, and only the difference of its payload's size if
/// it sends a payload (so re-sent ids count once).
fn merge_delta(tx: &Tx<'_>, batch: i64, items: &[BsoIn]) -> Result<(i64, i64), StorageError> {
    let mut pending = tx.prepare_cached(
        "SELECT coalesce(payload_size, 0) FROM batch_items WHERE batch = ?1 AND id = ?2",
    )?;
    let (mut records, mut bytes) = (0i64, 0i64);
    for bso in items {
        let size = bso.payload.as_ref().map(|p| p.len() as i64);
        match pending
            .query_row(params![batch, bso.id], |r| r.get::<_, i64>(0))
            .optional()?
        {
            Some(old) => bytes += size.map_or(0, |size| size - old),
            None => {
                records += 1;
                bytes += size.unwrap_or(0);
            }
        }
    }
    Ok((records, bytes))
}

/// §4.8 recommends enforcing `max_total_records` / `max_total_bytes` on append and commit.
fn check_batch_totals(
    (records, bytes): (i64, i64),
    limits: BatchLimits,
) -> Result<(), StorageError> {
    if records.max(0) as u64 > limits.max_total_records
        || bytes.max(0) as u64 > limits.max_total_bytes
    {
        return Err(StorageError::BadRequest(WEAVE_SIZE_LIMIT));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::config::SqliteSynchronous;

    /// The stored row: (payload, payload_size, sortindex, modified, expiry).
    type Row = (String, i64, Option<i64>, i64, Option<i64>);

    fn row(tx: &Tx<'_>, id: &str) -> Option<Row> {
        tx.query_row(
            "SELECT payload, payload_size, sortindex, modified, expiry FROM bso
             WHERE collection = 1 AND id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()
        .expect("read")
    }

    /// §4.5 stated directly: a live row keeps what the write does not send (and its
    /// `modified` on a ttl-only write); a missing or expired row starts from defaults.
    fn expected(old: Option<&Row>, bso: &BsoIn, t: i64) -> Row {
        let expiry = bso.ttl.map(|ttl| t + ttl * 1000);
        let size = bso.payload.as_ref().map(|p| p.len() as i64);
        match old.filter(|o| o.4.is_none_or(|e| e > t)) {
            Some(o) => (
                bso.payload.clone().unwrap_or(o.0.clone()),
                size.unwrap_or(o.1),
                bso.sortindex.or(o.2),
                if bso.payload.is_none() && bso.sortindex.is_none() {
                    o.3
                } else {
                    t
                },
                expiry.or(o.4),
            ),
            None => (
                bso.payload.clone().unwrap_or_default(),
                size.unwrap_or(0),
                bso.sortindex,
                t,
                expiry,
            ),
        }
    }

    #[test]
    fn apply_bso_follows_the_write_rules_for_every_field_combination() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db =
            UserDb::open(&dir.path().join("1.db"), SqliteSynchronous::Normal, 0).expect("open");
        let (tx, _) = db.begin(true).expect("begin");
        let (t0, t) = (1_000_000, 2_000_000);
        let mut case = 0;
        // The existing row: none, live without expiry, live with expiry, expired.
        for existing in [None, Some(None), Some(Some(t + 5_000)), Some(Some(t))] {
            for payload in [None, Some("new payload")] {
                for sortindex in [None, Some(7)] {
                    for ttl in [None, Some(0), Some(60)] {
                        case += 1;
                        let id = format!("c{case}");
                        if let Some(expiry) = existing {
                            tx.execute(
                                "INSERT INTO bso (collection, id, sortindex, modified, payload,
                                 payload_size, expiry) VALUES (1, ?1, 3, ?2, 'old', 3, ?3)",
                                params![id, t0, expiry],
                            )
                            .expect("seed");
                        }
                        let old = row(&tx, &id);
                        let bso = BsoIn {
                            id: id.clone(),
                            payload: payload.map(str::to_string),
                            sortindex,
                            ttl,
                        };
                        apply_bso(&tx, 1, &bso, t).expect("apply");
                        let got = row(&tx, &id).expect("row written");
                        assert_eq!(got, expected(old.as_ref(), &bso, t), "{existing:?} {bso:?}");
                    }
                }
            }
        }
    }
}
