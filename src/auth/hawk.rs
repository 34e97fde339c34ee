//! Hawk "header" mode as used by Sync storage (docs/protocol.md §3.1–3.3):
//! parsing the `Authorization: Hawk …` header, the normalized request string,
//! the request MAC, the payload hash, and request signing for tests and
//! benchmark clients.
//!
//! The MAC key is the ASCII text of the 44-character token key, not its
//! decoded bytes; callers pass `key.as_bytes()`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::Mac;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::primitives::hmac_sha256_keyed;

/// The attributes of a parsed Hawk `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HawkHeader {
    pub id: String,
    pub ts: i64,
    pub nonce: String,
    pub mac: String,
    pub hash: Option<String>,
    pub ext: Option<String>,
}

/// What a request's MAC covers besides the header attributes.
///
/// `target` is the request-target exactly as sent (path plus `?query`);
/// `host` and `port` are those the client used in its URL (§3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestTarget<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub host: &'a str,
    pub port: u16,
}

/// Why a Hawk header was refused. All map to a storage 401; the variants
/// only exist to make logs useful.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HawkError {
    #[error("authorization scheme is not Hawk")]
    MissingScheme,
    #[error("malformed Hawk header: {0}")]
    Malformed(String),
    /// Carries the normalized string the server computed, for debug logs
    /// (it holds no secret). Deliberately not part of the message.
    #[error("Hawk MAC mismatch")]
    BadMac { normalized: String },
    /// The (MAC-covered) `hash` attribute does not match the body received.
    #[error("Hawk payload hash does not match the body")]
    BadPayloadHash,
}

fn malformed(reason: impl Into<String>) -> HawkError {
    HawkError::Malformed(reason.into())
}

/// Parses an `Authorization` header value of the form
/// `Hawk id="…", ts="…", nonce="…", mac="…"[, hash="…"][, ext="…"]`.
///
/// Attributes may come in any order; `app` and `dlg` are accepted and
/// ignored; unknown or repeated attributes are errors (§3.1).
pub fn parse_authorization(value: &str) -> Result<HawkHeader, HawkError> {
    let attrs = strip_scheme(value)?;
    let mut fields = Fields::default();
    let mut cur = Cursor::new(attrs);
    loop {
        cur.skip_ws();
        let name = cur.name()?;
        if !cur.eat('=') {
            return Err(malformed(format!("expected '=' after {name}")));
        }
        let value = cur.quoted()?;
        fields.set(name, value)?;
        cur.skip_ws();
        match cur.next() {
            None => break,
            Some(',') => continue,
            Some(_) => return Err(malformed("expected ',' between attributes")),
        }
    }
    fields.finish()
}

/// Returns the attribute part after a case-insensitive `Hawk` scheme word.
fn strip_scheme(value: &str) -> Result<&str, HawkError> {
    let value = value.trim_start();
    let Some((scheme, rest)) = value.split_once([' ', '\t']) else {
        return Err(if value.eq_ignore_ascii_case("hawk") {
            malformed("no attributes")
        } else {
            HawkError::MissingScheme
        });
    };
    if scheme.eq_ignore_ascii_case("hawk") {
        Ok(rest)
    } else {
        Err(HawkError::MissingScheme)
    }
}

/// Minimal tokenizer over the attribute list.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn new(rest: &'a str) -> Self {
        Self { rest }
    }

    fn next(&mut self) -> Option<char> {
        let mut chars = self.rest.chars();
        let c = chars.next()?;
        self.rest = chars.as_str();
        Some(c)
    }

    fn eat(&mut self, want: char) -> bool {
        match self.rest.strip_prefix(want) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    /// An attribute name: `[A-Za-z0-9_-]+` (hawkauthlib's token grammar).
    fn name(&mut self) -> Result<&'a str, HawkError> {
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(self.rest.len());
        if end == 0 {
            return Err(malformed("expected attribute name"));
        }
        let (name, rest) = self.rest.split_at(end);
        self.rest = rest;
        Ok(name)
    }

    /// A double-quoted value; `\x` stands for `x`, as in hawkauthlib.
    fn quoted(&mut self) -> Result<String, HawkError> {
        if !self.eat('"') {
            return Err(malformed("attribute value must be quoted"));
        }
        let mut out = String::new();
        loop {
            match self.next() {
                None => return Err(malformed("unterminated quote")),
                Some('"') => return Ok(out),
                Some('\\') => match self.next() {
                    Some(c) => out.push(c),
                    None => return Err(malformed("unterminated quote")),
                },
                Some(c) => out.push(c),
            }
        }
    }
}

