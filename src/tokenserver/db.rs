//! The tokenserver database: Mozilla's `services`, `nodes` and `users` tables through sqlx.
//!
//! SQLite today; the SQL avoids SQLite-only constructs (`$n` parameters, `CASE` instead of
//! two-argument `MIN`, `RETURNING`, node ranking done in Rust) so PostgreSQL can follow as a
//! second backend with its own migration folder.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, SqliteConnection};

use super::error::TokenserverError;
use super::rules::{self, Plan, Presented, Reuse, UserRow};
use crate::state::UserStore;

/// The only service this server knows (`services.service`).
pub const SYNC_SERVICE: &str = "sync-1.5";

/// Rows of one account looked at per request (RS).
const MAX_ROWS_PER_ACCOUNT: i64 = 20;

/// Refill rounds before giving up on finding a node (§1.6).
const MAX_REFILL_ROUNDS: usize = 5;

/// Opens (creating if missing) the database at `url` and applies the migrations.
pub async fn connect(url: &str) -> Result<SqlitePool, String> {
    if !url.starts_with("sqlite:") {
        return Err(format!(
            "tokenserver.database_url {url:?}: only sqlite:// URLs are supported"
        ));
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| format!("tokenserver.database_url {url:?}: {e}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| format!("cannot open the tokenserver database {url}: {e}"))?;
    sqlx::migrate!("./migrations/tokenserver/sqlite")
        .run(&pool)
        .await
        .map_err(|e| format!("tokenserver database migration failed: {e}"))?;
    Ok(pool)
}

/// Handle on the tokenserver database with the ids looked up at start-up.
pub struct Db {
    pub pool: SqlitePool,
    pub service: i64,
    /// Where users' data lives, asked before a uid is handed out.
    store: Arc<dyn UserStore>,
    /// Serialises the read-decide-write of token requests within this process, so two
    /// requests for one account never both create or replace a row.
    write_lock: tokio::sync::Mutex<()>,
}

/// Who may become a new user.
#[derive(Debug, Clone, Copy)]
pub struct NewUserPolicy {
    pub allowed: bool,
    /// 0 = no limit.
    pub max_users: u64,
}

/// The row a token is issued for, after all updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub uid: i64,
    pub generation: i64,
    pub keys_changed_at: Option<i64>,
    pub client_state: String,
    /// The uid this request replaced (client-state change or reallocation), if any.
    pub replaced_uid: Option<i64>,
}

impl Db {
    pub async fn open(pool: SqlitePool, store: Arc<dyn UserStore>) -> Result<Db, String> {
        let service = service_id(&pool)
            .await
            .map_err(|e| format!("tokenserver database: {e}"))?;
        Ok(Db {
            pool,
            service,
            store,
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Makes sure this server has its one `nodes` row and returns its id. With `url` set
    /// (from `public_url`) the existing row is moved to it rather than a second one added.
    pub async fn ensure_node(
        &self,
        url: Option<&str>,
        fallback_url: &str,
        capacity: i64,
    ) -> Result<i64, sqlx::Error> {
        let rows = sqlx::query("SELECT id, node FROM nodes WHERE service = $1 ORDER BY id")
            .bind(self.service)
            .fetch_all(&self.pool)
            .await?;
        let nodes: Vec<(i64, String)> = rows
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("node")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let id = match (url, nodes.first()) {
            (Some(url), _) if nodes.iter().any(|(_, n)| n == url) => nodes
                .iter()
                .find(|(_, n)| n == url)
                .map(|(id, _)| *id)
                .unwrap_or_default(),
            (Some(url), Some((id, old))) => {
                tracing::info!(from = %old, to = %url, "node URL follows public_url");
                sqlx::query("UPDATE nodes SET node = $1 WHERE id = $2")
                    .bind(url)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                *id
            }
            (None, Some((id, _))) => *id,
            (url, None) => sqlx::query(
                "INSERT INTO nodes (service, node, available, current_load, capacity, \
                     downed, backoff) VALUES ($1, $2, $3, 0, $3, 0, 0) RETURNING id",
            )
            .bind(self.service)
            .bind(url.unwrap_or(fallback_url))
            .bind(capacity)
            .fetch_one(&self.pool)
            .await?
            .try_get("id")?,
        };
        // Capacity follows the configuration; opening all remaining slots at once is fine
        // for a single node (the refill throttle exists for fleets).
        sqlx::query(
            "UPDATE nodes SET capacity = $1, available = CASE WHEN $1 > current_load \
             THEN $1 - current_load ELSE 0 END WHERE id = $2",
        )
        .bind(capacity)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// §1.4–1.5: finds or creates the account's current row, validates the request against
    /// it and applies the update or replacement.
    pub async fn get_or_create_user(
        &self,
        email: &str,
        req: &Presented,
        now_ms: i64,
        policy: NewUserPolicy,
    ) -> Result<Assigned, TokenserverError> {
        let _serialised = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        let rows = load_rows(&mut tx, self.service, email).await?;
        let assigned = match rules::sort_rows(rows) {
            None => {
                self.check_new_user(&mut tx, policy).await?;
                let nodeid = allocate_node(&mut tx, self.service).await?;
                let new = NewRow {
                    email,
                    generation: req.generation.unwrap_or(0),
                    client_state: &req.client_state,
                    keys_changed_at: req.keys_changed_at,
                    created_at: now_ms,
                    nodeid,
                };
                let uid = self.insert_user(&mut tx, &new).await?;
                tracing::info!(uid, "new user");
                Assigned {
                    uid,
                    generation: new.generation,
                    keys_changed_at: new.keys_changed_at,
                    client_state: req.client_state.clone(),
                    replaced_uid: None,
                }
            }
            Some(sorted) => {
                mark_replaced(&mut tx, &sorted.to_mark_replaced, sorted.current.created_at).await?;
                let (user, reallocated) = self
                    .reuse_or_reallocate(&mut tx, email, sorted.current, now_ms)
                    .await?;
                rules::validate(req, &user, &sorted.old_client_states)?;
                self.apply(&mut tx, email, req, &user, now_ms)
                    .await?
                    .with_replaced(reallocated)
            }
        };
        tx.commit().await?;
        Ok(assigned)
    }

    /// §1.4 steps 4–6: a replaced or node-less current row gets a fresh uid.
    async fn reuse_or_reallocate(
        &self,
        tx: &mut SqliteConnection,
        email: &str,
        current: UserRow,
        now_ms: i64,
    ) -> Result<(UserRow, Option<i64>), TokenserverError> {
        if rules::reuse_of(&current)? == Reuse::AsIs {
            return Ok((current, None));
        }
        let nodeid = allocate_node(tx, self.service).await?;
        let new = NewRow {
            email,
            generation: current.generation,
            client_state: &current.client_state,
            keys_changed_at: current.keys_changed_at,
            created_at: now_ms,
            nodeid,
        };
        let uid = self.insert_user(tx, &new).await?;
        // The old row is superseded now (it may only have lost its node).
        mark_replaced(tx, &[current.uid], now_ms).await?;
        tracing::info!(uid, old_uid = current.uid, "user reallocated");
        let row = UserRow {
            uid,
            created_at: now_ms,
            replaced_at: None,
            nodeid,
            node: Some(String::new()),
            ..current.clone()
        };
        Ok((row, Some(current.uid)))
    }

    /// §1.5.2–1.5.3 for a request that passed validation.
    async fn apply(
        &self,
        tx: &mut SqliteConnection,
        email: &str,
        req: &Presented,
        user: &UserRow,
        now_ms: i64,
    ) -> Result<Assigned, TokenserverError> {
        let mut assigned = Assigned {
            uid: user.uid,
            generation: user.generation,
            keys_changed_at: user.keys_changed_at,
            client_state: user.client_state.clone(),
            replaced_uid: None,
        };
        match rules::plan(req, user) {
            Plan::Replace {
                generation,
                keys_changed_at,
            } => {
                let new = NewRow {
                    email,
                    generation,
                    client_state: &req.client_state,
                    keys_changed_at,
                    created_at: now_ms,
                    nodeid: user.nodeid,
                };
                let uid = self.insert_user(tx, &new).await?;
                // `uid <>` rather than only `created_at <`: the new row must never mark itself,
                // even when both happen within one millisecond.
                sqlx::query(
                    "UPDATE users SET replaced_at = $1 WHERE service = $2 AND email = $3 \
                     AND replaced_at IS NULL AND uid <> $4 AND created_at <= $1",
                )
                .bind(now_ms)
                .bind(self.service)
                .bind(email)
                .bind(uid)
                .execute(&mut *tx)
                .await?;
                tracing::info!(
                    uid,
                    old_uid = user.uid,
                    "user replaced (client state changed)"
                );
                assigned = Assigned {
                    uid,
                    generation,
                    keys_changed_at,
                    client_state: req.client_state.clone(),
                    replaced_uid: Some(user.uid),
                };
            }
            Plan::Update {
                generation,
                keys_changed_at,
            } => {
                // Guarded so that a concurrent older request can never move values backwards.
                sqlx::query(
                    "UPDATE users SET generation = $1, keys_changed_at = $2 WHERE service = $3 \
                     AND email = $4 AND generation <= $1 AND COALESCE(keys_changed_at, 0) <= \
                     COALESCE($2, keys_changed_at, 0) AND replaced_at IS NULL",
                )
                .bind(generation)
                .bind(keys_changed_at)
                .bind(self.service)
                .bind(email)
                .execute(&mut *tx)
                .await?;
                assigned.generation = generation;
                assigned.keys_changed_at = keys_changed_at;
            }
            Plan::Nothing => {}
        }
        Ok(assigned)
    }

    /// `allow_new_users` and `max_users`; the allow-list is checked before any database work.
    async fn check_new_user(
        &self,
        tx: &mut SqliteConnection,
        policy: NewUserPolicy,
    ) -> Result<(), TokenserverError> {
        if !policy.allowed {
            return Err(TokenserverError::NewUsersDisabled);
        }
        if policy.max_users > 0 {
            let count: i64 =
                sqlx::query("SELECT COUNT(DISTINCT email) AS n FROM users WHERE service = $1")
                    .bind(self.service)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
            if u64::try_from(count).unwrap_or(0) >= policy.max_users {
                tracing::warn!(
                    max_users = policy.max_users,
                    "max_users reached; new account refused"
                );
                return Err(TokenserverError::NewUsersDisabled);
            }
        }
        Ok(())
    }

    /// Inserts a user row and returns its uid, skipping any uid whose storage file still
    /// exists (left over from an earlier database): such a uid must never be handed out.
    async fn insert_user(
        &self,
        tx: &mut SqliteConnection,
        row: &NewRow<'_>,
    ) -> Result<i64, TokenserverError> {
        let uid = insert_row(tx, self.service, row, None).await?;
        if !self.storage_exists(uid).await {
            return Ok(uid);
        }
        sqlx::query("DELETE FROM users WHERE uid = $1")
            .bind(uid)
            .execute(&mut *tx)
            .await?;
        let mut candidate = uid + 1;
        while self.storage_exists(candidate).await {
            candidate += 1;
        }
        tracing::warn!(
            skipped_from = uid,
            to = candidate,
            "storage files exist for uids the database does not know; skipped them"
        );
        Ok(insert_row(tx, self.service, row, Some(candidate)).await?)
    }

    async fn storage_exists(&self, uid: i64) -> bool {
        let Ok(uid) = u64::try_from(uid) else {
            return false;
        };
        // An error (permissions) counts as "exists": better skip a uid than share data.
        self.store.usage(uid).await.map_or(true, |u| u.is_some())
    }

    /// Replaced rows with `after < replaced_at <= upto`, oldest first.
    pub async fn replaced_between(
        &self,
        after: i64,
        upto: i64,
    ) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT uid, replaced_at FROM users WHERE service = $1 AND replaced_at IS NOT NULL \
             AND replaced_at > $2 AND replaced_at <= $3 ORDER BY replaced_at",
        )
        .bind(self.service)
        .bind(after)
        .bind(upto)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("uid")?, r.try_get("replaced_at")?)))
            .collect()
    }

    /// `SELECT 1`, for `/__heartbeat__`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

impl Assigned {
    fn with_replaced(mut self, reallocated: Option<i64>) -> Self {
        self.replaced_uid = self.replaced_uid.or(reallocated);
        self
    }
}

async fn service_id(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT id FROM services WHERE service = $1")
        .bind(SYNC_SERVICE)
        .fetch_one(pool)
        .await?
        .try_get("id")
}

/// The values of a row to insert.
struct NewRow<'a> {
    email: &'a str,
    generation: i64,
    client_state: &'a str,
    keys_changed_at: Option<i64>,
    created_at: i64,
    nodeid: i64,
}

