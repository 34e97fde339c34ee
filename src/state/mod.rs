//! State shared by every part of the server, below all of them: the settings, the clock,
//! the token secret and the request's effective URL. The HTTP wiring (`server`) builds one
//! [`AppState`] per process and hands it to storage, the tokenserver and the pages, which
//! know nothing of the wiring itself.

pub mod origin;
pub mod user_store;

use actix_web::{HttpMessage, HttpRequest};

use crate::auth::token::TokenSecret;
use crate::clock::SharedClock;
use crate::config::{PublicUrl, Settings};

pub use origin::RequestOrigin;
pub use user_store::{UserStore, UserUsage};

/// State shared by every worker; built once per process, before the HTTP workers start
/// (state built inside actix's app factory would exist once per worker).
pub struct AppState {
    pub settings: Settings,
    pub public_url: Option<PublicUrl>,
    pub clock: SharedClock,
    /// Signs and verifies tokens with the master secret.
    pub tokens: TokenSecret,
}

impl AppState {
    /// The effective URL of `req` (see `origin`).
    pub fn origin(&self, req: &HttpRequest) -> Option<RequestOrigin> {
        RequestOrigin::of(req, self.public_url.as_ref())
    }
}

/// The uid a request acted for, recorded by handlers for the request log line.
#[derive(Debug, Clone, Copy)]
pub struct RequestUid(pub u64);

/// Records the uid a request acts for, so the request log line can show it.
pub fn note_uid(req: &HttpRequest, uid: u64) {
    req.extensions_mut().insert(RequestUid(uid));
}
