//! User-record rules against the real server: the generation / keys_changed_at /
//! client-state sequences and the user cases Mozilla's tokenserver tests exercise, with rows
//! seeded straight into the tokenserver database as those tests do.

use sqlx::sqlite::SqlitePool;

use crate::tokenserver_support::*;

const MAX: i64 = i64::MAX;

/// Seeds one live row for [`FXA_UID`] on the server's node, created a minute ago.
async fn seeded(ts: &Ts, generation: i64, kca: Option<i64>, cs: &'static str) -> (SqlitePool, i64) {
    let pool = ts.db().await;
    let nodeid = node_id(&pool).await;
    let uid = seed_user(
        &pool,
        FXA_UID,
        Seed {
            generation,
            keys_changed_at: kca,
            client_state: cs,
            created_at: ts.srv.clock_ms() - 60_000,
            replaced_at: None,
            nodeid,
        },
    )
    .await;
    (pool, uid)
}

trait ClockMs {
    fn clock_ms(&self) -> i64;
}

impl ClockMs for crate::common::TestServer {
    fn clock_ms(&self) -> i64 {
        use syncserver::clock::Clock;
        self.clock.now_ms()
    }
}

/// Status plus the error status string (or "ok").
async fn outcome(ts: &Ts, generation: Option<i64>, kca: i64, cs: &str) -> (u16, String) {
    ts.tick(1000);
    let a = ts.token(generation, kca, cs).await;
    let status = if a.status == 200 {
        "ok".to_string()
    } else {
        let (s, _, _, d) = a.error();
        if s == "invalid-client-state" && d.starts_with("Unacceptable") {
            d
        } else {
            s
        }
    };
    (a.status, status)
}

const NO_GEN_CHANGE: &str = "Unacceptable client-state value new value with no generation change";
const NO_KCA_CHANGE: &str =
    "Unacceptable client-state value new value with no keys_changed_at change";
const STALE: &str = "Unacceptable client-state value stale value";
const EMPTY: &str = "Unacceptable client-state value empty string";

fn ok() -> (u16, String) {
    (200, "ok".into())
}