async fn insert_row(
    tx: &mut SqliteConnection,
    service: i64,
    row: &NewRow<'_>,
    uid: Option<i64>,
) -> Result<i64, sqlx::Error> {
    // A NULL uid lets the database pick the next one.
    sqlx::query(
        "INSERT INTO users (uid, service, email, generation, client_state, keys_changed_at, \
         created_at, replaced_at, nodeid) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8) \
         RETURNING uid",
    )
    .bind(uid)
    .bind(service)
    .bind(row.email)
    .bind(row.generation)
    .bind(row.client_state)
    .bind(row.keys_changed_at)
    .bind(row.created_at)
    .bind(row.nodeid)
    .fetch_one(&mut *tx)
    .await?
    .try_get("uid")
}

async fn load_rows(
    tx: &mut SqliteConnection,
    service: i64,
    email: &str,
) -> Result<Vec<UserRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT u.uid, u.generation, u.client_state, u.keys_changed_at, u.created_at, \
         u.replaced_at, u.nodeid, n.node FROM users u LEFT JOIN nodes n ON n.id = u.nodeid \
         WHERE u.email = $1 AND u.service = $2 ORDER BY u.created_at DESC, u.uid DESC LIMIT $3",
    )
    .bind(email)
    .bind(service)
    .bind(MAX_ROWS_PER_ACCOUNT)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(UserRow {
                uid: r.try_get("uid")?,
                generation: r.try_get("generation")?,
                client_state: r.try_get("client_state")?,
                keys_changed_at: r.try_get("keys_changed_at")?,
                created_at: r.try_get("created_at")?,
                replaced_at: r.try_get("replaced_at")?,
                nodeid: r.try_get("nodeid")?,
                node: r.try_get("node")?,
            })
        })
        .collect()
}

