//! Tokenserver endpoint: paths, methods, the success response, every row of the error table
//! byte for byte, header spelling and scheme case, odd tokens, `duration` values and unusable
//! `Host` headers.

use serde_json::json;
use syncserver::auth::{TokenSecret, hashed_device_id, hashed_fxa_uid, parse_token};
use syncserver::config::Secret;

use crate::common::{TEST_SECRET, raw_http};
use crate::fxa_mock::{claims, rotated_key};
use crate::tokenserver_support::*;

/// `(status, location, name, description)` of an error body.
type ErrorParts = (String, String, String, String);

/// Request headers, expected status, expected error body.
type Case<'a> = (Vec<(&'a str, &'a str)>, u16, ErrorParts);

fn err(status: &str, location: &str, name: &str, description: &str) -> ErrorParts {
    (
        status.into(),
        location.into(),
        name.into(),
        description.into(),
    )
}

/// GET `path` and return status, content type and the raw body.
async fn raw_get(ts: &Ts, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut req = ts.srv.client.get(ts.srv.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("answered");
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, res.text().await.expect("body"))
}

/// Path, request headers, expected status, expected body.
type PathCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, String);

fn error_body(status: &str, location: &str, name: &str, description: &str) -> String {
    format!(
        r#"{{"status":"{status}","errors":[{{"location":"{location}","name":"{name}","description":"{description}"}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_request_gets_a_working_token() {
    let ts = Ts::start_with(|s| {
        s.tokenserver.fxa_metrics_hash_secret = Some(Secret::new("metrics"));
    })
    .await;
    let a = ts.token(Some(1234), 1234, "aaaa").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    assert_eq!(a.headers["x-timestamp"], ts.now_secs().to_string().as_str());
    // Field order as syncstorage-rs sends it.
    let keys: Vec<&String> = a.body.as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "api_endpoint",
            "duration",
            "hashalg",
            "hashed_fxa_uid",
            "id",
            "key",
            "node_type",
            "uid"
        ]
    );
    let uid = a.uid();
    assert_eq!(a.body["api_endpoint"], format!("{}/1.5/{uid}", ts.srv.base));
    assert_eq!(a.body["duration"], 3600);
    assert_eq!(a.body["hashalg"], "sha256");
    assert_eq!(a.body["hashed_fxa_uid"], hashed_fxa_uid("metrics", FXA_UID));
    // The id verifies with the master secret and the key is the derived one.
    let secret = TokenSecret::new(TEST_SECRET);
    let parsed = parse_token(&secret, a.body["id"].as_str().unwrap()).unwrap();
    assert_eq!(parsed.key, a.body["key"].as_str().unwrap());
    assert_eq!(parsed.key.len(), 44);
    let p = &parsed.payload;
    assert_eq!(p.uid, uid as u64);
    assert_eq!(p.node, ts.srv.base);
    assert_eq!(p.fxa_uid, FXA_UID);
    assert_eq!(p.fxa_kid, "0000000001234-qqo");
    assert_eq!(p.hashed_fxa_uid, hashed_fxa_uid("metrics", FXA_UID));
    assert_eq!(
        p.hashed_device_id,
        hashed_device_id("metrics", FXA_UID, "none")
    );
    assert_eq!(p.tokenserver_origin.as_deref(), Some("rust"));
    assert_eq!(p.expires, ts.now_secs() + 3600);
    assert_eq!(p.salt.len(), 6);
    // The raw JSON keeps RS's key order.
    let raw = String::from_utf8(base64_decode(a.body["id"].as_str().unwrap())[..].to_vec())
        .unwrap_or_default();
    assert!(raw.starts_with("{\"node\":"), "{raw}");
}