fn refused(status: &str) -> (u16, String) {
    (401, status.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_changed_at_sequence() {
    let ts = Ts::start().await;
    let (pool, uid) = seeded(&ts, 1232, Some(1234), "aaaa").await;
    assert_eq!(
        outcome(&ts, Some(1235), 1236, "aaaa").await,
        refused("invalid-keysChangedAt")
    );
    assert_eq!(outcome(&ts, Some(1233), 1234, "aaaa").await, ok());
    assert_eq!(outcome(&ts, None, 1235, "aaaa").await, ok());
    assert_eq!(outcome(&ts, Some(1236), 1235, "aaaa").await, ok());
    let r = row(&pool, uid).await;
    assert_eq!((r.generation, r.keys_changed_at), (1236, Some(1235)));
    assert_eq!(rows(&pool, FXA_UID).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_client_state_is_refused() {
    let ts = Ts::start().await;
    let pool = ts.db().await;
    let nodeid = node_id(&pool).await;
    let t = ts.srv.clock_ms();
    let seed = |cs, created_at, replaced_at| Seed {
        generation: 1234,
        keys_changed_at: Some(1234),
        client_state: cs,
        created_at,
        replaced_at,
        nodeid,
    };
    seed_user(&pool, FXA_UID, seed("aaaa", t - 2000, Some(t - 1000))).await;
    let current = seed_user(&pool, FXA_UID, seed("bbbb", t - 1000, None)).await;
    assert_eq!(outcome(&ts, Some(1234), 1234, "aaaa").await, refused(STALE));
    ts.tick(1000);
    assert_eq!(ts.token(Some(1234), 1234, "bbbb").await.uid(), current);
    ts.tick(1000);
    let new_uid = ts.token(Some(1235), 1235, "cccc").await.uid();
    assert_ne!(new_uid, current);
    // The new row is the only live one; the old ones keep their values.
    let all = rows(&pool, FXA_UID).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all.iter().filter(|r| r.replaced_at.is_none()).count(), 1);
    assert_eq!(all[1].client_state, "bbbb");
    assert_eq!(all[1].generation, 1234);
    assert_eq!(all[2].nodeid, nodeid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_state_change_needs_a_generation_change() {
    let ts = Ts::start().await;
    let (pool, _) = seeded(&ts, 1234, None, "aaaa").await;
    assert_eq!(
        outcome(&ts, Some(1234), 1234, "bbbb").await,
        refused(NO_GEN_CHANGE)
    );
    assert_eq!(outcome(&ts, None, 1235, "bbbb").await, ok());
    let all = rows(&pool, FXA_UID).await;
    assert_eq!(all.last().unwrap().generation, 1235);
    assert_eq!(
        outcome(&ts, Some(1235), 1235, "cccc").await,
        refused(NO_GEN_CHANGE)
    );
    assert_eq!(outcome(&ts, Some(1236), 1236, "cccc").await, ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_state_change_needs_a_keys_changed_at_change() {
    let ts = Ts::start().await;
    seeded(&ts, 1234, Some(1234), "aaaa").await;
    assert_eq!(
        outcome(&ts, Some(1235), 1234, "bbbb").await,
        refused(NO_KCA_CHANGE)
    );
    assert_eq!(outcome(&ts, Some(1235), 1235, "bbbb").await, ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_never_goes_back() {
    let ts = Ts::start().await;
    let (pool, uid) = seeded(&ts, 1234, None, "aaaa").await;
    assert_eq!(
        outcome(&ts, Some(1233), 0, "aaaa").await,
        refused("invalid-generation")
    );
    assert_eq!(outcome(&ts, None, 0, "aaaa").await, ok());
    assert_eq!(outcome(&ts, Some(1234), 0, "aaaa").await, ok());
    ts.tick(1000);
    assert_eq!(ts.token(Some(1235), 0, "aaaa").await.uid(), uid);
    assert_eq!(row(&pool, uid).await.generation, 1235);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_follows_keys_changed_at_when_absent() {
    let ts = Ts::start().await;
    let (pool, uid) = seeded(&ts, 0, Some(1234), "aaaa").await;
    assert_eq!(outcome(&ts, None, 1234, "aaaa").await, ok());
    assert_eq!(row(&pool, uid).await.generation, 0);
    assert_eq!(outcome(&ts, None, 1235, "aaaa").await, ok());
    assert_eq!(row(&pool, uid).await.generation, 1235);

    let ts = Ts::start().await;
    let (pool, uid) = seeded(&ts, 0, None, "aaaa").await;
    assert_eq!(outcome(&ts, None, 1234, "aaaa").await, ok());
    let r = row(&pool, uid).await;
    assert_eq!((r.generation, r.keys_changed_at), (1234, Some(1234)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fxa_kid_flow() {
    let ts = Ts::start().await;
    let (pool, uid) = seeded(&ts, 1234, None, "aaaa").await;
    assert_eq!(outcome(&ts, Some(1234), 1234, "aaaa").await, ok());
    assert_eq!(
        outcome(&ts, Some(1234), 1233, "aaaa").await,
        refused("invalid-keysChangedAt")
    );
    assert_eq!(
        outcome(&ts, Some(1234), 2345, "bbbb").await,
        refused("invalid-keysChangedAt")
    );
    assert_eq!(outcome(&ts, Some(1234), 1234, "aaaa").await, ok());
    ts.tick(1000);
    let a = ts.token(Some(2345), 2345, "bbbb").await;
    let new_uid = a.uid();
    assert_ne!(new_uid, uid);
    let secret = syncserver::auth::TokenSecret::new(crate::common::TEST_SECRET);
    let p = syncserver::auth::parse_token(&secret, a.body["id"].as_str().unwrap()).unwrap();
    assert_eq!(p.payload.fxa_kid, "0000000002345-u7s");
    assert_eq!(
        row(&pool, new_uid).await.nodeid,
        row(&pool, uid).await.nodeid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gradual_rollout_of_keys_changed_at() {
    let ts = Ts::start().await;
    let (pool, uid) = seeded(&ts, 1234, None, "aaaa").await;
    ts.tick(1000);
    assert_eq!(ts.token(Some(1234), 1200, "aaaa").await.uid(), uid);
    assert_eq!(row(&pool, uid).await.keys_changed_at, Some(1200));
    let nodeid = node_id(&pool).await;
    let other = seed_user(
        &pool,
        FXA_UID,
        Seed {
            generation: 2345,
            keys_changed_at: Some(1200),
            client_state: "bbbb",
            created_at: ts.srv.clock_ms(),
            replaced_at: None,
            nodeid,
        },
    )
    .await;
    ts.tick(1000);
    assert_eq!(ts.token(Some(2345), 2345, "bbbb").await.uid(), other);
    // The older row was marked replaced as of the current row's creation.
    let r = row(&pool, uid).await;
    assert_eq!(r.replaced_at, Some(row(&pool, other).await.created_at));
    assert_eq!(rows(&pool, FXA_UID).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_client_state_history() {
    let ts = Ts::start().await;
    let (pool, first) = seeded(&ts, 0, None, "").await;
    ts.tick(1000);
    let second = ts.token(Some(1234), 1234, "bbbb").await.uid();
    assert_ne!(second, first);
    let r = row(&pool, second).await;
    assert_eq!(
        (r.generation, r.keys_changed_at, r.client_state.as_str()),
        (1234, Some(1234), "bbbb")
    );
    assert_eq!(r.nodeid, row(&pool, first).await.nodeid);
    ts.tick(1000);
    let third = ts.token(None, 1235, "cccc").await.uid();
    assert!(third != first && third != second);
    let r = row(&pool, third).await;
    assert_eq!((r.generation, r.keys_changed_at), (1235, Some(1235)));
    assert_eq!(
        outcome(&ts, None, 1235, "dddd").await,
        refused(NO_KCA_CHANGE)
    );
    assert_eq!(outcome(&ts, Some(1236), 1236, "bbbb").await, refused(STALE));
    // An empty state after a non-empty one is refused too.
    assert_eq!(outcome(&ts, Some(1237), 1237, "").await, refused(EMPTY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_values_are_recorded() {
    let ts = Ts::start().await;
    let (pool, uid) = seeded(&ts, 0, None, "aaaa").await;
    assert_eq!(outcome(&ts, Some(1234), 1234, "aaaa").await, ok());
    let r = row(&pool, uid).await;
    assert_eq!((r.generation, r.keys_changed_at), (1234, Some(1234)));

    let ts = Ts::start().await;
    let (pool, uid) = seeded(&ts, 1234, None, "aaaa").await;
    assert_eq!(outcome(&ts, Some(1234), 1234, "aaaa").await, ok());
    assert_eq!(row(&pool, uid).await.keys_changed_at, Some(1234));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_generation_and_keys_changed_at_are_ignored() {
    let ts = Ts::start().await;
    let (pool, uid) = seeded(&ts, 1234, None, "aaaa").await;
    assert_eq!(outcome(&ts, Some(0), 0, "aaaa").await, ok());
    let r = row(&pool, uid).await;
    assert_eq!((r.generation, r.keys_changed_at), (1234, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greatest_generation_row_is_current_and_older_rows_get_replaced() {
    let ts = Ts::start().await;
    let pool = ts.db().await;
    let nodeid = node_id(&pool).await;
    let t = ts.srv.clock_ms();
    let seed = |generation, created_at| Seed {
        generation,
        keys_changed_at: None,
        client_state: "aaaa",
        created_at,
        replaced_at: None,
        nodeid,
    };
    let older = seed_user(&pool, FXA_UID, seed(1, t - 3000)).await;
    let best = seed_user(&pool, FXA_UID, seed(2, t - 5000)).await;
    let newer_lower = seed_user(&pool, FXA_UID, seed(1, t - 1000)).await;
    ts.tick(1000);
    assert_eq!(ts.token(Some(2), 0, "aaaa").await.uid(), best);
    let best_created = row(&pool, best).await.created_at;
    for uid in [older, newer_lower] {
        assert_eq!(
            row(&pool, uid).await.replaced_at,
            Some(best_created),
            "uid {uid}"
        );
    }
    assert_eq!(row(&pool, best).await.replaced_at, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_current_row_gets_a_new_uid() {
    let ts = Ts::start().await;
    let pool = ts.db().await;
    let nodeid = node_id(&pool).await;
    let t = ts.srv.clock_ms();
    let uid = seed_user(
        &pool,
        FXA_UID,
        Seed {
            generation: 5,
            keys_changed_at: Some(5),
            client_state: "aaaa",
            created_at: t - 2000,
            replaced_at: Some(t - 1000),
            nodeid,
        },
    )
    .await;
    ts.tick(1000);
    let new_uid = ts.token(Some(5), 5, "aaaa").await.uid();
    assert_ne!(new_uid, uid);
    let r = row(&pool, new_uid).await;
    assert_eq!(
        (r.generation, r.keys_changed_at, r.client_state.as_str()),
        (5, Some(5), "aaaa")
    );
    // A second request keeps the new uid.
    ts.tick(1000);
    assert_eq!(ts.token(Some(5), 5, "aaaa").await.uid(), new_uid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_client_state_adds_a_row_same_state_updates_in_place() {
    let ts = Ts::start().await;
    let (pool, uid) = seeded(&ts, 10, Some(10), "aaaa").await;
    assert_eq!(outcome(&ts, Some(11), 11, "aaaa").await, ok());
    assert_eq!(rows(&pool, FXA_UID).await.len(), 1);
    assert_eq!(outcome(&ts, Some(12), 12, "bbbb").await, ok());
    let all = rows(&pool, FXA_UID).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].uid, uid);
    assert_eq!(
        (all[0].generation, all[0].client_state.as_str()),
        (11, "aaaa")
    );
    assert!(all[0].replaced_at.is_some());
    assert_eq!(all[1].replaced_at, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_user() {
    let ts = Ts::start().await;
    let (pool, uid) = seeded(&ts, MAX, None, "aaaa").await;
    assert_eq!(
        outcome(&ts, Some(1234), 0, "aaaa").await,
        refused("invalid-generation")
    );
    ts.tick(1000);
    assert_eq!(ts.token(Some(MAX), 0, "aaaa").await.uid(), uid);
    // Without its node row, a retired user is an internal error.
    sqlx::query("UPDATE users SET nodeid = 999 WHERE uid = $1")
        .bind(uid)
        .execute(&pool)
        .await
        .unwrap();
    ts.tick(1000);
    let a = ts.token(Some(MAX), 0, "aaaa").await;
    assert_eq!(a.status, 500);
    assert_eq!(
        a.body,
        serde_json::json!({"status":"internal-error","errors":[{"location":"internal","name":"","description":"Server error"}]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_user_without_node_moves_to_an_existing_node() {
    let ts = Ts::start().await;
    let (pool, uid) = seeded(&ts, 5, None, "aaaa").await;
    sqlx::query("UPDATE users SET nodeid = 999, replaced_at = created_at WHERE uid = $1")
        .bind(uid)
        .execute(&pool)
        .await
        .unwrap();
    ts.tick(1000);
    let new_uid = ts.token(Some(5), 0, "aaaa").await.uid();
    assert_ne!(new_uid, uid);
    assert_eq!(row(&pool, new_uid).await.nodeid, node_id(&pool).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_request_creates_one_row_on_the_node() {
    let ts = Ts::start().await;
    let pool = ts.db().await;
    let load = || async {
        let r: (i64, i64) = sqlx::query_as("SELECT available, current_load FROM nodes")
            .fetch_one(&pool)
            .await
            .unwrap();
        r
    };
    let (available, current_load) = load().await;
    let uid = ts.token(Some(1234), 1235, "aaaa").await.uid();
    let all = rows(&pool, FXA_UID).await;
    assert_eq!(all.len(), 1);
    let r = &all[0];
    assert_eq!(r.uid, uid);
    assert_eq!(
        (r.generation, r.keys_changed_at, r.client_state.as_str()),
        (1234, Some(1235), "aaaa")
    );
    assert_eq!(r.nodeid, node_id(&pool).await);
    assert_eq!(load().await, (available - 1, current_load + 1));
    ts.tick(1000);
    assert_eq!(ts.token(Some(1234), 1235, "aaaa").await.uid(), uid);
    assert_eq!(rows(&pool, FXA_UID).await.len(), 1);
    assert_eq!(load().await, (available - 1, current_load + 1));
}
