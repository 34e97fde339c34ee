//! Helpers for the tokenserver tests: a server wired to the mock FxA, token requests, and
//! direct access to the tokenserver database to seed and inspect `users` / `nodes`.

#![allow(dead_code)]

use serde_json::Value;
use sqlx::Row as _;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use syncserver::auth::fxa_kid;
use syncserver::clock::Clock;
use syncserver::config::Settings;

use crate::common::TestServer;
use crate::fxa_mock::{FxaMock, TestKey, claims, primary_key};

pub const FXA_UID: &str = "319b98f9961ff1dbdd07313cd6ba925a";
pub const DOMAIN: &str = "api.accounts.firefox.com";
pub const TOKEN_PATH: &str = "/1.0/sync/1.5";

pub struct Ts {
    pub srv: TestServer,
    pub fxa: FxaMock,
    pub key: TestKey,
}

/// A token response: status, headers and parsed JSON body.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// `(status, errors[0].location, errors[0].name, errors[0].description)` of an error body.
    pub fn error(&self) -> (String, String, String, String) {
        let e = &self.body["errors"][0];
        let s = |v: &Value| v.as_str().unwrap_or("<missing>").to_string();
        (
            s(&self.body["status"]),
            s(&e["location"]),
            s(&e["name"]),
            s(&e["description"]),
        )
    }

    pub fn uid(&self) -> i64 {
        assert_eq!(
            self.status, 200,
            "expected 200, got {}: {}",
            self.status, self.body
        );
        self.body["uid"].as_i64().expect("uid")
    }
}

impl Ts {
    pub async fn start() -> Ts {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> Ts {
        let key = primary_key();
        let fxa = FxaMock::start(&[&key]).await;
        let url = fxa.url.clone();
        let srv = TestServer::start_with(|s| {
            s.tokenserver.fxa_oauth_server_url = url;
            adjust(s);
        })
        .await;
        Ts { srv, fxa, key }
    }

    pub fn now_secs(&self) -> i64 {
        self.srv.clock.now_secs()
    }

    /// A valid oldsync JWT for `fxa_uid`, expiring in an hour of clock time.
    pub fn jwt_for(&self, fxa_uid: &str, generation: Option<i64>) -> String {
        self.key
            .sign(&claims(fxa_uid, generation, self.now_secs() + 3600))
    }

    pub fn jwt(&self, generation: Option<i64>) -> String {
        self.jwt_for(FXA_UID, generation)
    }

    /// GET `path` with the given headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.srv.client.get(self.srv.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        answer(req.send().await.expect("request")).await
    }

    /// A token request as Firefox makes it: bearer JWT (with `generation`) and
    /// `X-KeyID: kca-state`.
    pub async fn token(&self, generation: Option<i64>, kca: i64, client_state: &str) -> Answer {
        self.token_for(FXA_UID, generation, kca, client_state).await
    }

    pub async fn token_for(
        &self,
        fxa_uid: &str,
        generation: Option<i64>,
        kca: i64,
        client_state: &str,
    ) -> Answer {
        let bearer = format!("Bearer {}", self.jwt_for(fxa_uid, generation));
        let kid = key_id(kca, client_state);
        self.get(TOKEN_PATH, &[("Authorization", &bearer), ("X-KeyID", &kid)])
            .await
    }

    /// A pool on the server's tokenserver database (WAL: both see each other's writes).
    pub async fn db(&self) -> SqlitePool {
        let path = self.srv.settings.data_dir.join("tokenserver.db");
        let options = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(std::time::Duration::from_secs(5));
        SqlitePool::connect_with(options)
            .await
            .expect("open tokenserver.db")
    }

    /// Moves the clock on by `ms` (requests in a sequence happen at different times).
    pub fn tick(&self, ms: i64) {
        self.srv.clock.advance_ms(ms);
    }
}

pub async fn answer(res: reqwest::Response) -> Answer {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

/// `X-KeyID` for keys_changed_at `kca` and a hex client state.
pub fn key_id(kca: i64, client_state_hex: &str) -> String {
    fxa_kid(kca, client_state_hex).expect("hex client state")
}

pub fn email(fxa_uid: &str) -> String {
    format!("{fxa_uid}@{DOMAIN}")
}

/// The id of the server's own node row.
pub async fn node_id(pool: &SqlitePool) -> i64 {
    sqlx::query("SELECT id FROM nodes ORDER BY id LIMIT 1")
        .fetch_one(pool)
        .await
        .expect("node row")
        .get("id")
}

/// A user row as in Mozilla's tests, seeded out-of-band; returns its uid.
pub struct Seed {
    pub generation: i64,
    pub keys_changed_at: Option<i64>,
    pub client_state: &'static str,
    pub created_at: i64,
    pub replaced_at: Option<i64>,
    pub nodeid: i64,
}

pub async fn seed_user(pool: &SqlitePool, fxa_uid: &str, seed: Seed) -> i64 {
    sqlx::query(
        "INSERT INTO users (service, email, generation, client_state, keys_changed_at, \
         created_at, replaced_at, nodeid) VALUES (1, $1, $2, $3, $4, $5, $6, $7) RETURNING uid",
    )
    .bind(email(fxa_uid))
    .bind(seed.generation)
    .bind(seed.client_state)
    .bind(seed.keys_changed_at)
    .bind(seed.created_at)
    .bind(seed.replaced_at)
    .bind(seed.nodeid)
    .fetch_one(pool)
    .await
    .expect("seed user")
    .get("uid")
}

/// One `users` row as the tests look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub uid: i64,
    pub generation: i64,
    pub client_state: String,
    pub keys_changed_at: Option<i64>,
    pub created_at: i64,
    pub replaced_at: Option<i64>,
    pub nodeid: i64,
}

/// The account's rows, oldest first.
pub async fn rows(pool: &SqlitePool, fxa_uid: &str) -> Vec<UserRow> {
    sqlx::query(
        "SELECT uid, generation, client_state, keys_changed_at, created_at, replaced_at, nodeid \
         FROM users WHERE email = $1 ORDER BY uid",
    )
    .bind(email(fxa_uid))
    .fetch_all(pool)
    .await
    .expect("rows")
    .iter()
    .map(|r| UserRow {
        uid: r.get("uid"),
        generation: r.get("generation"),
        client_state: r.get("client_state"),
        keys_changed_at: r.get("keys_changed_at"),
        created_at: r.get("created_at"),
        replaced_at: r.get("replaced_at"),
        nodeid: r.get("nodeid"),
    })
    .collect()
}

pub async fn row(pool: &SqlitePool, uid: i64) -> UserRow {
    sqlx::query(
        "SELECT uid, generation, client_state, keys_changed_at, created_at, replaced_at, nodeid \
         FROM users WHERE uid = $1",
    )
    .bind(uid)
    .fetch_one(pool)
    .await
    .map(|r| UserRow {
        uid: r.get("uid"),
        generation: r.get("generation"),
        client_state: r.get("client_state"),
        keys_changed_at: r.get("keys_changed_at"),
        created_at: r.get("created_at"),
        replaced_at: r.get("replaced_at"),
        nodeid: r.get("nodeid"),
    })
    .expect("row")
}
