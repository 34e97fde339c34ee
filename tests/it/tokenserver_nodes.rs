//! Node assignment (the least-loaded open node, refilled when all are spent; full nodes are
//! 503), the single-node row, and who may sync
//! (`allow_new_users`, `allowed_fxa_uids`, `max_users`).

use sqlx::sqlite::SqlitePool;

use crate::tokenserver_support::*;

/// Takes the server's own node out of service and adds `(node, load, capacity, available,
/// backoff, downed)` rows; returns their ids.
async fn nodes(pool: &SqlitePool, specs: &[(&str, i64, i64, i64, i64, i64)]) -> Vec<i64> {
    sqlx::query("UPDATE nodes SET downed = 1")
        .execute(pool)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (node, load, capacity, available, backoff, downed) in specs {
        let id: (i64,) = sqlx::query_as(
            "INSERT INTO nodes (service, node, available, current_load, capacity, downed, backoff) \
             VALUES (1, $1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(node)
        .bind(available)
        .bind(load)
        .bind(capacity)
        .bind(downed)
        .bind(backoff)
        .fetch_one(pool)
        .await
        .unwrap();
        ids.push(id.0);
    }
    ids
}

async fn node_state(pool: &SqlitePool, id: i64) -> (i64, i64) {
    sqlx::query_as("SELECT current_load, available FROM nodes WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_loaded_open_node_is_chosen() {
    let ts = Ts::start().await;
    let pool = ts.db().await;
    let ids = nodes(
        &pool,
        &[
            ("https://backoff", 0, 100, 100, 1, 0),
            ("https://downed", 0, 100, 100, 0, 1),
            ("https://one", 1, 100, 99, 0, 0),
            ("https://two", 2, 100, 98, 0, 0),
            ("https://three", 3, 100, 97, 0, 0),
        ],
    )
    .await;
    let uid = ts.token(Some(1), 1, "aaaa").await.uid();
    assert_eq!(row(&pool, uid).await.nodeid, ids[2]);
    assert_eq!(node_state(&pool, ids[2]).await, (2, 98));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_nodes_are_refilled() {
    let ts = Ts::start().await;
    let pool = ts.db().await;
    let ids = nodes(
        &pool,
        &[
            ("https://a", 99, 100, 0, 0, 0),
            ("https://b", 90, 100, 0, 0, 0),
            ("https://c", 80, 81, 0, 0, 0),
            ("https://d", 70, 71, 0, 1, 0),
            ("https://e", 60, 61, 0, 0, 1),
        ],
    )
    .await;
    let uid = ts.token(Some(1), 1, "aaaa").await.uid();
    assert_eq!(row(&pool, uid).await.nodeid, ids[1]);
    let mut available = Vec::new();
    for id in &ids {
        available.push(node_state(&pool, *id).await.1);
    }
    assert_eq!(available, [1, 9, 1, 1, 0]);
    assert_eq!(node_state(&pool, ids[1]).await.0, 91);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_nodes_are_503() {
    let ts = Ts::start_with(|s| s.tokenserver.node_capacity = 1).await;
    assert_eq!(
        ts.token_for(&"a".repeat(32), Some(1), 1, "aaaa")
            .await
            .status,
        200
    );
    let a = ts.token_for(&"b".repeat(32), Some(1), 1, "aaaa").await;
    assert_eq!(a.status, 503);
    assert_eq!(
        a.body,
        serde_json::json!({"status":"internal-error","errors":[{"location":"internal","name":"","description":"Server error"}]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_row_follows_public_url() {
    use crate::common::{TestServer, test_settings};
    let data = tempfile::tempdir().unwrap();
    let mut settings = test_settings(data.path());
    settings.public_url = Some("http://192.168.1.5:8000".into());
    let first = TestServer::start_in(tempfile::tempdir().unwrap(), settings.clone()).await;
    drop(first);
    let pool = SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new().filename(data.path().join("tokenserver.db")),
    )
    .await
    .unwrap();
    let before: Vec<(i64, String)> = sqlx::query_as("SELECT id, node FROM nodes")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].1, "http://192.168.1.5:8000");
    // Restart on the same data with another public_url: the same row moves.
    settings.public_url = Some("https://sync.example.com/".into());
    settings.tokenserver.node_capacity = 500;
    let second = TestServer::start_in(tempfile::tempdir().unwrap(), settings).await;
    let after: Vec<(i64, String, i64)> = sqlx::query_as("SELECT id, node, capacity FROM nodes")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        after,
        vec![(before[0].0, "https://sync.example.com".to_string(), 500)]
    );
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_new_users_false_keeps_known_users() {
    let ts = Ts::start_with(|s| s.tokenserver.allow_new_users = false).await;
    let pool = ts.db().await;
    let nodeid = node_id(&pool).await;
    let known = seed_user(
        &pool,
        FXA_UID,
        Seed {
            generation: 1,
            keys_changed_at: Some(1),
            client_state: "aaaa",
            created_at: 1,
            replaced_at: None,
            nodeid,
        },
    )
    .await;
    assert_eq!(ts.token(Some(1), 1, "aaaa").await.uid(), known);
    let a = ts.token_for(&"c".repeat(32), Some(1), 1, "aaaa").await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.body,
        serde_json::json!({"status":"new-users-disabled","errors":[{"location":"body","name":"","description":"New users are not allowed"}]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_admits_only_listed_accounts() {
    let ts = Ts::start_with(|s| s.tokenserver.allowed_fxa_uids = vec![FXA_UID.to_string()]).await;
    assert_eq!(ts.token(Some(1), 1, "aaaa").await.status, 200);
    let a = ts.token_for(&"d".repeat(32), Some(1), 1, "aaaa").await;
    assert_eq!(a.status, 403);
    assert_eq!(a.error().0, "new-users-disabled");
    assert!(rows(&ts.db().await, &"d".repeat(32)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_users_caps_new_accounts() {
    let ts = Ts::start_with(|s| s.tokenserver.max_users = 1).await;
    let first = ts.token(Some(1), 1, "aaaa").await.uid();
    let a = ts.token_for(&"e".repeat(32), Some(1), 1, "aaaa").await;
    assert_eq!(a.status, 403);
    assert_eq!(a.error().0, "new-users-disabled");
    // The existing user still syncs, also after a key change.
    ts.tick(1000);
    assert_eq!(ts.token(Some(1), 1, "aaaa").await.uid(), first);
    ts.tick(1000);
    assert_eq!(ts.token(Some(2), 2, "bbbb").await.status, 200);
}
