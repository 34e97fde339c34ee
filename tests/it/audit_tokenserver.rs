//! Audit of the tokenserver against PROTOCOL.md §1.2 and §1.7.2: exact error bytes, header
//! spelling and scheme case, odd tokens and `duration` values, both paths.

use crate::tokenserver_support::*;

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
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, String);

fn body(status: &str, location: &str, name: &str, description: &str) -> String {
    format!(
        r#"{{"status":"{status}","errors":[{{"location":"{location}","name":"{name}","description":"{description}"}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_are_byte_exact() {
    let ts = Ts::start().await;
    let bearer = format!("Bearer {}", ts.jwt(None));
    let kid = key_id(1234, "aaaa");
    let unauthorized = body("error", "body", "", "Unauthorized");
    let bad_creds = body("invalid-credentials", "body", "", "Unauthorized");
    let long_state = "a".repeat(33);
    let cases: Vec<Case> = vec![
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
            body("error", "body", "", "Unsupported"),
        ),
        (
            TOKEN_PATH,
            vec![("Authorization", &bearer)],
            401,
            body("invalid-key-id", "header", "", "Missing X-KeyID header"),
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
            body(
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
            body(
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
            body("invalid-client-state", "body", "", "Unauthorized"),
        ),
        (
            "/1.0/xXx/token",
            vec![("Authorization", &bearer), ("X-KeyID", &kid)],
            404,
            body("error", "url", "application", "Unsupported application"),
        ),
        (
            "/token/1.0/sync/1.2",
            vec![("Authorization", &bearer), ("X-KeyID", &kid)],
            404,
            body("error", "url", "1.2", "Unsupported application version"),
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
            body("invalid-credentials", "body", "", "Unauthorized")
        );
    }
    // Nothing was created for any of them.
    assert!(rows(&ts.db().await, FXA_UID).await.is_empty());
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

/// Sends a raw HTTP/1.1 request and returns the raw response.
async fn raw(ts: &Ts, request: String) -> String {
    let addr = ts.srv.addr;
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .expect("timeout");
        s.write_all(request.as_bytes()).expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("raw request")
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
        let res = raw(
            &ts,
            format!(
                "GET {TOKEN_PATH} HTTP/1.1\r\n{host_line}Authorization: Bearer {jwt}\r\n\
                 X-KeyID: {kid}\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert!(!res.starts_with("HTTP/1.1 5"), "{host_line:?}: {res}");
        if res.starts_with("HTTP/1.1 400") && res.contains("\"status\"") {
            assert!(
                res.ends_with(&body("error", "header", "Host", "Invalid Host header")),
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
