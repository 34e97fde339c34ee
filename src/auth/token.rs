//! tokenlib-compatible token ids and derived Hawk keys (docs/protocol.md §2).
//!
//! A token id is `b64url_padded(payload_json || HMAC-SHA256(sig_key, payload_json))`;
//! the matching Hawk key is an HKDF of the master secret salted with the
//! payload's `salt` and bound to the exact id string. Ids are readable by
//! anyone (nothing is encrypted); only the HMAC makes them trustworthy.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use hmac::Mac;
use serde::{Deserialize, Deserializer, Serialize};

use super::primitives::{HmacSha256, URL_SAFE_ANY_PAD, hkdf_sha256_32, hmac_sha256_keyed};

/// HKDF `info` for the signing key (tokenlib v1).
const SIGNING_INFO: &[u8] = b"services.mozilla.com/tokenlib/v1/signing";
/// HKDF `info` prefix for the per-token derived secret; the id is appended.
const DERIVE_INFO_PREFIX: &str = "services.mozilla.com/tokenlib/v1/derive/";
/// Length of the HMAC-SHA256 signature appended to the payload.
const SIG_LEN: usize = 32;

/// The master secret plus the signing key derived from it once at start-up.
///
/// The secret string's UTF-8 bytes are used verbatim (never hex-decoded), as
/// tokenlib and syncstorage-rs do, so both sides agree whatever it looks like.
#[derive(Clone)]
pub struct TokenSecret {
    master: Vec<u8>,
    /// HMAC state keyed with the signing key; cloning it per token skips
    /// the key schedule on every request.
    signer: HmacSha256,
}

impl TokenSecret {
    /// Derives the tokenlib signing key from `master`.
    pub fn new(master: &str) -> Self {
        let master = master.as_bytes().to_vec();
        let signing_key = hkdf_sha256_32(None, &master, SIGNING_INFO);
        let signer = hmac_sha256_keyed(&signing_key);
        Self { master, signer }
    }

    /// The Hawk key for token `id` whose payload carries `salt`.
    fn derived_key(&self, id: &str, salt: &str) -> String {
        let mut info = Vec::with_capacity(DERIVE_INFO_PREFIX.len() + id.len());
        info.extend_from_slice(DERIVE_INFO_PREFIX.as_bytes());
        info.extend_from_slice(id.as_bytes());
        // The salt is used as ASCII text, not hex-decoded (tokenlib does so).
        let raw = hkdf_sha256_32(Some(salt.as_bytes()), &self.master, &info);
        URL_SAFE.encode(raw)
    }

    fn signer(&self) -> HmacSha256 {
        self.signer.clone()
    }
}

impl fmt::Debug for TokenSecret {
    // Never print the master secret or anything derived from it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret([redacted])")
    }
}

/// The JSON payload of a token (docs/protocol.md §1.8).
///
/// Field order is syncstorage-rs's serialisation order. Everything except
/// `uid` and `expires` defaults when absent, because Python-minted tokens lack
/// `tokenserver_origin` and older ones lack the `fxa_*` / `hashed_*` fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPayload {
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub fxa_kid: String,
    #[serde(default)]
    pub fxa_uid: String,
    #[serde(default)]
    pub hashed_device_id: String,
    #[serde(default)]
    pub hashed_fxa_uid: String,
    /// Unix seconds. Older tokenlib wrote floats; stored rounded like RS does.
    #[serde(deserialize_with = "de_expires")]
    pub expires: i64,
    pub uid: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenserver_origin: Option<String>,
    #[serde(default)]
    pub salt: String,
}

/// Accepts `expires` as a JSON integer or float.
fn de_expires<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Int(i64),
        Float(f64),
    }
    Ok(match Num::deserialize(d)? {
        Num::Int(i) => i,
        // `as` saturates on out-of-range values, so this cannot panic.
        Num::Float(f) => f.round() as i64,
    })
}

/// A freshly minted token: the id and its Hawk key (both sent to the client).
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub id: String,
    pub key: String,
}