/// Collected attributes, each allowed at most once.
#[derive(Default)]
struct Fields {
    id: Option<String>,
    ts: Option<String>,
    nonce: Option<String>,
    mac: Option<String>,
    hash: Option<String>,
    ext: Option<String>,
    app: Option<String>,
    dlg: Option<String>,
}

impl Fields {
    fn set(&mut self, name: &str, value: String) -> Result<(), HawkError> {
        let slot = match name {
            "id" => &mut self.id,
            "ts" => &mut self.ts,
            "nonce" => &mut self.nonce,
            "mac" => &mut self.mac,
            "hash" => &mut self.hash,
            "ext" => &mut self.ext,
            // Never sent by Sync clients and ignored by Mozilla's servers,
            // but legal Hawk, so tolerated.
            "app" => &mut self.app,
            "dlg" => &mut self.dlg,
            // The name grammar limits this to a safe charset; cap the length
            // so a hostile header cannot flood the logs.
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(malformed(format!("unknown attribute {shown}")));
            }
        };
        if slot.is_some() {
            return Err(malformed(format!("duplicate attribute {name}")));
        }
        *slot = Some(value);
        Ok(())
    }

    fn finish(self) -> Result<HawkHeader, HawkError> {
        let need = |v: Option<String>, name: &str| {
            v.ok_or_else(|| malformed(format!("missing attribute {name}")))
        };
        let ts = parse_ts(&need(self.ts, "ts")?)?;
        Ok(HawkHeader {
            id: need(self.id, "id")?,
            ts,
            nonce: need(self.nonce, "nonce")?,
            mac: need(self.mac, "mac")?,
            hash: self.hash,
            ext: self.ext,
        })
    }
}

/// `ts` is plain decimal seconds: no sign, no fraction, no whitespace.
fn parse_ts(ts: &str) -> Result<i64, HawkError> {
    if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("ts is not a decimal integer"));
    }
    ts.parse().map_err(|_| malformed("ts out of range"))
}

/// The Hawk 1 header normalized string (§3.2): nine `\n`-terminated lines.
/// The host is lower-cased; everything else is used exactly as sent.
pub fn normalized_string(
    h: &HawkHeader,
    method: &str,
    request_target: &str,
    host: &str,
    port: u16,
) -> String {
    format!(
        "hawk.1.header\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        h.ts,
        h.nonce,
        method,
        request_target,
        host.to_ascii_lowercase(),
        port,
        h.hash.as_deref().unwrap_or(""),
        h.ext.as_deref().unwrap_or(""),
    )
}

