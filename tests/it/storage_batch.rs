//! Batch uploads: invisible until committed, then atomic; limits, expiry, invalid batch ids
//! and Firefox's later-sync uploads with preconditions.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::storage_support::{
    Client, Resp, intact, records, seed, send, ts_ms, ts_str, upload_batch, weave_error,
};

fn batch_id(r: &Resp) -> String {
    r.json()["batch"]
        .as_str()
        .unwrap_or_else(|| panic!("no batch id: {r:?}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_is_invisible_until_commit_then_atomic() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 1);
    let t0 = c
        .post_json("/storage/xxx_col1", &records("old", 2, "v0"))
        .await
        .ts("x-last-modified");
    let create = c
        .post_json("/storage/xxx_col1?batch=true", &records("a", 3, "v1"))
        .await;
    create.expect(202);
    let id = batch_id(&create);
    assert_eq!(create.ts("x-last-modified"), t0);
    assert_eq!(create.json()["success"].as_array().map(Vec::len), Some(3));
    let listing = c.get("/storage/xxx_col1").await;
    assert_eq!(listing.ids().len(), 2);
    assert_eq!(listing.header("x-weave-records"), Some("2"));
    assert_eq!(listing.ts("x-last-modified"), t0);

    let append = c
        .post_json(
            &format!("/storage/xxx_col1?batch={id}"),
            &records("b", 2, "v1"),
        )
        .await;
    append.expect(202);
    assert_eq!(batch_id(&append), id);
    assert_eq!(append.ts("x-last-modified"), t0);

    srv.clock.advance_ms(1_500);
    let commit = c
        .post_json(
            &format!("/storage/xxx_col1?batch={id}&commit=true"),
            &json!([{"id": "a0", "payload": "from-commit"}, {"id": "c0", "payload": "v2"}]),
        )
        .await;
    commit.expect(200);
    let t = commit.ts("x-last-modified");
    assert_eq!(
        crate::storage_support::ts_ms(&commit.json()["modified"].to_string()),
        t
    );
    assert_eq!(commit.json()["success"], json!(["a0", "c0"]));
    assert_eq!(commit.json()["failed"], json!({}));
    assert!(commit.json().get("batch").is_none());
    let info = c.get("/info/collections").await;
    // Compare the raw body: parsing 1700000000.10 as a JSON number drops the trailing zero.
    assert!(
        info.body.contains(&format!("\"xxx_col1\":{}", ts_str(t))),
        "{}",
        info.body
    );
    assert_eq!(info.ts("x-last-modified"), t);
    let items = c.get("/storage/xxx_col1?full=1").await.json();
    let items = items.as_array().expect("array");
    assert_eq!(items.len(), 2 + 3 + 2 + 1);
    for item in items {
        let id = item["id"].as_str().expect("id");
        if !id.starts_with("old") {
            assert_eq!(ts_ms(&item["modified"].to_string()), t, "{id}");
        }
        if id == "a0" {
            assert_eq!(item["payload"], "from-commit");
        }
    }
    // A committed batch id is dead.
    c.post_json(
        &format!("/storage/xxx_col1?batch={id}"),
        &records("z", 1, "x"),
    )
    .await
    .expect_error(400, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_commit_stamps_commit_time() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 2);
    let create = c
        .post_json("/storage/xxx_col1?batch=true", &records("a", 2, "x"))
        .await;
    let id = batch_id(&create);
    srv.clock.advance_ms(2_000);
    let commit = c
        .post(&format!("/storage/xxx_col1?batch={id}&commit=true"), "[]")
        .await;
    commit.expect(200);
    let t = commit.ts("x-last-modified");
    assert!(t >= create.ts("x-weave-timestamp") + 2_000);
    for item in c
        .get("/storage/xxx_col1?full=1")
        .await
        .json()
        .as_array()
        .expect("array")
    {
        assert_eq!(ts_ms(&item["modified"].to_string()), t);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_id_in_batch_and_commit() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 3);
    let id = batch_id(
        &c.post(
            "/storage/xxx_col1?batch=true",
            r#"[{"id":"x","payload":"pending"}]"#,
        )
        .await,
    );
    let commit = c
        .post(
            &format!("/storage/xxx_col1?batch={id}&commit=true"),
            r#"[{"id":"x","payload":"final"}]"#,
        )
        .await;
    assert_eq!(commit.json()["failed"], json!({}));
    assert_eq!(commit.json()["success"], json!(["x"]));
    assert_eq!(
        c.get("/storage/xxx_col1/x").await.json()["payload"],
        "final"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batch_parameters() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 4);
    c.post("/storage/xxx_col1?batch=sammich", "[]")
        .await
        .expect_error(400, "0");
    c.post("/storage/xxx_col1?commit=true", "[]")
        .await
        .expect_error(400, "0");
    c.post("/storage/xxx_col1?batch=true&commit=nope", "[]")
        .await
        .expect_error(400, "0");
    c.post("/storage/xxx_col1?batch=12345", "[]")
        .await
        .expect_error(400, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batch_ids_and_commit_values() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 114);
    let before = seed(&c).await;
    let body = r#"[{"id":"keep","payload":"gone"}]"#;
    for q in [
        "batch=0",
        "batch=-1",
        "batch=99999999999999999999",
        "batch=9223372036854775807",
        "batch=12345",
        "batch=%00",
        "batch=abc&commit=true",
        "batch=true&commit=false",
        "batch=true&commit=1",
        "batch=true&commit=",
        "commit=true",
    ] {
        weave_error(
            &c.post(&format!("/storage/xxx_col1?{q}"), body).await,
            400,
            "0",
        );
    }
    intact(&c, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_byte_limits() {
    let srv = TestServer::start_with(|s| {
        s.storage.max_post_bytes = 100;
        s.storage.max_total_bytes = 1_000;
    })
    .await;
    let c = Client::new(&srv, 5);
    let ok = c
        .post_json("/storage/xxx_col1?batch=true", &json!([{"id": "small", "payload": "y".repeat(10)}, {"id": "big", "payload": "x".repeat(90)}]))
        .await;
    ok.expect(202);
    assert_eq!(ok.json()["success"], json!(["small", "big"]));
    let over = c
        .post_json("/storage/xxx_col1?batch=true", &json!([{"id": "small", "payload": "y".repeat(10)}, {"id": "big", "payload": "x".repeat(91)}]))
        .await;
    assert_eq!(over.json()["failed"]["big"], "retry bytes");
    assert_eq!(over.json()["success"], json!(["small"]));

    let with_total = |v: u64| {
        send(
            c.req(Method::POST, "/storage/xxx_col1?batch=true")
                .header("Content-Type", "application/json")
                .header("X-Weave-Total-Bytes", v.to_string())
                .body("[]"),
        )
    };
    with_total(1_000).await.expect(202);
    with_total(1_001).await.expect_error(400, "17");

    // Totals are also enforced on append.
    let id = batch_id(
        &c.post_json(
            "/storage/xxx_col1?batch=true",
            &records("a", 1, &"x".repeat(100)),
        )
        .await,
    );
    for i in 0..9 {
        c.post_json(
            &format!("/storage/xxx_col1?batch={id}"),
            &records(&format!("n{i}_"), 1, &"x".repeat(100)),
        )
        .await
        .expect(202);
    }
    c.post_json(
        &format!("/storage/xxx_col1?batch={id}"),
        &records("last", 1, "x"),
    )
    .await
    .expect_error(400, "17");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_totals_count_each_id_once_and_include_the_commit_body() {
    let srv = TestServer::start_with(|s| {
        s.storage.max_total_records = 3;
        s.storage.max_total_bytes = 300;
    })
    .await;
    let c = Client::new(&srv, 6);
    let id = batch_id(
        &c.post_json(
            "/storage/xxx_col1?batch=true",
            &records("a", 2, &"x".repeat(100)),
        )
        .await,
    );
    // Re-sending pending ids replaces them: still 2 records and 200 bytes.
    let append = format!("/storage/xxx_col1?batch={id}");
    for _ in 0..3 {
        c.post_json(&append, &records("a", 2, &"y".repeat(100)))
            .await
            .expect(202);
    }
    // A commit body that would make 4 records is refused, and nothing is written.
    let commit = format!("/storage/xxx_col1?batch={id}&commit=true");
    c.post_json(&commit, &records("b", 2, "z"))
        .await
        .expect_error(400, "17");
    // So is one that stays at 3 records but reaches 301 bytes.
    c.post_json(&commit, &records("b", 1, &"z".repeat(101)))
        .await
        .expect_error(400, "17");
    assert!(c.get("/storage/xxx_col1").await.ids().is_empty());
    // Within both totals, counting a replaced id once, the commit goes through.
    let body = json!([{"id": "a0", "payload": "w"}, {"id": "b0", "payload": "z".repeat(99)}]);
    c.post_json(&commit, &body).await.expect(200);
    let mut ids = c.get("/storage/xxx_col1").await.ids();
    ids.sort();
    assert_eq!(ids, ["a0", "a1", "b0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_updates_change_nothing_until_commit() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 6);
    let t0 = c
        .post(
            "/storage/xxx_col1",
            r#"[{"id":"a","payload":"a0","sortindex":17},{"id":"b","payload":"b0"}]"#,
        )
        .await
        .ts("x-last-modified");
    let id = batch_id(
        &c.post(
            "/storage/xxx_col1?batch=true",
            r#"[{"id":"a","payload":"a1"}]"#,
        )
        .await,
    );
    c.post(
        &format!("/storage/xxx_col1?batch={id}"),
        r#"[{"id":"new","payload":"n"}]"#,
    )
    .await
    .expect(202);
    let a = c.get("/storage/xxx_col1/a").await.json();
    assert_eq!(a["payload"], "a0");
    assert_eq!(a["sortindex"], 17);
    assert_eq!(ts_ms(&a["modified"].to_string()), t0);
    let t = c
        .post(&format!("/storage/xxx_col1?batch={id}&commit=true"), "[]")
        .await
        .ts("x-last-modified");
    let a = c.get("/storage/xxx_col1/a").await.json();
    assert_eq!(a["payload"], "a1");
    assert_eq!(a["sortindex"], 17, "fields not sent survive");
    assert_eq!(ts_ms(&a["modified"].to_string()), t);
    let b = c.get("/storage/xxx_col1/b").await.json();
    assert_eq!(ts_ms(&b["modified"].to_string()), t0);
    c.get("/storage/xxx_col1/new").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_updates_through_a_batch_count_from_commit() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 7);
    c.post(
        "/storage/xxx_col1",
        r#"[{"id":"a","payload":"A"},{"id":"b","payload":"B"},{"id":"keep","payload":"K"}]"#,
    )
    .await
    .expect(200);
    let create = c
        .post("/storage/xxx_col1?batch=true", r#"[{"id":"a","ttl":5}]"#)
        .await;
    create.expect(202);
    let lm = create.ts("x-last-modified");
    let id = batch_id(&create);
    let app1 = c
        .post(
            &format!("/storage/xxx_col1?batch={id}"),
            r#"[{"id":"b","ttl":5}]"#,
        )
        .await;
    app1.expect(202);
    assert_eq!(app1.ts("x-last-modified"), lm);
    let app2 = c
        .post(
            &format!("/storage/xxx_col1?batch={id}"),
            r#"[{"id":"c","payload":"C","ttl":5}]"#,
        )
        .await;
    app2.expect(202);
    assert_eq!(app2.ts("x-last-modified"), lm);
    // The commit comes 4 s after the appends: ttl 5 counts from the commit.
    srv.clock.advance_ms(4_000);
    c.post(&format!("/storage/xxx_col1?batch={id}&commit=true"), "[]")
        .await
        .expect(200);
    let c2 = Client::new(&srv, 7);
    assert_eq!(c2.get("/storage/xxx_col1/a").await.json()["payload"], "A");
    srv.clock.advance_ms(4_000);
    let c3 = Client::new(&srv, 7);
    let mut ids = c3.get("/storage/xxx_col1").await.ids();
    ids.sort();
    assert_eq!(
        ids,
        ["a", "b", "c", "keep"],
        "8 s after append, 4 s after commit: alive"
    );
    srv.clock.advance_ms(2_000);
    let c4 = Client::new(&srv, 7);
    assert_eq!(c4.get("/storage/xxx_col1").await.ids(), ["keep"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_true_commit_true_is_a_plain_post() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 8);
    let r = c
        .post_json(
            "/storage/xxx_col1?batch=true&commit=true",
            &records("a", 3, "x"),
        )
        .await;
    r.expect(200);
    let v = r.json();
    assert!(v.get("batch").is_none());
    assert_eq!(
        crate::storage_support::ts_ms(&v["modified"].to_string()),
        r.ts("x-last-modified")
    );
    assert_eq!(
        c.get("/info/collections").await.json()["xxx_col1"],
        v["modified"]
    );
    assert_eq!(c.get("/storage/xxx_col1").await.ids().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_update_info_collections_monotonically() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 9);
    let mut last = 0;
    for (coll, n) in [("xxx_col1", 2), ("xxx_col1", 3), ("xxx_col2", 1)] {
        let id = batch_id(
            &c.post_json(
                &format!("/storage/{coll}?batch=true"),
                &records("r", n, "x"),
            )
            .await,
        );
        let t = c
            .post(&format!("/storage/{coll}?batch={id}&commit=true"), "[]")
            .await
            .ts("x-last-modified");
        assert!(t > last);
        last = t;
        assert_eq!(
            ts_ms(&c.get("/info/collections").await.json()[coll].to_string()),
            t
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_items_in_batches_are_failed_and_skipped() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 10);
    let create = c
        .post_json(
            "/storage/xxx_col1?batch=true",
            &json!([{"id": "ok1", "payload": "x"}, {"id": "bad\nid", "payload": "x"}]),
        )
        .await;
    assert!(create.json()["failed"].get("bad\nid").is_some());
    let id = batch_id(&create);
    let commit = c
        .post_json(
            &format!("/storage/xxx_col1?batch={id}&commit=true"),
            &json!([{"id": "ok2", "payload": "x"}, {"id": "neg", "payload": "x", "ttl": -12}]),
        )
        .await;
    commit.expect(200);
    assert!(commit.json()["failed"].get("neg").is_some());
    let mut ids = c.get("/storage/xxx_col1").await.ids();
    ids.sort();
    assert_eq!(ids, ["ok1", "ok2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_ids_are_bound_to_collection_and_user() {
    let srv = TestServer::start().await;
    let alice = Client::new(&srv, 11);
    let bob = Client::new(&srv, 12);
    let id = batch_id(
        &alice
            .post_json("/storage/xxx_col1?batch=true", &records("a", 1, "alice"))
            .await,
    );
    alice
        .post_json(
            &format!("/storage/xxx_col2?batch={id}"),
            &records("x", 1, "x"),
        )
        .await
        .expect_error(400, "0");
    alice
        .post(&format!("/storage/xxx_col2?batch={id}&commit=true"), "[]")
        .await
        .expect_error(400, "0");
    bob.post_json(
        &format!("/storage/xxx_col1?batch={id}"),
        &records("b", 1, "bob"),
    )
    .await
    .expect_error(400, "0");
    bob.post(&format!("/storage/xxx_col1?batch={id}&commit=true"), "[]")
        .await
        .expect_error(400, "0");
    alice
        .post_json(
            &format!("/storage/xxx_col1?batch={id}"),
            &records("c", 1, "alice"),
        )
        .await
        .expect(202);
    alice
        .post(&format!("/storage/xxx_col1?batch={id}&commit=true"), "[]")
        .await
        .expect(200);
    assert_eq!(bob.get("/storage/xxx_col1").await.body, "[]");
    let mut ids = alice.get("/storage/xxx_col1").await.ids();
    ids.sort();
    assert_eq!(ids, ["a0", "c0"]);
    // A new batch starts empty: nothing of the committed one comes back.
    let id2 = batch_id(&alice.post("/storage/xxx_col3?batch=true", "[]").await);
    assert_ne!(id2, id);
    alice
        .post(&format!("/storage/xxx_col3?batch={id2}&commit=true"), "[]")
        .await
        .expect(200);
    assert_eq!(alice.get("/storage/xxx_col3").await.body, "[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_expire_after_max_batch_ttl() {
    let srv = TestServer::start_with(|s| s.storage.max_batch_ttl = 60).await;
    let c = Client::new(&srv, 13);
    let id = batch_id(
        &c.post_json("/storage/xxx_col1?batch=true", &records("a", 1, "x"))
            .await,
    );
    srv.clock.advance_ms(61_000);
    let later = Client::new(&srv, 13);
    later
        .post(&format!("/storage/xxx_col1?batch={id}&commit=true"), "[]")
        .await
        .expect_error(400, "0");
    assert_eq!(later.get("/storage/xxx_col1").await.body, "[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_commit_bodies() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 14);
    let new_batch = || async { batch_id(&c.post("/storage/xxx_col1?batch=true", "[]").await) };
    let commit = |id: String, ct: &'static str, body: &'static str| {
        send(
            c.req(
                Method::POST,
                &format!("/storage/xxx_col1?batch={id}&commit=true"),
            )
            .header("Content-Type", ct)
            .body(body),
        )
    };
    commit(new_batch().await, "application/json", "[]")
        .await
        .expect(200);
    commit(new_batch().await, "application/json", "{}")
        .await
        .expect_error(400, "8");
    commit(new_batch().await, "application/json", "")
        .await
        .expect_error(400, "8");
    commit(new_batch().await, "application/newlines", "")
        .await
        .expect(200);
    for body in ["\n", "{}", "[]"] {
        commit(new_batch().await, "application/newlines", body)
            .await
            .expect_error(400, "8");
    }
    let _: Value = json!(null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_sync_uploads_with_preconditions() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 113);
    let lm = upload_batch(&c, "clients", "c", 3).await;
    srv.clock.advance_ms(1000);
    // Firefox: batch=true&commit=true, text/plain, X-If-Unmodified-Since = last-modified.
    let upload = |since: String, body: &'static str| {
        send(
            c.req(Method::POST, "/storage/clients?batch=true&commit=true")
                .header("Content-Type", "text/plain;charset=UTF-8")
                .header("X-If-Unmodified-Since", since)
                .body(body),
        )
    };
    let ok = upload(lm.clone(), r#"[{"id":"c00000","payload":"v2"}]"#).await;
    ok.expect(200);
    let t = ok.header("x-last-modified").expect("lm").to_string();
    assert!(
        ok.body.starts_with(&format!("{{\"modified\":{t},")),
        "{ok:?}"
    );
    assert!(ok.json().get("batch").is_none());
    // A second device still on the old timestamp is refused, and nothing changes.
    let conflict = upload(lm.clone(), r#"[{"id":"c00000","payload":"v3"}]"#).await;
    assert_eq!(conflict.status, 412);
    assert_eq!(conflict.header("x-last-modified"), Some(t.as_str()));
    let item = c.get("/storage/clients/c00000").await;
    assert_eq!(item.json()["payload"], json!("v2"));
    // The batched form too: create with a stale precondition → 412 and no batch.
    let stale = send(
        c.req(Method::POST, "/storage/clients?batch=true")
            .header("Content-Type", "application/json")
            .header("X-If-Unmodified-Since", lm)
            .body(r#"[{"id":"c00001","payload":"v3"}]"#),
    )
    .await;
    assert_eq!(stale.status, 412);
    // info/collections reflects exactly the committed write.
    let info = c.get("/info/collections").await;
    assert_eq!(info.body, format!("{{\"clients\":{t}}}"));
    assert_eq!(info.header("x-last-modified"), Some(t.as_str()));
}