fn base64_decode(id: &str) -> Vec<u8> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(id)
        .unwrap();
    raw[..raw.len() - 32].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_path_and_public_url_prefix() {
    let ts = Ts::start_with(|s| s.public_url = Some("https://example.com/sync".into())).await;
    let bearer = format!("Bearer {}", ts.jwt(Some(1)));
    let kid = key_id(1, "aaaa");
    for path in [
        "/1.0/sync/1.5",
        "/token/1.0/sync/1.5",
        "/sync/1.0/sync/1.5",
        "/sync/token/1.0/sync/1.5",
    ] {
        let a = ts
            .get(path, &[("Authorization", &bearer), ("X-KeyID", &kid)])
            .await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        let uid = a.uid();
        assert_eq!(
            a.body["api_endpoint"],
            format!("https://example.com/sync/1.5/{uid}"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_are_405() {
    let ts = Ts::start().await;
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let res = ts
            .srv
            .client
            .request(method.clone(), ts.srv.url(TOKEN_PATH))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method}");
        assert_eq!(res.headers()["allow"], "GET");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_parameter() {
    let ts = Ts::start().await;
    let bearer = format!("Bearer {}", ts.jwt(None));
    let kid = key_id(1234, "aaaa");
    for (query, want) in [("12", 12), ("4000", 3600), ("lolwut", 3600), ("-1", 3600)] {
        let path = format!("{TOKEN_PATH}?duration={query}");
        let a = ts
            .get(&path, &[("Authorization", &bearer), ("X-KeyID", &kid)])
            .await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body["duration"], want, "{query}");
        let p = parse_token(
            &TokenSecret::new(TEST_SECRET),
            a.body["id"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(p.payload.expires, ts.now_secs() + want, "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_edge_values() {
    let ts = Ts::start().await;
    let auth = format!("Bearer {}", ts.jwt(Some(1)));
    let kid = key_id(1, "aaaa");
    for (q, want) in [
        ("duration=1", 1),
        ("duration=3600", 3600),
        ("duration=3601", 3600),
        ("duration=0", 3600),
        ("duration=", 3600),
        ("duration=1.5", 3600),
        ("duration=99999999999999999999999", 3600),
        ("duration=%31%32", 12),
        ("duration", 3600),
    ] {
        let a = ts
            .get(
                &format!("{TOKEN_PATH}?{q}"),
                &[("Authorization", &auth), ("X-KeyID", &kid)],
            )
            .await;
        assert_eq!(a.status, 200, "{q}: {}", a.body);
        assert_eq!(a.body["duration"], want, "{q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_error_table() {
    let ts = Ts::start().await;
    let bearer = format!("Bearer {}", ts.jwt(None));
    let kid = key_id(1234, "aaaa");
    let cases: Vec<Case<'_>> = vec![
        (
            vec![("X-KeyID", &kid)],
            401,
            err("error", "body", "", "Unauthorized"),
        ),
        (
            vec![("Authorization", "Bearer"), ("X-KeyID", &kid)],
            401,
            err("error", "body", "", "Unauthorized"),
        ),
        (
            vec![
                ("Authorization", "Unsupported-Auth-Scheme abc"),
                ("X-KeyID", &kid),
            ],
            401,
            err("error", "body", "", "Unsupported"),
        ),
        (
            vec![("Authorization", "BrowserID abc"), ("X-KeyID", &kid)],
            401,
            err("error", "body", "", "Unsupported"),
        ),
        (
            vec![("Authorization", &bearer)],
            401,
            err("invalid-key-id", "header", "", "Missing X-KeyID header"),
        ),
        (
            vec![("Authorization", &bearer), ("X-KeyID", "1234-state!")],
            401,
            err("invalid-credentials", "body", "", "Unauthorized"),
        ),
        (
            vec![("Authorization", &bearer), ("X-KeyID", "1234qqo")],
            401,
            err("invalid-credentials", "body", "", "Unauthorized"),
        ),
        (
            vec![("Authorization", &bearer), ("X-KeyID", "12x4-qqo")],
            401,
            err("invalid-credentials", "body", "", "Unauthorized"),
        ),
        (
            vec![
                ("Authorization", &bearer),
                ("X-KeyID", &kid),
                ("X-Client-State", "state!"),
            ],
            400,
            err(
                "error",
                "header",
                "X-Client-State",
                "Invalid client state value",
            ),
        ),
        (
            vec![
                ("Authorization", &bearer),
                ("X-KeyID", &kid),
                ("X-Client-State", "bbbb"),
            ],
            401,
            err("invalid-client-state", "body", "", "Unauthorized"),
        ),
        (
            vec![
                ("Authorization", &bearer),
                ("X-KeyID", &kid),
                ("X-Client-State", "AAAA"),
            ],
            401,
            err("invalid-client-state", "body", "", "Unauthorized"),
        ),
    ];
    for (headers, status, want) in cases {
        let a = ts.get(TOKEN_PATH, &headers).await;
        assert_eq!(a.status, status, "{headers:?}: {}", a.body);
        assert_eq!(a.error(), want, "{headers:?}");
        assert_eq!(a.headers["content-type"], "application/json");
    }
    // Identical X-Client-State is fine.
    let a = ts
        .get(
            TOKEN_PATH,
            &[
                ("Authorization", &bearer),
                ("X-KeyID", &kid),
                ("X-Client-State", "aaaa"),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    // X-KeyID with bytes that are not visible ASCII.
    let res = ts
        .srv
        .client
        .get(ts.srv.url(TOKEN_PATH))
        .header("Authorization", &bearer)
        .header(
            "X-KeyID",
            reqwest::header::HeaderValue::from_bytes(b"1234-qq\xe9").unwrap(),
        )
        .send()
        .await
        .unwrap();
    let a = answer(res).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.error(),
        err("invalid-key-id", "header", "", "Invalid X-KeyID header")
    );
    // None of these reached FxA's verify endpoint.
    assert_eq!(ts.fxa.verify_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_are_byte_exact() {
    let ts = Ts::start().await;
    let bearer = format!("Bearer {}", ts.jwt(None));
    let kid = key_id(1234, "aaaa");
    let unauthorized = error_body("error", "body", "", "Unauthorized");
    let bad_creds = error_body("invalid-credentials", "body", "", "Unauthorized");
    let long_state = "a".repeat(33);
    let cases: Vec<PathCase<'_>> = vec![
        (TOKEN_PATH, vec![], 401, unauthorized.clone()),
        (
            TOKEN_PATH,
            vec![("Authorization", "Bearer"), ("X-KeyID", &kid)],
            401,
            unauthorized.clone(),
        ),
        (
            TOKEN_PATH,
            vec![("Authorization", "Hawk id=\"x\""), ("X-KeyID", &kid)],
            401,
            error_body("error", "body", "", "Unsupported"),
        ),
        (
            TOKEN_PATH,
            vec![("Authorization", &bearer)],
            401,
            error_body("invalid-key-id", "header", "", "Missing X-KeyID header"),
        ),
        (
            TOKEN_PATH,
            vec![("Authorization", &bearer), ("X-KeyID", "1234-qq=")],
            401,
            bad_creds.clone(),
        ),
        (
            TOKEN_PATH,
            vec![("Authorization", &bearer), ("X-KeyID", "-qqo")],
            401,
            bad_creds.clone(),
        ),
        (
            TOKEN_PATH,
            vec![
                ("Authorization", &bearer),
                ("X-KeyID", "99999999999999999999-qqo"),
            ],
            401,
            bad_creds.clone(),
        ),
        (
            TOKEN_PATH,
            vec![
                ("Authorization", &bearer),
                ("X-KeyID", &kid),
                ("X-Client-State", ""),
            ],
            400,
            error_body(
                "error",
                "header",
                "X-Client-State",
                "Invalid client state value",
            ),
        ),
        (
            TOKEN_PATH,
            vec![
                ("Authorization", &bearer),
                ("X-KeyID", &kid),
                ("X-Client-State", long_state.as_str()),
            ],
            400,
            error_body(
                "error",
                "header",
                "X-Client-State",
                "Invalid client state value",
            ),
        ),
        (
            TOKEN_PATH,
            vec![
                ("Authorization", &bearer),
                ("X-KeyID", &kid),
                ("X-Client-State", "bbbb"),
            ],
            401,
            error_body("invalid-client-state", "body", "", "Unauthorized"),
        ),
        (
            "/1.0/xXx/token",
            vec![("Authorization", &bearer), ("X-KeyID", &kid)],
            404,
            error_body("error", "url", "application", "Unsupported application"),
        ),
        (
            "/token/1.0/sync/1.2",
            vec![("Authorization", &bearer), ("X-KeyID", &kid)],
            404,
            error_body("error", "url", "1.2", "Unsupported application version"),
        ),
    ];
    for (path, headers, status, want) in cases {
        let (got_status, ct, got) = raw_get(&ts, path, &headers).await;
        assert_eq!(
            (got_status, got.as_str()),
            (status, want.as_str()),
            "{headers:?}"
        );
        assert_eq!(ct, "application/json", "{headers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheme_and_header_names_are_case_insensitive() {
    let ts = Ts::start().await;
    let jwt = ts.jwt(Some(1234));
    let kid = key_id(1234, "aaaa");
    let mut uids = Vec::new();
    for (scheme, kid_header, path) in [
        ("Bearer", "X-KeyID", "/1.0/sync/1.5"),
        ("bearer", "X-KeyId", "/token/1.0/sync/1.5"),
        (
            "BEARER",
            "x-keyid",
            "/1.0/sync/1.5?duration=60&duration=4000",
        ),
    ] {
        let auth = format!("{scheme} {jwt}");
        let a = ts
            .get(
                path,
                &[
                    ("Authorization", &auth),
                    (kid_header, &kid),
                    ("X-Client-State", "aaaa"),
                    ("Accept", "application/json"),
                ],
            )
            .await;
        uids.push(a.uid());
        assert_eq!(a.headers["content-type"], "application/json");
        if path.contains("duration") {
            assert_eq!(a.body["duration"], 60);
        }
    }
    uids.dedup();
    assert_eq!(uids.len(), 1, "one user for every spelling: {uids:?}");
    assert_eq!(rows(&ts.db().await, FXA_UID).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_application_and_version() {
    let ts = Ts::start().await;
    let bearer = format!("Bearer {}", ts.jwt(None));
    let kid = key_id(1234, "aaaa");
    let h = [
        ("Authorization", bearer.as_str()),
        ("X-KeyID", kid.as_str()),
    ];
    let a = ts.get("/1.0/xXx/token", &h).await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.body,
        json!({"status":"error","errors":[{"location":"url","name":"application","description":"Unsupported application"}]})
    );
    let a = ts.get("/1.0/sync/1.2", &h).await;
    assert_eq!(a.status, 404);
    assert_eq!(
        a.error(),
        err("error", "url", "1.2", "Unsupported application version")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_tokens_are_invalid_credentials_without_remote_calls() {
    let ts = Ts::start().await;
    let now = ts.now_secs();
    let kid = key_id(1234, "aaaa");
    let rotated = rotated_key();
    let mut no_scope = claims(FXA_UID, None, now + 3600);
    no_scope["scope"] = json!("profile");
    let tokens = [
        // Expired well past the leeway.
        ts.key.sign(&claims(FXA_UID, None, now - 120)),
        ts.key
            .sign_with_typ(&claims(FXA_UID, None, now + 3600), Some("JWT")),
        ts.key.sign(&no_scope),
        // Signed by another key under FxA's kid: bad signature.
        rotated_with_kid(&ts.key.kid).sign(&claims(FXA_UID, None, now + 3600)),
        // Signed by a key FxA does not publish.
        rotated.sign(&claims(FXA_UID, None, now + 3600)),
    ];
    for (i, token) in tokens.iter().enumerate() {
        let bearer = format!("Bearer {token}");
        let a = ts
            .get(TOKEN_PATH, &[("Authorization", &bearer), ("X-KeyID", &kid)])
            .await;
        assert_eq!(a.status, 401, "case {i}: {}", a.body);
        assert_eq!(
            a.error(),
            err("invalid-credentials", "body", "", "Unauthorized"),
            "case {i}"
        );
    }
    assert_eq!(
        ts.fxa.verify_calls(),
        0,
        "a forged JWT must not cause a /v1/verify call"
    );
    // A token /v1/verify refuses (the mock answers 400 errno 108).
    let a = ts
        .get(
            TOKEN_PATH,
            &[("Authorization", "Bearer opaque-token"), ("X-KeyID", &kid)],
        )
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.error(),
        err("invalid-credentials", "body", "", "Unauthorized")
    );
    assert_eq!(ts.fxa.verify_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_tokens_are_refused_cleanly() {
    let ts = Ts::start().await;
    let kid = key_id(1234, "aaaa");
    let jwt = ts.jwt(None);
    let mut parts = jwt.split('.');
    let (h, p) = (parts.next().unwrap(), parts.next().unwrap());
    let giant = "A".repeat(16 * 1024);
    let tokens = [
        format!("{h}.{p}."),
        format!("{h}.{p}.{giant}"),
        format!("{h}..sig"),
        "...".to_string(),
        format!("{jwt}x"),
        giant.clone(),
        "a b c".to_string(),
    ];
    for token in &tokens {
        let auth = format!("Bearer {token}");
        let Ok(value) = reqwest::header::HeaderValue::from_bytes(auth.as_bytes()) else {
            continue;
        };
        let res = ts
            .srv
            .client
            .get(ts.srv.url(TOKEN_PATH))
            .header("Authorization", value)
            .header("X-KeyID", &kid)
            .send()
            .await
            .expect("answered");
        let status = res.status().as_u16();
        let ct = res.headers()["content-type"].to_str().unwrap().to_string();
        let text = res.text().await.unwrap();
        assert_eq!(status, 401, "{}: {text}", &token[..token.len().min(40)]);
        assert_eq!(ct, "application/json");
        assert_eq!(
            text,
            error_body("invalid-credentials", "body", "", "Unauthorized")
        );
    }
    // Nothing was created for any of them.
    assert!(rows(&ts.db().await, FXA_UID).await.is_empty());
}

/// The rotated key's private half presented under another kid.
fn rotated_with_kid(kid: &str) -> crate::fxa_mock::TestKey {
    let mut k = rotated_key();
    k.kid = kid.to_string();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_errors_have_their_bodies() {
    let ts = Ts::start().await;
    assert_eq!(ts.token(Some(1234), 1234, "aaaa").await.status, 200);
    ts.tick(1000);
    let a = ts.token(Some(1233), 1234, "aaaa").await;
    assert_eq!(
        (a.status, a.error()),
        (401, err("invalid-generation", "body", "", "Unauthorized"))
    );
    let a = ts.token(Some(1234), 1233, "aaaa").await;
    assert_eq!(
        (a.status, a.error()),
        (
            401,
            err("invalid-keysChangedAt", "body", "", "Unauthorized")
        )
    );
    let a = ts.token(Some(1234), 1234, "bbbb").await;
    assert_eq!(
        (a.status, a.error()),
        (
            401,
            err(
                "invalid-client-state",
                "header",
                "X-Client-State",
                "Unacceptable client-state value new value with no generation change"
            )
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fxa_unreachable_is_503_with_retry_after() {
    // Nothing listens on 127.0.0.1:9: neither the JWKS nor /v1/verify can be reached.
    let ts =
        Ts::start_with(|s| s.tokenserver.fxa_oauth_server_url = "http://127.0.0.1:9".into()).await;
    let kid = key_id(1234, "aaaa");
    for token in [ts.jwt(None), "opaque-token".to_string()] {
        let bearer = format!("Bearer {token}");
        let a = ts
            .get(TOKEN_PATH, &[("Authorization", &bearer), ("X-KeyID", &kid)])
            .await;
        assert_eq!(a.status, 503, "{}", a.body);
        assert_eq!(
            a.error(),
            err("error", "body", "", "Resource is not available")
        );
        assert_eq!(a.headers["retry-after"], "30");
        assert_eq!(a.headers["content-type"], "application/json");
    }
    // The heartbeat never contacts FxA and stays green.
    let res = ts
        .srv
        .client
        .get(ts.srv.url("/__heartbeat__"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["checks"]["tokenserver_database"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fxa_errors_are_503() {
    let ts = Ts::start().await;
    ts.fxa.set_down(true);
    let kid = key_id(1234, "aaaa");
    let a = ts
        .get(
            TOKEN_PATH,
            &[
                ("Authorization", &format!("Bearer {}", ts.jwt(None))),
                ("X-KeyID", &kid),
            ],
        )
        .await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.headers.contains_key("retry-after"));
    assert_eq!(ts.fxa.jwks_calls(), 1);
    assert_eq!(ts.fxa.verify_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_host_header_is_400_not_500() {
    let ts = Ts::start().await;
    let jwt = ts.jwt(Some(1));
    let kid = key_id(1, "aaaa");
    let mut ours = 0;
    for host_line in [
        "",
        "Host: \r\n",
        "Host: a b\r\n",
        "Host: example.com:notaport\r\n",
    ] {
        let res = raw_http(
            ts.srv.addr,
            format!(
                "GET {TOKEN_PATH} HTTP/1.1\r\n{host_line}Authorization: Bearer {jwt}\r\n\
                 X-KeyID: {kid}\r\nConnection: close\r\n\r\n"
            )
            .into_bytes(),
        )
        .await;
        assert!(!res.starts_with("HTTP/1.1 5"), "{host_line:?}: {res}");
        if res.starts_with("HTTP/1.1 400") && res.contains("\"status\"") {
            assert!(
                res.ends_with(&error_body(
                    "error",
                    "header",
                    "Host",
                    "Invalid Host header"
                )),
                "{res}"
            );
            ours += 1;
        }
    }
    // Some of these reach the handler (the HTTP layer lets an empty Host through).
    assert!(ours >= 1);
    // Nobody was allocated a uid without a URL to send them to.
    assert!(rows(&ts.db().await, FXA_UID).await.is_empty());
}
