//! Hawk on the storage side: every failure is 401 with body `0` and `WWW-Authenticate:
//! Hawk`, garbage headers included; the uid in the path must be the token's; reverse-proxy
//! setups verify against `public_url`.

use reqwest::Method;
use syncserver::auth::hawk::{self, RequestTarget};
use syncserver::clock::Clock;

use crate::common::TestServer;
use crate::storage_support::{Client, Resp, intact, seed, send, weave_error};

#[track_caller]
fn assert_401(r: &Resp) {
    r.expect_error(401, "0");
    assert_eq!(r.header("www-authenticate"), Some("Hawk"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_garbage_authorization() {
    let srv = TestServer::start().await;
    let url = srv.url("/1.5/42/info/collections");
    assert_401(&send(srv.client.get(&url)).await);
    assert_401(&send(srv.client.get(&url).header("Authorization", "Bearer abc")).await);
    assert_401(
        &send(
            srv.client
                .get(&url)
                .header("Authorization", "Hawk id=\"x\""),
        )
        .await,
    );
    let forged = r#"Hawk id="AAAA", ts="1", nonce="n", mac="bWFj""#;
    assert_401(&send(srv.client.get(&url).header("Authorization", forged)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_hawk_headers_are_401() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 108);
    let before = seed(&c).await;
    let good = srv.hawk(&c.token, "GET", &c.path("/info/collections"));
    let giant = format!(
        r#"Hawk id="{}", ts="1", nonce="n", mac="m""#,
        "A".repeat(20_000)
    );
    let garbage = [
        "Hawk".to_string(),
        "Hawk ".to_string(),
        "hawk id=".to_string(),
        r#"Hawk id="abc"#.to_string(),
        r#"Hawk id="a", ts="1", nonce="n""#.to_string(),
        r#"Hawk id="a", ts="x", nonce="n", mac="m""#.to_string(),
        r#"Hawk id="a", ts="-5", nonce="n", mac="m""#.to_string(),
        r#"Hawk id="a", ts="99999999999999999999", nonce="n", mac="m""#.to_string(),
        r#"Hawk id="a", id="a", ts="1", nonce="n", mac="m""#.to_string(),
        r#"Hawk id="a",, ts="1", nonce="n", mac="m""#.to_string(),
        r#"Hawk id="a" ts="1" nonce="n" mac="m""#.to_string(),
        r#"Hawk id="a", ts="1", nonce="n", mac="m", "#.to_string(),
        r#"Hawk id="a", ts="1", nonce="n", mac="m", foo="b""#.to_string(),
        r#"Hawk id="\", ts="1", nonce="n", mac="m""#.to_string(),
        format!("{good}x"),
        good.replacen("Hawk", "Bearer", 1),
        giant,
    ];
    for value in garbage {
        let r = send(
            srv.client
                .get(srv.url(&c.path("/info/collections")))
                .header("Authorization", value.clone()),
        )
        .await;
        weave_error(&r, 401, "0");
    }
    // Non-ASCII bytes in the header.
    let raw_value = reqwest::header::HeaderValue::from_bytes(
        "Hawk id=\"é\", ts=\"1\", nonce=\"ñ\", mac=\"m\"".as_bytes(),
    )
    .expect("opaque header");
    let r = send(
        srv.client
            .get(srv.url(&c.path("/info/collections")))
            .header("Authorization", raw_value),
    )
    .await;
    weave_error(&r, 401, "0");
    intact(&c, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_request_is_refused() {
    let srv = TestServer::start().await;
    let token = srv.token_for(42);
    let path = "/1.5/42/info/collections";
    let auth = srv.hawk(&token, "GET", path);
    send(srv.client.get(srv.url(path)).header("Authorization", &auth))
        .await
        .expect(200);
    assert_401(&send(srv.client.get(srv.url(path)).header("Authorization", &auth)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_outside_skew_is_refused() {
    let srv = TestServer::start().await;
    let token = srv.token_for(42);
    let path = "/1.5/42/info/collections";
    let sign = |ts: i64| {
        hawk::sign_request(
            &token.id,
            token.key.as_bytes(),
            &RequestTarget {
                method: "GET",
                target: path,
                host: "127.0.0.1",
                port: srv.addr.port(),
            },
            ts,
            &hawk::random_nonce(),
            None,
            None,
        )
    };
    let now = srv.clock.now_secs();
    let skew = srv.settings.storage.hawk_max_skew as i64;
    for ts in [now - skew - 1, now + skew + 1] {
        assert_401(
            &send(
                srv.client
                    .get(srv.url(path))
                    .header("Authorization", sign(ts)),
            )
            .await,
        );
    }
    for ts in [now - skew, now + skew] {
        send(
            srv.client
                .get(srv.url(path))
                .header("Authorization", sign(ts)),
        )
        .await
        .expect(200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_wrong_uid_bad_mac_and_foreign_node() {
    let srv = TestServer::start().await;
    let now = srv.clock.now_secs();
    let expired = Client {
        srv: &srv,
        uid: 42,
        token: srv.token_with(42, &srv.base, now - 1),
    };
    assert_401(&expired.get("/storage/xxx_col1").await);

    // A valid token for uid 42 used on uid 43's URL.
    let wrong = Client {
        srv: &srv,
        uid: 43,
        token: srv.token_for(42),
    };
    assert_401(&wrong.get("/info/collections").await);

    // MAC made with another key.
    let token = srv.token_for(42);
    let other = srv.token_for(42);
    let path = "/1.5/42/info/collections";
    let mut auth = srv.hawk(&other, "GET", path);
    auth = auth.replace(
        &format!("id=\"{}\"", other.id),
        &format!("id=\"{}\"", token.id),
    );
    assert_401(&send(srv.client.get(srv.url(path)).header("Authorization", auth)).await);
    // MAC over another path.
    let auth = srv.hawk(&token, "GET", "/1.5/42/info/quota");
    assert_401(&send(srv.client.get(srv.url(path)).header("Authorization", auth)).await);

    // A token minted for another node sharing the secret.
    let foreign = Client {
        srv: &srv,
        uid: 42,
        token: srv.token_with(42, "https://other.example.com", now + 3600),
    };
    assert_401(&foreign.get("/info/collections").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uid_path_segments() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 123);
    let before = seed(&c).await;
    // Not 1–10 digits: no storage URL, 404 `0` — still a storage answer with its timestamp.
    for uid in ["abc", "-1", "12345678901", "1a"] {
        let path = format!("/1.5/{uid}/info/collections");
        let r = send(srv.signed(&c.token, Method::GET, &path)).await;
        weave_error(&r, 404, "0");
        let r = send(srv.signed(&c.token, Method::DELETE, &format!("/1.5/{uid}"))).await;
        weave_error(&r, 404, "0");
    }
    // Digits but not the token's uid: 401.
    for uid in ["0", "1230", "9999999999", "0000000000"] {
        let path = format!("/1.5/{uid}/info/collections");
        let r = send(srv.signed(&c.token, Method::GET, &path)).await;
        weave_error(&r, 401, "0");
    }
    intact(&c, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_hash_is_checked_when_present() {
    let srv = TestServer::start().await;
    let token = srv.token_for(42);
    let path = "/1.5/42/storage/xxx_col1";
    let body = r#"[{"id":"a","payload":"x"}]"#;
    let sign = |hash: &str| {
        hawk::sign_request(
            &token.id,
            token.key.as_bytes(),
            &RequestTarget {
                method: "POST",
                target: path,
                host: "127.0.0.1",
                port: srv.addr.port(),
            },
            srv.clock.now_secs(),
            &hawk::random_nonce(),
            Some(hash),
            None,
        )
    };
    let good = hawk::payload_hash("application/json", body.as_bytes());
    let post = |auth: String| {
        send(
            srv.client
                .post(srv.url(path))
                .header("Authorization", auth)
                .header("Content-Type", "application/json")
                .body(body),
        )
    };
    post(sign(&good)).await.expect(200);
    let bad = hawk::payload_hash("application/json", b"something else");
    assert_401(&post(sign(&bad)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_proxy_with_public_url_on_a_sub_path() {
    let srv =
        TestServer::start_with(|s| s.public_url = Some("https://example.com:8443/sync".into()))
            .await;
    let token = srv.token_with(
        42,
        "https://example.com:8443/sync",
        srv.clock.now_secs() + 3600,
    );
    // The proxy strips /sync and forwards to 127.0.0.1 with its own Host header.
    let put = |path: &str, signed_target: &str| {
        let auth = srv.hawk_as(&token, "PUT", signed_target, "example.com", 8443);
        send(
            srv.client
                .put(srv.url(path))
                .header("Authorization", auth)
                .header("Content-Type", "application/json")
                .body(r#"{"payload":"via proxy"}"#),
        )
    };
    put(
        "/1.5/42/storage/xxx_col1/a",
        "/sync/1.5/42/storage/xxx_col1/a",
    )
    .await
    .expect(200);
    // Unstripped prefix works too.
    put(
        "/sync/1.5/42/storage/xxx_col1/b",
        "/sync/1.5/42/storage/xxx_col1/b",
    )
    .await
    .expect(200);
    // A client that signed the local address is refused.
    let auth = srv.hawk(&token, "GET", "/1.5/42/storage/xxx_col1/a");
    assert_401(
        &send(
            srv.client
                .get(srv.url("/1.5/42/storage/xxx_col1/a"))
                .header("Authorization", auth),
        )
        .await,
    );
    let auth = srv.hawk_as(
        &token,
        "GET",
        "/sync/1.5/42/storage/xxx_col1?full=1",
        "example.com",
        8443,
    );
    let list = send(
        srv.client
            .get(srv.url("/1.5/42/storage/xxx_col1?full=1"))
            .header("Authorization", auth),
    )
    .await;
    list.expect(200);
    assert_eq!(list.json().as_array().map(Vec::len), Some(2));
    // A token whose node is the local address is not for this public URL.
    let local = Client {
        srv: &srv,
        uid: 42,
        token: srv.token_for(42),
    };
    assert_401(&send(local.req(Method::GET, "/info/collections")).await);
}
