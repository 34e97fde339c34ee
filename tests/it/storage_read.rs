//! Reading collections: filters, sorting, paging, content negotiation, and odd or invalid
//! query strings (400, never a 500, nothing lost).

use reqwest::Method;
use serde_json::json;

use crate::common::{TestServer, raw_http};
use crate::storage_support::{
    Client, Resp, assert_two_decimals, intact, records, seed, send, signed_head, ts_ms, ts_str,
    upload_batch, urlencode, weave_error,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_written_collection_is_empty_list() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 1);
    let res = c.get("/storage/xxx_col1").await;
    res.expect(200);
    assert_eq!(res.body, "[]");
    assert_eq!(res.header("x-weave-records"), Some("0"));
    assert_eq!(res.header("x-last-modified"), Some("0.00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_all_ids_and_by_ids() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 2);
    let items: Vec<_> = ["01", "02", "03", "04", "05"]
        .iter()
        .map(|id| json!({"id": id, "payload": "x"}))
        .collect();
    c.post_json("/storage/xxx_col1", &json!(items))
        .await
        .expect(200);
    let all = c.get("/storage/xxx_col1").await;
    let mut ids = all.ids();
    ids.sort();
    assert_eq!(ids, ["01", "02", "03", "04", "05"]);
    assert_eq!(all.header("x-weave-records"), Some("5"));

    let some = c.get("/storage/xxx_col1?ids=01,03,17").await;
    let mut ids = some.ids();
    ids.sort();
    assert_eq!(ids, ["01", "03"]);
    // Percent-encoded commas work too.
    let enc = c.get("/storage/xxx_col1?ids=01%2C03%2C17").await;
    assert_eq!(enc.ids().len(), 2);
    // Unknown query parameters are ignored.
    c.get("/storage/xxx_col1?v=1.2.3&foo=bar").await.expect(200);
    // `batch` and `commit` belong to POST; elsewhere they are unknown parameters too.
    let listed = c.get("/storage/xxx_col1?batch=foo&commit=no").await;
    assert_eq!(listed.expect(200).ids().len(), 5);
    c.delete("/storage/xxx_col1?ids=05&batch=foo&commit=no")
        .await
        .expect(200);
    assert_eq!(c.get("/storage/xxx_col1").await.ids().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_and_older_are_strict() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 3);
    let a = c
        .put("/storage/xxx_col1/a", r#"{"payload":"a"}"#)
        .await
        .ts("x-last-modified");
    srv.clock.advance_ms(1000);
    let b = c
        .put("/storage/xxx_col1/b", r#"{"payload":"b"}"#)
        .await
        .ts("x-last-modified");
    srv.clock.advance_ms(1000);
    let cc = c
        .put("/storage/xxx_col1/c", r#"{"payload":"c"}"#)
        .await
        .ts("x-last-modified");
    assert!(a < b && b < cc);
    let ids = |r: Resp| {
        let mut v = r.ids();
        v.sort();
        v
    };
    assert_eq!(
        ids(c
            .get(&format!("/storage/xxx_col1?newer={}", ts_str(a)))
            .await),
        ["b", "c"]
    );
    assert!(
        ids(c
            .get(&format!("/storage/xxx_col1?newer={}", ts_str(cc)))
            .await)
        .is_empty()
    );
    assert_eq!(
        ids(c
            .get(&format!("/storage/xxx_col1?newer={}", ts_str(a - 10)))
            .await)
        .len(),
        3
    );
    assert_eq!(
        ids(c
            .get(&format!("/storage/xxx_col1?older={}", ts_str(cc)))
            .await),
        ["a", "b"]
    );
    let window = format!("/storage/xxx_col1?newer={}&older={}", ts_str(a), ts_str(cc));
    assert_eq!(ids(c.get(&window).await), ["b"]);
    // Integer seconds are valid too.
    c.get("/storage/xxx_col1?newer=0").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_items_have_exactly_id_modified_payload_and_sortindex_when_set() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 4);
    c.post(
        "/storage/xxx_col1",
        r#"[{"id":"a","payload":"pa","ttl":1000},{"id":"b","payload":"pb","sortindex":3}]"#,
    )
    .await
    .expect(200);
    let res = c.get("/storage/xxx_col1?full=1&sort=index").await;
    let v = res.json();
    let items = v.as_array().expect("array");
    let b = items[0].as_object().expect("object");
    let mut keys: Vec<_> = b.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["id", "modified", "payload", "sortindex"]);
    let a = items[1].as_object().expect("object");
    let mut keys: Vec<_> = a.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["id", "modified", "payload"]);
    // `full=` with any value, even empty, means full.
    let v = c.get("/storage/xxx_col1?full=").await.json();
    assert!(v[0].is_object());
    assert_two_decimals(&res.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_orders() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 5);
    for (id, si) in [("a", -1), ("b", 34), ("c", 12)] {
        c.post_json(
            "/storage/xxx_col1",
            &json!([{"id": id, "payload": "x", "sortindex": si}]),
        )
        .await
        .expect(200);
    }
    assert_eq!(
        c.get("/storage/xxx_col1?sort=newest").await.ids(),
        ["c", "b", "a"]
    );
    assert_eq!(
        c.get("/storage/xxx_col1?sort=oldest").await.ids(),
        ["a", "b", "c"]
    );
    assert_eq!(
        c.get("/storage/xxx_col1?sort=index").await.ids(),
        ["b", "c", "a"]
    );
    assert_eq!(c.get("/storage/xxx_col1").await.ids(), ["c", "b", "a"]);
}

/// Pages of `query` with `limit` concatenated, and the number of pages.
async fn paged(c: &Client<'_>, query: &str, limit: usize) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut offset: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/storage/xxx_col1?{query}&limit={limit}");
        if let Some(o) = &offset {
            path.push_str(&format!("&offset={}", urlencode(o)));
        }
        let res = c.get(&path).await;
        res.expect(200);
        let ids = res.ids();
        assert!(ids.len() <= limit);
        out.extend(ids);
        pages += 1;
        match res.header("x-weave-next-offset") {
            Some(next) => offset = Some(next.to_string()),
            None => return (out, pages),
        }
        assert!(pages < 100, "paging does not end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_gives_contiguous_slices_for_every_sort() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 6);
    // 12 items, 4 per POST (so timestamps are shared), with varied sortindexes.
    for batch in 0..3 {
        let items: Vec<_> = (0..4)
            .map(|i| json!({"id": format!("i{batch}{i}"), "payload": "x", "sortindex": (i * 7 + batch) % 5}))
            .collect();
        c.post_json("/storage/xxx_col1", &json!(items))
            .await
            .expect(200);
        srv.clock.advance_ms(1000);
    }
    for sort in ["sort=index", "sort=newest", "sort=oldest", "full=1"] {
        let unpaged = c.get(&format!("/storage/xxx_col1?{sort}")).await.ids();
        assert_eq!(unpaged.len(), 12);
        for limit in [1, 2, 3, 5, 12] {
            let (pagedids, pages) = paged(&c, sort, limit).await;
            assert_eq!(pagedids, unpaged, "{sort} limit {limit}");
            assert_eq!(pages, 12usize.div_ceil(limit), "{sort} {limit}");
        }
    }
    // limit=10000 with an offset returns the rest.
    let first = c.get("/storage/xxx_col1?sort=index&limit=5").await;
    let next = first
        .header("x-weave-next-offset")
        .expect("offset")
        .to_string();
    let rest = c
        .get(&format!(
            "/storage/xxx_col1?sort=index&limit=10000&offset={next}"
        ))
        .await;
    assert_eq!(rest.ids().len(), 7);
    assert!(rest.header("x-weave-next-offset").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_with_newer_oldest_and_older_newest() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 7);
    let mut stamps = Vec::new();
    for batch in 0..3 {
        let r = c
            .post_json("/storage/xxx_col1", &records(&format!("b{batch}_"), 4, "x"))
            .await;
        stamps.push(r.ts("x-last-modified"));
        srv.clock.advance_ms(1000);
    }
    for limit in 2..=6 {
        let mut seen = Vec::new();
        let mut offset: Option<String> = None;
        loop {
            let mut path = format!(
                "/storage/xxx_col1?full=true&sort=oldest&newer={}&limit={limit}",
                ts_str(stamps[0])
            );
            if let Some(o) = &offset {
                path.push_str(&format!("&offset={}", urlencode(o)));
            }
            let res = c.get(&path).await;
            for item in res.json().as_array().expect("array") {
                seen.push((
                    ts_ms(&item["modified"].to_string()),
                    item["id"].as_str().expect("id").to_string(),
                ));
            }
            match res.header("x-weave-next-offset") {
                Some(n) => offset = Some(n.to_string()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 8, "limit {limit}");
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
        let mut ids: Vec<_> = seen.iter().map(|s| s.1.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 8);

        let mut seen = Vec::new();
        let mut offset: Option<String> = None;
        loop {
            let mut path = format!(
                "/storage/xxx_col1?full=true&sort=newest&older={}&limit={limit}",
                ts_str(stamps[2])
            );
            if let Some(o) = &offset {
                path.push_str(&format!("&offset={}", urlencode(o)));
            }
            let res = c.get(&path).await;
            for item in res.json().as_array().expect("array") {
                seen.push((
                    ts_ms(&item["modified"].to_string()),
                    item["id"].as_str().expect("id").to_string(),
                ));
            }
            match res.header("x-weave-next-offset") {
                Some(n) => offset = Some(n.to_string()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 8, "limit {limit}");
        assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0));
    }
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
async fn items_of_one_post_share_a_timestamp() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 8);
    let t1 = c
        .post_json("/storage/xxx_col1", &records("a", 3, "x"))
        .await
        .ts("x-last-modified");
    srv.clock.advance_ms(500);
    let t2 = c
        .post_json("/storage/xxx_col1", &records("b", 2, "x"))
        .await
        .ts("x-last-modified");
    srv.clock.advance_ms(500);
    let t3 = c
        .post_json("/storage/xxx_col1", &records("c", 1, "x"))
        .await
        .ts("x-last-modified");
    let v = c.get("/storage/xxx_col1?full=1").await.json();
    for item in v.as_array().expect("array") {
        let id = item["id"].as_str().expect("id");
        let m = ts_ms(&item["modified"].to_string());
        let want = match &id[..1] {
            "a" => t1,
            "b" => t2,
            _ => t3,
        };
        assert_eq!(m, want, "{id}");
    }
    assert_eq!(
        c.get(&format!("/storage/xxx_col1?newer={}", ts_str(t1)))
            .await
            .ids()
            .len(),
        3
    );
    assert_eq!(
        c.get(&format!("/storage/xxx_col1?older={}", ts_str(t2)))
            .await
            .ids()
            .len(),
        3
    );
    // With one item per write, newer=<third newest> gives exactly the two newest.
    for id in ["x1", "x2", "x3", "x4"] {
        srv.clock.advance_ms(100);
        c.put(&format!("/storage/xxx_col2/{id}"), r#"{"payload":"p"}"#)
            .await
            .expect(200);
    }
    let v = c.get("/storage/xxx_col2?full=1&sort=newest").await.json();
    let third = &v[2]["modified"];
    let mut two = c
        .get(&format!("/storage/xxx_col2?newer={third}"))
        .await
        .ids();
    two.sort();
    assert_eq!(two, ["x3", "x4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_header_negotiation() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 9);
    c.post(
        "/storage/xxx_col1",
        r#"[{"id":"a","payload":"line1\nline2"},{"id":"b","payload":"p"}]"#,
    )
    .await
    .expect(200);
    let get = |accept: &'static str| {
        send(
            c.req(Method::GET, "/storage/xxx_col1?full=1")
                .header("Accept", accept),
        )
    };
    let j = get("application/json").await;
    j.expect(200);
    assert_eq!(j.header("content-type"), Some("application/json"));
    let n = get("application/newlines").await;
    n.expect(200);
    assert_eq!(n.header("content-type"), Some("application/newlines"));
    assert!(n.body.ends_with('\n'));
    let lines: Vec<_> = n.body.trim_end_matches('\n').split('\n').collect();
    assert_eq!(lines.len(), 2);
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        if v["id"] == "a" {
            assert_eq!(v["payload"], "line1\nline2");
        }
    }
    let ids = send(
        c.req(Method::GET, "/storage/xxx_col1")
            .header("Accept", "application/newlines"),
    )
    .await;
    assert_eq!(ids.body.lines().count(), 2);
    get("x/yy").await.expect_error(406, "0");
    // An unparseable Accept header counts as none: JSON, not 406.
    let garbage = get("garbage").await;
    garbage.expect(200);
    assert_eq!(garbage.header("content-type"), Some("application/json"));
    c.get("/storage/xxx_col1").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_accept_header_gets_json() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 117);
    seed(&c).await;
    // Raw, because HTTP client libraries add `Accept: */*` on their own.
    let req = signed_head(&srv, &c, "GET", "/storage/xxx_col1") + "Connection: close\r\n\r\n";
    let res = raw_http(srv.addr, req.into_bytes()).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    let lower = res.to_ascii_lowercase();
    assert!(
        lower.contains("\r\ncontent-type: application/json\r\n"),
        "{res}"
    );
    assert!(res.ends_with(r#"["keep"]"#), "{res}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_modified_since_on_a_collection() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 10);
    let t1 = c
        .put("/storage/xxx_col1/a", r#"{"payload":"a"}"#)
        .await
        .ts("x-last-modified");
    let t2 = c
        .put("/storage/xxx_col1/b", r#"{"payload":"b"}"#)
        .await
        .ts("x-last-modified");
    let old = send(
        c.req(Method::GET, "/storage/xxx_col1")
            .header("X-If-Modified-Since", ts_str(t1)),
    )
    .await;
    old.expect(200);
    let same = send(
        c.req(Method::GET, "/storage/xxx_col1")
            .header("X-If-Modified-Since", ts_str(t2)),
    )
    .await;
    same.expect(304);
    assert_eq!(same.ts("x-last-modified"), t2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_parameters_are_400() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 11);
    for q in [
        "newer=garbage",
        "older=xx",
        "limit=abc",
        "limit=-1",
        "newer=-1",
        "sort=sideways",
        "offset=nope",
    ] {
        c.get(&format!("/storage/xxx_col1?{q}"))
            .await
            .expect_error(400, "0");
    }
    let both = send(
        c.req(Method::GET, "/storage/xxx_col1")
            .header("X-If-Modified-Since", "1")
            .header("X-If-Unmodified-Since", "1"),
    )
    .await;
    both.expect_error(400, "0");
    let neg = send(
        c.req(Method::GET, "/storage/xxx_col1")
            .header("X-If-Modified-Since", "-3"),
    )
    .await;
    neg.expect_error(400, "0");
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
async fn ids_limits_for_get_and_delete() {
    let srv = TestServer::start().await;
    let c = Client::new(&srv, 12);
    c.post_json("/storage/xxx_col1", &records("r", 50, "x"))
        .await
        .expect(200);
    let list = |n: usize| {
        (0..n)
            .map(|i| format!("r{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let unknown = (0..100)
        .map(|i| format!("unknown{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let res = c.get(&format!("/storage/xxx_col1?ids={unknown}")).await;
    res.expect(200);
    assert_eq!(res.body, "[]");
    assert_eq!(
        c.get(&format!("/storage/xxx_col1?ids={}", list(99)))
            .await
            .ids()
            .len(),
        50
    );
    assert_eq!(
        c.get(&format!("/storage/xxx_col1?ids={}", list(100)))
            .await
            .ids()
            .len(),
        50
    );
    c.get(&format!("/storage/xxx_col1?ids={}", list(101)))
        .await
        .expect_error(400, "0");
    c.delete(&format!("/storage/xxx_col1?ids={}", list(101)))
        .await
        .expect_error(400, "0");
    c.delete(&format!(
        "/storage/xxx_col1?ids={}",
        list(100).replace(',', "%2C")
    ))
    .await
    .expect(200);
    assert_eq!(c.get("/storage/xxx_col1").await.body, "[]");
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
