//! Whole flows: Firefox's first sync, racing clients, many users through a small LRU, the
//! clock standing still or stepping back, deleting a user, purge, quota, and a `kill -9` of
//! the real binary.

use reqwest::Method;
use serde_json::json;

use crate::common::{BinaryServer, TEST_SECRET, TestServer};
use crate::storage_support::{Client, records, send, ts_str};

/// The requests of desktop Firefox's first sync against an empty server, in its order, with
/// text/plain bodies as Firefox sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_first_sync_sequence() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 100_001_234);
    let text = |m: Method, rest: &str, unmodified: &str, body: String| {
        send(
            c.req(m, rest)
                .header("Content-Type", "text/plain;charset=UTF-8")
                .header("X-If-Unmodified-Since", unmodified.to_string())
                .body(body),
        )
    };
    c.get("/info/collections").await.expect(200);
    c.get("/info/configuration").await.expect(200);
    c.get("/storage/meta/global").await.expect_error(404, "0");
    send(
        c.req(Method::DELETE, "/storage")
            .header("X-Confirm-Delete", "1"),
    )
    .await
    .expect(200);
    let meta = json!({"id": "global", "modified": 0, "payload": "{\"syncID\":\"abc\",\"storageVersion\":5}"});
    let put_meta = text(Method::PUT, "/storage/meta/global", "0", meta.to_string()).await;
    put_meta.expect(200);
    let keys = json!({"id": "keys", "payload": "{\"ciphertext\":\"c\",\"IV\":\"aXYxMjM0NTY3ODkwMTIzNA==\",\"hmac\":\"h\"}"});
    text(Method::PUT, "/storage/crypto/keys", "0", keys.to_string())
        .await
        .expect(200);
    let info = c.get("/info/collections").await.json();
    assert!(info.get("meta").is_some() && info.get("crypto").is_some());
    c.get("/storage/crypto/keys").await.expect(200);
    c.get("/info/collections?v=153.0").await.expect(200);
    c.get("/info/configuration").await.expect(200);
    let engines = [
        ("clients", 1),
        ("prefs", 1),
        ("tabs", 1),
        ("bookmarks", 150),
    ];
    for (engine, n) in engines {
        c.delete(&format!("/storage/{engine}")).await.expect(200);
        // Chunks of max_post_records, each a batch=true&commit=true of its own; the first
        // one with X-If-Unmodified-Since: 0 (the collection was just deleted).
        let all = records(&format!("{engine}-"), n, "{\"ciphertext\":\"x\"}");
        let mut since = "0".to_string();
        for chunk in all.as_array().expect("array").chunks(100) {
            let body = serde_json::Value::Array(chunk.to_vec()).to_string();
            let r = text(
                Method::POST,
                &format!("/storage/{engine}?batch=true&commit=true"),
                &since,
                body,
            )
            .await;
            r.expect(200);
            assert_eq!(r.json()["failed"], json!({}), "{engine}");
            since = r.header("x-last-modified").expect("lm").to_string();
        }
    }
    for engine in ["passwords", "addons", "forms", "history"] {
        c.delete(&format!("/storage/{engine}")).await.expect(200);
    }
    let meta_lm = put_meta.header("x-last-modified").expect("lm").to_string();
    text(
        Method::PUT,
        "/storage/meta/global",
        &meta_lm,
        meta.to_string(),
    )
    .await
    .expect(200);

    // What the server holds afterwards — not what the client believes.
    let counts = c.get("/info/collection_counts").await.json();
    assert_eq!(
        counts,
        json!({"bookmarks": 150, "clients": 1, "crypto": 1, "meta": 1, "prefs": 1, "tabs": 1})
    );
    let bm = c
        .get("/storage/bookmarks?full=1&limit=1000&sort=oldest")
        .await;
    assert_eq!(bm.ids().len(), 150);
    assert_eq!(
        c.get("/storage/meta/global").await.json()["payload"],
        meta["payload"]
    );
    assert!(srv.dir.path().join("storage/34/12/100001234.db").exists());
}

