//! Storage info endpoints: collections, counts, usage, quota and configuration, with their
//! timestamps and preconditions.

use serde_json::json;

use crate::common::TestServer;
use syncserver::clock::Clock;

use crate::storage_support::{Client, records, ts_str};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_collections_lists_written_collections_with_post_timestamps() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 42);
    let empty = c.get("/info/collections").await;
    empty.expect(200);
    assert_eq!(empty.body, "{}");
    assert_eq!(empty.header("x-last-modified"), Some("0.00"));
    assert_eq!(empty.header("x-weave-records"), Some("0"));

    let a = c
        .post_json("/storage/xxx_col1", &records("a", 3, "x"))
        .await;
    a.expect(200);
    let b = c
        .post_json("/storage/xxx_col2", &records("b", 5, "y"))
        .await;
    b.expect(200);
    let info = c.get("/info/collections").await;
    info.expect(200);
    let v = info.json();
    assert_eq!(v.as_object().map(|o| o.len()), Some(2));
    assert_eq!(v["xxx_col1"], a.json()["modified"]);
    assert_eq!(v["xxx_col2"], b.json()["modified"]);
    assert_eq!(info.ts("x-last-modified"), b.ts("x-last-modified"));
    // Raw body keeps two decimals.
    assert!(
        info.body
            .contains(&format!("\"xxx_col1\":{}", ts_str(a.ts("x-last-modified"))))
    );

    // Rewriting one collection changes only its entry.
    let a2 = c
        .post_json("/storage/xxx_col1", &records("a", 1, "z"))
        .await;
    let v2 = c.get("/info/collections").await.json();
    assert_eq!(v2["xxx_col1"], a2.json()["modified"]);
    assert_eq!(v2["xxx_col2"], b.json()["modified"]);

    let counts = c.get("/info/collection_counts").await;
    counts.expect(200);
    assert_eq!(counts.json(), json!({"xxx_col1": 3, "xxx_col2": 5}));
    assert_eq!(counts.header("x-weave-records"), Some("2"));
    assert!(counts.header("x-last-modified").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_created_by_put_appears_immediately() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 7);
    c.put("/storage/xxx_new/one", r#"{"payload":"p"}"#)
        .await
        .expect(200);
    let info = c.get("/info/collections").await.json();
    assert!(info.get("xxx_new").is_some(), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_quota_count_payload_bytes() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 8);
    let before = c.get("/info/quota").await;
    before.expect(200);
    let q0 = before.json();
    assert_eq!(q0[0].as_f64(), Some(0.0));
    assert!(q0[1].is_null(), "quota off → null: {q0}");

    let payload = "x".repeat(519);
    c.put(
        "/storage/xxx_usage/a",
        &json!({"payload": payload}).to_string(),
    )
    .await
    .expect(200);
    c.put(
        "/storage/xxx_usage/b",
        &json!({"payload": "abc"}).to_string(),
    )
    .await
    .expect(200);
    let usage = c.get("/info/collection_usage").await;
    usage.expect(200);
    let kib = usage.json()["xxx_usage"].as_f64().expect("number");
    assert_eq!(format!("{kib:.2}"), format!("{:.2}", 522.0 / 1024.0));
    assert_eq!(usage.header("x-weave-records"), Some("1"));

    let after = c.get("/info/quota").await.json();
    assert!((after[0].as_f64().expect("used") - 522.0 / 1024.0).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_reports_all_limits() {
    let srv = TestServer::start_with(|s| s.storage.max_post_records = 42).await;
    let c = Client::new(&srv, 9);
    let res = c.get("/info/configuration").await;
    res.expect(200);
    let v = res.json();
    for key in [
        "max_post_records",
        "max_post_bytes",
        "max_total_records",
        "max_total_bytes",
        "max_record_payload_bytes",
        "max_request_bytes",
    ] {
        assert!(v[key].is_u64(), "{key} missing in {v}");
    }
    assert_eq!(v["max_post_records"], 42);
    assert!(v.get("max_quota_limit").is_none());
    let quota = TestServer::start_with(|s| s.storage.quota_bytes = 5000).await;
    let v = Client::new(&quota, 9)
        .get("/info/configuration")
        .await
        .json();
    assert_eq!(v["max_quota_limit"], 5000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_modified_since_on_every_info_endpoint() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 10);
    let first = c
        .post_json("/storage/xxx_col1", &records("a", 2, "x"))
        .await;
    let t1 = first.ts("x-last-modified");
    for ep in [
        "/info/collections",
        "/info/quota",
        "/info/collection_usage",
        "/info/collection_counts",
    ] {
        let get = |since: i64| {
            let req = c
                .req(reqwest::Method::GET, ep)
                .header("X-If-Modified-Since", ts_str(since));
            crate::storage_support::send(req)
        };
        get(t1 - 10).await.expect(200);
        let same = get(t1).await;
        same.expect(304);
        assert_eq!(same.body, "");
        assert_eq!(same.ts("x-last-modified"), t1);
    }
    let second = c
        .post_json("/storage/xxx_col1", &records("b", 1, "x"))
        .await;
    let t2 = second.ts("x-last-modified");
    assert!(t2 > t1);
    for ep in [
        "/info/collections",
        "/info/quota",
        "/info/collection_usage",
        "/info/collection_counts",
    ] {
        let old = crate::storage_support::send(
            c.req(reqwest::Method::GET, ep)
                .header("X-If-Modified-Since", ts_str(t1)),
        )
        .await;
        old.expect(200);
        assert_eq!(old.ts("x-last-modified"), t2);
        let new = crate::storage_support::send(
            c.req(reqwest::Method::GET, ep)
                .header("X-If-Modified-Since", ts_str(t2)),
        )
        .await;
        new.expect(304);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_modified_on_info_collection_and_item_reads() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 11);
    let put = c.put("/storage/xxx_col1/item", r#"{"payload":"p"}"#).await;
    let t = put.ts("x-last-modified");
    for path in [
        "/info/collections",
        "/info/collection_counts",
        "/storage/xxx_col1",
        "/storage/xxx_col1/item",
    ] {
        let res = c.get(path).await;
        res.expect(200);
        assert_eq!(res.ts("x-last-modified"), t, "{path}");
        assert!(res.ts("x-weave-timestamp") >= t, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_still_polls_info_collections_but_nothing_else() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 12);
    c.post_json("/storage/xxx_col1", &records("a", 1, "x"))
        .await
        .expect(200);
    let now = srv.clock.now_secs();
    let expired = Client {
        srv: &srv,
        uid: 12,
        token: srv.token_with(12, &srv.base, now - 10),
    };
    expired
        .get("/storage/xxx_col1")
        .await
        .expect_error(401, "0");
    expired
        .post_json("/storage/xxx_col1", &records("b", 1, "x"))
        .await
        .expect_error(401, "0");
    let info = expired.get("/info/collections").await;
    info.expect(200);
    assert!(info.json().get("xxx_col1").is_some());
    // The grace period is bounded (2 h).
    let long_expired = Client {
        srv: &srv,
        uid: 12,
        token: srv.token_with(12, &srv.base, now - 7300),
    };
    long_expired
        .get("/info/collections")
        .await
        .expect_error(401, "0");
}