/// `b64(HMAC-SHA256(key, normalized))`, standard alphabet with padding.
pub fn compute_mac(key: &[u8], normalized: &str) -> String {
    let mut mac = hmac_sha256_keyed(key);
    mac.update(normalized.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Recomputes the request MAC and compares it with the header's in constant
/// time. The comparison is on the base64 text, like hawkauthlib, so any
/// non-canonical encoding of a correct MAC is refused too.
pub fn verify_mac(
    h: &HawkHeader,
    key: &[u8],
    method: &str,
    request_target: &str,
    host: &str,
    port: u16,
) -> Result<(), HawkError> {
    let normalized = normalized_string(h, method, request_target, host, port);
    let expected = compute_mac(key, &normalized);
    if bool::from(expected.as_bytes().ct_eq(h.mac.as_bytes())) {
        Ok(())
    } else {
        Err(HawkError::BadMac { normalized })
    }
}

/// The Hawk payload hash (§3.3) of a body sent with `content_type`; the
/// mime type is lower-cased and stripped of parameters and whitespace.
pub fn payload_hash(content_type: &str, body: &[u8]) -> String {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut hasher = Sha256::new();
    hasher.update(b"hawk.1.payload\n");
    hasher.update(mime.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hasher.update(b"\n");
    STANDARD.encode(hasher.finalize())
}

/// §3.3 recommendation: when the header carries `hash`, it must match the
/// body actually received (a missing `Content-Type` counts as empty). Without
/// `hash` there is nothing to check. Call only after [`verify_mac`], which is
/// what makes the `hash` value trustworthy.
pub fn check_payload_hash(
    h: &HawkHeader,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), HawkError> {
    let Some(claimed) = &h.hash else {
        return Ok(());
    };
    let actual = payload_hash(content_type.unwrap_or(""), body);
    if bool::from(actual.as_bytes().ct_eq(claimed.as_bytes())) {
        Ok(())
    } else {
        Err(HawkError::BadPayloadHash)
    }
}

/// Builds a complete `Authorization` header value for a request, as a Sync
/// client would (used by integration tests and the benchmark client).
pub fn sign_request(
    id: &str,
    key: &[u8],
    req: &RequestTarget<'_>,
    ts: i64,
    nonce: &str,
    hash: Option<&str>,
    ext: Option<&str>,
) -> String {
    let mut header = HawkHeader {
        id: id.to_owned(),
        ts,
        nonce: nonce.to_owned(),
        mac: String::new(),
        hash: hash.map(str::to_owned),
        ext: ext.map(str::to_owned),
    };
    let normalized = normalized_string(&header, req.method, req.target, req.host, req.port);
    header.mac = compute_mac(key, &normalized);
    format_header(&header)
}

/// Serialises a header, backslash-escaping `"` and `\` so that
/// `parse_authorization` reads back exactly the same values.
fn format_header(h: &HawkHeader) -> String {
    let mut out = format!(
        "Hawk id=\"{}\", ts=\"{}\", nonce=\"{}\", mac=\"{}\"",
        escape(&h.id),
        h.ts,
        escape(&h.nonce),
        escape(&h.mac)
    );
    if let Some(hash) = &h.hash {
        out.push_str(&format!(", hash=\"{}\"", escape(hash)));
    }
    if let Some(ext) = &h.ext {
        out.push_str(&format!(", ext=\"{}\"", escape(ext)));
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A random 8-character client nonce (6 random bytes, unpadded base64url so
/// it never needs escaping; hawkauthlib's are also 8 characters).
pub fn random_nonce() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 6]>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("../../tests/fixtures/vectors/hawk_requests.json");

    fn cases() -> Vec<Value> {
        let v: Value = serde_json::from_str(VECTORS).unwrap();
        v["cases"].as_array().unwrap().clone()
    }

    fn text<'a>(c: &'a Value, field: &str) -> &'a str {
        c[field]
            .as_str()
            .unwrap_or_else(|| panic!("missing {field}"))
    }

    /// The request-target is everything after the URL's authority.
    fn target_of(url: &str) -> &str {
        let after_scheme = &url[url.find("://").unwrap() + 3..];
        &after_scheme[after_scheme.find('/').unwrap()..]
    }

    /// Sample header used by the negative tests.
    const GOOD: &str = r#"Hawk id="abc", ts="1700000123", nonce="Jt4d7QvX", mac="bWFj""#;

    #[test]
    fn all_six_vector_cases_present() {
        assert_eq!(cases().len(), 6);
    }

    #[test]
    fn vectors_normalized_string_and_mac() {
        for c in cases() {
            let name = text(&c, "name");
            let req = &c["request"];
            let key = text(&c["credentials"], "key").as_bytes();
            let header = HawkHeader {
                id: text(&c["credentials"], "id").to_owned(),
                ts: req["ts"].as_i64().unwrap(),
                nonce: text(req, "nonce").to_owned(),
                mac: String::new(),
                hash: c["payload_hash"].as_str().map(str::to_owned),
                ext: req["ext"].as_str().map(str::to_owned),
            };
            let port = u16::try_from(req["port"].as_u64().unwrap()).unwrap();
            let target = target_of(text(req, "url"));
            let normalized = normalized_string(
                &header,
                text(req, "method"),
                target,
                text(req, "host"),
                port,
            );
            assert_eq!(normalized, text(&c, "normalized_string"), "{name}");
            assert_eq!(compute_mac(key, &normalized), text(&c, "mac"), "{name}");
        }
    }

    #[test]
    fn vectors_payload_hash() {
        let mut checked = 0;
        for c in cases() {
            let req = &c["request"];
            let Some(expected) = c["payload_hash"].as_str() else {
                continue;
            };
            let ct = text(req, "content_type");
            let body = text(req, "body").as_bytes();
            assert_eq!(payload_hash(ct, body), expected);
            // The documented input string hashes to the same value.
            let input = text(&c, "payload_hash_input");
            assert_eq!(STANDARD.encode(Sha256::digest(input.as_bytes())), expected);
            checked += 1;
        }
        assert_eq!(checked, 1);
    }

    #[test]
    fn vectors_authorization_headers_parse_and_verify() {
        for c in cases() {
            let name = text(&c, "name");
            let req = &c["request"];
            let key = text(&c["credentials"], "key").as_bytes();
            let h = parse_authorization(text(&c, "authorization_header")).unwrap();
            assert_eq!(h.id, text(&c["credentials"], "id"), "{name}");
            assert_eq!(h.ts, req["ts"].as_i64().unwrap(), "{name}");
            assert_eq!(h.nonce, text(req, "nonce"), "{name}");
            assert_eq!(h.mac, text(&c, "mac"), "{name}");
            assert_eq!(h.hash.as_deref(), c["payload_hash"].as_str(), "{name}");
            assert_eq!(h.ext.as_deref(), req["ext"].as_str(), "{name}");
            let port = u16::try_from(req["port"].as_u64().unwrap()).unwrap();
            let (method, target) = (text(req, "method"), target_of(text(req, "url")));
            verify_mac(&h, key, method, target, text(req, "host"), port).unwrap();
            // Upper-case Host headers must still verify.
            let upper = text(req, "host").to_ascii_uppercase();
            verify_mac(&h, key, method, target, &upper, port).unwrap();
        }
    }

    #[test]
    fn sign_request_reproduces_vector_macs() {
        for c in cases() {
            let name = text(&c, "name");
            let req = &c["request"];
            let id = text(&c["credentials"], "id");
            let key = text(&c["credentials"], "key").as_bytes();
            let port = u16::try_from(req["port"].as_u64().unwrap()).unwrap();
            let target = RequestTarget {
                method: text(req, "method"),
                target: target_of(text(req, "url")),
                host: text(req, "host"),
                port,
            };
            let signed = sign_request(
                id,
                key,
                &target,
                req["ts"].as_i64().unwrap(),
                text(req, "nonce"),
                c["payload_hash"].as_str(),
                req["ext"].as_str(),
            );
            let h = parse_authorization(&signed).unwrap();
            assert_eq!(h.mac, text(&c, "mac"), "{name}");
            assert_eq!(h.id, id, "{name}");
            let expected = parse_authorization(text(&c, "authorization_header")).unwrap();
            assert_eq!(h, expected, "{name}");
            verify_mac(&h, key, target.method, target.target, target.host, port).unwrap();
        }
    }

    #[test]
    fn tampered_mac_is_bad_mac_with_normalized_string() {
        let c = &cases()[0];
        let req = &c["request"];
        let key = text(&c["credentials"], "key").as_bytes();
        let mut h = parse_authorization(text(c, "authorization_header")).unwrap();
        h.mac = h.mac.replacen('G', "H", 1);
        let port = u16::try_from(req["port"].as_u64().unwrap()).unwrap();
        let err = verify_mac(
            &h,
            key,
            "GET",
            target_of(text(req, "url")),
            "sync.example.com",
            port,
        )
        .unwrap_err();
        assert_eq!(
            err,
            HawkError::BadMac {
                normalized: text(c, "normalized_string").to_owned()
            }
        );
        assert!(!err.to_string().contains("hawk.1.header"));
        // Wrong key, method, path, host or port also fail.
        let h = parse_authorization(text(c, "authorization_header")).unwrap();
        let target = target_of(text(req, "url"));
        assert!(verify_mac(&h, b"wrong key", "GET", target, "sync.example.com", 443).is_err());
        assert!(verify_mac(&h, key, "POST", target, "sync.example.com", 443).is_err());
        assert!(verify_mac(&h, key, "GET", "/1.5/42", "sync.example.com", 443).is_err());
        assert!(verify_mac(&h, key, "GET", target, "evil.example.com", 443).is_err());
        assert!(verify_mac(&h, key, "GET", target, "sync.example.com", 80).is_err());
    }

    #[test]
    fn header_syntax_variants_accepted() {
        let h = parse_authorization(GOOD).unwrap();
        assert_eq!(h.id, "abc");
        assert_eq!(h.ts, 1_700_000_123);
        assert_eq!(h.mac, "bWFj");
        assert_eq!((h.hash, h.ext), (None, None));

        let variants = [
            r#"hawk id="abc",ts="1700000123",nonce="Jt4d7QvX",mac="bWFj""#,
            r#"HAWK   mac="bWFj" ,  nonce="Jt4d7QvX",	ts="1700000123", id="abc"  "#,
            r#"Hawk id="abc", ts="1700000123", nonce="Jt4d7QvX", mac="bWFj", app="x", dlg="y""#,
            r#"  Hawk id="a\bc", ts="1700000123", nonce="Jt4d7QvX", mac="bWFj""#,
        ];
        for v in variants {
            let p = parse_authorization(v).unwrap();
            assert_eq!((p.id.as_str(), p.ts), ("abc", 1_700_000_123), "{v}");
        }
        let p = parse_authorization(
            r#"Hawk id="a", ts="0", nonce="n,\"x\\", mac="m", ext="x=1, y", hash="""#,
        )
        .unwrap();
        assert_eq!(p.nonce, r#"n,"x\"#);
        assert_eq!(p.ext.as_deref(), Some("x=1, y"));
        assert_eq!(p.hash.as_deref(), Some(""));
    }

    #[test]
    fn bad_headers_are_errors() {
        let scheme_errors = [
            "",
            "Bearer abc",
            "Hawkid=\"a\"",
            "Basic Zm9v:YmFy",
            "MAC id=\"a\"",
        ];
        for v in scheme_errors {
            assert_eq!(parse_authorization(v), Err(HawkError::MissingScheme), "{v}");
        }
        let malformed_headers = [
            "Hawk",
            "Hawk ",
            r#"Hawk id="abc", ts="1", nonce="n", mac="m", id="abc""#, // duplicate
            r#"Hawk id="abc", ts="1", nonce="n", mac="m", ext="a", ext="b""#,
            r#"Hawk id="abc", ts="1", nonce="n", mac="m", foo="bar""#, // unknown
            r#"Hawk id="abc", ts="1", nonce="n", mac="m"#,             // unterminated
            r#"Hawk id="abc", ts="1", nonce="n", mac="m\"#,
            r#"Hawk id="abc", ts="1", nonce="n""#, // missing mac
            r#"Hawk ts="1", nonce="n", mac="m""#,  // missing id
            r#"Hawk id="abc", nonce="n", mac="m""#, // missing ts
            r#"Hawk id="abc", ts="1", mac="m""#,   // missing nonce
            r#"Hawk id="abc", ts="-1", nonce="n", mac="m""#,
            r#"Hawk id="abc", ts="1.5", nonce="n", mac="m""#,
            r#"Hawk id="abc", ts="", nonce="n", mac="m""#,
            r#"Hawk id="abc", ts=" 1", nonce="n", mac="m""#,
            r#"Hawk id="abc", ts="99999999999999999999", nonce="n", mac="m""#,
            r#"Hawk id=abc, ts="1", nonce="n", mac="m""#, // unquoted
            r#"Hawk id = "abc", ts="1", nonce="n", mac="m""#,
            r#"Hawk id="abc" ts="1", nonce="n", mac="m""#, // no comma
            r#"Hawk id="abc", ts="1", nonce="n", mac="m","#, // trailing comma
            r#"Hawk id="abc",, ts="1", nonce="n", mac="m""#,
            r#"Hawk ="abc", ts="1", nonce="n", mac="m""#,
            r#"Hawk id="abc", ts="1", nonce="n", mac="m", é="x""#,
        ];
        for v in malformed_headers {
            assert!(
                matches!(parse_authorization(v), Err(HawkError::Malformed(_))),
                "{v}: {:?}",
                parse_authorization(v)
            );
        }
    }

    #[test]
    fn unknown_attribute_name_is_truncated_in_error() {
        let long = "x".repeat(500);
        let header = format!(r#"Hawk id="a", ts="1", nonce="n", mac="m", {long}="v""#);
        let Err(HawkError::Malformed(reason)) = parse_authorization(&header) else {
            panic!("expected Malformed");
        };
        assert!(reason.len() < 100);
    }

    #[test]
    fn check_payload_hash_against_body() {
        let c = cases()
            .into_iter()
            .find(|c| c["name"] == "post_json_with_payload_hash")
            .unwrap();
        let req = &c["request"];
        let h = parse_authorization(text(&c, "authorization_header")).unwrap();
        let body = text(req, "body").as_bytes();
        let ct = req["content_type"].as_str();
        assert_eq!(check_payload_hash(&h, ct, body), Ok(()));
        assert_eq!(
            check_payload_hash(&h, ct, b"[]"),
            Err(HawkError::BadPayloadHash)
        );
        assert_eq!(
            check_payload_hash(&h, Some("text/plain"), body),
            Err(HawkError::BadPayloadHash)
        );
        assert_eq!(
            check_payload_hash(&h, None, body),
            Err(HawkError::BadPayloadHash)
        );
        // No hash attribute: nothing to compare.
        let h = parse_authorization(GOOD).unwrap();
        assert_eq!(check_payload_hash(&h, None, b"anything"), Ok(()));
    }

    #[test]
    fn payload_hash_normalizes_content_type() {
        let body = b"[]";
        let plain = payload_hash("application/json", body);
        assert_eq!(payload_hash("Application/JSON; charset=UTF-8", body), plain);
        assert_eq!(payload_hash("  application/json ;q=1", body), plain);
        assert_ne!(payload_hash("text/plain", body), plain);
        // An empty content type still hashes (empty mime line).
        let empty = STANDARD.encode(Sha256::digest(b"hawk.1.payload\n\n[]\n"));
        assert_eq!(payload_hash("", body), empty);
    }

    #[test]
    fn sign_request_escapes_and_round_trips() {
        let target = RequestTarget {
            method: "POST",
            target: "/1.5/1/storage/x?a=b",
            host: "[::1]",
            port: 8000,
        };
        let signed = sign_request(
            "id\"with\\quotes",
            b"key",
            &target,
            5,
            "n\"",
            Some("hash"),
            Some("e,x\"t"),
        );
        let h = parse_authorization(&signed).unwrap();
        assert_eq!(h.id, "id\"with\\quotes");
        assert_eq!(h.nonce, "n\"");
        assert_eq!(h.ext.as_deref(), Some("e,x\"t"));
        verify_mac(&h, b"key", "POST", "/1.5/1/storage/x?a=b", "[::1]", 8000).unwrap();
    }

    #[test]
    fn random_nonce_shape() {
        let n = random_nonce();
        assert_eq!(n.len(), 8);
        assert_ne!(n, random_nonce());
    }
}
