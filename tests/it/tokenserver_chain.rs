//! The whole chain: a token from the tokenserver opens the storage service (Hawk with the
//! returned id/key), a key change moves the account to a new, empty uid, and the old uid's
//! storage file is deleted once `replaced_user_retention` has passed on the clock.

use reqwest::Method;
use serde_json::{Value, json};
use syncserver::auth::IssuedToken;
use syncserver::storage::user_db_path;

use crate::tokenserver_support::*;

fn issued(a: &Answer) -> IssuedToken {
    IssuedToken {
        id: a.body["id"].as_str().expect("id").to_string(),
        key: a.body["key"].as_str().expect("key").to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_opens_storage_and_key_change_frees_the_old_store() {
    let ts = Ts::start_with(|s| s.tokenserver.replaced_user_retention = 3600).await;
    let srv = &ts.srv;
    let first = ts.token(Some(1), 1, "aaaa").await;
    let old_uid = first.uid();
    let token = issued(&first);
    let path = format!("/1.5/{old_uid}/storage/bookmarks/abcdefghijkl");
    let res = srv
        .signed(&token, Method::PUT, &path)
        .header("Content-Type", "application/json")
        .body(json!({"payload": "hello"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let info = format!("/1.5/{old_uid}/info/collections");
    let res = srv.signed(&token, Method::GET, &info).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("bookmarks").is_some(), "{body}");
    let old_file = user_db_path(&srv.settings.data_dir, old_uid as u64);
    assert!(old_file.exists());

    // Password reset without recovery key: new client state, new uid, empty store.
    ts.tick(1000);
    let second = ts.token(Some(2), 2, "bbbb").await;
    let new_uid = second.uid();
    assert_ne!(new_uid, old_uid);
    let token = issued(&second);
    let info = format!("/1.5/{new_uid}/info/collections");
    let res = srv.signed(&token, Method::GET, &info).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({}));
    // The new token does not open the old store.
    let old_info = format!("/1.5/{old_uid}/info/collections");
    let res = srv
        .signed(&token, Method::GET, &old_info)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Within the retention period the old file stays ...
    ts.tick(30 * 60_000);
    assert_eq!(ts.token(Some(2), 2, "bbbb").await.uid(), new_uid);
    assert!(old_file.exists());
    // ... after it, the next clean-up pass (driven by the clock) deletes it.
    ts.tick(60 * 60_000);
    assert_eq!(ts.token(Some(2), 2, "bbbb").await.uid(), new_uid);
    assert!(!old_file.exists(), "{} still exists", old_file.display());
    // The row stays as history, so the old client state is still refused as stale.
    ts.tick(1000);
    let a = ts.token(Some(3), 3, "aaaa").await;
    assert_eq!(a.status, 401);
    assert_eq!(a.error().3, "Unacceptable client-state value stale value");
}
