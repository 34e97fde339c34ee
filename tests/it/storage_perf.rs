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
