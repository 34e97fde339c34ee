//! Local verification of FxA OAuth JWT access tokens (docs/protocol.md §1.3.1).
//!
//! Only the RSA signature itself is delegated to `jsonwebtoken`; header and
//! claim checks are done here so that the clock is an argument (vector tokens
//! keep verifying forever) and so that every failure maps to a distinct
//! [`JwtError`] the tokenserver can act on (remote fallback, JWKS refetch, or
//! a plain 401).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The scope a token must carry to be exchanged for a Sync token.
pub const OLDSYNC_SCOPE: &str = "https://identity.mozilla.com/apps/oldsync";

/// Clock skew tolerated on `exp`, as syncstorage-rs (jsonwebtoken default).
const EXP_LEEWAY_SECS: i64 = 60;

/// One public key from FxA's `/v1/jwks` (or the static configuration).
/// Unknown members (`key_ops`, `fxa-createdAt`, …) are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// What a verified access token tells the tokenserver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessClaims {
    /// `sub`: the FxA account id.
    pub fxa_uid: String,
    /// `fxa-generation` in ms. `Some(0)` is returned as is; the caller treats
    /// zero as absent (§1.2).
    pub generation: Option<i64>,
}

/// Why local verification failed. See [`JwtError::wants_remote_verify`]
/// for which ones permit the `/v1/verify` fallback.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url segments with a JSON JOSE header: maybe an opaque
    /// token, so the caller may verify it remotely.
    #[error("not a JWT")]
    NotAJwt,
    /// The key set holds no RSA RS256 signing key at all.
    #[error("no usable RS256 key in the key set")]
    NoUsableKeys,
    /// The token names a key we do not have: refetch the JWKS once, retry.
    #[error("no key with kid {0}")]
    UnknownKid(String),
    #[error("unsupported JWT algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("JWT signature does not verify with any key")]
    BadSignature,
    #[error("JWT typ {0:?} is not at+jwt")]
    WrongType(Option<String>),
    #[error("JWT expired")]
    Expired,
    #[error("JWT lacks the oldsync scope")]
    MissingScope,
    /// A required claim is missing or has the wrong JSON type.
    #[error("invalid JWT claim {0}")]
    InvalidClaim(&'static str),
}

impl JwtError {
    /// §1.3.2: remote verification is only for tokens that are not JWTs or
    /// when we have no usable key; never after a signature, expiry, `typ` or
    /// scope failure. (`UnknownKid` first deserves a JWKS refetch.)
    pub fn wants_remote_verify(&self) -> bool {
        matches!(self, Self::NotAJwt | Self::NoUsableKeys)
    }
}

/// Verifies an FxA access token against `keys` at time `now_secs`.
pub fn verify_access_token(
    token: &str,
    keys: &[Jwk],
    now_secs: u64,
) -> Result<AccessClaims, JwtError> {
    let jwt = split_jwt(token)?;
    if jwt.header.alg != "RS256" {
        return Err(JwtError::UnsupportedAlgorithm(jwt.header.alg));
    }
    let candidates = candidate_keys(keys, jwt.header.kid.as_deref())?;
    let authentic = candidates
        .iter()
        .any(|key| signature_ok(jwt.signature, jwt.signing_input, key));
    if !authentic {
        return Err(JwtError::BadSignature);
    }
    // Everything below reads data that is now known to come from FxA.
    check_typ(jwt.header.typ)?;
    check_claims(&jwt.payload, now_secs)
}

/// The JOSE header members we look at.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// A structurally valid, not yet verified JWT.
struct RawJwt<'a> {
    header: JoseHeader,
    /// `b64(header) "." b64(payload)`: the bytes the signature covers.
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: &'a str,
}

fn split_jwt(token: &str) -> Result<RawJwt<'_>, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::NotAJwt);
    };
    let decode = |seg: &str| URL_SAFE_NO_PAD.decode(seg).map_err(|_| JwtError::NotAJwt);
    let header: JoseHeader = serde_json::from_slice(&decode(h)?).map_err(|_| JwtError::NotAJwt)?;
    let payload = decode(p)?;
    // Decoded only to classify garbage as "not a JWT"; jsonwebtoken decodes
    // it again for the actual check.
    decode(s)?;
    Ok(RawJwt {
        header,
        signing_input: &token[..h.len() + 1 + p.len()],
        payload,
        signature: s,
    })
}

