//! Audit of the storage service against bad input and exact response shapes (PROTOCOL.md §4,
//! §6): nothing a client sends may give a 500 or lose stored data, and every answer has the
//! documented status, headers and body.

use std::io::{Read, Write};

use reqwest::Method;
use serde_json::json;

use crate::common::TestServer;
use crate::storage_support::{Client, Resp, send, ts_ms};

/// Stores one known record and returns its body as read back.
async fn seed(c: &Client<'_>) -> String {
    c.put(
        "/storage/xxx_col1/keep",
        r#"{"payload":"precious","sortindex":3}"#,
    )
    .await
    .expect(200);
    let r = c.get("/storage/xxx_col1/keep").await;
    r.expect(200);
    r.body
}

/// The record stored by [`seed`] is still there, unchanged, and nothing else appeared.
async fn intact(c: &Client<'_>, before: &str) {
    let r = c.get("/storage/xxx_col1/keep").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, before);
    let ids = c.get("/storage/xxx_col1").await;
    assert_eq!(ids.body, r#"["keep"]"#);
}

/// A storage answer that is an error: status, bare Weave code, JSON, X-Weave-Timestamp.
#[track_caller]
fn weave_error(r: &Resp, status: u16, code: &str) {
    r.expect_error(status, code);
    let ts = r.header("x-weave-timestamp").expect("X-Weave-Timestamp");
    assert!(two_decimals(ts), "{r:?}");
}

fn two_decimals(v: &str) -> bool {
    let (s, f) = v.split_once('.').unwrap_or(("", ""));
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && f.len() == 2
}

/// The start of a raw request to `c`'s `rest`, signed for `c`: the request line, `Host` and
/// `Authorization`; the caller adds the other headers, the blank line and any body.
fn signed_head(srv: &TestServer, c: &Client<'_>, method: &str, rest: &str) -> String {
    let path = c.path(rest);
    let auth = srv.hawk(&c.token, method, &path);
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: {auth}\r\n",
        srv.addr.port()
    )
}

