//! A stand-in for Firefox Accounts' OAuth server on 127.0.0.1:0, inside the test process:
//! `GET /v1/jwks` serves switchable test keys, `POST /v1/verify` answers from a table.
//! It counts calls and can be switched "down" (503 on both). Also mints test JWTs with the
//! RSA keys in tests/fixtures.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const OLDSYNC: &str = "https://identity.mozilla.com/apps/oldsync";

/// An RSA test key: its public JWK and the private key to sign with.
pub struct TestKey {
    pub kid: String,
    pub jwk: Value,
    encoding: EncodingKey,
}

fn load_key(fixture: &str, kid_override: Option<&str>) -> TestKey {
    let v: Value = serde_json::from_str(fixture).expect("fixture JSON");
    let pem = v["private_key_pem_TEST_ONLY"].as_str().expect("pem");
    let mut jwk = v["jwk_public"].clone();
    if let Some(kid) = kid_override {
        jwk["kid"] = json!(kid);
    }
    TestKey {
        kid: jwk["kid"].as_str().expect("kid").to_string(),
        jwk,
        encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA key"),
    }
}

/// The key of tests/fixtures/vectors/fxa_jwt.json (kid `20240101-test`).
pub fn primary_key() -> TestKey {
    load_key(include_str!("../fixtures/vectors/fxa_jwt.json"), None)
}

/// A second key (kid `20250101-rotated`), for rotation tests.
pub fn rotated_key() -> TestKey {
    load_key(include_str!("../fixtures/fxa_rotated_key.json"), None)
}

impl TestKey {
    /// Signs `claims` as FxA does (RS256, `typ: at+JWT`, this key's kid).
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_typ(claims, Some("at+JWT"))
    }

    pub fn sign_with_typ(&self, claims: &Value, typ: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = typ.map(str::to_string);
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign JWT")
    }
}

/// Claims of an oldsync access token for `fxa_uid`, expiring at `exp` (unix seconds).
pub fn claims(fxa_uid: &str, generation: Option<i64>, exp: i64) -> Value {
    let mut c = json!({
        "aud": "https://token.services.mozilla.com",
        "client_id": "5882386c6d801776",
        "exp": exp,
        "iat": exp - 3600,
        "iss": "https://accounts.firefox.com",
        "jti": "e19ed6c5d2f3a2b1",
        "scope": format!("profile {OLDSYNC}"),
        "sub": fxa_uid,
    });
    if let Some(g) = generation {
        c["fxa-generation"] = json!(g);
    }
    c
}

#[derive(Default)]
pub struct MockState {
    pub keys: Mutex<Vec<Value>>,
    pub jwks_calls: AtomicUsize,
    pub verify_calls: AtomicUsize,
    pub down: AtomicBool,
    /// token → (status, body) for /v1/verify; unknown tokens get FxA's 400 errno 108.
    pub answers: Mutex<HashMap<String, (u16, Value)>>,
}

pub struct FxaMock {
    pub url: String,
    pub state: Arc<MockState>,
    handle: ServerHandle,
}

impl FxaMock {
    /// Starts the mock serving `keys` at /v1/jwks.
    pub async fn start(keys: &[&TestKey]) -> FxaMock {
        let state = Arc::new(MockState::default());
        state.set_keys(keys);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/jwks", web::get().to(jwks))
                .route("/v1/verify", web::post().to(verify))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        FxaMock { url, state, handle }
    }

    pub fn jwks_calls(&self) -> usize {
        self.state.jwks_calls.load(Ordering::SeqCst)
    }

    pub fn verify_calls(&self) -> usize {
        self.state.verify_calls.load(Ordering::SeqCst)
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Makes /v1/verify answer `token` with `status` and `body`.
    pub fn answer(&self, token: &str, status: u16, body: Value) {
        self.state
            .answers
            .lock()
            .expect("answers")
            .insert(token.to_string(), (status, body));
    }
}

impl MockState {
    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.keys.lock().expect("keys") = keys.iter().map(|k| k.jwk.clone()).collect();
    }
}

impl Drop for FxaMock {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { handle.stop(false).await });
        }
    }
}

async fn jwks(state: web::Data<MockState>) -> HttpResponse {
    state.jwks_calls.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let keys = state.keys.lock().expect("keys").clone();
    HttpResponse::Ok().json(json!({ "keys": keys }))
}

async fn verify(state: web::Data<MockState>, body: web::Json<Value>) -> HttpResponse {
    state.verify_calls.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let token = body["token"].as_str().unwrap_or_default().to_string();
    let answer = state.answers.lock().expect("answers").get(&token).cloned();
    let (status, body) = answer.unwrap_or((
        400,
        json!({"code": 400, "errno": 108, "error": "Bad Request", "message": "Invalid token"}),
    ));
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).json(body)
}
