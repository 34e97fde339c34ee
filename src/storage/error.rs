//! The storage layer's one error type and the one place it becomes an HTTP response: a status,
//! a bare Weave error code as the JSON body (PROTOCOL.md §4.12) and the headers that go with
//! it. `X-Weave-Timestamp` is added to every storage response by the scope middleware.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use super::timestamp::format_ts;

/// Weave error codes this server emits.
pub const WEAVE_UNKNOWN: u8 = 0;
pub const WEAVE_INVALID_WBO: u8 = 8;
pub const WEAVE_OVER_QUOTA: u8 = 14;
pub const WEAVE_SIZE_LIMIT: u8 = 17;

/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECS: &str = "10";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Hawk or token failure; the reason is only logged.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A malformed request; carries the Weave code for the body.
    #[error("bad request (weave code {0})")]
    BadRequest(u8),
    #[error("not modified")]
    NotModified { last_modified: i64 },
    #[error("precondition failed")]
    PreconditionFailed { last_modified: i64 },
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body stopped arriving.
    #[error("request body timed out")]
    BodyTimeout,
    #[error("unsupported content type")]
    UnsupportedMediaType,
    #[error("not acceptable")]
    NotAcceptable,
    #[error("over quota")]
    OverQuota,
    /// The disk refused (full, I/O error): the client should retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Another process holds the user's file (`syncserver purge`, `users delete`, or for
    /// those, the running server): retry later, like `Unavailable`.
    #[error("storage file busy: {0}")]
    Busy(String),
    /// A server fault; logged once when the response is built.
    #[error("internal error: {0}")]
    Internal(String),
}

impl StorageError {
    pub fn bad_request() -> Self {
        StorageError::BadRequest(WEAVE_UNKNOWN)
    }

    pub fn invalid_bso() -> Self {
        StorageError::BadRequest(WEAVE_INVALID_WBO)
    }

    fn weave_code(&self) -> Option<u8> {
        match self {
            StorageError::BadRequest(code) => Some(*code),
            StorageError::PayloadTooLarge => Some(WEAVE_SIZE_LIMIT),
            StorageError::OverQuota => Some(WEAVE_OVER_QUOTA),
            StorageError::NotModified { .. } | StorageError::PreconditionFailed { .. } => None,
            _ => Some(WEAVE_UNKNOWN),
        }
    }
}

impl ResponseError for StorageError {
    fn status_code(&self) -> StatusCode {
        match self {
            StorageError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            StorageError::NotFound => StatusCode::NOT_FOUND,
            StorageError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            StorageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            StorageError::NotModified { .. } => StatusCode::NOT_MODIFIED,
            StorageError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            StorageError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            StorageError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            StorageError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StorageError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            StorageError::OverQuota => StatusCode::FORBIDDEN,
            StorageError::Unavailable(_) | StorageError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            StorageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            StorageError::Unauthorized(reason) => {
                tracing::debug!(%reason, "storage request refused")
            }
            StorageError::Unavailable(cause) | StorageError::Busy(cause) => {
                tracing::warn!(%cause, "storage unavailable")
            }
            StorageError::BodyTimeout => tracing::info!("request body stopped arriving"),
            StorageError::Internal(cause) => tracing::error!(%cause, "storage internal error"),
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        match self {
            StorageError::Unauthorized(_) => {
                res.insert_header(("WWW-Authenticate", "Hawk"));
            }
            StorageError::Unavailable(_) | StorageError::Busy(_) => {
                res.insert_header(("Retry-After", RETRY_AFTER_SECS));
            }
            StorageError::NotModified { last_modified }
            | StorageError::PreconditionFailed { last_modified } => {
                res.insert_header(("X-Last-Modified", format_ts(*last_modified)));
            }
            _ => {}
        }
        match self.weave_code() {
            Some(code) => res.content_type("application/json").body(code.to_string()),
            None => res.finish(),
        }
    }
}

/// SQLite errors caused by the disk or by contention are retryable (503); anything else is a
/// server fault (500).
impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::*;
        match e.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked) => StorageError::Busy(e.to_string()),
            Some(
                DiskFull
                | SystemIoFailure
                | CannotOpen
                | ReadOnly
                | OutOfMemory
                | FileLockingProtocolFailed,
            ) => StorageError::Unavailable(e.to_string()),
            _ => StorageError::Internal(e.to_string()),
        }
    }
}

impl StorageError {
    /// Whether the connection that produced this error should be dropped and reopened.
    pub fn drops_connection(&self) -> bool {
        matches!(self, StorageError::Unavailable(_) | StorageError::Busy(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(res: HttpResponse) -> String {
        let bytes = res.into_body().try_into_bytes().unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn disk_full_and_busy_are_503_with_retry_after() {
        for (code, busy) in [
            (rusqlite::ffi::SQLITE_FULL, false),
            (rusqlite::ffi::SQLITE_BUSY, true),
            (rusqlite::ffi::SQLITE_LOCKED, true),
        ] {
            let sqlite = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
            let e = StorageError::from(sqlite);
            assert_eq!(matches!(e, StorageError::Busy(_)), busy, "{e}");
            assert!(e.drops_connection());
            let res = e.error_response();
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                res.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
                Some("10")
            );
            assert_eq!(body_of(res), "0");
        }
    }

    #[test]
    fn bodies_are_bare_weave_codes() {
        let cases = [
            (StorageError::invalid_bso(), 400, "8"),
            (StorageError::PayloadTooLarge, 413, "17"),
            (StorageError::BodyTimeout, 408, "0"),
            (StorageError::OverQuota, 403, "14"),
            (StorageError::Unauthorized("x".into()), 401, "0"),
            (StorageError::NotFound, 404, "0"),
            (StorageError::Internal("x".into()), 500, "0"),
            (
                StorageError::PreconditionFailed {
                    last_modified: 1230,
                },
                412,
                "",
            ),
        ];
        for (e, status, body) in cases {
            let res = e.error_response();
            assert_eq!(res.status().as_u16(), status);
            assert_eq!(body_of(res), body);
        }
        let res = StorageError::Unauthorized("x".into()).error_response();
        assert_eq!(
            res.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Hawk")
        );
    }
}
