//! `syncserver users list` and `syncserver users delete`, called as the CLI calls them.

use std::sync::Arc;

use syncserver::state::UserStore;
use syncserver::storage::{OfflineStorage, user_db_path};
use syncserver::tokenserver::{delete_user, list_users};

use crate::storage_support::Client;
use crate::tokenserver_support::*;

/// The storage files as the CLI reaches them.
fn offline(ts: &Ts) -> Arc<dyn UserStore> {
    Arc::new(OfflineStorage::new(&ts.srv.settings.data_dir))
}

/// Puts `bytes` bytes into a fake storage file for `uid`.
fn fake_store(ts: &Ts, uid: i64, bytes: usize) -> std::path::PathBuf {
    let path = user_db_path(&ts.srv.settings.data_dir, uid as u64);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, vec![0u8; bytes]).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_users_with_storage_size() {
    let ts = Ts::start().await;
    let uid = ts.token(Some(1), 1, "aaaa").await.uid();
    let other = "f".repeat(32);
    let other_uid = ts.token_for(&other, Some(1), 1, "aaaa").await.uid();
    fake_store(&ts, uid, 4096);
    let text = list_users(&ts.srv.settings, offline(&ts)).await.unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(FXA_UID))
        .unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[0], uid.to_string());
    assert!(cols.contains(&"4096"), "{line}");
    // Without public_url the node row is labelled with the listen address.
    assert!(line.trim_end().ends_with("http://127.0.0.1:8000"), "{line}");
    let other_line = text.lines().find(|l| l.contains(&other)).unwrap();
    assert!(other_line.contains("never"), "{other_line}");
    assert!(other_line.trim_start().starts_with(&other_uid.to_string()));
    assert!(text.contains("2 user(s)"), "{text}");
    assert!(text.lines().next().unwrap().contains("FXA UID"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_by_fxa_uid_or_uid_removes_rows_and_files() {
    let ts = Ts::start().await;
    let pool = ts.db().await;
    let first = ts.token(Some(1), 1, "aaaa").await.uid();
    ts.tick(1000);
    let second = ts.token(Some(2), 2, "bbbb").await.uid();
    let files = [fake_store(&ts, first, 10), fake_store(&ts, second, 10)];
    let err = delete_user(&ts.srv.settings, offline(&ts), FXA_UID, false)
        .await
        .unwrap_err();
    assert!(err.contains("nothing deleted"), "{err}");
    assert_eq!(rows(&pool, FXA_UID).await.len(), 2);
    let report = delete_user(&ts.srv.settings, offline(&ts), FXA_UID, true)
        .await
        .unwrap();
    assert!(
        report.contains(&first.to_string()) && report.contains(&second.to_string()),
        "{report}"
    );
    assert!(rows(&pool, FXA_UID).await.is_empty());
    for f in &files {
        assert!(!f.exists(), "{}", f.display());
    }
    // By Sync uid, for another account.
    let other = "a1".repeat(16);
    let uid = ts.token_for(&other, Some(1), 1, "aaaa").await.uid();
    let file = fake_store(&ts, uid, 10);
    delete_user(&ts.srv.settings, offline(&ts), &uid.to_string(), true)
        .await
        .unwrap();
    assert!(rows(&pool, &other).await.is_empty());
    assert!(!file.exists());
    assert!(
        delete_user(&ts.srv.settings, offline(&ts), "999999", true)
            .await
            .is_err()
    );
    // A deleted account that comes back is a new user with a new uid.
    ts.tick(1000);
    let again = ts.token(Some(3), 3, "cccc").await.uid();
    assert!(again > uid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_refuses_storage_the_running_server_holds_open() {
    let ts = Ts::start().await;
    let pool = ts.db().await;
    let uid = ts.token(Some(1), 1, "aaaa").await.uid();
    // A write leaves the user's file open (and locked) in the server's pool.
    let c = Client::new(&ts.srv, uid as u64);
    c.put("/storage/xxx_col1/a", r#"{"payload":"kept"}"#)
        .await
        .expect(200);
    let path = user_db_path(&ts.srv.settings.data_dir, uid as u64);
    let err = delete_user(&ts.srv.settings, offline(&ts), &uid.to_string(), true)
        .await
        .unwrap_err();
    assert!(err.contains("running syncserver"), "{err}");
    // Nothing was deleted: not the file, not the row, not the data.
    assert!(path.exists());
    assert_eq!(rows(&pool, FXA_UID).await.len(), 1);
    let kept = c.get("/storage/xxx_col1/a").await;
    kept.expect(200);
    assert_eq!(kept.json()["payload"], "kept");

    // A real database file that no server holds (one the server has closed) is deleted,
    // WAL included.
    let idle = "b2".repeat(16);
    let idle_uid = ts.token_for(&idle, Some(1), 1, "aaaa").await.uid();
    let idle_path = user_db_path(&ts.srv.settings.data_dir, idle_uid as u64);
    std::fs::create_dir_all(idle_path.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&idle_path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(conn);
    delete_user(&ts.srv.settings, offline(&ts), &idle_uid.to_string(), true)
        .await
        .unwrap();
    assert!(!idle_path.exists());
    assert!(!idle_path.with_extension("db-wal").exists());
    assert!(rows(&pool, &idle).await.is_empty());
}
