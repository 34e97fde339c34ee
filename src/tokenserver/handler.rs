//! `GET /1.0/{application}/{version}`: checks the request headers, verifies the FxA token,
//! applies the user-record rules and mints a storage token (docs/protocol.md §1.1–1.2, §1.7–1.8).

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::Tokenserver;
use super::error::TokenserverError;
use super::fxa::VerifyError;
use super::rules::{self, Presented};
use crate::auth::fxa_ids::{self, NO_DEVICE_ID};
use crate::auth::token::{TokenPayload, make_token, new_salt};
use crate::state::{self, AppState};

/// What the headers of a token request carry, before the token is verified.
#[derive(Debug, PartialEq, Eq)]
pub struct Credentials {
    pub bearer: String,
    /// keys_changed_at from `X-KeyID` (0 included; the rules treat it as absent).
    pub keys_changed_at: i64,
    /// Lowercase hex.
    pub client_state: String,
}

/// The success body, in syncstorage-rs's field order.
#[derive(Serialize)]
struct TokenResponse<'a> {
    id: &'a str,
    key: &'a str,
    uid: i64,
    api_endpoint: &'a str,
    duration: u64,
    hashed_fxa_uid: &'a str,
    hashalg: &'static str,
    node_type: &'static str,
}

pub async fn get_token(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    ts: web::Data<Tokenserver>,
) -> Result<HttpResponse, TokenserverError> {
    let (application, version) = path.into_inner();
    // The URL is checked first, so a request for an unknown service never reaches FxA.
    check_application(&application, &version)?;
    let creds = parse_headers(req.headers())?;
    let verified = ts.fxa.verify(&creds.bearer).await.map_err(|e| match e {
        VerifyError::Rejected(reason) => {
            tracing::debug!(%reason, "FxA token rejected");
            TokenserverError::InvalidCredentials("FxA token rejected")
        }
        VerifyError::Unavailable(cause) => TokenserverError::FxaUnavailable(cause),
    })?;
    let fxa_uid = verified.fxa_uid;
    if !ts.allowed_fxa_uids.is_empty() && !ts.allowed_fxa_uids.contains(&fxa_uid) {
        tracing::info!(account = %ts.log_id(&fxa_uid), "account not in allowed_fxa_uids");
        return Err(TokenserverError::NewUsersDisabled);
    }
    let origin = state.origin(&req).ok_or(TokenserverError::BadHost)?;
    let presented = Presented::new(
        verified.generation,
        Some(creds.keys_changed_at),
        &creds.client_state,
    );
    let email = format!("{fxa_uid}@{}", state.settings.tokenserver.fxa_email_domain);
    let now_ms = state.clock.now_ms();
    let user = ts
        .db
        .get_or_create_user(&email, &presented, now_ms, ts.new_user_policy)
        .await?;
    let duration = requested_duration(
        req.query_string(),
        state.settings.tokenserver.token_duration,
    );
    let node = origin.base_url();
    let kid_number = rules::kid_number(user.generation, user.keys_changed_at);
    let fxa_kid = fxa_ids::fxa_kid(kid_number, &user.client_state).map_err(|e| {
        TokenserverError::Internal(format!("user row {} has a bad client_state: {e}", user.uid))
    })?;
    let uid = u64::try_from(user.uid)
        .map_err(|_| TokenserverError::Internal(format!("negative uid {}", user.uid)))?;
    let now_secs = state.clock.now_secs();
    let hashed_fxa_uid = fxa_ids::hashed_fxa_uid(&ts.metrics_secret, &fxa_uid);
    let payload = TokenPayload {
        node: node.clone(),
        fxa_kid,
        fxa_uid: fxa_uid.clone(),
        hashed_device_id: fxa_ids::hashed_device_id(&ts.metrics_secret, &fxa_uid, NO_DEVICE_ID),
        hashed_fxa_uid: hashed_fxa_uid.clone(),
        expires: now_secs.saturating_add(i64::try_from(duration).unwrap_or(i64::MAX)),
        uid,
        tokenserver_origin: Some("rust".into()),
        salt: new_salt(),
    };
    let token = make_token(&state.tokens, &payload);
    state::note_uid(&req, uid);
    tracing::debug!(uid, account = %ts.log_id(&fxa_uid), "token issued");
    if user.replaced_uid.is_some() {
        tracing::info!(uid, old_uid = user.replaced_uid, "user moved to a new uid");
    }
    // A clean-up pass piggybacks on token requests when the clock says one is due.
    ts.cleanup.run_if_due().await;
    let api_endpoint = format!("{node}/1.5/{uid}");
    let body = TokenResponse {
        id: &token.id,
        key: &token.key,
        uid: user.uid,
        api_endpoint: &api_endpoint,
        duration,
        hashed_fxa_uid: &hashed_fxa_uid,
        hashalg: "sha256",
        node_type: "sqlite",
    };
    Ok(HttpResponse::Ok()
        .insert_header(("X-Timestamp", now_secs.to_string()))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .json(body))
}

/// Any method other than GET on a token path.
pub async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "GET"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .content_type("application/json")
        .body(
            r#"{"status":"error","errors":[{"location":"url","name":"","description":"Method not allowed"}]}"#,
        )
}