async fn mark_replaced(
    tx: &mut SqliteConnection,
    uids: &[i64],
    at: i64,
) -> Result<(), sqlx::Error> {
    for uid in uids {
        sqlx::query("UPDATE users SET replaced_at = $1 WHERE uid = $2 AND replaced_at IS NULL")
            .bind(at)
            .bind(uid)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// §1.6: the least loaded open node, refilling `available` when none is open.
async fn allocate_node(tx: &mut SqliteConnection, service: i64) -> Result<i64, TokenserverError> {
    for _ in 0..=MAX_REFILL_ROUNDS {
        let rows = sqlx::query(
            "SELECT id, current_load, capacity FROM nodes WHERE service = $1 AND available > 0 \
             AND capacity > current_load AND downed = 0 AND backoff = 0 ORDER BY id",
        )
        .bind(service)
        .fetch_all(&mut *tx)
        .await?;
        let candidates: Vec<(i64, i64, i64)> = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("current_load")?,
                    r.try_get("capacity")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        if let Some(id) = least_loaded(&candidates) {
            sqlx::query(
                "UPDATE nodes SET current_load = current_load + 1, available = CASE WHEN \
                 available > 0 THEN available - 1 ELSE 0 END WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            return Ok(id);
        }
        // Release 10 % of each open node's capacity (at least one slot), capped by its room.
        let refilled = sqlx::query(
            "UPDATE nodes SET available = CASE \
               WHEN (CASE WHEN capacity < 10 THEN 1 ELSE capacity / 10 END) < capacity - current_load \
               THEN (CASE WHEN capacity < 10 THEN 1 ELSE capacity / 10 END) \
               ELSE capacity - current_load END \
             WHERE service = $1 AND available <= 0 AND capacity > current_load AND downed = 0",
        )
        .bind(service)
        .execute(&mut *tx)
        .await?;
        if refilled.rows_affected() == 0 {
            break;
        }
    }
    Err(TokenserverError::NoNode)
}

/// Smallest `ln(load) / ln(capacity)`, an empty node first; ties go to the lowest id.
fn least_loaded(candidates: &[(i64, i64, i64)]) -> Option<i64> {
    let score = |load: i64, capacity: i64| {
        if load <= 0 || capacity <= 1 {
            -1.0
        } else {
            (load as f64).ln() / (capacity as f64).ln()
        }
    };
    candidates
        .iter()
        .map(|&(id, load, cap)| (id, score(load, cap)))
        .fold(None, |best: Option<(i64, f64)>, (id, s)| match best {
            Some((_, b)) if b <= s => best,
            _ => Some((id, s)),
        })
        .map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_url_keeps_odd_data_dir_names() {
        for dir in [
            "/srv/sync?mode=ro",
            "/srv/100%25",
            "/srv/a#b",
            "/srv/plain dir",
        ] {
            let settings = crate::config::Settings {
                data_dir: dir.into(),
                ..Default::default()
            };
            let url = settings.tokenserver_database_url();
            let options = SqliteConnectOptions::from_str(&url).expect(&url);
            let expected = std::path::Path::new(dir).join("tokenserver.db");
            assert_eq!(options.get_filename(), expected, "{url}");
        }
    }

    #[test]
    fn least_loaded_prefers_empty_then_lowest_ratio() {
        assert_eq!(least_loaded(&[]), None);
        assert_eq!(least_loaded(&[(1, 99, 100), (2, 90, 100)]), Some(2));
        assert_eq!(least_loaded(&[(1, 5, 100), (2, 0, 100)]), Some(2));
        assert_eq!(
            least_loaded(&[(1, 1, 100), (2, 2, 100), (3, 3, 100)]),
            Some(1)
        );
        assert_eq!(least_loaded(&[(1, 3, 100), (2, 3, 100)]), Some(1));
    }

    async fn temp_db() -> (Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let pool = connect(&url).await.unwrap();
        let store = Arc::new(crate::storage::OfflineStorage::new(dir.path()));
        (Db::open(pool, store).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn node_row_is_moved_not_duplicated() {
        let (db, _dir) = temp_db().await;
        let a = db
            .ensure_node(None, "http://127.0.0.1:8000", 10)
            .await
            .unwrap();
        let b = db
            .ensure_node(Some("https://sync.example.com"), "x", 20)
            .await
            .unwrap();
        let c = db
            .ensure_node(Some("https://sync.example.com"), "x", 20)
            .await
            .unwrap();
        assert_eq!((a, b), (a, c));
        let rows = sqlx::query("SELECT node, capacity, available FROM nodes")
            .fetch_all(&db.pool)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<String, _>("node"), "https://sync.example.com");
        assert_eq!(rows[0].get::<i64, _>("capacity"), 20);
        assert_eq!(rows[0].get::<i64, _>("available"), 20);
    }

    #[tokio::test]
    async fn uid_with_leftover_storage_is_skipped() {
        let (db, dir) = temp_db().await;
        db.ensure_node(None, "http://n", 100).await.unwrap();
        for uid in [1u64, 2] {
            let path = crate::storage::user_db_path(dir.path(), uid);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"old").unwrap();
        }
        let policy = NewUserPolicy {
            allowed: true,
            max_users: 0,
        };
        let req = Presented::new(Some(1), Some(1), "aa");
        let got = db
            .get_or_create_user("a@x", &req, 1000, policy)
            .await
            .unwrap();
        assert_eq!(got.uid, 3);
        let got = db
            .get_or_create_user("b@x", &req, 1000, policy)
            .await
            .unwrap();
        assert_eq!(got.uid, 4);
    }
}