impl fmt::Debug for IssuedToken {
    // The key is a credential; keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// A token id whose signature checked out, with its recomputed Hawk key.
#[derive(Clone, PartialEq)]
pub struct VerifiedToken {
    pub payload: TokenPayload,
    pub key: String,
}

impl VerifiedToken {
    /// tokenlib's rule: a token is dead once `expires <= now`.
    pub fn is_expired(&self, now_secs: i64) -> bool {
        self.payload.expires <= now_secs
    }
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("payload", &self.payload)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Why a token id was refused. All map to a storage 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token id is not valid base64url")]
    Undecodable,
    #[error("token id too short to hold a signature")]
    TooShort,
    #[error("token signature mismatch")]
    BadSignature,
    #[error("token payload is not a valid payload object: {0}")]
    BadPayload(String),
}

/// Serialises `payload` as compact JSON in RS key order and signs it.
pub fn make_token(secret: &TokenSecret, payload: &TokenPayload) -> IssuedToken {
    sign_payload_bytes(secret, payload_json(payload).as_bytes(), &payload.salt)
}

/// Signs already-serialised payload bytes; `salt` must be the payload's salt.
///
/// Exposed so tests can reproduce Python-style (`", "` separated) vectors
/// byte for byte.
pub fn sign_payload_bytes(secret: &TokenSecret, bytes: &[u8], salt: &str) -> IssuedToken {
    let mut mac = secret.signer();
    mac.update(bytes);
    let sig = mac.finalize().into_bytes();
    let mut raw = Vec::with_capacity(bytes.len() + SIG_LEN);
    raw.extend_from_slice(bytes);
    raw.extend_from_slice(&sig);
    let id = URL_SAFE.encode(raw);
    let key = secret.derived_key(&id, salt);
    IssuedToken { id, key }
}

/// A fresh payload salt: 3 random bytes as 6 lowercase hex characters.
pub fn new_salt() -> String {
    hex::encode(rand::random::<[u8; 3]>())
}

/// Verifies a token id and recomputes its Hawk key. Expiry is left to the
/// caller (`VerifiedToken::is_expired`) because of the info/collections
/// grace period (§3.6).
pub fn parse_token(secret: &TokenSecret, id: &str) -> Result<VerifiedToken, TokenError> {
    let raw = URL_SAFE_ANY_PAD
        .decode(id)
        .map_err(|_| TokenError::Undecodable)?;
    if raw.len() <= SIG_LEN {
        return Err(TokenError::TooShort);
    }
    let (bytes, sig) = raw.split_at(raw.len() - SIG_LEN);
    let mut mac = secret.signer();
    mac.update(bytes);
    // Constant-time comparison; JSON is only looked at once it is authentic,
    // and the exact signed bytes are parsed (never re-serialised).
    mac.verify_slice(sig)
        .map_err(|_| TokenError::BadSignature)?;
    let payload: TokenPayload =
        serde_json::from_slice(bytes).map_err(|e| TokenError::BadPayload(e.to_string()))?;
    let key = secret.derived_key(id, &payload.salt);
    Ok(VerifiedToken { payload, key })
}

/// Compact JSON in RS order. Built by hand because `Value`'s `Display` is
/// infallible, whereas `serde_json::to_vec` returns a `Result` we would have
/// to unwrap; the output is identical to serde's (checked in tests).
fn payload_json(p: &TokenPayload) -> String {
    let s = |v: &str| serde_json::Value::String(v.to_owned()).to_string();
    let mut out = format!(
        "{{\"node\":{},\"fxa_kid\":{},\"fxa_uid\":{},\"hashed_device_id\":{},\
         \"hashed_fxa_uid\":{},\"expires\":{},\"uid\":{}",
        s(&p.node),
        s(&p.fxa_kid),
        s(&p.fxa_uid),
        s(&p.hashed_device_id),
        s(&p.hashed_fxa_uid),
        p.expires,
        p.uid
    );
    if let Some(origin) = &p.tokenserver_origin {
        out.push_str(",\"tokenserver_origin\":");
        out.push_str(&s(origin));
    }
    out.push_str(",\"salt\":");
    out.push_str(&s(&p.salt));
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("../../tests/fixtures/vectors/tokenlib_tokens.json");

    fn cases() -> Vec<Value> {
        let v: Value = serde_json::from_str(VECTORS).unwrap();
        v["cases"].as_array().unwrap().clone()
    }

    fn case(name: &str) -> Value {
        cases()
            .into_iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no vector {name}"))
    }

    fn text<'a>(c: &'a Value, field: &str) -> &'a str {
        c[field]
            .as_str()
            .unwrap_or_else(|| panic!("missing {field}"))
    }

    fn secret_of(c: &Value) -> TokenSecret {
        TokenSecret::new(text(c, "master_secret_utf8"))
    }

    /// The signing key as `TokenSecret::new` derives it.
    fn signing_key_hex(c: &Value) -> String {
        let master = text(c, "master_secret_utf8").as_bytes();
        hex::encode(hkdf_sha256_32(None, master, SIGNING_INFO))
    }

    fn hmac_hex(secret: &TokenSecret, bytes: &[u8]) -> String {
        let mut mac = secret.signer();
        mac.update(bytes);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Checks the parsed payload against the vector's JSON object field by field.
    fn assert_payload_matches(p: &TokenPayload, expected: &Value) {
        assert_eq!(p.uid, expected["uid"].as_u64().unwrap());
        assert_eq!(p.node, text(expected, "node"));
        assert_eq!(p.salt, text(expected, "salt"));
        assert_eq!(p.fxa_uid, text(expected, "fxa_uid"));
        assert_eq!(p.fxa_kid, text(expected, "fxa_kid"));
        assert_eq!(p.hashed_fxa_uid, text(expected, "hashed_fxa_uid"));
        assert_eq!(p.hashed_device_id, text(expected, "hashed_device_id"));
        assert_eq!(
            p.expires,
            expected["expires"].as_f64().unwrap().round() as i64
        );
        assert_eq!(
            p.tokenserver_origin.as_deref(),
            expected["tokenserver_origin"].as_str()
        );
    }

    #[test]
    fn every_vector_case_is_covered() {
        let names: Vec<String> = cases().iter().map(|c| text(c, "name").to_owned()).collect();
        assert_eq!(
            names,
            [
                "tokenlib_make_token_python_json",
                "rust_style_compact_token_parsed_by_tokenlib",
                "syncstorage_rs_fixture_token"
            ]
        );
    }

    #[test]
    fn t1_python_json_token() {
        let c = case("tokenlib_make_token_python_json");
        let secret = secret_of(&c);
        assert_eq!(signing_key_hex(&c), text(&c, "signing_key_hex"));
        assert_eq!(text(&c, "signing_key_hkdf_info").as_bytes(), SIGNING_INFO);
        let bytes = text(&c, "signed_json_bytes_utf8").as_bytes();
        assert_eq!(
            hmac_hex(&secret, bytes),
            text(&c, "hmac_sha256_signature_hex")
        );

        let issued = sign_payload_bytes(&secret, bytes, text(&c, "derived_key_hkdf_salt_utf8"));
        assert_eq!(issued.id, text(&c, "token_id"));
        assert_eq!(issued.key, text(&c, "derived_key"));
        assert_eq!(
            format!("{DERIVE_INFO_PREFIX}{}", issued.id),
            text(&c, "derived_key_hkdf_info_utf8")
        );
        let raw = URL_SAFE.decode(&issued.key).unwrap();
        assert_eq!(hex::encode(raw), text(&c, "derived_key_raw_hex"));

        let parsed = parse_token(&secret, &issued.id).unwrap();
        assert_payload_matches(&parsed.payload, &c["payload"]);
        assert_eq!(parsed.payload.tokenserver_origin, None);
        assert_eq!(parsed.key, issued.key);
    }

    #[test]
    fn t2_rust_compact_token() {
        let c = case("rust_style_compact_token_parsed_by_tokenlib");
        let secret = secret_of(&c);
        assert_eq!(signing_key_hex(&c), text(&c, "signing_key_hex"));
        let bytes = text(&c, "signed_json_bytes_utf8");
        assert_eq!(
            hmac_hex(&secret, bytes.as_bytes()),
            text(&c, "hmac_sha256_signature_hex")
        );

        // Parsing the vector id gives the payload and key...
        let parsed = parse_token(&secret, text(&c, "token_id")).unwrap();
        assert_payload_matches(&parsed.payload, &c["parsed_payload"]);
        assert_eq!(parsed.key, text(&c, "derived_key"));
        let raw = URL_SAFE.decode(&parsed.key).unwrap();
        assert_eq!(hex::encode(raw), text(&c, "derived_key_raw_hex"));

        // ...and minting that payload reproduces the exact bytes and id.
        assert_eq!(payload_json(&parsed.payload), bytes);
        assert_eq!(serde_json::to_string(&parsed.payload).unwrap(), bytes);
        let issued = make_token(&secret, &parsed.payload);
        assert_eq!(issued.id, text(&c, "token_id"));
        assert_eq!(issued.key, text(&c, "derived_key"));
    }

    #[test]
    fn t3_syncstorage_rs_fixture_token() {
        let c = case("syncstorage_rs_fixture_token");
        let secret = secret_of(&c);
        let parsed = parse_token(&secret, text(&c, "token_id")).unwrap();
        assert_payload_matches(&parsed.payload, &c["parsed_payload"]);
        assert_eq!(parsed.payload.expires, 1_884_968_439);
        assert_eq!(parsed.key, text(&c, "derived_key"));
        assert!(!parsed.is_expired(1_884_968_438));
        assert!(parsed.is_expired(1_884_968_439));
    }

    #[test]
    fn unpadded_id_is_accepted() {
        let c = case("syncstorage_rs_fixture_token");
        let secret = secret_of(&c);
        let id = text(&c, "token_id").trim_end_matches('=');
        let parsed = parse_token(&secret, id).unwrap();
        assert_eq!(parsed.payload.uid, 1);
    }

    #[test]
    fn mint_and_parse_round_trip() {
        let secret = TokenSecret::new("round trip secret");
        let payload = TokenPayload {
            node: "https://sync.example.com".into(),
            fxa_kid: "0000000001234-qqo".into(),
            fxa_uid: "319b98f9961ff1dbdd07313cd6ba925a".into(),
            hashed_device_id: "3a41cccbdd666ebc4199f1f9d1249d44".into(),
            hashed_fxa_uid: "4d00ecae64b98dd7dc7dea68d0dd615d".into(),
            expires: 1_700_003_600,
            uid: 7,
            tokenserver_origin: Some("rust".into()),
            salt: new_salt(),
        };
        let issued = make_token(&secret, &payload);
        assert_eq!(issued.key.len(), 44);
        let parsed = parse_token(&secret, &issued.id).unwrap();
        assert_eq!(parsed.payload, payload);
        assert_eq!(parsed.key, issued.key);
        // Another secret must not accept it.
        assert_eq!(
            parse_token(&TokenSecret::new("other"), &issued.id),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn omitted_origin_and_escaping() {
        let payload = TokenPayload {
            node: "a\"b\\c\u{1}é".into(),
            fxa_kid: String::new(),
            fxa_uid: String::new(),
            hashed_device_id: String::new(),
            hashed_fxa_uid: String::new(),
            expires: -5,
            uid: u64::MAX,
            tokenserver_origin: None,
            salt: "abcdef".into(),
        };
        let json = payload_json(&payload);
        assert!(!json.contains("tokenserver_origin"));
        assert_eq!(json, serde_json::to_string(&payload).unwrap());
        let back: TokenPayload = serde_json::from_str(&json).unwrap();
        assert_eq!(back, payload);
    }

    #[test]
    fn salt_is_six_lowercase_hex() {
        let s = new_salt();
        assert_eq!(s.len(), 6);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }

    #[test]
    fn payload_defaults_and_float_expires() {
        let p: TokenPayload =
            serde_json::from_str(r#"{"uid": 3, "expires": 10.5, "extra": [1]}"#).unwrap();
        assert_eq!(p.expires, 11);
        assert_eq!(p.node, "");
        assert_eq!(p.salt, "");
        assert_eq!(p.tokenserver_origin, None);
        assert!(serde_json::from_str::<TokenPayload>(r#"{"expires": 1}"#).is_err());
        assert!(serde_json::from_str::<TokenPayload>(r#"{"uid": 1}"#).is_err());
        assert!(serde_json::from_str::<TokenPayload>(r#"{"uid": -1, "expires": 1}"#).is_err());
    }

    #[test]
    fn tampered_token_byte_is_bad_signature() {
        let c = case("tokenlib_make_token_python_json");
        let secret = secret_of(&c);
        let mut raw = URL_SAFE.decode(text(&c, "token_id")).unwrap();
        for pos in [0, 10, raw.len() - 33, raw.len() - 1] {
            raw[pos] ^= 0x01;
            let id = URL_SAFE.encode(&raw);
            assert_eq!(parse_token(&secret, &id), Err(TokenError::BadSignature));
            raw[pos] ^= 0x01;
        }
    }

    #[test]
    fn truncated_and_garbage_ids_are_errors() {
        let c = case("tokenlib_make_token_python_json");
        let secret = secret_of(&c);
        let id = text(&c, "token_id");
        // Cutting the id breaks either the base64 or the signature.
        for cut in [1, 4, 10, id.len() / 2, id.len() - 4] {
            assert!(parse_token(&secret, &id[..cut]).is_err(), "cut {cut}");
        }
        assert_eq!(parse_token(&secret, ""), Err(TokenError::TooShort));
        assert_eq!(
            parse_token(&secret, &URL_SAFE.encode([0u8; 32])),
            Err(TokenError::TooShort)
        );
        assert_eq!(
            parse_token(&secret, "not base64!"),
            Err(TokenError::Undecodable)
        );
        assert_eq!(parse_token(&secret, "é"), Err(TokenError::Undecodable));
    }

    #[test]
    fn authentic_but_invalid_payload_is_bad_payload() {
        let secret = TokenSecret::new("s");
        for body in [&b"not json"[..], b"[1,2]", br#"{"expires":1}"#] {
            let issued = sign_payload_bytes(&secret, body, "");
            assert!(matches!(
                parse_token(&secret, &issued.id),
                Err(TokenError::BadPayload(_))
            ));
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let secret = TokenSecret::new("super secret master");
        assert!(!format!("{secret:?}").contains("super"));
        let issued = sign_payload_bytes(&secret, br#"{"uid":1,"expires":1}"#, "aa");
        assert!(!format!("{issued:?}").contains(&issued.key));
        let parsed = parse_token(&secret, &issued.id).unwrap();
        assert!(!format!("{parsed:?}").contains(&parsed.key));
    }
}