/// Two clients upload to one collection with the timestamp they last saw: one wins, the
/// other gets 412, and no record that got a 200 is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_racing_on_one_collection() {
    let srv = TestServer::start().await;
    let a = Client::new(&srv, 50);
    let b = Client::new(&srv, 50);
    let base = a
        .post_json("/storage/bookmarks", &records("base", 1, "x"))
        .await
        .ts("x-last-modified");
    let upload = |c: &Client<'_>, prefix: &str| {
        send(
            c.req(Method::POST, "/storage/bookmarks?batch=true&commit=true")
                .header("Content-Type", "text/plain")
                .header("X-If-Unmodified-Since", ts_str(base))
                .body(records(prefix, 20, "x").to_string()),
        )
    };
    let (ra, rb) = tokio::join!(upload(&a, "ra"), upload(&b, "rb"));
    let mut statuses = [ra.status, rb.status];
    statuses.sort();
    assert_eq!(statuses, [200, 412]);
    let (winner, loser_prefix) = if ra.status == 200 {
        (&ra, "rb")
    } else {
        (&rb, "ra")
    };
    let ids = a.get("/storage/bookmarks").await.ids();
    assert_eq!(ids.len(), 21);
    assert!(!ids.iter().any(|i| i.starts_with(loser_prefix)));
    // The loser re-reads and retries with the new timestamp: nothing is lost.
    let lm = winner.header("x-last-modified").expect("lm").to_string();
    let retry = send(
        b.req(Method::POST, "/storage/bookmarks?batch=true&commit=true")
            .header("Content-Type", "text/plain")
            .header("X-If-Unmodified-Since", lm)
            .body(records(loser_prefix, 20, "x").to_string()),
    )
    .await;
    retry.expect(200);
    assert_eq!(a.get("/storage/bookmarks").await.ids().len(), 41);
}

