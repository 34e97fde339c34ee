//! Parsing and validating request bodies (PROTOCOL.md §4.4, §4.6, §4.7): BSO fields, PUT
//! objects, POST lists in JSON or newline-delimited form, and the JSON we write back.

use serde_json::{Map, Value};

use super::error::StorageError;

pub const MAX_ID_LEN: usize = 64;
const MAX_SORTINDEX: i64 = 999_999_999;
const MAX_TTL: i64 = 999_999_999;

/// A validated incoming BSO; `None` fields were not sent (or were `null`).
#[derive(Debug, Clone, PartialEq)]
pub struct BsoIn {
    pub id: String,
    pub payload: Option<String>,
    pub sortindex: Option<i64>,
    pub ttl: Option<i64>,
}

impl BsoIn {
    pub fn payload_size(&self) -> u64 {
        self.payload.as_ref().map_or(0, |p| p.len() as u64)
    }
}

/// How a write body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Newlines,
}

/// `application/json` and `text/plain` (what Firefox sends) are JSON, as is a missing type;
/// `application/newlines` is one object per line; anything else is 415.
pub fn body_kind(content_type: Option<&str>) -> Result<BodyKind, StorageError> {
    let Some(ct) = content_type else {
        return Ok(BodyKind::Json);
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") || mime.eq_ignore_ascii_case("text/plain") {
        Ok(BodyKind::Json)
    } else if mime.eq_ignore_ascii_case("application/newlines") {
        Ok(BodyKind::Newlines)
    } else {
        Err(StorageError::UnsupportedMediaType)
    }
}

/// 1–64 printable ASCII characters (space allowed, no control characters).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// Limits that apply to the items of one request.
#[derive(Debug, Clone, Copy)]
pub struct ItemLimits {
    pub max_payload_bytes: u64,
    pub max_post_bytes: u64,
    pub max_post_records: u64,
}

/// Validates the fields of one BSO object; `Err` carries the reason reported in `failed`.
fn validate_fields(obj: &Map<String, Value>, id: String) -> Result<BsoIn, String> {
    if !valid_id(&id) {
        return Err("invalid id".into());
    }
    let mut bso = BsoIn {
        id,
        payload: None,
        sortindex: None,
        ttl: None,
    };
    for (name, value) in obj {
        match name.as_str() {
            "id" | "modified" | "collection" => {}
            "payload" => match value {
                Value::Null => {}
                Value::String(s) => bso.payload = Some(s.clone()),
                _ => return Err("payload not a string".into()),
            },
            "sortindex" => match value {
                Value::Null => {}
                v => match v.as_i64() {
                    Some(n) if (-MAX_SORTINDEX..=MAX_SORTINDEX).contains(&n) => {
                        bso.sortindex = Some(n)
                    }
                    _ => return Err("invalid sortindex".into()),
                },
            },
            "ttl" => match value {
                Value::Null => {}
                v => match v.as_i64() {
                    Some(n) if (0..=MAX_TTL).contains(&n) => bso.ttl = Some(n),
                    _ => return Err("invalid ttl".into()),
                },
            },
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(format!("unknown field '{shown}'"));
            }
        }
    }
    Ok(bso)
}

/// The body of `PUT /storage/{collection}/{id}`: one object; the URL id is authoritative.
pub fn parse_put(body: &[u8], url_id: &str, max_payload_bytes: u64) -> Result<BsoIn, StorageError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| StorageError::invalid_bso())?;
    let Value::Object(obj) = value else {
        return Err(StorageError::invalid_bso());
    };
    if obj.get("id").is_some_and(|v| !v.is_string()) {
        return Err(StorageError::invalid_bso());
    }
    let bso = validate_fields(&obj, url_id.to_string()).map_err(|_| StorageError::invalid_bso())?;
    if bso.payload_size() > max_payload_bytes {
        return Err(StorageError::invalid_bso());
    }
    Ok(bso)
}

