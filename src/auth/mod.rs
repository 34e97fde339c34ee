//! Crypto core: tokenlib-compatible tokens, Hawk request signing, FxA JWT checks.
//!
//! Everything here is pure (no I/O, no clock): callers pass the current time
//! where it matters, which keeps the protocol vectors verifiable forever.
//!
//! * [`token`] — token ids and derived Hawk keys (docs/protocol.md §2).
//! * [`hawk`] — `Authorization: Hawk` parsing, MACs, payload hashes (§3.1–3.3).
//! * [`fxa_jwt`] — local verification of FxA OAuth JWT access tokens (§1.3.1).
//! * [`fxa_ids`] — metrics hashes and the `X-KeyID` / `fxa_kid` format (§1.2, §1.8).

pub mod fxa_ids;
pub mod fxa_jwt;
pub mod hawk;
mod primitives;
pub mod token;

pub use fxa_ids::{
    KeyIdError, NO_DEVICE_ID, fxa_kid, hashed_device_id, hashed_fxa_uid, parse_key_id,
};
pub use fxa_jwt::{
    AccessClaims, Jwk, JwtError, OLDSYNC_SCOPE, scope_contains_oldsync, scopes_contain_oldsync,
    verify_access_token,
};
pub use hawk::{HawkError, HawkHeader, RequestTarget};
pub use token::{
    IssuedToken, TokenError, TokenPayload, TokenSecret, VerifiedToken, make_token, new_salt,
    parse_token,
};
