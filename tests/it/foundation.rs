//! Foundation: health endpoints, landing page, CORS, config errors, secret file, logging and
//! graceful shutdown — the last few against the real binary.

use std::process::Command;

use serde_json::Value;

use crate::common::{BinaryServer, TestServer, binary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lbheartbeat_is_empty_object() {
    let srv = TestServer::start().await;
    let res = srv
        .client
        .get(srv.url("/__lbheartbeat__"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.text().await.unwrap(), "{}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_ok_with_version() {
    let srv = TestServer::start().await;
    let res = srv
        .client
        .get(srv.url("/__heartbeat__"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["checks"]["data_dir"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_heartbeats_all_pass() {
    // Monitoring and a load balancer may probe at the same moment; their data-directory
    // probes must not trip over each other's files.
    let srv = TestServer::start().await;
    let probes: Vec<_> = (0..32)
        .map(|_| tokio::spawn(srv.client.get(srv.url("/__heartbeat__")).send()))
        .collect();
    for probe in probes {
        assert_eq!(probe.await.unwrap().unwrap().status(), 200);
    }
    let left: Vec<_> = std::fs::read_dir(&srv.settings.data_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".heartbeat"))
        .collect();
    assert!(left.is_empty(), "probe files left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_503_names_failed_check_when_data_dir_unwritable() {
    let srv = TestServer::start().await;
    // Replace the data directory with a plain file: nothing can be created inside it, even
    // as root (permission bits would not stop root).
    let dir = srv.settings.data_dir.clone();
    let moved = dir.with_extension("moved");
    std::fs::rename(&dir, &moved).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    let res = srv
        .client
        .get(srv.url("/__heartbeat__"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["failed"], serde_json::json!(["data_dir"]));
    assert_eq!(body["checks"]["data_dir"], "error");
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&moved, &dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_has_name_and_version() {
    let srv = TestServer::start().await;
    let res = srv
        .client
        .get(srv.url("/__version__"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], "syncserver");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["commit"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_probes_answer_like_get_without_a_body() {
    // Uptime monitors often probe with HEAD; a 404 there would read as "server down".
    let srv = TestServer::start().await;
    for path in ["/__lbheartbeat__", "/__heartbeat__", "/__version__", "/"] {
        let get = srv.client.get(srv.url(path)).send().await.unwrap();
        let (get_type, get_body) = (
            get.headers()["content-type"].clone(),
            get.bytes().await.unwrap(),
        );
        let head = srv.client.head(srv.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(head.headers()["content-type"], get_type, "HEAD {path}");
        assert_eq!(
            head.headers()["content-length"],
            get_body.len().to_string().as_str(),
            "HEAD {path}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_shows_derived_tokenserver_uri_and_warns() {
    let srv = TestServer::start().await;
    let res = srv.client.get(srv.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = res.text().await.unwrap();
    let expected = format!("http://127.0.0.1:{}/1.0/sync/1.5", srv.addr.port());
    assert!(page.contains(&expected), "{page}");
    assert!(page.contains("identity.sync.tokenserver.uri"));
    assert!(page.contains("about:config"));
    assert!(page.contains("public_url is not set"));
    assert!(!page.contains(crate::common::TEST_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_uses_public_url() {
    let srv = TestServer::start_with(|s| {
        s.public_url = Some("https://sync.example.com/sub/".into());
    })
    .await;
    let page = srv
        .client
        .get(srv.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(
            "<code id=\"tokenserver-uri\">https://sync.example.com/sub/1.0/sync/1.5</code>"
        )
    );
    assert!(!page.contains("public_url is not set"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_escapes_a_hostile_host_header() {
    let srv = TestServer::start().await;
    let page = srv
        .client
        .get(srv.url("/"))
        .header("Host", "evil\"><script>x</script>")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>x"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_is_404_json_zero() {
    let srv = TestServer::start().await;
    let res = srv
        .client
        .get(srv.url("/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.text().await.unwrap(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_echoes_origin() {
    let srv = TestServer::start().await;
    let res = srv
        .client
        .request(reqwest::Method::OPTIONS, srv.url("/__heartbeat__"))
        .header("Origin", "localhost")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert!(
        matches!(res.status().as_u16(), 200 | 204),
        "{}",
        res.status()
    );
    assert_eq!(res.headers()["access-control-allow-origin"], "localhost");
    let max_age: u64 = res.headers()["access-control-max-age"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age > 0);
}

fn run_binary(args: &[&str], cwd: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(binary());
    cmd.args(args).current_dir(cwd).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("binary runs")
}

#[test]
fn unknown_key_exits_nonzero_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "port = 8001\nlisten_adress = \"0.0.0.0\"\n").unwrap();
    let out = run_binary(
        &["--config", file.to_str().unwrap(), "check-config"],
        dir.path(),
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen_adress"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn bad_port_exits_nonzero_naming_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("syncserver.toml");
    std::fs::write(&file, "port = 99999\n").unwrap();
    // ./syncserver.toml is read when --config is absent.
    let out = run_binary(&["check-config"], dir.path(), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = run_binary(&["serve"], dir.path(), &[("SYNCSERVER_PORT", "eighty")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port"), "{err}");
}

#[test]
fn env_overrides_file_and_check_config_redacts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "port = 8001\nsecret = \"file-secret-value\"\n[storage]\nmax_post_records = 20\n",
    )
    .unwrap();
    let out = run_binary(
        &["check-config", "--config", file.to_str().unwrap()],
        dir.path(),
        &[
            ("SYNCSERVER_PORT", "8002"),
            ("SYNCSERVER_STORAGE__MAX_POST_RECORDS", "50"),
            ("SYNCSERVER_TOKENSERVER__ALLOW_NEW_USERS", "false"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let effective: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(effective["port"].as_integer(), Some(8002));
    assert_eq!(
        effective["storage"]["max_post_records"].as_integer(),
        Some(50)
    );
    assert_eq!(
        effective["tokenserver"]["allow_new_users"].as_bool(),
        Some(false)
    );
    assert!(!text.contains("file-secret-value"));
    assert!(text.contains("<redacted>"));
}

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_binary(&["--version"], dir.path(), &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = run_binary(&["--help"], dir.path(), &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "check-config", "purge", "users"] {
        assert!(help.contains(cmd), "{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_created_once_0600_and_survives_restart() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Defaults alone: data under ./data relative to the working directory.
    let srv = BinaryServer::start(dir.path(), &[], "first.log").await;
    let res = reqwest::get(srv.url("/__heartbeat__")).await.unwrap();
    assert_eq!(res.status(), 200);
    let (status, log) = srv.terminate();
    assert!(status.success(), "{log}");
    let path = dir.path().join("data/secret");
    let first = std::fs::read_to_string(&path).unwrap();
    assert_eq!(first.trim_end().len(), 64);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(log.contains("secret"), "{log}");
    assert!(
        !log.contains(first.trim_end()),
        "secret value must never be logged"
    );

    let srv = BinaryServer::start(dir.path(), &[], "second.log").await;
    let (status, log) = srv.terminate();
    assert!(status.success(), "{log}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
    assert!(!log.contains(first.trim_end()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_never_contains_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let srv = BinaryServer::start(
        dir.path(),
        &[
            ("SYNCSERVER_LOG__LEVEL", "debug"),
            ("SYNCSERVER_LOG__FORMAT", "json"),
        ],
        "json.log",
    )
    .await;
    let token = "known-bearer-token-6f1d2c3b4a5e";
    let client = reqwest::Client::new();
    let res = client
        .get(srv.url("/1.0/sync/1.5?secret_query=known-query-value"))
        .header("Authorization", format!("Bearer {token}"))
        .header("X-KeyID", "1234-qqo")
        .send()
        .await
        .unwrap();
    let _ = res.status();
    let res = client
        .get(srv.url("/1.5/42/info/collections"))
        .header(
            "Authorization",
            format!("Hawk id=\"{token}\", ts=\"1\", nonce=\"n\", mac=\"known-mac-value\""),
        )
        .send()
        .await
        .unwrap();
    let _ = res.status();
    let (status, log) = srv.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains(token), "token leaked into the log:\n{log}");
    assert!(!log.contains("known-mac-value"), "{log}");
    assert!(
        !log.contains("known-query-value"),
        "query strings are not logged:\n{log}"
    );
    // One JSON object per line, and a request line for each request with method and path.
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert!(
        requests
            .iter()
            .any(|l| l["path"] == "/1.0/sync/1.5" && l["method"] == "GET" && l["status"].is_u64()),
        "{log}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l["path"] == "/1.5/42/info/collections"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_shut_down_gracefully() {
    for signal in ["-TERM", "-INT"] {
        let dir = tempfile::tempdir().unwrap();
        let srv = BinaryServer::start(dir.path(), &[], "sig.log").await;
        let status = Command::new("kill")
            .args([signal, &srv.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut srv = srv;
        let exit = srv.child.wait().unwrap();
        let log = std::fs::read_to_string(&srv.log).unwrap();
        assert!(exit.success(), "{signal}: {exit:?}\n{log}");
        assert!(log.contains("stopped"), "{log}");
    }
}
