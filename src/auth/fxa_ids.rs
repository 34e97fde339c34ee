//! Pure tokenserver derivations (docs/protocol.md §1.2, §1.7.1, §1.8): the
//! metrics hashes put in tokens and the `X-KeyID` / `fxa_kid` format.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::primitives::hmac_sha256;

/// The device id used for `hashed_device_id` with OAuth: FxA access tokens
/// carry no device id, and RS/PYTS hash this literal placeholder instead.
pub const NO_DEVICE_ID: &str = "none";

/// Why an `X-KeyID` or client state could not be used (→ 401
/// `invalid-credentials`, or 400 for a malformed header, per §1.7).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyIdError {
    #[error("X-KeyID has no '-' separator")]
    MissingSeparator,
    #[error("keys_changed_at is not a decimal integer")]
    BadKeysChangedAt,
    #[error("client state is not unpadded base64url")]
    BadClientStateB64,
    #[error("client state is not hex")]
    BadClientStateHex,
}

/// First 16 bytes (32 hex chars) of `HMAC-SHA256(secret, value)`.
fn metrics_hash(secret: &str, value: &str) -> String {
    let mac = hmac_sha256(secret.as_bytes(), value.as_bytes());
    hex::encode(&mac[..16])
}

/// `hashed_fxa_uid`: the truncated HMAC of the FxA uid under the
/// `fxa_metrics_hash_secret`. Anything from an `@` on is dropped first, so
/// PYTS's email-based input (`uid@domain`) gives the same value.
pub fn hashed_fxa_uid(metrics_secret: &str, fxa_uid: &str) -> String {
    let uid = fxa_uid.split('@').next().unwrap_or(fxa_uid);
    metrics_hash(metrics_secret, uid)
}

/// `hashed_device_id`: HMAC of `hashed_fxa_uid || device_id`, truncated the
/// same way. Pass [`NO_DEVICE_ID`] for OAuth logins.
pub fn hashed_device_id(metrics_secret: &str, fxa_uid: &str, device_id: &str) -> String {
    let input = format!("{}{}", hashed_fxa_uid(metrics_secret, fxa_uid), device_id);
    metrics_hash(metrics_secret, &input)
}

/// `fxa_kid` / `X-KeyID`: `{n:013}-{b64url_nopad(client_state_bytes)}`,
/// where `n` is keys_changed_at (or the generation as a fallback).
pub fn fxa_kid(
    keys_changed_at_or_generation: i64,
    client_state_hex: &str,
) -> Result<String, KeyIdError> {
    let raw = hex::decode(client_state_hex).map_err(|_| KeyIdError::BadClientStateHex)?;
    Ok(format!(
        "{:013}-{}",
        keys_changed_at_or_generation,
        URL_SAFE_NO_PAD.encode(raw)
    ))
}

