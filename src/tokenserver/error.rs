//! The tokenserver's one error type and its HTTP mapping (docs/protocol.md §1.7.2).
//!
//! Every failure of a token request ends up here; `error_response` is the only place that
//! turns one into a status, headers and the cornice-style JSON body Firefox expects.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Seconds a client is asked to wait when Firefox Accounts cannot be reached.
const FXA_RETRY_AFTER_SECS: u64 = 30;

/// Why a token request failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenserverError {
    /// No `Authorization` header, or one without a space after the scheme.
    #[error("no usable Authorization header")]
    Unauthorized,
    /// An `Authorization` scheme other than `Bearer` (BrowserID, Hawk, …).
    #[error("unsupported Authorization scheme")]
    UnsupportedScheme,
    /// The OAuth token, or the `X-KeyID` contents, did not check out.
    #[error("invalid credentials: {0}")]
    InvalidCredentials(&'static str),
    #[error("X-KeyID header missing")]
    MissingKeyId,
    #[error("X-KeyID header is not visible ASCII")]
    InvalidKeyIdHeader,
    /// `X-Client-State` is not `^[a-zA-Z0-9._-]{1,32}$`.
    #[error("malformed X-Client-State header")]
    MalformedClientState,
    /// No `public_url` and no usable `Host` header: the token's URLs cannot be built.
    #[error("missing or unusable Host header")]
    BadHost,
    /// `X-Client-State` disagrees with the state in `X-KeyID`.
    #[error("X-Client-State does not match X-KeyID")]
    ClientStateMismatch,
    /// Rules 2–5 of §1.5.1; the reason completes "Unacceptable client-state value …".
    #[error("unacceptable client state: {0}")]
    InvalidClientState(&'static str),
    /// Rule 6 of §1.5.1.
    #[error("generation went backwards")]
    InvalidGeneration,
    /// Rules 1, 7 and 8 of §1.5.1.
    #[error("keys_changed_at is inconsistent")]
    InvalidKeysChangedAt,
    #[error("unsupported application")]
    UnsupportedApplication,
    #[error("unsupported application version {0}")]
    UnsupportedVersion(String),
    /// Unknown account while new users are off, outside the allow-list, or over `max_users`.
    #[error("new users are not allowed")]
    NewUsersDisabled,
    /// Every node is full or out of service.
    #[error("no storage node can take a new user")]
    NoNode,
    /// Firefox Accounts (JWKS and /v1/verify) could not be reached.
    #[error("Firefox Accounts is unreachable: {0}")]
    FxaUnavailable(String),
    /// The database did not answer in time.
    #[error("database timed out")]
    DatabaseTimeout,
    /// A fault on our side; the text is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for TokenserverError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => TokenserverError::DatabaseTimeout,
            e => TokenserverError::Internal(format!("tokenserver database: {e}")),
        }
    }
}