/// RSA keys usable for RS256 signatures, narrowed by the token's `kid`.
///
/// Keys without a `kid` (e.g. a statically configured JWK) are tried when no
/// key carries the token's `kid`.
fn candidate_keys(keys: &[Jwk], kid: Option<&str>) -> Result<Vec<DecodingKey>, JwtError> {
    let usable: Vec<(&Jwk, DecodingKey)> = keys
        .iter()
        .filter_map(|k| decoding_key(k).map(|d| (k, d)))
        .collect();
    if usable.is_empty() {
        return Err(JwtError::NoUsableKeys);
    }
    let Some(kid) = kid else {
        return Ok(usable.into_iter().map(|(_, d)| d).collect());
    };
    let pick = |want: Option<&str>| -> Vec<DecodingKey> {
        usable
            .iter()
            .filter(|(k, _)| k.kid.as_deref() == want)
            .map(|(_, d)| d.clone())
            .collect()
    };
    let exact = pick(Some(kid));
    if !exact.is_empty() {
        return Ok(exact);
    }
    let kidless = pick(None);
    if kidless.is_empty() {
        Err(JwtError::UnknownKid(kid.to_owned()))
    } else {
        Ok(kidless)
    }
}

/// A `DecodingKey` for an RSA signing JWK, or `None` if it cannot be used
/// for RS256 (other key types are skipped rather than failing the set).
fn decoding_key(jwk: &Jwk) -> Option<DecodingKey> {
    let rsa = jwk.kty == "RSA";
    let alg_ok = jwk.alg.as_deref().is_none_or(|a| a == "RS256");
    let use_ok = jwk.use_.as_deref().is_none_or(|u| u == "sig");
    if !(rsa && alg_ok && use_ok) {
        return None;
    }
    DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()
}

/// A bad signature or an unusable key just means "try the next key".
fn signature_ok(signature: &str, signing_input: &str, key: &DecodingKey) -> bool {
    jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), key, Algorithm::RS256)
        .unwrap_or(false)
}

/// `typ` must be `at+jwt` (media type `application/at+jwt`, RFC 9068),
/// case-insensitively, with the `application/` prefix optional.
fn check_typ(typ: Option<String>) -> Result<(), JwtError> {
    let ok = typ.as_deref().is_some_and(|t| {
        let full = if t.contains('/') {
            t.to_owned()
        } else {
            format!("application/{t}")
        };
        full.eq_ignore_ascii_case("application/at+jwt")
    });
    if ok {
        Ok(())
    } else {
        Err(JwtError::WrongType(typ))
    }
}

fn check_claims(payload: &[u8], now_secs: u64) -> Result<AccessClaims, JwtError> {
    let claims: serde_json::Map<String, Value> =
        serde_json::from_slice(payload).map_err(|_| JwtError::InvalidClaim("payload"))?;
    let exp = claims
        .get("exp")
        .and_then(numeric_seconds)
        .ok_or(JwtError::InvalidClaim("exp"))?;
    let now = i64::try_from(now_secs).unwrap_or(i64::MAX);
    if exp.saturating_add(EXP_LEEWAY_SECS) <= now {
        return Err(JwtError::Expired);
    }
    if !scope_claim_has_oldsync(claims.get("scope")) {
        return Err(JwtError::MissingScope);
    }
    let fxa_uid = match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(JwtError::InvalidClaim("sub")),
    };
    let generation = match claims.get("fxa-generation") {
        None | Some(Value::Null) => None,
        Some(v) => Some(numeric_seconds(v).ok_or(JwtError::InvalidClaim("fxa-generation"))?),
    };
    Ok(AccessClaims {
        fxa_uid,
        generation,
    })
}

/// An integer JSON number, also accepting whole floats like `1.7e12`.
fn numeric_seconds(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    // `as` saturates, so an absurd value cannot wrap around into the past.
    (f.fract() == 0.0).then_some(f as i64)
}

fn scope_claim_has_oldsync(scope: Option<&Value>) -> bool {
    match scope {
        Some(Value::String(s)) => scope_contains_oldsync(s),
        Some(Value::Array(items)) => items
            .iter()
            .any(|v| v.as_str().is_some_and(scope_contains_oldsync)),
        _ => false,
    }
}

/// True when a scope string (space- and/or comma-separated, as FxA and RS
/// respectively produce) contains exactly the oldsync scope.
pub fn scope_contains_oldsync(scope: &str) -> bool {
    scope
        .split(|c: char| c.is_whitespace() || c == ',')
        .any(|s| s == OLDSYNC_SCOPE)
}