/// The outcome of validating a POST body: items to write, and per-item failures.
#[derive(Debug, Default)]
pub struct PostItems {
    pub valid: Vec<BsoIn>,
    pub failed: Vec<(String, String)>,
}

/// The body of `POST /storage/{collection}` (§4.7): whole-body problems are 400/8; item
/// problems go to `failed` and the rest still lands.
pub fn parse_post(
    body: &[u8],
    kind: BodyKind,
    limits: ItemLimits,
) -> Result<PostItems, StorageError> {
    let objects = match kind {
        BodyKind::Json => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(items)) => items,
            _ => return Err(StorageError::invalid_bso()),
        },
        BodyKind::Newlines => parse_lines(body)?,
    };
    let mut out = PostItems::default();
    let mut seen = std::collections::HashSet::with_capacity(objects.len());
    let mut post_bytes = 0u64;
    let mut accepted = 0u64;
    for value in objects {
        let Value::Object(obj) = value else {
            return Err(StorageError::invalid_bso());
        };
        let Some(Value::String(id)) = obj.get("id") else {
            return Err(StorageError::invalid_bso());
        };
        let id = id.clone();
        if !seen.insert(id.clone()) {
            return Err(StorageError::invalid_bso());
        }
        let bso = match validate_fields(&obj, id.clone()) {
            Ok(bso) => bso,
            Err(reason) => {
                out.failed.push((id, reason));
                continue;
            }
        };
        let size = bso.payload_size();
        post_bytes += size;
        if size > limits.max_payload_bytes || post_bytes > limits.max_post_bytes {
            out.failed.push((id, "retry bytes".into()));
            continue;
        }
        if accepted >= limits.max_post_records {
            out.failed.push((id, "retry bso".into()));
            continue;
        }
        accepted += 1;
        out.valid.push(bso);
    }
    Ok(out)
}

/// Newline-delimited objects: an empty body is an empty list; one trailing `\n` is allowed;
/// every line must be JSON.
fn parse_lines(body: &[u8]) -> Result<Vec<Value>, StorageError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    body.split(|&b| b == b'\n')
        .map(|line| serde_json::from_slice(line).map_err(|_| StorageError::invalid_bso()))
        .collect()
}

/// The all-zero IV a buggy client once uploaded to `crypto` (§4.6): `"IV":\s*"AAAA…=="`.
pub fn has_zero_iv(payload: &str) -> bool {
    const KEY: &str = "\"IV\":";
    const ZERO: &str = "\"AAAAAAAAAAAAAAAAAAAAAA==\"";
    let mut rest = payload;
    while let Some(pos) = rest.find(KEY) {
        let after = rest[pos + KEY.len()..].trim_start();
        if after.starts_with(ZERO) {
            return true;
        }
        rest = &rest[pos + KEY.len()..];
    }
    false
}