fn check_application(application: &str, version: &str) -> Result<(), TokenserverError> {
    if application != "sync" {
        return Err(TokenserverError::UnsupportedApplication);
    }
    if version != "1.5" {
        return Err(TokenserverError::UnsupportedVersion(version.to_string()));
    }
    Ok(())
}

/// §1.2: `Authorization`, `X-KeyID` and the legacy `X-Client-State`, in that order.
pub fn parse_headers(headers: &HeaderMap) -> Result<Credentials, TokenserverError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .ok_or(TokenserverError::Unauthorized)?
        .to_str()
        .map_err(|_| TokenserverError::Unauthorized)?;
    let (scheme, bearer) = auth.split_once(' ').ok_or(TokenserverError::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenserverError::UnsupportedScheme);
    }
    if bearer.is_empty() {
        return Err(TokenserverError::InvalidCredentials("empty bearer token"));
    }
    let key_id = headers
        .get("x-keyid")
        .ok_or(TokenserverError::MissingKeyId)?
        .to_str()
        .map_err(|_| TokenserverError::InvalidKeyIdHeader)?;
    let (keys_changed_at, client_state) = fxa_ids::parse_key_id(key_id)
        .map_err(|_| TokenserverError::InvalidCredentials("malformed X-KeyID"))?;
    if let Some(legacy) = headers.get("x-client-state") {
        let legacy = legacy
            .to_str()
            .ok()
            .filter(|v| valid_client_state_header(v))
            .ok_or(TokenserverError::MalformedClientState)?;
        // Exact, as RS compares: the legacy header carries lowercase hex (§1.2).
        if legacy != client_state {
            return Err(TokenserverError::ClientStateMismatch);
        }
    }
    Ok(Credentials {
        bearer: bearer.to_string(),
        keys_changed_at,
        client_state,
    })
}

/// `^[a-zA-Z0-9._-]{1,32}$`
fn valid_client_state_header(value: &str) -> bool {
    (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `?duration=N` is honoured for `1 <= N <= default`; anything else gives the default.
fn requested_duration(query: &str, default: u64) -> u64 {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "duration")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .filter(|d| (1..=default).contains(d))
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut req = TestRequest::default();
        for (k, v) in pairs {
            req = req.insert_header((*k, *v));
        }
        req.to_http_request().headers().clone()
    }

    #[test]
    fn header_errors_in_order() {
        use TokenserverError as E;
        let kid = ("X-KeyID", "1234-qqo");
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![kid], "Unauthorized"),
            (vec![("Authorization", "Bearer"), kid], "Unauthorized"),
            (
                vec![("Authorization", "BrowserID abc"), kid],
                "UnsupportedScheme",
            ),
            (vec![("Authorization", "Bearer tok")], "MissingKeyId"),
            (
                vec![("Authorization", "Bearer tok"), ("X-KeyID", "1234-state!")],
                "InvalidCredentials",
            ),
            (
                vec![("Authorization", "Bearer tok"), ("X-KeyID", "1234")],
                "InvalidCredentials",
            ),
            (
                vec![
                    ("Authorization", "Bearer tok"),
                    kid,
                    ("X-Client-State", "state!"),
                ],
                "MalformedClientState",
            ),
            (
                vec![
                    ("Authorization", "Bearer tok"),
                    kid,
                    ("X-Client-State", "bbbb"),
                ],
                "ClientStateMismatch",
            ),
            (
                vec![
                    ("Authorization", "Bearer tok"),
                    kid,
                    ("X-Client-State", "AAAA"),
                ],
                "ClientStateMismatch",
            ),
        ];
        for (pairs, want) in cases {
            let got = parse_headers(&headers(&pairs)).unwrap_err();
            let name = match got {
                E::Unauthorized => "Unauthorized",
                E::UnsupportedScheme => "UnsupportedScheme",
                E::MissingKeyId => "MissingKeyId",
                E::InvalidCredentials(_) => "InvalidCredentials",
                E::MalformedClientState => "MalformedClientState",
                E::ClientStateMismatch => "ClientStateMismatch",
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(name, want, "{pairs:?}");
        }
    }

    #[test]
    fn good_headers() {
        let h = headers(&[
            ("Authorization", "bEaReR a b"),
            ("X-KeyId", "0000000001234-qqo"),
            ("X-Client-State", "aaaa"),
        ]);
        assert_eq!(
            parse_headers(&h).unwrap(),
            Credentials {
                bearer: "a b".into(),
                keys_changed_at: 1234,
                client_state: "aaaa".into()
            }
        );
    }

    #[test]
    fn duration_rules() {
        assert_eq!(requested_duration("duration=12", 3600), 12);
        assert_eq!(requested_duration("duration=3600", 3600), 3600);
        for q in [
            "duration=4000",
            "duration=lolwut",
            "duration=-1",
            "duration=0",
            "",
            "x=1",
        ] {
            assert_eq!(requested_duration(q, 3600), 3600, "{q}");
        }
    }

    #[test]
    fn application_check() {
        assert!(check_application("sync", "1.5").is_ok());
        assert!(matches!(
            check_application("xXx", "token"),
            Err(TokenserverError::UnsupportedApplication)
        ));
        assert!(matches!(
            check_application("sync", "1.2"),
            Err(TokenserverError::UnsupportedVersion(v)) if v == "1.2"
        ));
    }
}