/// Splits an `X-KeyID` header into `(keys_changed_at, client_state_hex)`.
///
/// The split is at the first `-`; keys_changed_at may carry leading zeros;
/// the client state must be unpadded base64url (padded input is refused, as
/// in RS) and may be empty. The state is returned as lowercase hex.
pub fn parse_key_id(x_key_id: &str) -> Result<(i64, String), KeyIdError> {
    let (kca, cs) = x_key_id
        .split_once('-')
        .ok_or(KeyIdError::MissingSeparator)?;
    if kca.is_empty() || !kca.bytes().all(|b| b.is_ascii_digit()) {
        return Err(KeyIdError::BadKeysChangedAt);
    }
    let kca: i64 = kca.parse().map_err(|_| KeyIdError::BadKeysChangedAt)?;
    let raw = URL_SAFE_NO_PAD
        .decode(cs)
        .map_err(|_| KeyIdError::BadClientStateB64)?;
    Ok((kca, hex::encode(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("../../tests/fixtures/vectors/tokenserver_derived.json");

    fn vectors() -> Value {
        serde_json::from_str(VECTORS).unwrap()
    }

    fn text<'a>(c: &'a Value, field: &str) -> &'a str {
        c[field]
            .as_str()
            .unwrap_or_else(|| panic!("missing {field}"))
    }

    #[test]
    fn metrics_hash_vectors() {
        let v = vectors();
        let cases = v["metrics_hash"].as_array().unwrap();
        assert_eq!(cases.len(), 3);
        for c in cases {
            let secret = text(c, "fxa_metrics_hash_secret");
            let uid = text(c, "fxa_uid_or_email");
            let full = hmac_sha256(secret.as_bytes(), uid.split('@').next().unwrap().as_bytes());
            assert_eq!(hex::encode(full), text(c, "hmac_sha256_hex_full"), "{uid}");
            let hashed = hashed_fxa_uid(secret, uid);
            assert_eq!(hashed, text(c, "hashed_fxa_uid"), "{uid}");
            assert_eq!(
                format!("{hashed}{NO_DEVICE_ID}"),
                text(c, "hashed_device_id_input")
            );
            assert_eq!(
                hashed_device_id(secret, uid, NO_DEVICE_ID),
                text(c, "hashed_device_id"),
                "{uid}"
            );
        }
        // syncstorage-rs's own unit-test figures.
        assert_eq!(
            hashed_fxa_uid("", "test123"),
            "4d00ecae64b98dd7dc7dea68d0dd615d"
        );
        assert_eq!(
            hashed_device_id("", "test123", "none"),
            "3a41cccbdd666ebc4199f1f9d1249d44"
        );
    }

    #[test]
    fn key_id_vectors() {
        let v = vectors();
        let cases = v["key_id"].as_array().unwrap();
        assert_eq!(cases.len(), 4);
        for c in cases {
            let kca = c["keys_changed_at"].as_i64().unwrap();
            let cs = text(c, "client_state_hex");
            let x_key_id = text(c, "x_key_id");
            assert_eq!(fxa_kid(kca, cs).unwrap(), x_key_id);
            assert_eq!(parse_key_id(x_key_id).unwrap(), (kca, cs.to_owned()));
        }
    }

    #[test]
    fn key_id_leniency() {
        // Unpadded kca, as Mozilla's integration tests send.
        assert_eq!(parse_key_id("1234-qqo").unwrap(), (1234, "aaaa".to_owned()));
        assert_eq!(parse_key_id("1234-").unwrap(), (1234, String::new()));
        assert_eq!(parse_key_id("0-").unwrap(), (0, String::new()));
        // Only the first '-' splits; '-' is part of the b64url alphabet.
        assert_eq!(parse_key_id("5--w").unwrap(), (5, "fb".to_owned()));
        // Upper-case hex input is fine for fxa_kid.
        assert_eq!(fxa_kid(1234, "AAAA").unwrap(), "0000000001234-qqo");
    }

    #[test]
    fn key_id_errors() {
        use KeyIdError::*;
        let cases = [
            ("", MissingSeparator),
            ("1234", MissingSeparator),
            ("-qqo", BadKeysChangedAt),
            ("+12-qqo", BadKeysChangedAt),
            ("12a-qqo", BadKeysChangedAt),
            (" 12-qqo", BadKeysChangedAt),
            ("99999999999999999999-qqo", BadKeysChangedAt),
            ("1234-qqo=", BadClientStateB64),
            ("1234-qg==", BadClientStateB64),
            ("1234-qq+/", BadClientStateB64),
            ("1234-q", BadClientStateB64),
            ("1234-qqo ", BadClientStateB64),
        ];
        for (input, err) in cases {
            assert_eq!(parse_key_id(input), Err(err), "{input}");
        }
        assert_eq!(fxa_kid(1, "zz"), Err(BadClientStateHex));
        assert_eq!(fxa_kid(1, "abc"), Err(BadClientStateHex));
    }
}