/// Sends raw bytes to the server and returns the raw response (the connection is closed by
/// the request's `Connection: close`, or by the server after an error).
async fn raw(srv: &TestServer, request: Vec<u8>) -> String {
    let addr = srv.addr;
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .expect("timeout");
        let mut w = s.try_clone().expect("clone");
        // Write on another thread: the server may answer (and stop reading) early.
        let writer = std::thread::spawn(move || {
            for chunk in request.chunks(16 * 1024) {
                if w.write_all(chunk).is_err() {
                    break;
                }
            }
        });
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let _ = writer.join();
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("raw request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sortindex_and_ttl_edge_values() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 101);
    let before = seed(&c).await;
    // Out of range, including the values whose absolute value does not fit an i64.
    for bad in [
        "1000000000",
        "-1000000000",
        "-9223372036854775808",
        "9223372036854775807",
        "18446744073709551615",
        "1e3",
        "2.0",
        "\"12\"",
        "true",
        "[]",
    ] {
        let body = format!(r#"{{"payload":"x","sortindex":{bad}}}"#);
        weave_error(&c.put("/storage/xxx_col1/keep", &body).await, 400, "8");
        let post = c
            .post(
                "/storage/xxx_col1",
                &format!(r#"[{{"id":"keep","payload":"x","sortindex":{bad}}}]"#),
            )
            .await;
        post.expect(200);
        assert_eq!(post.json()["success"], json!([]), "{bad}: {post:?}");
        assert!(post.json()["failed"]["keep"].is_string(), "{bad}: {post:?}");
    }
    for bad in [
        "-1",
        "1000000000",
        "-9223372036854775808",
        "1e3",
        "1.5",
        "\"5\"",
    ] {
        let body = format!(r#"{{"payload":"x","ttl":{bad}}}"#);
        weave_error(&c.put("/storage/xxx_col1/keep", &body).await, 400, "8");
    }
    intact(&c, &before).await;
    // The ends of the ranges are fine; null is "not sent".
    for (id, sortindex) in [("lo", -999_999_999), ("hi", 999_999_999)] {
        c.put(
            &format!("/storage/xxx_col2/{id}"),
            &format!(r#"{{"payload":"p","sortindex":{sortindex},"ttl":999999999}}"#),
        )
        .await
        .expect(200);
        let r = c.get(&format!("/storage/xxx_col2/{id}")).await;
        assert_eq!(r.json()["sortindex"], json!(sortindex));
    }
    c.put(
        "/storage/xxx_col2/nulls",
        r#"{"payload":null,"sortindex":null,"ttl":null}"#,
    )
    .await
    .expect(200);
    let r = c.get("/storage/xxx_col2/nulls").await;
    r.expect(200);
    assert_eq!(
        r.json(),
        json!({"id":"nulls","modified":r.json()["modified"],"payload":""})
    );
    assert!(!r.body.contains("sortindex"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_never_500_and_keep_data() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 102);
    let before = seed(&c).await;
    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_field = format!(
        r#"{{"payload":"x","foo":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"{".to_vec(),
        b"\xff\xfe\x00{".to_vec(),
        b"{\"payload\":\"\xff\xfe\"}".to_vec(),
        br#"{"payload":"\ud800"}"#.to_vec(),
        deep_array.into_bytes(),
        deep_field.into_bytes(),
        br#"{"payload":"x"} trailing"#.to_vec(),
    ];
    for body in &bodies {
        for ct in ["application/json", "text/plain", "application/newlines"] {
            let put = send(
                c.req(Method::PUT, "/storage/xxx_col1/keep")
                    .header("Content-Type", ct)
                    .body(body.clone()),
            )
            .await;
            assert!(
                put.status == 400,
                "PUT {ct} {:?}: {put:?}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
            let post = send(
                c.req(Method::POST, "/storage/xxx_col1")
                    .header("Content-Type", ct)
                    .body(body.clone()),
            )
            .await;
            assert!(
                post.status == 400 || post.status == 200,
                "POST {ct}: {post:?}"
            );
        }
    }
    intact(&c, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_at_and_over_the_record_limit() {
    let srv = TestServer::start_with(|s| {
        s.storage.max_record_payload_bytes = 1000;
        s.storage.max_post_bytes = 1500;
        s.storage.max_request_bytes = 4000;
    })
    .await;
    let c = Client::new(&srv, 103);
    let before = seed(&c).await;
    // Multi-byte characters count as their UTF-8 bytes.
    let at = "é".repeat(500);
    let over = format!("{at}x");
    c.put("/storage/xxx_col2/a", &json!({ "payload": at }).to_string())
        .await
        .expect(200);
    weave_error(
        &c.put(
            "/storage/xxx_col1/keep",
            &json!({ "payload": over }).to_string(),
        )
        .await,
        400,
        "8",
    );
    let r = c
        .post(
            "/storage/xxx_col1",
            &json!([{"id": "keep", "payload": over}, {"id": "b", "payload": "ok"}]).to_string(),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json()["success"], json!(["b"]));
    assert_eq!(r.json()["failed"]["keep"], json!("retry bytes"));
    assert_eq!(
        c.get("/storage/xxx_col2/a").await.json()["payload"],
        json!(at)
    );
    let keep = c.get("/storage/xxx_col1/keep").await;
    assert_eq!(keep.body, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_max_request_bytes_is_413_17() {
    let srv = TestServer::start_with(|s| s.storage.max_request_bytes = 4096).await;
    let c = Client::new(&srv, 104);
    let before = seed(&c).await;
    let body = json!([{"id": "keep", "payload": "y".repeat(10_000)}]).to_string();
    let mut req = signed_head(&srv, &c, "POST", "/storage/xxx_col1").into_bytes();
    req.extend_from_slice(
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    for chunk in body.as_bytes().chunks(1000) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let res = raw(&srv, req).await;
    assert!(res.starts_with("HTTP/1.1 413"), "{res}");
    let lower = res.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/json"), "{res}");
    assert!(lower.contains("x-weave-timestamp: "), "{res}");
    assert!(res.ends_with("\r\n\r\n17"), "{res}");
    intact(&c, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weird_query_strings() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 105);
    let before = seed(&c).await;
    let many = (0..101)
        .map(|i| format!("i{i}"))
        .collect::<Vec<_>>()
        .join(",");
    for q in [
        "newer=abc",
        "newer=1e5",
        "newer=-1",
        "newer=",
        "older=NaN",
        "newer=99999999999999999999999",
        "limit=-1",
        "limit=abc",
        "limit=99999999999999",
        "limit=1.5",
        "sort=NEWEST",
        "offset=-1",
        "offset=1:x",
        "offset=99999999999999999999999",
        &format!("ids={many}"),
        "ids=a%0Ab",
        "ids=%C3%A9",
        &format!("ids={}", "x".repeat(65)),
    ] {
        weave_error(&c.get(&format!("/storage/xxx_col1?{q}")).await, 400, "0");
        weave_error(&c.delete(&format!("/storage/xxx_col1?{q}")).await, 400, "0");
    }
    // Harmless oddities: repeated, unknown, percent-encoded and empty parameters.
    for (q, want) in [
        ("ids=keep&ids=nope", "[]"),
        ("ids=nope&ids=keep", r#"["keep"]"#),
        ("ids=%6Beep", r#"["keep"]"#),
        ("ids=,,keep,,", r#"["keep"]"#),
        ("v=1.2.3&full&&=&x", "FULL"),
        ("newer=0&older=99999999999", r#"["keep"]"#),
        ("limit=0", "[]"),
        ("limit=4294967295", r#"["keep"]"#),
        ("offset=5", "[]"),
        ("offset=18446744073709551615", "[]"),
        ("sort=oldest&offset=0:18446744073709551615", "[]"),
    ] {
        let r = c.get(&format!("/storage/xxx_col1?{q}")).await;
        assert_eq!(r.status, 200, "{q}: {r:?}");
        if want == "FULL" {
            assert_eq!(format!("[{before}]"), r.body, "{q}");
        } else {
            assert_eq!(r.body, want, "{q}");
        }
    }
    intact(&c, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_ids_in_the_path() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 106);
    let before = seed(&c).await;
    for id in ["a%0Ab", "%0A", "a%09", "%C3%A9", "%00", "%zz"] {
        let path = format!("/storage/xxx_col1/{id}");
        weave_error(&c.get(&path).await, 404, "0");
        weave_error(&c.delete(&path).await, 404, "0");
        weave_error(&c.put(&path, r#"{"payload":"x"}"#).await, 400, "8");
    }
    let long = "x".repeat(65);
    weave_error(
        &c.put(&format!("/storage/xxx_col1/{long}"), "{}").await,
        400,
        "8",
    );
    // 64 characters, spaces and braces are fine.
    for id in ["x".repeat(64), "a%20b".into(), "%7Bguid%7D".into()] {
        c.put(&format!("/storage/xxx_col2/{id}"), r#"{"payload":"p"}"#)
            .await
            .expect(200);
        c.get(&format!("/storage/xxx_col2/{id}")).await.expect(200);
    }
    let ids = c.get("/storage/xxx_col2?sort=oldest").await;
    assert_eq!(ids.json(), json!(["x".repeat(64), "a b", "{guid}"]));
    intact(&c, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_headers_are_400_and_change_nothing() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 107);
    let before = seed(&c).await;
    let write = || {
        c.req(Method::POST, "/storage/xxx_col1")
            .header("Content-Type", "application/json")
            .body(r#"[{"id":"keep","payload":"gone"}]"#)
    };
    for (name, value) in [
        ("X-If-Unmodified-Since", "-1"),
        ("X-If-Unmodified-Since", "abc"),
        ("X-If-Unmodified-Since", "1e9"),
        ("X-If-Unmodified-Since", ""),
        ("X-If-Modified-Since", "-0.5"),
        ("X-Weave-Records", "1.5"),
        ("X-Weave-Records", "-1"),
        ("X-Weave-Bytes", "abc"),
        ("X-Weave-Total-Records", "99999999999999999999999"),
        ("X-Weave-Total-Bytes", ""),
    ] {
        weave_error(&send(write().header(name, value)).await, 400, "0");
    }
    for (name, value) in [
        ("X-Weave-Records", "101"),
        ("X-Weave-Total-Records", "10001"),
    ] {
        weave_error(&send(write().header(name, value)).await, 400, "17");
    }
    let both = send(
        write()
            .header("X-If-Unmodified-Since", "1")
            .header("X-If-Modified-Since", "1"),
    )
    .await;
    weave_error(&both, 400, "0");
    let get_both = send(
        c.req(Method::GET, "/storage/xxx_col1/keep")
            .header("X-If-Unmodified-Since", "1")
            .header("X-If-Modified-Since", "1"),
    )
    .await;
    weave_error(&get_both, 400, "0");
    for path in [
        "/info/collections",
        "/storage/xxx_col1",
        "/storage/xxx_col1/keep",
    ] {
        let r = send(c.req(Method::GET, path).header("X-If-Modified-Since", "-3")).await;
        weave_error(&r, 400, "0");
    }
    intact(&c, &before).await;
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
async fn every_answer_has_a_weave_timestamp_and_exact_shape() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 109);
    let put = c.put("/storage/xxx_col1/a", r#"{"payload":"p"}"#).await;
    put.expect(200);
    let t = put.body.clone();
    assert!(two_decimals(&t), "{put:?}");
    assert_eq!(put.header("x-last-modified"), Some(t.as_str()));
    assert_eq!(put.header("x-weave-timestamp"), Some(t.as_str()));
    assert_eq!(put.header("content-type"), Some("application/json"));

    // 304: empty body, X-Last-Modified and X-Weave-Timestamp.
    for path in [
        "/storage/xxx_col1/a",
        "/storage/xxx_col1",
        "/info/collections",
    ] {
        let r = send(c.req(Method::GET, path).header("X-If-Modified-Since", &t)).await;
        assert_eq!(r.status, 304, "{path}: {r:?}");
        assert_eq!(r.body, "");
        assert_eq!(r.header("x-last-modified"), Some(t.as_str()), "{path}");
        assert!(r.header("x-weave-timestamp").is_some(), "{path}");
    }
    // 412: empty body, X-Last-Modified and X-Weave-Timestamp.
    let r = send(
        c.req(Method::PUT, "/storage/xxx_col1/a")
            .header("Content-Type", "application/json")
            .header("X-If-Unmodified-Since", "1.00")
            .body(r#"{"payload":"q"}"#),
    )
    .await;
    assert_eq!(r.status, 412, "{r:?}");
    assert_eq!(r.body, "");
    assert_eq!(r.header("x-last-modified"), Some(t.as_str()));
    assert!(r.header("x-weave-timestamp").is_some());
    // 405, 406, 404, 415.
    weave_error(
        &send(c.req(Method::PATCH, "/storage/xxx_col1/a")).await,
        405,
        "0",
    );
    weave_error(
        &send(c.req(Method::POST, "/info/collections")).await,
        405,
        "0",
    );
    let head = send(c.req(Method::HEAD, "/info/collections")).await;
    assert_eq!(head.status, 405, "{head:?}");
    assert!(head.header("x-weave-timestamp").is_some(), "{head:?}");
    weave_error(
        &send(
            c.req(Method::GET, "/storage/xxx_col1")
                .header("Accept", "text/plain"),
        )
        .await,
        406,
        "0",
    );
    weave_error(&c.get("/storage/xxx_col1/nope").await, 404, "0");
    weave_error(&c.get("/nonexistent").await, 404, "0");
    weave_error(
        &send(
            c.req(Method::PUT, "/storage/xxx_col1/a")
                .header("Content-Type", "application/octet-stream")
                .body("{}"),
        )
        .await,
        415,
        "0",
    );
    // Accept: */* and a list where newlines wins.
    let r = send(
        c.req(Method::GET, "/storage/xxx_col1")
            .header("Accept", "*/*"),
    )
    .await;
    assert_eq!(r.body, r#"["a"]"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = send(
        c.req(Method::GET, "/storage/xxx_col1?full=1")
            .header("Accept", "application/newlines"),
    )
    .await;
    assert_eq!(r.header("content-type"), Some("application/newlines"));
    assert_eq!(
        r.body,
        format!("{{\"id\":\"a\",\"modified\":{t},\"payload\":\"p\"}}\n")
    );
    // info/quota with quota off; info/configuration's exact body.
    let q = c.get("/info/quota").await;
    q.expect(200);
    assert_eq!(q.json()[1], serde_json::Value::Null);
    assert_eq!(q.json().as_array().map(Vec::len), Some(2));
    let conf = c.get("/info/configuration").await;
    assert_eq!(conf.header("content-type"), Some("application/json"));
    assert_eq!(
        conf.body,
        r#"{"max_post_bytes":2621440,"max_post_records":100,"max_record_payload_bytes":2621440,"max_request_bytes":2625536,"max_total_bytes":262144000,"max_total_records":10000}"#
    );
    // Deletes: collection → {"modified": T}; storage → {}.
    srv.clock.advance_ms(1000);
    let d = c.delete("/storage/xxx_col1").await;
    d.expect(200);
    let dt = d
        .header("x-last-modified")
        .expect("X-Last-Modified")
        .to_string();
    assert_eq!(d.body, format!("{{\"modified\":{dt}}}"));
    assert_eq!(d.header("x-weave-timestamp"), Some(dt.as_str()));
    assert!(ts_ms(&dt) > ts_ms(&t));
    let s = c.delete("/storage").await;
    s.expect(200);
    assert_eq!(s.body, "{}");
    assert_eq!(s.header("content-type"), Some("application/json"));
    assert!(s.header("x-weave-timestamp").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_with_nul_and_unicode_round_trips() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 110);
    let payload = "a\u{0}b\u{1f}c\"\\\u{2028}é🎉\r\n";
    c.post(
        "/storage/xxx_col1",
        &json!([{"id": "a", "payload": payload}]).to_string(),
    )
    .await
    .expect(200);
    let r = c.get("/storage/xxx_col1/a").await;
    assert_eq!(r.json()["payload"], json!(payload));
    let r = send(
        c.req(Method::GET, "/storage/xxx_col1?full=1")
            .header("Accept", "application/newlines"),
    )
    .await;
    let lines: Vec<&str> = r.body.split_terminator('\n').collect();
    assert_eq!(lines.len(), 1, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("line is JSON");
    assert_eq!(v["payload"], json!(payload));
    let usage = c.get("/info/collection_usage").await;
    let kib = usage.json()["xxx_col1"].as_f64().expect("usage");
    assert!((kib * 1024.0 - payload.len() as f64).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newline_bodies_edge_cases() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 111);
    let before = seed(&c).await;
    let post = |body: &'static str| {
        send(
            c.req(Method::POST, "/storage/xxx_col2")
                .header("Content-Type", "application/newlines")
                .body(body),
        )
    };
    // CRLF line ends, and a payload holding an escaped newline.
    let r = post("{\"id\":\"a\",\"payload\":\"x\\ny\"}\r\n{\"id\":\"b\"}\r\n").await;
    r.expect(200);
    assert_eq!(r.json()["success"], json!(["a", "b"]));
    assert_eq!(
        c.get("/storage/xxx_col2/a").await.json()["payload"],
        json!("x\ny")
    );
    for bad in [
        "\n",
        "\n\n",
        "{\"id\":\"c\"}\n\n",
        "\n{\"id\":\"c\"}",
        "{\"id\":\"c\"}\n\n{\"id\":\"d\"}",
        "[{\"id\":\"c\"}]",
        "{}",
    ] {
        weave_error(&post(bad).await, 400, "8");
    }
    let ids = c.get("/storage/xxx_col2?sort=oldest").await;
    assert_eq!(ids.json(), json!(["a", "b"]));
    intact(&c, &before).await;
}

/// Uploads `n` records to `coll` as one batch (appends of 100, then an empty commit), so they
/// all share one timestamp, as a first sync of a big collection does.
async fn upload_batch(c: &Client<'_>, coll: &str, prefix: &str, n: usize) -> String {
    let create = c.post(&format!("/storage/{coll}?batch=true"), "[]").await;
    create.expect(202);
    let batch = create.json()["batch"].as_str().expect("batch").to_string();
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i:05}")).collect();
    for chunk in ids.chunks(100) {
        let items: Vec<_> = chunk
            .iter()
            .map(|id| json!({"id": id, "payload": format!("p-{id}")}))
            .collect();
        let r = c
            .post_json(&format!("/storage/{coll}?batch={batch}"), &json!(items))
            .await;
        r.expect(202);
        assert_eq!(r.json()["failed"], json!({}));
    }
    let commit = c
        .post(&format!("/storage/{coll}?batch={batch}&commit=true"), "[]")
        .await;
    commit.expect(200);
    commit.header("x-last-modified").expect("lm").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_device_downloads_many_rows_sharing_one_timestamp() {
    let srv = TestServer::start().await;
    let first = Client::new(&srv, 112);
    let lm = upload_batch(&first, "bookmarks", "b", 2500).await;
    srv.clock.advance_ms(5000);

    // Device 2, with its own token, pages through with Firefox's query and the collection's
    // X-Last-Modified as X-If-Unmodified-Since on the later pages.
    let second = Client::new(&srv, 112);
    for query in [
        "full=1&limit=1000&sort=oldest",
        "full=1&limit=1000&sort=newest",
        "full=1&limit=1000",
        "full=1&limit=1000&sort=index",
        "limit=333",
    ] {
        let mut seen = Vec::new();
        let mut offset: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &offset {
                Some(o) => format!("/storage/bookmarks?{query}&offset={o}"),
                None => format!("/storage/bookmarks?{query}"),
            };
            let mut req = second.req(Method::GET, &path);
            if offset.is_some() {
                req = req.header("X-If-Unmodified-Since", &lm);
            }
            let r = send(req).await;
            r.expect(200);
            assert_eq!(r.header("x-last-modified"), Some(lm.as_str()));
            let page = r.ids();
            assert_eq!(
                r.header("x-weave-records"),
                Some(page.len().to_string().as_str())
            );
            if query.starts_with("full") {
                // Raw body: every item carries the commit timestamp with two decimals.
                let stamp = format!("\"modified\":{lm},");
                assert_eq!(r.body.matches(&stamp).count(), page.len());
                for item in r.json().as_array().expect("array") {
                    let id = item["id"].as_str().expect("id");
                    assert_eq!(item["payload"], json!(format!("p-{id}")));
                }
            }
            seen.extend(page);
            pages += 1;
            offset = r.header("x-weave-next-offset").map(str::to_string);
            if offset.is_none() {
                break;
            }
            assert!(pages < 20, "{query}: runaway paging");
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 2500, "{query}: duplicates or gaps");
        assert_eq!(seen.len(), 2500, "{query}");
        if query.contains("oldest") {
            assert_eq!(seen, sorted, "{query}: ties go by id ascending");
        }
    }

    // A write by the first device between pages: the next page with X-If-Unmodified-Since
    // is refused (412), and without it the paging still returns every old row exactly once.
    let p1 = second
        .get("/storage/bookmarks?full=1&limit=1000&sort=oldest")
        .await;
    let next = p1.header("x-weave-next-offset").expect("more").to_string();
    srv.clock.advance_ms(1000);
    first
        .post_json(
            "/storage/bookmarks",
            &json!([{"id": "zzz", "payload": "new"}, {"id": "b00000", "payload": "changed"}]),
        )
        .await
        .expect(200);
    let stale = send(
        second
            .req(
                Method::GET,
                &format!("/storage/bookmarks?full=1&limit=1000&sort=oldest&offset={next}"),
            )
            .header("X-If-Unmodified-Since", &lm),
    )
    .await;
    assert_eq!(stale.status, 412, "{stale:?}");
    assert_eq!(stale.body, "");
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
async fn empty_ids_parameter_means_no_filter() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 115);
    c.post_json(
        "/storage/xxx_col1",
        &json!([{"id": "a", "payload": "x"}, {"id": "b", "payload": "y"}]),
    )
    .await
    .expect(200);
    // Empty items are dropped; a list left empty filters nothing (RS), for GET as for DELETE.
    for q in ["ids=", "ids=,,", "ids=%20,%20", "ids=a&ids="] {
        let r = c.get(&format!("/storage/xxx_col1?sort=oldest&{q}")).await;
        assert_eq!(r.body, r#"["a","b"]"#, "{q}");
        assert_eq!(r.header("x-weave-records"), Some("2"), "{q}");
    }
    let d = c.delete("/storage/xxx_col1?ids=,").await;
    d.expect(200);
    assert_eq!(c.get("/info/collections").await.body, "{}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_upload_is_408_after_body_timeout() {
    let srv = TestServer::start_with(|s| s.storage.body_timeout = 1).await;
    let c = Client::new(&srv, 116);
    let before = seed(&c).await;
    // Declares 1000 bytes, sends 11, then neither sends more nor closes.
    let req = signed_head(&srv, &c, "PUT", "/storage/xxx_col1/keep")
        + "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"payload\":";
    let started = std::time::Instant::now();
    let res = raw(&srv, req.into_bytes()).await;
    assert!(res.starts_with("HTTP/1.1 408"), "{res}");
    assert!(res.ends_with("\r\n\r\n0"), "{res}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    intact(&c, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_accept_header_gets_json() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 117);
    seed(&c).await;
    // Raw, because HTTP client libraries add `Accept: */*` on their own.
    let req = signed_head(&srv, &c, "GET", "/storage/xxx_col1") + "Connection: close\r\n\r\n";
    let res = raw(&srv, req.into_bytes()).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    let lower = res.to_ascii_lowercase();
    assert!(
        lower.contains("\r\ncontent-type: application/json\r\n"),
        "{res}"
    );
    assert!(res.ends_with(r#"["keep"]"#), "{res}");
}
