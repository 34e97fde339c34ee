//! Helpers for the storage tests: a Sync client for one user that signs every request with
//! Hawk, a response snapshot with the headers and body, and the checks several files share.

#![allow(dead_code)]

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use syncserver::auth::IssuedToken;

use crate::common::TestServer;

/// A response read to the end.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A timestamp header in ms.
    pub fn ts(&self, name: &str) -> i64 {
        let v = self
            .header(name)
            .unwrap_or_else(|| panic!("missing {name}: {self:?}"));
        ts_ms(v)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The ids of a JSON array of ids or of objects.
    pub fn ids(&self) -> Vec<String> {
        self.json()
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {self:?}"))
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other["id"].as_str().expect("id").to_string(),
            })
            .collect()
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        self
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        assert_eq!(self.body, code, "unexpected body: {self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert!(self.header("x-weave-timestamp").is_some(), "{self:?}");
    }
}

/// `"1700000000.25"` → 1700000000250 (test-side parser, independent of the server's).
pub fn ts_ms(v: &str) -> i64 {
    let (s, f) = v.split_once('.').unwrap_or((v, "0"));
    assert!(f.len() <= 2, "more than two decimals: {v}");
    let f = format!("{f:0<2}");
    s.parse::<i64>().expect("secs") * 1000 + f.parse::<i64>().expect("frac") * 10
}

/// `1700000000250` → `"1700000000.25"`.
pub fn ts_str(ms: i64) -> String {
    format!("{}.{:02}", ms / 1000, ms % 1000 / 10)
}

/// A Sync client for one user.
pub struct Client<'a> {
    pub srv: &'a TestServer,
    pub uid: u64,
    pub token: IssuedToken,
}

impl<'a> Client<'a> {
    pub fn new(srv: &'a TestServer, uid: u64) -> Client<'a> {
        Client {
            srv,
            uid,
            token: srv.token_for(uid),
        }
    }

    pub fn path(&self, rest: &str) -> String {
        format!("/1.5/{}{}", self.uid, rest)
    }

    /// A signed request builder for `/1.5/{uid}{rest}`.
    pub fn req(&self, method: Method, rest: &str) -> reqwest::RequestBuilder {
        self.srv.signed(&self.token, method, &self.path(rest))
    }

    pub async fn get(&self, rest: &str) -> Resp {
        send(self.req(Method::GET, rest)).await
    }

    pub async fn delete(&self, rest: &str) -> Resp {
        send(self.req(Method::DELETE, rest)).await
    }

    /// PUT with `Content-Type: application/json`.
    pub async fn put(&self, rest: &str, body: &str) -> Resp {
        send(
            self.req(Method::PUT, rest)
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// POST with `Content-Type: application/json`.
    pub async fn post(&self, rest: &str, body: &str) -> Resp {
        send(
            self.req(Method::POST, rest)
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// POST a JSON value.
    pub async fn post_json(&self, rest: &str, body: &Value) -> Resp {
        self.post(rest, &body.to_string()).await
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Resp {
    let res = req.send().await.expect("request is answered");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.text().await.expect("body");
    Resp {
        status,
        headers,
        body,
    }
}

/// `n` records `{"id": "<prefix><i>", "payload": "<payload>"}` as a JSON array.
pub fn records(prefix: &str, n: usize, payload: &str) -> Value {
    Value::Array(
        (0..n)
            .map(|i| serde_json::json!({"id": format!("{prefix}{i}"), "payload": payload}))
            .collect(),
    )
}

/// Stores one known record and returns its body as read back.
pub async fn seed(c: &Client<'_>) -> String {
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
pub async fn intact(c: &Client<'_>, before: &str) {
    let r = c.get("/storage/xxx_col1/keep").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, before);
    let ids = c.get("/storage/xxx_col1").await;
    assert_eq!(ids.body, r#"["keep"]"#);
}

/// A storage answer that is an error: status, bare Weave code, JSON, X-Weave-Timestamp.
#[track_caller]
pub fn weave_error(r: &Resp, status: u16, code: &str) {
    r.expect_error(status, code);
    let ts = r.header("x-weave-timestamp").expect("X-Weave-Timestamp");
    assert!(two_decimals(ts), "{r:?}");
}

/// `v` is a timestamp as the server writes it: digits, a dot, two decimals.
pub fn two_decimals(v: &str) -> bool {
    let (s, f) = v.split_once('.').unwrap_or(("", ""));
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && f.len() == 2
}

/// Every `"modified":` in a raw body is `\d+\.\d\d` (Mozilla's tests regex-check this).
pub fn assert_two_decimals(body: &str) {
    let stamps: Vec<String> = body
        .split("\"modified\":")
        .skip(1)
        .map(|part| {
            part.chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect()
        })
        .collect();
    assert!(!stamps.is_empty(), "no modified in {body}");
    for num in &stamps {
        assert!(two_decimals(num), "bad timestamp {num} in {body}");
    }
}

/// Percent-encodes the characters of ids and offsets that may not stand bare in a URL here.
pub fn urlencode(s: &str) -> String {
    s.replace(':', "%3A")
        .replace('{', "%7B")
        .replace('}', "%7D")
        .replace(',', "%2C")
}

/// The start of a raw request to `c`'s `rest`, signed for `c`: the request line, `Host` and
/// `Authorization`; the caller adds the other headers, the blank line and any body.
pub fn signed_head(srv: &TestServer, c: &Client<'_>, method: &str, rest: &str) -> String {
    let path = c.path(rest);
    let auth = srv.hawk(&c.token, method, &path);
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: {auth}\r\n",
        srv.addr.port()
    )
}

/// Uploads `n` records to `coll` as one batch (appends of 100, then an empty commit), so they
/// all share one timestamp, as a first sync of a big collection does.
pub async fn upload_batch(c: &Client<'_>, coll: &str, prefix: &str, n: usize) -> String {
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