/// Same check for a list of scopes, as `/v1/verify` returns them.
pub fn scopes_contain_oldsync<S: AsRef<str>>(scopes: &[S]) -> bool {
    scopes.iter().any(|s| scope_contains_oldsync(s.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const VECTORS: &str = include_str!("../../tests/fixtures/vectors/fxa_jwt.json");

    fn vectors() -> Value {
        serde_json::from_str(VECTORS).unwrap()
    }

    fn vector_key() -> Jwk {
        serde_json::from_value(vectors()["jwk_public"].clone()).unwrap()
    }

    fn case(name: &str) -> Value {
        vectors()["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no vector {name}"))
            .clone()
    }

    fn jwt_of(c: &Value) -> String {
        c["jwt"].as_str().unwrap().to_owned()
    }

    fn iat(c: &Value) -> u64 {
        c["claims"]["iat"].as_u64().unwrap()
    }

    /// The vector's PKCS#8 test key as PKCS#1 DER (what aws-lc's signer takes):
    /// for a 2048-bit key the PKCS#8 wrapper is a fixed 26-byte prefix.
    fn signing_key() -> EncodingKey {
        let pem = vectors()["private_key_pem_TEST_ONLY"]
            .as_str()
            .unwrap()
            .to_owned();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let pkcs8 = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(
            &pkcs8[7..20],
            &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01
            ]
        );
        EncodingKey::from_rsa_der(&pkcs8[26..])
    }

    fn good_claims() -> Value {
        case("valid_oldsync_token")["claims"].clone()
    }

    /// Mints an RS256 token with the vector key.
    fn mint(typ: Option<&str>, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = typ.map(str::to_owned);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &signing_key()).unwrap()
    }

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn vector_cases_all_covered() {
        let names: Vec<String> = vectors()["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "valid_oldsync_token",
                "wrong_typ_rejected",
                "expired_rejected",
                "missing_oldsync_scope_rejected"
            ]
        );
        assert_eq!(vectors()["required_scope"], OLDSYNC_SCOPE);
    }

    #[test]
    fn vector_valid_token_accepted() {
        let c = case("valid_oldsync_token");
        assert_eq!(c["pyfxa_result"]["accepted"], true);
        let out = &c["pyfxa_result"]["verify_output"];
        let claims = verify_access_token(&jwt_of(&c), &[vector_key()], iat(&c)).unwrap();
        assert_eq!(claims.fxa_uid, out["user"].as_str().unwrap());
        assert_eq!(claims.generation, out["generation"].as_i64());
        assert_eq!(claims.generation, Some(1_700_000_000_000));
    }

    #[test]
    fn vector_valid_token_expiry_leeway() {
        let c = case("valid_oldsync_token");
        let exp = c["claims"]["exp"].as_u64().unwrap();
        let keys = [vector_key()];
        assert!(verify_access_token(&jwt_of(&c), &keys, exp).is_ok());
        assert!(verify_access_token(&jwt_of(&c), &keys, exp + 59).is_ok());
        assert_eq!(
            verify_access_token(&jwt_of(&c), &keys, exp + 60),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn vector_wrong_typ_rejected() {
        let c = case("wrong_typ_rejected");
        assert_eq!(c["pyfxa_result"]["accepted"], false);
        assert_eq!(
            verify_access_token(&jwt_of(&c), &[vector_key()], iat(&c)),
            Err(JwtError::WrongType(Some("JWT".into())))
        );
    }

    #[test]
    fn vector_expired_rejected() {
        let c = case("expired_rejected");
        assert_eq!(c["pyfxa_result"]["accepted"], false);
        let exp = c["claims"]["exp"].as_u64().unwrap();
        let keys = [vector_key()];
        assert_eq!(
            verify_access_token(&jwt_of(&c), &keys, iat(&c)),
            Err(JwtError::Expired)
        );
        // Still inside the 60 s leeway just after exp: the rest is valid.
        assert!(verify_access_token(&jwt_of(&c), &keys, exp + 30).is_ok());
    }

    #[test]
    fn vector_missing_scope_rejected() {
        let c = case("missing_oldsync_scope_rejected");
        assert_eq!(c["pyfxa_result"]["accepted"], false);
        assert_eq!(
            verify_access_token(&jwt_of(&c), &[vector_key()], iat(&c)),
            Err(JwtError::MissingScope)
        );
    }

    #[test]
    fn unknown_kid_is_reported() {
        let c = case("valid_oldsync_token");
        let mut key = vector_key();
        key.kid = Some("another-kid".into());
        assert_eq!(
            verify_access_token(&jwt_of(&c), &[key], iat(&c)),
            Err(JwtError::UnknownKid("20240101-test".into()))
        );
    }

    #[test]
    fn kidless_key_is_tried_for_kid_token() {
        let c = case("valid_oldsync_token");
        let mut key = vector_key();
        key.kid = None;
        assert!(verify_access_token(&jwt_of(&c), &[key], iat(&c)).is_ok());
    }

    /// A key with the right kid but another modulus fails, and the next
    /// candidate is tried.
    #[test]
    fn bad_signature_tries_next_key() {
        let c = case("valid_oldsync_token");
        let mut wrong = vector_key();
        let n = wrong.n.clone().unwrap();
        let flipped = if n.starts_with('p') { "q" } else { "p" };
        wrong.n = Some(format!("{flipped}{}", &n[1..]));
        let keys = [wrong.clone(), vector_key()];
        assert!(verify_access_token(&jwt_of(&c), &keys, iat(&c)).is_ok());
        assert_eq!(
            verify_access_token(&jwt_of(&c), &[wrong], iat(&c)),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn tampered_token_is_bad_signature() {
        let c = case("valid_oldsync_token");
        let jwt = jwt_of(&c);
        let keys = [vector_key()];
        // Change the payload (scope dropped) but keep the signature.
        let parts: Vec<&str> = jwt.split('.').collect();
        let mut claims = good_claims();
        claims["sub"] = json!("someone-else");
        let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(
            verify_access_token(&forged, &keys, NOW),
            Err(JwtError::BadSignature)
        );
        // Flip a signature character.
        let mut sig = parts[2].to_owned();
        let other = if &sig[10..11] == "A" { "B" } else { "A" };
        sig.replace_range(10..11, other);
        let forged = format!("{}.{}.{}", parts[0], parts[1], sig);
        assert_eq!(
            verify_access_token(&forged, &keys, NOW),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_not_a_jwt() {
        let keys = [vector_key()];
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "!!!.e30.e30",
            "e30.e30",
            "bm90IGpzb24.e30.e30", // header is not JSON
            "e30.e30.e30",         // header without alg
            "eyJhbGciOiJSUzI1NiJ9.!!!.e30",
            "eyJhbGciOiJSUzI1NiJ9.e30.!!!",
            "2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e",
        ] {
            let err = verify_access_token(token, &keys, NOW).unwrap_err();
            assert_eq!(err, JwtError::NotAJwt, "{token}");
            assert!(err.wants_remote_verify());
        }
    }

    #[test]
    fn other_algorithms_rejected() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"at+jwt"}"#);
        let payload = URL_SAFE_NO_PAD.encode(good_claims().to_string());
        let token = format!("{header}.{payload}.c2ln");
        assert_eq!(
            verify_access_token(&token, &[vector_key()], NOW),
            Err(JwtError::UnsupportedAlgorithm("HS256".into()))
        );
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let token = format!("{header}.{payload}.");
        assert_eq!(
            verify_access_token(&token, &[vector_key()], NOW),
            Err(JwtError::UnsupportedAlgorithm("none".into()))
        );
    }

    #[test]
    fn no_usable_keys() {
        let c = case("valid_oldsync_token");
        let ec = Jwk {
            kty: "EC".into(),
            alg: Some("ES256".into()),
            kid: Some("20240101-test".into()),
            use_: Some("sig".into()),
            n: None,
            e: None,
        };
        let mut enc = vector_key();
        enc.use_ = Some("enc".into());
        for keys in [vec![], vec![ec], vec![enc]] {
            let err = verify_access_token(&jwt_of(&c), &keys, NOW).unwrap_err();
            assert_eq!(err, JwtError::NoUsableKeys);
            assert!(err.wants_remote_verify());
        }
    }

    #[test]
    fn typ_variants() {
        let claims = good_claims();
        let keys = [vector_key()];
        for typ in [
            "at+JWT",
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/AT+JWT",
        ] {
            let t = mint(Some(typ), None, &claims);
            assert!(verify_access_token(&t, &keys, NOW).is_ok(), "{typ}");
        }
        for typ in [
            "JWT",
            "jwt",
            "text/at+jwt",
            "at+jwt2",
            "application/jwt",
            "",
        ] {
            let t = mint(Some(typ), None, &claims);
            assert_eq!(
                verify_access_token(&t, &keys, NOW),
                Err(JwtError::WrongType(Some(typ.to_owned()))),
                "{typ}"
            );
        }
        let t = mint(None, None, &claims);
        assert_eq!(
            verify_access_token(&t, &keys, NOW),
            Err(JwtError::WrongType(None))
        );
    }

    #[test]
    fn claim_rules() {
        let keys = [vector_key()];
        let check = |edit: &dyn Fn(&mut Value)| {
            let mut claims = good_claims();
            edit(&mut claims);
            verify_access_token(&mint(Some("at+JWT"), None, &claims), &keys, NOW)
        };
        let ok = |edit: &dyn Fn(&mut Value)| check(edit).unwrap();

        // Scope: whitespace, commas, arrays; exact match only.
        for scope in [
            json!(OLDSYNC_SCOPE),
            json!(format!("profile,{OLDSYNC_SCOPE}")),
            json!(format!("profile\t{OLDSYNC_SCOPE} openid")),
            json!(["profile", OLDSYNC_SCOPE]),
        ] {
            ok(&|c| c["scope"] = scope.clone());
        }
        for scope in [
            json!(format!("{OLDSYNC_SCOPE}:write")),
            json!("https://identity.mozilla.com/apps/oldsync/"),
            json!(""),
            json!(null),
            json!(42),
            json!([1, 2]),
        ] {
            assert_eq!(
                check(&|c| c["scope"] = scope.clone()),
                Err(JwtError::MissingScope)
            );
        }
        let no_scope = check(&|c| {
            c.as_object_mut().unwrap().remove("scope");
        });
        assert_eq!(no_scope, Err(JwtError::MissingScope));

        // exp: required, numeric; floats accepted.
        let no_exp = check(&|c| {
            c.as_object_mut().unwrap().remove("exp");
        });
        assert_eq!(no_exp, Err(JwtError::InvalidClaim("exp")));
        assert_eq!(
            check(&|c| c["exp"] = json!("4102444800")),
            Err(JwtError::InvalidClaim("exp"))
        );
        ok(&|c| c["exp"] = json!(4_102_444_800.0));

        // sub: required non-empty string.
        let no_sub = check(&|c| {
            c.as_object_mut().unwrap().remove("sub");
        });
        assert_eq!(no_sub, Err(JwtError::InvalidClaim("sub")));
        assert_eq!(
            check(&|c| c["sub"] = json!("")),
            Err(JwtError::InvalidClaim("sub"))
        );
        assert_eq!(
            check(&|c| c["sub"] = json!(5)),
            Err(JwtError::InvalidClaim("sub"))
        );

        // fxa-generation: optional integer.
        let no_gen = ok(&|c| {
            c.as_object_mut().unwrap().remove("fxa-generation");
        });
        assert_eq!(no_gen.generation, None);
        assert_eq!(ok(&|c| c["fxa-generation"] = json!(null)).generation, None);
        assert_eq!(ok(&|c| c["fxa-generation"] = json!(0)).generation, Some(0));
        assert_eq!(
            check(&|c| c["fxa-generation"] = json!("12")),
            Err(JwtError::InvalidClaim("fxa-generation"))
        );

        // aud and iss are not checked.
        let any_aud = ok(&|c| {
            c["aud"] = json!("https://elsewhere.example");
            c["iss"] = json!("https://elsewhere.example");
        });
        assert_eq!(any_aud.fxa_uid, "319b98f9961ff1dbdd07313cd6ba925a");
    }

    #[test]
    fn jwk_parsing_ignores_extra_members() {
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB","fxa-createdAt":1,"key_ops":["verify"]}"#,
        )
        .unwrap();
        assert_eq!(jwk.kid, None);
        assert_eq!(jwk.use_, None);
        let set: Value = json!({"keys": [vector_key()]});
        let round: Vec<Jwk> = serde_json::from_value(set["keys"].clone()).unwrap();
        assert_eq!(round, vec![vector_key()]);
        assert_eq!(set["keys"][0]["use"], "sig");
    }

    #[test]
    fn scope_helpers() {
        assert!(scope_contains_oldsync(OLDSYNC_SCOPE));
        assert!(scope_contains_oldsync(&format!(
            " profile , {OLDSYNC_SCOPE} "
        )));
        assert!(!scope_contains_oldsync("profile"));
        assert!(!scope_contains_oldsync(&format!("{OLDSYNC_SCOPE}x")));
        assert!(scopes_contain_oldsync(&["profile", OLDSYNC_SCOPE]));
        assert!(scopes_contain_oldsync(&[String::from(OLDSYNC_SCOPE)]));
        assert!(!scopes_contain_oldsync::<&str>(&[]));
        assert!(!scopes_contain_oldsync(&["profile"]));
    }
}