/// Appends `s` as a JSON string literal.
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ItemLimits = ItemLimits {
        max_payload_bytes: 10,
        max_post_bytes: 15,
        max_post_records: 3,
    };

    #[test]
    fn ids() {
        assert!(valid_id("abcdefghijkl"));
        assert!(valid_id("{6820f3ca-6e8a-4b3c-9b0e-1234567890ab}"));
        assert!(valid_id("with space"));
        for bad in ["", "a\nb", "a\n", "\na", "a\tb", &"x".repeat(65), "é"] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        assert!(valid_id(&"x".repeat(64)));
    }

    #[test]
    fn field_validation() {
        let put = |body: &str| parse_put(body.as_bytes(), "x", 100);
        assert!(put(r#"{"payload":"p","sortindex":-42,"ttl":null,"modified":12}"#).is_ok());
        for bad in [
            r#""str""#,
            "42",
            "[]",
            r#"{"id":["a"],"payload":{}}"#,
            r#"{"sortindex":"xxx_meh"}"#,
            r#"{"sortindex":"2.6"}"#,
            r#"{"sortindex":2.6}"#,
            r#"{"sortindex":1000000000}"#,
            r#"{"sortindex":-9223372036854775808}"#,
            r#"{"payload":42}"#,
            r#"{"ttl":"eh?"}"#,
            r#"{"ttl":4.2}"#,
            r#"{"ttl":-1}"#,
            r#"{"foo":1}"#,
            "{not json",
        ] {
            assert!(put(bad).is_err(), "{bad}");
        }
        let b = put(r#"{"id":"ignored","payload":"p","sortindex":5,"ttl":7}"#).expect("valid");
        assert_eq!(
            b,
            BsoIn {
                id: "x".into(),
                payload: Some("p".into()),
                sortindex: Some(5),
                ttl: Some(7)
            }
        );
    }

    #[test]
    fn post_byte_limit_fails_the_rest() {
        let body = r#"[{"id":"a","payload":"0123456789"},{"id":"b","payload":"012345"},
            {"id":"c","sortindex":"FAIL"},{"id":"d"}]"#;
        let items = parse_post(body.as_bytes(), BodyKind::Json, LIMITS).expect("parses");
        let ok: Vec<_> = items.valid.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ok, ["a"]);
        let failed: Vec<_> = items
            .failed
            .iter()
            .map(|(id, r)| (id.as_str(), r.as_str()))
            .collect();
        // The running total stays over the limit, so later items fail the same way.
        assert_eq!(
            failed,
            [
                ("b", "retry bytes"),
                ("c", "invalid sortindex"),
                ("d", "retry bytes")
            ]
        );
    }

    #[test]
    fn post_record_limit_fails_the_excess() {
        let body =
            r#"[{"id":"a"},{"id":"b"},{"id":"c","ttl":-1},{"id":"d"},{"id":"e"},{"id":"f"}]"#;
        let items = parse_post(body.as_bytes(), BodyKind::Json, LIMITS).expect("parses");
        let ok: Vec<_> = items.valid.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ok, ["a", "b", "d"]);
        let failed: Vec<_> = items
            .failed
            .iter()
            .map(|(id, r)| (id.as_str(), r.as_str()))
            .collect();
        assert_eq!(
            failed,
            [("c", "invalid ttl"), ("e", "retry bso"), ("f", "retry bso")]
        );
    }

    #[test]
    fn post_whole_body_errors() {
        for bad in [
            r#"{}"#,
            r#""notalist""#,
            "42",
            "[1]",
            r#"[{"payload":"x"}]"#,
            r#"[{"id":"a"},{"id":"a"}]"#,
            "",
        ] {
            assert!(
                parse_post(bad.as_bytes(), BodyKind::Json, LIMITS).is_err(),
                "{bad}"
            );
        }
        for bad in ["\n", "{}", "[]"] {
            assert!(
                parse_post(bad.as_bytes(), BodyKind::Newlines, LIMITS).is_err(),
                "{bad:?}"
            );
        }
        let ok = parse_post(b"", BodyKind::Newlines, LIMITS).expect("empty ok");
        assert!(ok.valid.is_empty());
        let ok = parse_post(
            b"{\"id\":\"a\"}\n{\"id\":\"b\"}\n",
            BodyKind::Newlines,
            LIMITS,
        )
        .expect("lines");
        assert_eq!(ok.valid.len(), 2);
    }

    #[test]
    fn zero_iv_detection() {
        assert!(has_zero_iv(
            r#"{"IV": "AAAAAAAAAAAAAAAAAAAAAA==","hmac":"x"}"#
        ));
        assert!(has_zero_iv(
            r#"{"ciphertext":"x","IV":"AAAAAAAAAAAAAAAAAAAAAA=="}"#
        ));
        assert!(!has_zero_iv(r#"{"IV":"AAAAAAAAAAAAAAAAAAAAAB=="}"#));
    }

    #[test]
    fn json_strings_escape() {
        let mut s = String::new();
        write_json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        let back: String = serde_json::from_str(&s).expect("valid json");
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }
}