impl ResponseError for TokenserverError {
    fn status_code(&self) -> StatusCode {
        use TokenserverError::*;
        match self {
            MalformedClientState | BadHost => StatusCode::BAD_REQUEST,
            UnsupportedApplication | UnsupportedVersion(_) => StatusCode::NOT_FOUND,
            NewUsersDisabled => StatusCode::FORBIDDEN,
            NoNode | FxaUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            DatabaseTimeout => StatusCode::GATEWAY_TIMEOUT,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Unauthorized
            | UnsupportedScheme
            | InvalidCredentials(_)
            | MissingKeyId
            | InvalidKeyIdHeader
            | ClientStateMismatch
            | InvalidClientState(_)
            | InvalidGeneration
            | InvalidKeysChangedAt => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (status, location, name, description) = self.body_parts();
        match self {
            // Logged here, once, with the cause; the client only sees "Server error".
            TokenserverError::Internal(cause) => tracing::error!(%cause, "token request failed"),
            TokenserverError::FxaUnavailable(cause) => {
                tracing::warn!(%cause, "token request failed: Firefox Accounts unreachable")
            }
            TokenserverError::NoNode | TokenserverError::DatabaseTimeout => {
                tracing::error!(error = %self, "token request failed")
            }
            _ => tracing::debug!(error = %self, "token request refused"),
        }
        // Structs, not `json!`, so the keys keep RS's order (a `json!` map sorts them).
        let body = ErrorBody {
            status,
            errors: [ErrorEntry {
                location,
                name: &name,
                description: &description,
            }],
        };
        let body = serde_json::to_string(&body).unwrap_or_else(|_| "{}".into());
        let mut res = HttpResponse::build(self.status_code());
        res.content_type("application/json")
            .insert_header(("X-Content-Type-Options", "nosniff"));
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            res.insert_header((header::RETRY_AFTER, HeaderValue::from(FXA_RETRY_AFTER_SECS)));
        }
        res.body(body)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'a str,
    errors: [ErrorEntry<'a>; 1],
}

#[derive(Serialize)]
struct ErrorEntry<'a> {
    location: &'a str,
    name: &'a str,
    description: &'a str,
}

impl TokenserverError {
    /// `(status, location, name, description)` of the §1.7.2 table.
    fn body_parts(&self) -> (&'static str, &'static str, String, String) {
        use TokenserverError::*;
        let plain = |status, description: &str| (status, "body", String::new(), description.into());
        match self {
            Unauthorized => plain("error", "Unauthorized"),
            UnsupportedScheme => plain("error", "Unsupported"),
            InvalidCredentials(_) => plain("invalid-credentials", "Unauthorized"),
            MissingKeyId => (
                "invalid-key-id",
                "header",
                String::new(),
                "Missing X-KeyID header".into(),
            ),
            InvalidKeyIdHeader => (
                "invalid-key-id",
                "header",
                String::new(),
                "Invalid X-KeyID header".into(),
            ),
            MalformedClientState => (
                "error",
                "header",
                "X-Client-State".into(),
                "Invalid client state value".into(),
            ),
            BadHost => (
                "error",
                "header",
                "Host".into(),
                "Invalid Host header".into(),
            ),
            ClientStateMismatch => plain("invalid-client-state", "Unauthorized"),
            InvalidClientState(reason) => (
                "invalid-client-state",
                "header",
                "X-Client-State".into(),
                format!("Unacceptable client-state value {reason}"),
            ),
            InvalidGeneration => plain("invalid-generation", "Unauthorized"),
            InvalidKeysChangedAt => plain("invalid-keysChangedAt", "Unauthorized"),
            UnsupportedApplication => (
                "error",
                "url",
                "application".into(),
                "Unsupported application".into(),
            ),
            UnsupportedVersion(version) => (
                "error",
                "url",
                version.clone(),
                "Unsupported application version".into(),
            ),
            NewUsersDisabled => plain("new-users-disabled", "New users are not allowed"),
            NoNode | Internal(_) => (
                "internal-error",
                "internal",
                String::new(),
                "Server error".into(),
            ),
            FxaUnavailable(_) => plain("error", "Resource is not available"),
            DatabaseTimeout => plain("elapsed", "Elapsed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(e: &TokenserverError) -> serde_json::Value {
        let bytes = e.error_response().into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn key_order_is_status_then_errors() {
        let bytes = TokenserverError::InvalidGeneration
            .error_response()
            .into_body()
            .try_into_bytes()
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"status":"invalid-generation","errors":[{"location":"body","name":"","description":"Unauthorized"}]}"#
        );
    }

    #[test]
    fn unavailable_has_retry_after() {
        let res = TokenserverError::FxaUnavailable("x".into()).error_response();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers().get("retry-after").unwrap(), "30");
        assert_eq!(
            res.headers().get("x-content-type-options").unwrap(),
            "nosniff"
        );
        let body = body_of(&TokenserverError::FxaUnavailable("x".into()));
        assert_eq!(
            body["errors"][0]["description"],
            "Resource is not available"
        );
    }

    #[test]
    fn pool_timeout_is_504_elapsed() {
        let e = TokenserverError::from(sqlx::Error::PoolTimedOut);
        let res = e.error_response();
        assert_eq!(res.status(), 504);
        let bytes = res.into_body().try_into_bytes().unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"status":"elapsed","errors":[{"location":"body","name":"","description":"Elapsed"}]}"#
        );
    }

    #[test]
    fn internal_cause_is_not_sent() {
        let e = TokenserverError::Internal("secret path /x".into());
        let text = body_of(&e).to_string();
        assert!(!text.contains("/x"), "{text}");
        assert_eq!(e.status_code(), 500);
    }
}
