//! Writing items, TTL, preconditions and deletes, the limits on what a write may carry, and
//! the exact shape of every answer. Nothing a client sends may give a 500 or lose stored data.

use reqwest::Method;
use serde_json::json;

use crate::common::{TestServer, raw_http};
use crate::storage_support::{
    Client, assert_two_decimals, intact, records, seed, send, signed_head, ts_ms, ts_str,
    two_decimals, urlencode, weave_error,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_creates_and_replaces() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 1);
    let first = c.put("/storage/xxx_col1/a", r#"{"payload":"one"}"#).await;
    first.expect(200);
    // Body is the new timestamp as a bare number.
    assert_eq!(first.body, first.header("x-last-modified").expect("lm"));
    assert_eq!(
        first.header("x-weave-timestamp"),
        first.header("x-last-modified")
    );
    c.put("/storage/xxx_col1/a", r#"{"payload":"two"}"#)
        .await
        .expect(200);
    assert_eq!(c.get("/storage/xxx_col1/a").await.json()["payload"], "two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_creates_updates_and_reports_failures() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 2);
    c.post("/storage/xxx_col1", r#"[{"id":"a","payload":"a1"}]"#)
        .await
        .expect(200);
    let res = c
        .post(
            "/storage/xxx_col1",
            r#"[{"id":"a","payload":"a2"},{"id":"b","payload":"b1"},{"id":"c","payload":"c","sortindex":"FAIL"}]"#,
        )
        .await;
    res.expect(200);
    let v = res.json();
    assert_eq!(v["success"], json!(["a", "b"]));
    assert!(v["failed"]["c"].is_string());
    assert_eq!(
        crate::storage_support::ts_ms(&v["modified"].to_string()),
        res.ts("x-last-modified")
    );
    assert_eq!(c.get("/storage/xxx_col1/a").await.json()["payload"], "a2");
    c.get("/storage/xxx_col1/c").await.expect_error(404, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_types() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 3);
    let nl = send(
        c.req(Method::POST, "/storage/xxx_col1")
            .header("Content-Type", "application/newlines")
            .body("{\"id\":\"n1\",\"payload\":\"with\\nnewline\"}\n{\"id\":\"n2\",\"payload\":\"x\"}\n"),
    )
    .await;
    nl.expect(200);
    assert_eq!(nl.json()["success"], json!(["n1", "n2"]));
    assert_eq!(
        c.get("/storage/xxx_col1/n1").await.json()["payload"],
        "with\nnewline"
    );
    let octet = send(
        c.req(Method::POST, "/storage/xxx_col1")
            .header("Content-Type", "application/octet-stream")
            .body(r#"[{"id":"o1","payload":"x"}]"#),
    )
    .await;
    octet.expect_error(415, "0");
    c.get("/storage/xxx_col1/o1").await.expect(404);

    let put_octet = send(
        c.req(Method::PUT, "/storage/xxx_col1/p1")
            .header("Content-Type", "application/octet-stream")
            .body(r#"{"payload":"x"}"#),
    )
    .await;
    put_octet.expect_error(415, "0");
    let put_newlines = send(
        c.req(Method::PUT, "/storage/xxx_col1/p1")
            .header("Content-Type", "application/newlines")
            .body("{\"payload\":\"x\"}\n"),
    )
    .await;
    put_newlines.expect_error(400, "8");
    c.get("/storage/xxx_col1/p1").await.expect(404);
    let put_text = send(
        c.req(Method::PUT, "/storage/xxx_col1/p1")
            .header("Content-Type", "text/plain;charset=UTF-8")
            .body(r#"{"payload":"x"}"#),
    )
    .await;
    put_text.expect(200);
    let post_text = send(
        c.req(Method::POST, "/storage/xxx_col1")
            .header("Content-Type", "text/plain")
            .body(r#"[{"id":"t1","payload":"x"}]"#),
    )
    .await;
    post_text.expect(200);
    c.get("/storage/xxx_col1/t1").await.expect(200);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weave_timestamp_tracks_the_clock_and_put_modified_is_ignored() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 4);
    let now = syncserver::clock::Clock::now_ms(&*srv.clock);
    let put = c
        .put("/storage/xxx_col1/a", r#"{"payload":"x","modified":12}"#)
        .await;
    let t = put.ts("x-weave-timestamp");
    assert!(t >= now - 10 && t <= now + 10, "{t} vs {now}");
    let item = c.get("/storage/xxx_col1/a").await;
    assert_eq!(item.ts("x-last-modified"), t);
    assert!(item.ts("x-weave-timestamp") >= t);
    assert_eq!(
        crate::storage_support::ts_ms(&item.json()["modified"].to_string()),
        t
    );
    let post = c.post("/storage/xxx_col1", r#"[{"id":"b"}]"#).await;
    assert!(post.ts("x-weave-timestamp") > t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_global_lifecycle() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 5);
    c.get("/storage/meta/global").await.expect_error(404, "0");
    assert_eq!(c.get("/storage/meta").await.body, "[]");
    c.put(
        "/storage/meta/global",
        r#"{"payload":"{\"syncID\":\"x\"}"}"#,
    )
    .await
    .expect(200);
    assert_eq!(c.get("/storage/meta").await.ids(), ["global"]);
    let item = c.get("/storage/meta/global").await;
    let v = item.json();
    let mut keys: Vec<_> = v.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["id", "modified", "payload"]);
    assert_two_decimals(&item.body);
    for internal in ["payload_size", "ttl", "expiry", "collection"] {
        assert!(
            !item.body.contains(internal),
            "{internal} leaked: {}",
            item.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_put_bodies_are_400_8() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 6);
    for body in [
        r#""a string""#,
        "42",
        r#"{"id":["a"],"payload":{}}"#,
        r#"{"payload":"x","sortindex":"xxx_meh"}"#,
        r#"{"payload":"x","sortindex":"2.6"}"#,
        r#"{"payload":"x","sortindex":1000000000}"#,
        r#"{"payload":42}"#,
        r#"{"payload":"x","ttl":"eh?"}"#,
        r#"{"payload":"x","ttl":"4.2"}"#,
        r#"{"payload":"x","ttl":-1}"#,
        r#"{"payload":"x","unknown":1}"#,
        "{broken",
    ] {
        c.put("/storage/xxx_col1/a", body)
            .await
            .expect_error(400, "8");
    }
    for id in ["a%0Ab", "a%0A", "%0Aa", "a%09b", &"x".repeat(65)] {
        c.put(&format!("/storage/xxx_col1/{id}"), r#"{"payload":"x"}"#)
            .await
            .expect_error(400, "8");
    }
    c.get("/storage/xxx_col1/a").await.expect(404);
    c.put(
        "/storage/xxx_col1/neg",
        r#"{"payload":"x","sortindex":-42}"#,
    )
    .await
    .expect(200);
    c.put("/storage/xxx_col1/nullttl", r#"{"payload":"x","ttl":null}"#)
        .await
        .expect(200);
    srv.clock.advance_ms(10 * 365 * 86_400_000);
    // A far future: the null-ttl item never expires (new token for the moved clock).
    let later = Client::new(&srv, 6);
    later.get("/storage/xxx_col1/nullttl").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_post_bodies_and_items() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 7);
    for body in [
        r#""notalist""#,
        "42",
        r#"[1]"#,
        r#"{}"#,
        r#"[{"id":"a"},{"id":"a"}]"#,
    ] {
        c.post("/storage/xxx_col1", body)
            .await
            .expect_error(400, "8");
    }
    let res = c
        .post(
            "/storage/xxx_col1",
            r#"[{"id":"good","payload":"x"},{"id":"bad","payload":"x","nope":1}]"#,
        )
        .await;
    res.expect(200);
    let v = res.json();
    assert_eq!(v["success"], json!(["good"]));
    assert_eq!(v["failed"].as_object().map(|o| o.len()), Some(1));

    let bad_items = json!([
        {"id": "a\nb", "payload": "x"},
        {"id": "ab\n", "payload": "x"},
        {"id": "\nab", "payload": "x"},
        {"id": "a\tb", "payload": "x"},
        {"id": "", "payload": "x"},
        {"id": "x".repeat(65), "payload": "x"},
        {"id": "s1", "payload": "x", "sortindex": "xxx_meh"},
        {"id": "s2", "payload": "x", "sortindex": "2.6"},
        {"id": "s3", "payload": "x", "sortindex": "1000000000"},
        {"id": "p1", "payload": 42},
        {"id": "t1", "payload": "x", "ttl": "eh?"},
        {"id": "t2", "payload": "x", "ttl": "4.2"},
        {"id": "u1", "payload": "x", "what": true}
    ]);
    let res = c.post_json("/storage/xxx_col1", &bad_items).await;
    res.expect(200);
    let v = res.json();
    assert_eq!(v["success"], json!([]));
    assert_eq!(v["failed"].as_object().map(|o| o.len()), Some(13));
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
async fn post_record_and_byte_limits() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 8);
    let max = srv.settings.storage.max_post_records as usize;
    let res = c
        .post_json("/storage/xxx_col1", &records("a", max - 5, "x"))
        .await;
    assert_eq!(
        res.json()["success"].as_array().map(Vec::len),
        Some(max - 5)
    );
    let res = c
        .post_json("/storage/xxx_col1", &records("b", max + 5, "x"))
        .await;
    let v = res.json();
    assert_eq!(v["success"].as_array().map(Vec::len), Some(max));
    assert_eq!(v["failed"].as_object().map(|o| o.len()), Some(5));

    // 227 KiB items filling max_post_bytes, then one of leftover+1 bytes.
    let max_bytes = srv.settings.storage.max_post_bytes as usize;
    let size = 227 * 1024;
    let n = max_bytes / size;
    let leftover = max_bytes - n * size;
    let mut items: Vec<_> = (0..n)
        .map(|i| json!({"id": format!("big{i}"), "payload": "x".repeat(size)}))
        .collect();
    items.push(json!({"id": "last", "payload": "x".repeat(leftover + 1)}));
    let body = serde_json::Value::Array(items).to_string();
    assert!(body.len() < srv.settings.storage.max_request_bytes as usize);
    let v = c.post("/storage/xxx_col1", &body).await.json();
    assert_eq!(v["success"].as_array().map(Vec::len), Some(n));
    assert_eq!(v["failed"]["last"], "retry bytes");
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
async fn oversized_body_is_413_17() {
    let srv = TestServer::start_with(|s| {
        s.storage.max_request_bytes = 4096;
        s.storage.max_post_bytes = 2048;
    })
    .await;
    let c = Client::new(&srv, 9);
    let body = json!([{"id": "a", "payload": "x".repeat(5000)}]).to_string();
    c.post("/storage/xxx_col1", &body)
        .await
        .expect_error(413, "17");
    c.put(
        "/storage/xxx_col1/a",
        &json!({"payload": "x".repeat(5000)}).to_string(),
    )
    .await
    .expect_error(413, "17");
    assert_eq!(c.get("/storage/xxx_col1").await.body, "[]");
    // A payload over max_record_payload_bytes in a PUT that fits the request.
    let small = TestServer::start_with(|s| s.storage.max_record_payload_bytes = 10).await;
    Client::new(&small, 9)
        .put("/storage/xxx_col1/a", r#"{"payload":"12345678901"}"#)
        .await
        .expect_error(400, "8");
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
    let res = raw_http(srv.addr, req).await;
    assert!(res.starts_with("HTTP/1.1 413"), "{res}");
    let lower = res.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/json"), "{res}");
    assert!(lower.contains("x-weave-timestamp: "), "{res}");
    assert!(res.ends_with("\r\n\r\n17"), "{res}");
    intact(&c, &before).await;
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
    let res = raw_http(srv.addr, req.into_bytes()).await;
    assert!(res.starts_with("HTTP/1.1 408"), "{res}");
    assert!(res.ends_with("\r\n\r\n0"), "{res}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    intact(&c, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weave_size_headers() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 10);
    let s = &srv.settings.storage;
    let body = records("a", 1, "x").to_string();
    let with = |name: &str, value: String| {
        send(
            c.req(Method::POST, "/storage/xxx_col1")
                .header("Content-Type", "application/json")
                .header(name, value)
                .body(body.clone()),
        )
    };
    with("X-Weave-Records", s.max_post_records.to_string())
        .await
        .expect(200);
    with("X-Weave-Records", (s.max_post_records + 1).to_string())
        .await
        .expect_error(400, "17");
    with("X-Weave-Bytes", (s.max_post_bytes + 1).to_string())
        .await
        .expect_error(400, "17");
    with(
        "X-Weave-Total-Records",
        (s.max_total_records + 1).to_string(),
    )
    .await
    .expect_error(400, "17");
    with("X-Weave-Total-Bytes", s.max_total_bytes.to_string())
        .await
        .expect(200);
    with("X-Weave-Total-Bytes", (s.max_total_bytes + 1).to_string())
        .await
        .expect_error(400, "17");
    with("X-Weave-Records", "lots".into())
        .await
        .expect_error(400, "0");
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
async fn long_ids_in_passwords_delete_by_ids() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 11);
    let ids: Vec<String> = (0..4)
        .map(|i| format!("{{6820f3ca-6e8a-4b3c-9b0e-00000000000{i}}}"))
        .collect();
    let items: Vec<_> = ids
        .iter()
        .map(|id| json!({"id": id, "payload": "x"}))
        .collect();
    c.post_json("/storage/passwords", &json!(items))
        .await
        .expect(200);
    let del = format!(
        "/storage/passwords?ids={}",
        urlencode(&format!("{},{}", ids[0], ids[1]))
    );
    c.delete(&del).await.expect(200);
    let mut left = c.get("/storage/passwords").await.ids();
    left.sort();
    assert_eq!(left, ids[2..].to_vec());
    // Single-item access with an id that needs percent-encoding.
    let one = c
        .get(&format!("/storage/passwords/{}", urlencode(&ids[2])))
        .await;
    one.expect(200);
    assert_eq!(one.json()["id"], ids[2].as_str());
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
async fn zero_iv_refused_only_in_crypto() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 12);
    let payload =
        json!({"IV": "AAAAAAAAAAAAAAAAAAAAAA==", "hmac": "x", "ciphertext": "y"}).to_string();
    let body = json!({"payload": payload}).to_string();
    c.put("/storage/crypto/keys", &body)
        .await
        .expect_error(400, "8");
    c.put("/storage/crypto/other", &body)
        .await
        .expect_error(400, "8");
    c.post_json("/storage/crypto", &json!([{"id": "k", "payload": payload}]))
        .await
        .expect_error(400, "8");
    c.put("/storage/xxx_col1/keys", &body).await.expect(200);
    let posted = c
        .post_json(
            "/storage/xxx_col1",
            &json!([{"id": "k", "payload": payload}]),
        )
        .await;
    posted.expect(200);
    assert_eq!(posted.json()["success"], json!(["k"]));
    assert_eq!(c.get("/storage/crypto").await.body, "[]");
}

// ---- TTL ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_zero_is_invisible_and_overwritable() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 20);
    c.put("/storage/xxx_col1/a", r#"{"payload":"x","ttl":0}"#)
        .await
        .expect(200);
    c.get("/storage/xxx_col1/a").await.expect(404);
    assert_eq!(c.get("/storage/xxx_col1").await.body, "[]");
    assert_eq!(c.get("/info/collection_counts").await.body, "{}");
    c.put("/storage/xxx_col1/a", r#"{"payload":"y"}"#)
        .await
        .expect(200);
    assert_eq!(c.get("/storage/xxx_col1/a").await.json()["payload"], "y");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expires_on_schedule() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 21);
    c.put("/storage/xxx_col1/a", r#"{"payload":"x","ttl":2}"#)
        .await
        .expect(200);
    c.put("/storage/xxx_col1/a", r#"{"payload":"x2","ttl":2}"#)
        .await
        .expect(200);
    assert_eq!(c.get("/storage/xxx_col1").await.ids(), ["a"]);
    srv.clock.advance_ms(1_500);
    c.get("/storage/xxx_col1/a").await.expect(200);
    srv.clock.advance_ms(600);
    c.get("/storage/xxx_col1/a").await.expect(404);
    assert_eq!(c.get("/storage/xxx_col1").await.body, "[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_only_and_sortindex_only_updates() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 22);
    let t0 = c
        .put("/storage/xxx_col1/a", r#"{"payload":"keep","ttl":10}"#)
        .await
        .ts("x-last-modified");
    srv.clock.advance_ms(5_000);
    // ttl-only: extends life, payload and modified unchanged.
    c.put("/storage/xxx_col1/a", r#"{"ttl":100}"#)
        .await
        .expect(200);
    let item = c.get("/storage/xxx_col1/a").await.json();
    assert_eq!(item["payload"], "keep");
    assert_eq!(
        crate::storage_support::ts_ms(&item["modified"].to_string()),
        t0
    );
    // ttl-only to a new id creates an empty payload.
    c.put("/storage/xxx_col1/new", r#"{"ttl":100}"#)
        .await
        .expect(200);
    assert_eq!(c.get("/storage/xxx_col1/new").await.json()["payload"], "");
    // sortindex-only leaves the old ttl in force.
    c.put("/storage/xxx_col1/s", r#"{"payload":"x","ttl":10}"#)
        .await
        .expect(200);
    c.put("/storage/xxx_col1/s", r#"{"sortindex":5}"#)
        .await
        .expect(200);
    srv.clock.advance_ms(20_000);
    c.get("/storage/xxx_col1/a").await.expect(200);
    c.get("/storage/xxx_col1/s").await.expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_ttl_only_post() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 23);
    let t0 = c
        .post("/storage/xxx_col1", r#"[{"id":"a","payload":"x","ttl":10},{"id":"b","payload":"x","ttl":10},{"id":"c","payload":"x","ttl":10}]"#)
        .await
        .ts("x-last-modified");
    srv.clock.advance_ms(1_000);
    let t1 = c
        .post(
            "/storage/xxx_col1",
            r#"[{"id":"a","ttl":100},{"id":"b","payload":"y","ttl":100},{"id":"d","ttl":100}]"#,
        )
        .await
        .ts("x-last-modified");
    let v = c.get("/storage/xxx_col1?full=1").await.json();
    let modified = |id: &str| {
        v.as_array()
            .expect("array")
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| crate::storage_support::ts_ms(&i["modified"].to_string()))
    };
    assert_eq!(modified("a"), Some(t0));
    assert_eq!(modified("b"), Some(t1));
    assert_eq!(modified("d"), Some(t1));
    srv.clock.advance_ms(20_000);
    let mut left = c.get("/storage/xxx_col1").await.ids();
    left.sort();
    assert_eq!(left, ["a", "b", "d"]);
}

// ---- preconditions and deletes ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_preconditions() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 30);
    let t = c
        .put("/storage/xxx_col1/a", r#"{"payload":"x"}"#)
        .await
        .ts("x-last-modified");
    let get_with = |h: &'static str, v: i64| {
        send(
            c.req(Method::GET, "/storage/xxx_col1/a")
                .header(h, ts_str(v)),
        )
    };
    get_with("X-If-Modified-Since", t).await.expect(304);
    get_with("X-If-Modified-Since", t + 1000).await.expect(304);
    get_with("X-If-Modified-Since", t - 10).await.expect(200);
    get_with("X-If-Unmodified-Since", t).await.expect(200);
    let pf = get_with("X-If-Unmodified-Since", t - 10).await;
    pf.expect(412);
    assert_eq!(pf.ts("x-last-modified"), t);
    c.get("/storage/xxx_col1/missing")
        .await
        .expect_error(404, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmodified_since_older_than_resource_is_412_and_changes_nothing() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 31);
    let t1 = c
        .put("/storage/xxx_col1/a", r#"{"payload":"a"}"#)
        .await
        .ts("x-last-modified");
    let t2 = c
        .put("/storage/xxx_col1/b", r#"{"payload":"b"}"#)
        .await
        .ts("x-last-modified");
    let old = ts_str(t1 - 10);
    let with = |m: Method, p: &str| c.req(m, p).header("X-If-Unmodified-Since", old.clone());
    let r = send(
        with(Method::PUT, "/storage/xxx_col1/a")
            .header("Content-Type", "application/json")
            .body(r#"{"payload":"new"}"#),
    )
    .await;
    r.expect(412);
    assert_eq!(r.ts("x-last-modified"), t1);
    assert_eq!(r.body, "");
    send(with(Method::DELETE, "/storage/xxx_col1/a"))
        .await
        .expect(412);
    let r = send(
        with(Method::POST, "/storage/xxx_col1")
            .header("Content-Type", "application/json")
            .body(r#"[{"id":"c"}]"#),
    )
    .await;
    r.expect(412);
    assert_eq!(r.ts("x-last-modified"), t2);
    send(with(Method::DELETE, "/storage/xxx_col1?ids=a"))
        .await
        .expect(412);
    send(with(Method::GET, "/storage/xxx_col1/a"))
        .await
        .expect(412);
    send(with(Method::GET, "/storage/xxx_col1"))
        .await
        .expect(412);
    send(with(Method::DELETE, "/storage/xxx_col1"))
        .await
        .expect(412);
    let mut ids = c.get("/storage/xxx_col1").await.ids();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(c.get("/storage/xxx_col1/a").await.json()["payload"], "a");

    // ids-delete of a with a's own timestamp fails because b changed later.
    let r = send(
        c.req(Method::DELETE, "/storage/xxx_col1?ids=a")
            .header("X-If-Unmodified-Since", ts_str(t1)),
    )
    .await;
    r.expect(412);
    // Equal to the current X-Last-Modified succeeds.
    let r = send(
        c.req(Method::POST, "/storage/xxx_col1")
            .header("X-If-Unmodified-Since", ts_str(t2))
            .header("Content-Type", "application/json")
            .body(r#"[{"id":"c","payload":"c"}]"#),
    )
    .await;
    r.expect(200);
    let t3 = r.ts("x-last-modified");
    send(
        c.req(Method::GET, "/storage/xxx_col1/c")
            .header("X-If-Unmodified-Since", ts_str(t3)),
    )
    .await
    .expect(200);
    send(
        c.req(Method::DELETE, "/storage/xxx_col1/c")
            .header("X-If-Unmodified-Since", ts_str(t3)),
    )
    .await
    .expect(200);
    // X-If-Unmodified-Since: 0 on PUT of a deleted item works; on an existing one it is 412.
    let put0 = |id: &'static str| {
        send(
            c.req(Method::PUT, &format!("/storage/xxx_col1/{id}"))
                .header("X-If-Unmodified-Since", "0")
                .header("Content-Type", "application/json")
                .body(r#"{"payload":"z"}"#),
        )
    };
    put0("c").await.expect(200);
    put0("a").await.expect(412);
    let neg = send(
        c.req(Method::PUT, "/storage/xxx_col1/q")
            .header("X-If-Unmodified-Since", "-3")
            .header("Content-Type", "application/json")
            .body("{}"),
    )
    .await;
    neg.expect_error(400, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modified_since_not_passed_is_304_on_writes_and_changes_nothing() {
    // The precondition headers apply to any method, checked before the action.
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 32);
    let t = c
        .put("/storage/xxx_col1/a", r#"{"payload":"a"}"#)
        .await
        .ts("x-last-modified");
    let writes: [(Method, &str, Option<&str>); 8] = [
        (
            Method::PUT,
            "/storage/xxx_col1/a",
            Some(r#"{"payload":"new"}"#),
        ),
        (
            Method::POST,
            "/storage/xxx_col1",
            Some(r#"[{"id":"b","payload":"b"}]"#),
        ),
        (
            Method::POST,
            "/storage/xxx_col1?batch=true",
            Some(r#"[{"id":"b","payload":"b"}]"#),
        ),
        (Method::DELETE, "/storage/xxx_col1/a", None),
        (Method::DELETE, "/storage/xxx_col1?ids=a", None),
        (Method::DELETE, "/storage/xxx_col1", None),
        (Method::DELETE, "/storage", None),
        (Method::DELETE, "", None),
    ];
    for (method, path, body) in writes {
        let mut req = c
            .req(method.clone(), path)
            .header("X-If-Modified-Since", ts_str(t));
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body);
        }
        let r = send(req).await;
        r.expect(304);
        assert_eq!(r.ts("x-last-modified"), t, "{method} {path}");
        assert_eq!(r.body, "", "{method} {path}");
    }
    let all = c.get("/storage/xxx_col1?full=1").await;
    assert_eq!(all.ids(), ["a"]);
    assert_eq!(all.json()[0]["payload"], "a");

    // Modified since the header's time: the write goes ahead.
    let r = send(
        c.req(Method::PUT, "/storage/xxx_col1/a")
            .header("X-If-Modified-Since", ts_str(t - 10))
            .header("Content-Type", "application/json")
            .body(r#"{"payload":"new"}"#),
    )
    .await;
    r.expect(200);
    assert_eq!(c.get("/storage/xxx_col1/a").await.json()["payload"], "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 32);
    c.post_json("/storage/xxx_col1", &records("", 16, "x"))
        .await
        .expect(200);
    c.delete("/storage/xxx_col1?ids=12,14").await.expect(200);
    c.delete("/storage/xxx_col1?ids=13").await.expect(200);
    let mut ids = c.get("/storage/xxx_col1").await.ids();
    ids.sort();
    assert_eq!(ids.len(), 13);
    assert!(!ids.iter().any(|i| i == "12" || i == "13" || i == "14"));

    let before = c.get("/info/collections").await.ts("x-last-modified");
    let del = c.delete("/storage/xxx_col1/1").await;
    del.expect(200);
    let t = del.ts("x-last-modified");
    assert_eq!(
        crate::storage_support::ts_ms(&del.json()["modified"].to_string()),
        t
    );
    assert!(t > before);
    assert_eq!(c.get("/info/collections").await.ts("x-last-modified"), t);
    c.get("/storage/xxx_col1/1").await.expect(404);
    c.delete("/storage/xxx_col1/1").await.expect_error(404, "0");

    let gone = c.delete("/storage/xxx_col1").await;
    gone.expect(200);
    assert_eq!(c.get("/storage/xxx_col1").await.body, "[]");
    assert_eq!(c.get("/info/collections").await.body, "{}");
    // Deleting a collection that does not exist: no new timestamp.
    let noop = c.delete("/storage/xxx_col1").await;
    noop.expect(200);
    assert_eq!(noop.ts("x-last-modified"), gone.ts("x-last-modified"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_storage_wipes_everything() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 33);
    c.post_json("/storage/xxx_col1", &records("a", 3, "x"))
        .await
        .expect(200);
    let t = c
        .post_json("/storage/xxx_col2", &records("b", 3, "x"))
        .await
        .ts("x-last-modified");
    let wipe = send(
        c.req(Method::DELETE, "/storage")
            .header("X-Confirm-Delete", "1"),
    )
    .await;
    wipe.expect(200);
    assert!(wipe.ts("x-weave-timestamp") > t);
    let info = c.get("/info/collections").await;
    assert_eq!(info.body, "{}");
    assert_eq!(info.header("x-last-modified"), Some("0.00"));
    c.delete("/storage/xxx_col1").await.expect(200);
    // Later writes still get later timestamps.
    let after = c
        .put("/storage/xxx_col1/a", r#"{"payload":"x"}"#)
        .await
        .ts("x-last-modified");
    assert!(after > wipe.ts("x-weave-timestamp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_urls_and_methods() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 34);
    c.get("/nonexistent/url").await.expect_error(404, "0");
    let bad_coll = c.get(&format!("/storage/{}", "x".repeat(33))).await;
    bad_coll.expect_error(404, "0");
    let patch = send(c.req(Method::PATCH, "/storage/xxx_col1")).await;
    patch.expect_error(405, "0");
    let put_info = send(c.req(Method::PUT, "/info/quota")).await;
    put_info.expect_error(405, "0");
    // A uid that is not 1–10 digits is no storage URL at all.
    for path in [
        "/1.5/abc/info/collections",
        "/1.5/12345678901/info/collections",
        // Digits only once decoded: the router sees `34`, the URL does not say it.
        "/1.5/%334/info/collections",
    ] {
        let r = send(srv.client.get(srv.url(path))).await;
        r.expect(404);
        assert_eq!(r.body, "0");
    }
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
