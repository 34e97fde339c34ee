//! Storage behaviour that exists for performance: reads never create a user's file, and the
//! cached `info/collections` answer is always current.

use syncserver::storage::user_db_path;

use crate::common::TestServer;
use crate::storage_support::{Client, send};

/// Every file of the user's storage (`.db`, `-wal`, `-shm`) that exists on disk.
fn files_of(srv: &TestServer, uid: u64) -> Vec<String> {
    let db = user_db_path(&srv.settings.data_dir, uid);
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| format!("{}{suffix}", db.display()))
        .filter(|f| std::path::Path::new(f).exists())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_a_user_without_a_file_answer_empty_and_create_nothing() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 31);

    let info = c.get("/info/collections").await;
    info.expect(200);
    assert_eq!(info.body, "{}");
    assert_eq!(info.header("x-last-modified"), Some("0.00"));
    assert_eq!(info.header("x-weave-records"), Some("0"));

    for path in ["/info/collection_counts", "/info/collection_usage"] {
        let r = c.get(path).await;
        r.expect(200);
        assert_eq!(r.body, "{}", "{path}");
        assert_eq!(r.header("x-last-modified"), Some("0.00"), "{path}");
    }
    let quota = c.get("/info/quota").await;
    quota.expect(200);
    assert_eq!(quota.json(), serde_json::json!([0.0, null]));

    let coll = c.get("/storage/bookmarks?full=1").await;
    coll.expect(200);
    assert_eq!(coll.body, "[]");
    assert_eq!(coll.header("x-last-modified"), Some("0.00"));
    assert_eq!(coll.header("x-weave-records"), Some("0"));

    c.get("/storage/bookmarks/abc").await.expect_error(404, "0");

    // Preconditions compare against 0, as for an empty file.
    let not_modified = send(
        c.req(reqwest::Method::GET, "/info/collections")
            .header("X-If-Modified-Since", "0.00"),
    )
    .await;
    assert_eq!(not_modified.status, 304, "{not_modified:?}");

    assert!(files_of(&srv, 31).is_empty(), "{:?}", files_of(&srv, 31));

    // A write creates the file as before, and reads then see the data.
    let put = c.put("/storage/bookmarks/abc", r#"{"payload":"p"}"#).await;
    put.expect(200);
    assert!(user_db_path(&srv.settings.data_dir, 31).exists());
    let info = c.get("/info/collections").await;
    info.expect(200);
    assert_eq!(info.ts("x-last-modified"), put.ts("x-last-modified"));
    assert_eq!(c.get("/storage/bookmarks").await.ids(), vec!["abc"]);
}

/// The `info/collections` answer: body as JSON, `X-Last-Modified` in ms, `X-Weave-Records`.
async fn info(c: &Client<'_>) -> (serde_json::Value, i64, String) {
    let r = c.get("/info/collections").await;
    r.expect(200);
    let records = r.header("x-weave-records").unwrap_or_default().to_string();
    (r.json(), r.ts("x-last-modified"), records)
}

/// Each write kind is seen by the very next `info/collections`, though the one before it
/// filled the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_kind_shows_in_the_next_info_collections() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 32);
    let put = c.put("/storage/aa/one", r#"{"payload":"p"}"#).await;
    put.expect(200);
    let (v, t, n) = info(&c).await;
    assert_eq!(
        (v["aa"].clone(), t, n.as_str()),
        (put.json(), put.ts("x-last-modified"), "1")
    );

    let post = c.post("/storage/bb", r#"[{"id":"x","payload":"p"}]"#).await;
    post.expect(200);
    let (v, t, n) = info(&c).await;
    assert_eq!(v["bb"], post.json()["modified"]);
    assert_eq!((t, n.as_str()), (post.ts("x-last-modified"), "2"));

    let create = c
        .post("/storage/cc?batch=true", r#"[{"id":"x","payload":"p"}]"#)
        .await;
    create.expect(202);
    let (v, _, _) = info(&c).await;
    assert!(
        v.get("cc").is_none(),
        "an uncommitted batch is invisible: {v}"
    );
    let batch = create.json()["batch"]
        .as_str()
        .expect("batch id")
        .to_string();
    let commit = c
        .post(&format!("/storage/cc?batch={batch}&commit=true"), "[]")
        .await;
    commit.expect(200);
    let (v, t, _) = info(&c).await;
    assert_eq!(v["cc"], commit.json()["modified"]);
    assert_eq!(t, commit.ts("x-last-modified"));

    let del_item = c.delete("/storage/aa/one").await;
    del_item.expect(200);
    let (v, t, _) = info(&c).await;
    assert_eq!(v["aa"], del_item.json()["modified"]);
    assert_eq!(t, del_item.ts("x-last-modified"));

    let del_ids = c.delete("/storage/bb?ids=x").await;
    del_ids.expect(200);
    let (v, t, _) = info(&c).await;
    assert_eq!(v["bb"], del_ids.json()["modified"]);
    assert_eq!(t, del_ids.ts("x-last-modified"));

    let del_coll = c.delete("/storage/cc").await;
    del_coll.expect(200);
    let (v, t, n) = info(&c).await;
    assert!(v.get("cc").is_none(), "{v}");
    assert_eq!((t, n.as_str()), (del_coll.ts("x-last-modified"), "2"));

    c.delete("/storage").await.expect(200);
    let (v, t, n) = info(&c).await;
    assert_eq!((v, t, n.as_str()), (serde_json::json!({}), 0, "0"));

    c.put("/storage/dd/one", r#"{"payload":"p"}"#)
        .await
        .expect(200);
    let (v, _, _) = info(&c).await;
    assert!(v.get("dd").is_some(), "{v}");
    send(c.req(reqwest::Method::DELETE, "")).await.expect(200);
    let (v, t, n) = info(&c).await;
    assert_eq!((v, t, n.as_str()), (serde_json::json!({}), 0, "0"));
    assert!(
        files_of(&srv, 32).is_empty(),
        "the read after the delete created nothing"
    );
}

/// A cached answer is byte-for-byte the uncached one, and preconditions behave the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_info_collections_keeps_headers_and_preconditions() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 33);
    let post = c
        .post("/storage/bookmarks", r#"[{"id":"a","payload":"p"}]"#)
        .await;
    post.expect(200);
    let t = post.ts("x-last-modified");
    let miss = c.get("/info/collections").await;
    let hit = c.get("/info/collections").await;
    for r in [&miss, &hit] {
        r.expect(200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.ts("x-last-modified"), t);
        assert_eq!(r.header("x-weave-records"), Some("1"));
        assert!(r.ts("x-weave-timestamp") >= t);
    }
    assert_eq!(miss.body, hit.body);
    let with = |name: &'static str, ms: i64| {
        send(
            c.req(reqwest::Method::GET, "/info/collections")
                .header(name, crate::storage_support::ts_str(ms)),
        )
    };
    let same = with("X-If-Modified-Since", t).await;
    same.expect(304);
    assert_eq!(same.body, "");
    assert_eq!(same.ts("x-last-modified"), t);
    let older = with("X-If-Modified-Since", t - 10).await;
    older.expect(200);
    assert_eq!(older.body, miss.body);
    let refused = with("X-If-Unmodified-Since", t - 10).await;
    refused.expect(412);
    assert_eq!(refused.body, "");
    assert_eq!(refused.ts("x-last-modified"), t);
    with("X-If-Unmodified-Since", t).await.expect(200);
}