/// Many concurrent writers on one user: every write lands, timestamps are unique.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_of_one_user_are_serialized() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 51);
    let paths: Vec<String> = (0..20).map(|i| format!("/storage/xxx_col1/i{i}")).collect();
    let tasks = paths.iter().map(|p| c.put(p, r#"{"payload":"x"}"#));
    let results = futures_util::future::join_all(tasks).await;
    let mut stamps: Vec<_> = results.iter().map(|r| r.ts("x-last-modified")).collect();
    stamps.sort();
    stamps.dedup();
    assert_eq!(stamps.len(), 20, "one distinct timestamp per write");
    assert_eq!(c.get("/storage/xxx_col1").await.ids().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lru_eviction_keeps_every_users_data() {
    let srv = TestServer::start_with(|s| s.storage.max_open_databases = 4).await;
    let clients: Vec<_> = (1..=200u64).map(|uid| Client::new(&srv, uid)).collect();
    for chunk in clients.chunks(20) {
        let writes = chunk.iter().map(|c| async move {
            let body = records(&format!("u{}_", c.uid), 3, &format!("data of {}", c.uid));
            c.post_json("/storage/xxx_col1", &body).await
        });
        for r in futures_util::future::join_all(writes).await {
            r.expect(200);
        }
    }
    for chunk in clients.chunks(20) {
        let reads = chunk.iter().map(|c| c.get("/storage/xxx_col1?full=1"));
        let results = futures_util::future::join_all(reads).await;
        for (c, r) in chunk.iter().zip(results) {
            r.expect(200);
            let v = r.json();
            let items = v.as_array().expect("array");
            assert_eq!(items.len(), 3, "uid {}", c.uid);
            for item in items {
                assert!(
                    item["id"]
                        .as_str()
                        .expect("id")
                        .starts_with(&format!("u{}_", c.uid))
                );
                assert_eq!(item["payload"], format!("data of {}", c.uid));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_increase_when_the_clock_stands_still_or_steps_back() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 52);
    let t1 = c
        .put("/storage/xxx_col1/a", r#"{"payload":"x"}"#)
        .await
        .ts("x-last-modified");
    let t2 = c
        .put("/storage/xxx_col1/b", r#"{"payload":"x"}"#)
        .await
        .ts("x-last-modified");
    assert_eq!(t2, t1 + 10);
    srv.clock.advance_ms(-30_000);
    let back = Client::new(&srv, 52);
    let t3 = back
        .put("/storage/xxx_col1/c", r#"{"payload":"x"}"#)
        .await
        .ts("x-last-modified");
    assert!(t3 > t2);
    assert_eq!(t3 % 10, 0);
    // DELETE storage does not reset the high-water mark.
    back.delete("/storage").await.expect(200);
    let t4 = back
        .put("/storage/xxx_col1/d", r#"{"payload":"x"}"#)
        .await
        .ts("x-last-modified");
    assert!(t4 > t3);
}

/// `DELETE /1.5/{uid}` honours `X-If-Unmodified-Since` against the storage last-modified,
/// as `DELETE /storage` does; the user's file may be pooled or closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_user_checks_x_if_unmodified_since() {
    let srv = TestServer::start_with(|s| s.storage.max_open_databases = 1).await;
    let c = Client::new(&srv, 41);
    let other = Client::new(&srv, 42);
    let t = c
        .post_json("/storage/xxx_col1", &records("a", 2, "x"))
        .await
        .ts("x-last-modified");
    let db = srv.dir.path().join("storage/41/00/41.db");
    for evict in [false, true] {
        if evict {
            // Another user's write closes user 41's file.
            other
                .put("/storage/xxx_col1/a", r#"{"payload":"y"}"#)
                .await
                .expect(200);
        }
        let r = send(
            c.req(Method::DELETE, "")
                .header("X-If-Unmodified-Since", ts_str(t - 10)),
        )
        .await;
        r.expect(412);
        assert_eq!(r.ts("x-last-modified"), t);
        assert!(db.exists(), "nothing deleted");
        let ids = c.get("/storage/xxx_col1?sort=oldest").await.json();
        assert_eq!(ids, json!(["a0", "a1"]));
    }
    send(
        c.req(Method::DELETE, "")
            .header("X-If-Unmodified-Since", ts_str(t)),
    )
    .await
    .expect(200);
    assert!(!db.exists());
    assert_eq!(c.get("/info/collections").await.body, "{}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_user_removes_the_files_and_keeps_time_moving() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 100_001_234);
    let t1 = c
        .post_json("/storage/xxx_col1", &records("a", 3, "x"))
        .await
        .ts("x-last-modified");
    let db = srv.dir.path().join("storage/34/12/100001234.db");
    assert!(db.exists());
    let del = c.delete("").await;
    del.expect(200);
    assert!(!db.exists());
    for suffix in ["-wal", "-shm"] {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        assert!(!std::path::Path::new(&p).exists(), "{suffix} left behind");
    }
    let info = c.get("/info/collections").await;
    assert_eq!(info.body, "{}");
    srv.clock.advance_ms(-60_000);
    let again = Client::new(&srv, 100_001_234);
    let t2 = again
        .put("/storage/xxx_col1/a", r#"{"payload":"x"}"#)
        .await
        .ts("x-last-modified");
    assert!(
        t2 > t1,
        "timestamps keep increasing after the file was deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_is_enforced_and_reported() {
    let srv = TestServer::start_with(|s| s.storage.quota_bytes = 2048).await;
    let c = Client::new(&srv, 53);
    let first = c
        .put(
            "/storage/xxx_col1/a",
            &json!({"payload": "x".repeat(1024)}).to_string(),
        )
        .await;
    first.expect(200);
    assert_eq!(first.header("x-weave-quota-remaining"), Some("1.00"));
    let q = c.get("/info/quota").await.json();
    assert_eq!(q, json!([1.0, 2.0]));
    // Overshoot is allowed by one write; then writes are refused.
    c.put(
        "/storage/xxx_col1/b",
        &json!({"payload": "x".repeat(1500)}).to_string(),
    )
    .await
    .expect(200);
    c.put("/storage/xxx_col1/c", r#"{"payload":"x"}"#)
        .await
        .expect_error(403, "14");
    c.post("/storage/xxx_col1", r#"[{"id":"d","payload":"x"}]"#)
        .await
        .expect_error(403, "14");
    c.post(
        "/storage/xxx_col1?batch=true",
        r#"[{"id":"d","payload":"x"}]"#,
    )
    .await
    .expect_error(403, "14");
    // Deleting frees space again, and every write response says how much is left. Each
    // value below differs from what the previous response said, so a header computed before
    // the write would fail.
    let freed = c.delete("/storage/xxx_col1/b").await;
    freed.expect(200);
    assert_eq!(freed.header("x-weave-quota-remaining"), Some("1.00"));
    let half = json!({"payload": "x".repeat(512)}).to_string();
    let put = c.put("/storage/xxx_col1/c", &half).await;
    assert_eq!(put.header("x-weave-quota-remaining"), Some("0.50"));
    // A batch step reports what is left; its pending items count once committed.
    let pending = c
        .post(
            "/storage/xxx_col2?batch=true",
            &json!([{"id": "d", "payload": "x".repeat(256)}]).to_string(),
        )
        .await;
    pending.expect(202);
    assert_eq!(pending.header("x-weave-quota-remaining"), Some("0.50"));
    // The commit's answer counts the pending items as well as its own.
    let batch = pending.json()["batch"]
        .as_str()
        .expect("batch id")
        .to_string();
    let committed = c
        .post(
            &format!("/storage/xxx_col2?batch={batch}&commit=true"),
            &json!([{"id": "f", "payload": "x".repeat(64)}]).to_string(),
        )
        .await;
    committed.expect(200);
    assert_eq!(committed.header("x-weave-quota-remaining"), Some("0.19"));
    c.delete("/storage/xxx_col2").await.expect(200);
    let by_ids = c.delete("/storage/xxx_col1?ids=c").await;
    assert_eq!(by_ids.header("x-weave-quota-remaining"), Some("1.00"));
    let coll = c.delete("/storage/xxx_col1").await;
    assert_eq!(coll.header("x-weave-quota-remaining"), Some("2.00"));
    let put = c.put("/storage/xxx_col3/e", &half).await;
    assert_eq!(put.header("x-weave-quota-remaining"), Some("1.50"));
    let all = c.delete("/storage").await;
    assert_eq!(all.header("x-weave-quota-remaining"), Some("2.00"));
    let put = c.put("/storage/xxx_col3/e", &half).await;
    assert_eq!(put.header("x-weave-quota-remaining"), Some("1.50"));
    let user = c.delete("").await;
    assert_eq!(user.header("x-weave-quota-remaining"), Some("2.00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_command_skips_files_the_server_holds_open() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 55);
    c.post("/storage/xxx_col1", r#"[{"id":"a","payload":"x"}]"#)
        .await
        .expect(200);
    let report = syncserver::storage::purge_all(&srv.settings)
        .await
        .expect("a held file is not a failure");
    assert!(report.contains("purged 0 user files"), "{report}");
    assert!(report.contains("skipped 1 user files in use"), "{report}");
    assert_eq!(c.get("/storage/xxx_col1").await.ids(), ["a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_command_removes_expired_records_and_stale_batches() {
    // One open file at a time: touching user 99 closes user 54's file, as happens to
    // idle users of a busy server.
    let srv = TestServer::start_with(|s| s.storage.max_open_databases = 1).await;
    // Written "3 hours ago" by the server's (manual) clock: the ttl-0 record and the
    // batch are stale for purge, which uses the real clock.
    srv.clock.advance_ms(-3 * 3600 * 1000);
    let old = Client::new(&srv, 54);
    old.post(
        "/storage/xxx_col1",
        r#"[{"id":"gone","payload":"x","ttl":0}]"#,
    )
    .await
    .expect(200);
    old.post(
        "/storage/xxx_col2?batch=true",
        r#"[{"id":"p","payload":"x"}]"#,
    )
    .await
    .expect(202);
    srv.clock.advance_ms(3 * 3600 * 1000);
    let c = Client::new(&srv, 54);
    c.post("/storage/xxx_col1", r#"[{"id":"stays","payload":"x"}]"#)
        .await
        .expect(200);
    Client::new(&srv, 99)
        .get("/info/collections")
        .await
        .expect(200);
    let report = syncserver::storage::purge_all(&srv.settings)
        .await
        .expect("purge runs");
    assert!(report.contains("1 expired records"), "{report}");
    assert!(report.contains("1 stale batches"), "{report}");
    let ids = c.get("/storage/xxx_col1").await.ids();
    assert_eq!(ids, ["stays"]);
    Client::new(&srv, 99)
        .get("/info/collections")
        .await
        .expect(200);
    let again = syncserver::storage::purge_all(&srv.settings)
        .await
        .expect("purge runs");
    assert!(again.contains("0 expired records"), "{again}");
}

/// When the disk refuses (here: a file where the user's folder should be), a write answers
/// 503 with Retry-After and nothing is half-written; it works again once the disk does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_error_is_503_with_retry_after() {
    let srv = TestServer::start().await;
    let top = srv.dir.path().join("storage/07");
    std::fs::create_dir_all(&top).expect("mkdir");
    std::fs::write(top.join("00"), b"not a folder").expect("blocker");
    let c = Client::new(&srv, 7);
    let r = c.put("/storage/xxx_col1/a", r#"{"payload":"x"}"#).await;
    r.expect_error(503, "0");
    assert_eq!(r.header("retry-after"), Some("10"));
    c.get("/info/collections").await.expect_error(503, "0");
    std::fs::remove_file(top.join("00")).expect("unblock");
    c.put("/storage/xxx_col1/a", r#"{"payload":"x"}"#)
        .await
        .expect(200);
    assert_eq!(c.get("/storage/xxx_col1").await.ids(), ["a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_vacuums_files_with_enough_free_space() {
    let srv = TestServer::start_with(|s| s.storage.max_open_databases = 1).await;
    srv.clock.advance_ms(-3600 * 1000);
    let old = Client::new(&srv, 55);
    let big: Vec<_> = (0..20)
        .map(|i| json!({"id": format!("big{i}"), "payload": "x".repeat(50_000), "ttl": 1}))
        .collect();
    old.post_json("/storage/xxx_col1", &json!(big))
        .await
        .expect(200);
    srv.clock.advance_ms(3600 * 1000);
    // Another user's request closes user 55's file (one open file at a time).
    Client::new(&srv, 99)
        .get("/info/collections")
        .await
        .expect(200);
    let db = srv.dir.path().join("storage/55/00/55.db");
    let mut settings = srv.settings.clone();
    settings.storage.vacuum_threshold_kb = 100;
    let report = syncserver::storage::purge_all(&settings)
        .await
        .expect("purge runs");
    assert!(report.contains("20 expired records"), "{report}");
    assert!(!report.contains(" 0 KiB vacuumed"), "{report}");
    let conn = rusqlite::Connection::open(&db).expect("open");
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .expect("freelist");
    assert!(free < 25, "free pages left: {free}");
}

/// Firefox deletes an engine's collection and re-uploads with X-If-Unmodified-Since: 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_collection_accepts_unmodified_since_zero() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 56);
    c.post_json("/storage/tabs", &records("t", 2, "x"))
        .await
        .expect(200);
    let zero = |body: String| {
        send(
            c.req(Method::POST, "/storage/tabs?batch=true&commit=true")
                .header("Content-Type", "text/plain")
                .header("X-If-Unmodified-Since", "0")
                .body(body),
        )
    };
    zero(records("n", 1, "x").to_string()).await.expect(412);
    c.delete("/storage/tabs").await.expect(200);
    zero(records("n", 1, "x").to_string()).await.expect(200);
    assert_eq!(c.get("/storage/tabs").await.ids(), ["n0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_on_heartbeat() {
    let srv = TestServer::start().await;
    let r = send(
        srv.client
            .request(Method::OPTIONS, srv.url("/__heartbeat__"))
            .header("Origin", "localhost")
            .header("Access-Control-Request-Method", "GET"),
    )
    .await;
    assert!(r.status == 200 || r.status == 204, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some("localhost"));
    let max_age: u64 = r
        .header("access-control-max-age")
        .and_then(|v| v.parse().ok())
        .expect("max-age");
    assert!(max_age > 0);
}

/// `kill -9` of the real binary: after a restart every acknowledged write is there, from
/// files the killed process held open and from files it had closed with their latest
/// writes still in the WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("SYNCSERVER_SECRET", TEST_SECRET),
        ("SYNCSERVER_STORAGE__MAX_OPEN_DATABASES", "2"),
    ];
    let mut srv = BinaryServer::start(dir.path(), &env, "first.log").await;
    // Two visits per user through a pool of two files: each visit evicts older users.
    for round in ["a", "b"] {
        for uid in 1..=6u64 {
            let body = records(round, 3, &format!("{round}-of-{uid}"));
            let res = srv
                .signed(uid, "POST", "/storage/history")
                .json(&body)
                .send()
                .await
                .expect("answered");
            assert_eq!(
                res.status(),
                200,
                "{}",
                res.text().await.unwrap_or_default()
            );
        }
    }
    srv.child.kill().expect("SIGKILL");
    srv.child.wait().expect("killed");
    // Users 1-4 were evicted before the kill: each file's second visit (a few KB) was left
    // in its WAL, not folded into the `.db`; the restart must recover it.
    for uid in 1..=4 {
        let wal = dir
            .path()
            .join(format!("data/storage/0{uid}/00/{uid}.db-wal"));
        let len = std::fs::metadata(&wal).map_or(0, |m| m.len());
        assert!(len > 0, "user {uid}: second visit left in the WAL");
    }

    let srv = BinaryServer::start(dir.path(), &env, "second.log").await;
    for uid in 1..=6u64 {
        let res = srv
            .signed(uid, "GET", "/storage/history?full=1")
            .send()
            .await
            .expect("answered");
        assert_eq!(res.status(), 200);
        let items: Vec<serde_json::Value> = res.json().await.expect("json");
        let mut got: Vec<(String, String)> = items
            .iter()
            .map(|r| (r["id"].to_string(), r["payload"].to_string()))
            .collect();
        got.sort();
        let want: Vec<(String, String)> = ["a", "b"]
            .iter()
            .flat_map(|round| {
                (0..3).map(move |i| (format!("\"{round}{i}\""), format!("\"{round}-of-{uid}\"")))
            })
            .collect();
        assert_eq!(got, want, "user {uid}");
    }
}

/// Started with a soft limit of 64 open files, the server raises it to the hard limit:
/// 100 users' files stay open at once (two descriptors each) and every write and read
/// succeeds. Without the raise, opens failed from about the 20th user on with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_raises_a_low_open_file_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("SYNCSERVER_SECRET", TEST_SECRET)];
    let srv = BinaryServer::start_with_open_file_limit(dir.path(), &env, "srv.log", 64).await;
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", srv.child.id())).expect("/proc limits");
    let row: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files row")
        .split_whitespace()
        .collect();
    assert_eq!(
        row[3], row[4],
        "soft limit raised to the hard one: {limits}"
    );
    assert_ne!(row[3], "64", "{limits}");

    for uid in 1..=100u64 {
        let res = srv
            .signed(uid, "PUT", "/storage/bookmarks/item")
            .json(&serde_json::json!({ "payload": format!("of {uid}") }))
            .send()
            .await
            .expect("answered");
        assert_eq!(res.status(), 200, "user {uid}");
    }
    for uid in 1..=100u64 {
        let res = srv
            .signed(uid, "GET", "/storage/bookmarks/item")
            .send()
            .await
            .expect("answered");
        assert_eq!(res.status(), 200, "user {uid}");
        let item: serde_json::Value = res.json().await.expect("json");
        assert_eq!(item["payload"], format!("of {uid}"));
    }
    let (status, log) = srv.terminate();
    assert!(status.success(), "{log}");
}
