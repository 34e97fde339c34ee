//! FxA verification behaviour seen from outside: lazy JWKS fetch, caching, rotation with
//! the once-a-minute refetch limit, pinned keys, the `/v1/verify` fallback and its cache.

use serde_json::json;

use crate::fxa_mock::{OLDSYNC, claims, rotated_key};
use crate::tokenserver_support::*;

async fn token_with(ts: &Ts, bearer_token: &str) -> Answer {
    let bearer = format!("Bearer {bearer_token}");
    let kid = key_id(1234, "aaaa");
    ts.get(TOKEN_PATH, &[("Authorization", &bearer), ("X-KeyID", &kid)])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_fetched_lazily_once_and_cached() {
    let ts = Ts::start().await;
    // Start-up and the heartbeat do not contact FxA.
    let res = ts
        .srv
        .client
        .get(ts.srv.url("/__heartbeat__"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(ts.fxa.jwks_calls(), 0);
    for generation in [1, 2, 3] {
        ts.tick(1000);
        assert_eq!(ts.token(Some(generation), 1234, "aaaa").await.status, 200);
    }
    assert_eq!(ts.fxa.jwks_calls(), 1);
    assert_eq!(ts.fxa.verify_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_key_is_found_after_one_refetch_per_minute() {
    let ts = Ts::start().await;
    let rotated = rotated_key();
    assert_eq!(ts.token(Some(1), 1234, "aaaa").await.status, 200);
    assert_eq!(ts.fxa.jwks_calls(), 1);
    // FxA rotates: the JWKS now has both keys; a token under the new kid arrives within the
    // minute after our last fetch: no refetch yet, so it is refused without a remote call.
    ts.fxa.state.set_keys(&[&ts.key, &rotated]);
    ts.tick(10_000);
    let new_token = rotated.sign(&claims(FXA_UID, Some(1), ts.now_secs() + 3600));
    let a = token_with(&ts, &new_token).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.error().0, "invalid-credentials");
    assert_eq!(ts.fxa.jwks_calls(), 1);
    // A minute later the unknown kid triggers exactly one refetch and the token is accepted.
    ts.tick(60_000);
    let new_token = rotated.sign(&claims(FXA_UID, Some(1), ts.now_secs() + 3600));
    assert_eq!(token_with(&ts, &new_token).await.status, 200);
    assert_eq!(ts.fxa.jwks_calls(), 2);
    // An unknown kid right after does not refetch.
    let mut stranger = rotated_key();
    stranger.kid = "nobody-knows".into();
    let a = token_with(
        &ts,
        &stranger.sign(&claims(FXA_UID, Some(1), ts.now_secs() + 3600)),
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(ts.fxa.jwks_calls(), 2);
    assert_eq!(ts.fxa.verify_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_keys_never_fetch() {
    let key = crate::fxa_mock::primary_key();
    let jwk = key.jwk.clone();
    let ts = Ts::start_with(move |s| s.tokenserver.fxa_oauth_jwks = vec![jwk]).await;
    assert_eq!(ts.token(Some(1), 1234, "aaaa").await.status, 200);
    let a = token_with(
        &ts,
        &rotated_key().sign(&claims(FXA_UID, Some(1), ts.now_secs() + 3600)),
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(ts.fxa.jwks_calls(), 0);
    assert_eq!(ts.fxa.verify_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_use_remote_verify_and_its_cache() {
    let ts = Ts::start().await;
    ts.fxa.answer(
        "opaque-1",
        200,
        json!({"user": FXA_UID, "client_id": "5882386c6d801776", "scope": ["profile", OLDSYNC], "generation": 1234}),
    );
    ts.fxa.answer(
        "opaque-noscope",
        200,
        json!({"user": FXA_UID, "client_id": "5882386c6d801776", "scope": ["profile"]}),
    );
    let a = token_with(&ts, "opaque-1").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let uid = a.uid();
    assert_eq!(rows(&ts.db().await, FXA_UID).await[0].generation, 1234);
    // Within five minutes the answer is reused.
    ts.tick(4 * 60_000);
    assert_eq!(token_with(&ts, "opaque-1").await.uid(), uid);
    assert_eq!(ts.fxa.verify_calls(), 1);
    // After five minutes FxA is asked again.
    ts.tick(2 * 60_000);
    assert_eq!(token_with(&ts, "opaque-1").await.uid(), uid);
    assert_eq!(ts.fxa.verify_calls(), 2);
    // Without the oldsync scope the answer is a refusal, and refusals are not cached.
    for _ in 0..2 {
        let a = token_with(&ts, "opaque-noscope").await;
        assert_eq!(a.status, 401);
        assert_eq!(a.error().0, "invalid-credentials");
    }
    assert_eq!(ts.fxa.verify_calls(), 4);
    assert_eq!(ts.fxa.jwks_calls(), 0, "opaque tokens need no keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_without_usable_keys_falls_back_to_remote_verify() {
    let ts = Ts::start().await;
    ts.fxa.state.set_keys(&[]);
    let jwt = ts.jwt(Some(7));
    ts.fxa.answer(
        &jwt,
        200,
        json!({"user": FXA_UID, "client_id": "x", "scope": [OLDSYNC], "generation": 7}),
    );
    let a = token_with(&ts, &jwt).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(ts.fxa.jwks_calls(), 1);
    assert_eq!(ts.fxa.verify_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_verified_jwt_is_cached_no_longer_than_its_exp() {
    let ts = Ts::start().await;
    ts.fxa.state.set_keys(&[]);
    let jwt = rotated_key().sign(&claims(FXA_UID, Some(7), ts.now_secs() + 120));
    ts.fxa.answer(
        &jwt,
        200,
        json!({"user": FXA_UID, "client_id": "x", "scope": [OLDSYNC], "generation": 7}),
    );
    assert_eq!(token_with(&ts, &jwt).await.status, 200);
    ts.tick(60_000);
    assert_eq!(token_with(&ts, &jwt).await.status, 200);
    assert_eq!(ts.fxa.verify_calls(), 1, "cached while the token lives");
    // Past the token's exp (though within the 5 minutes for tokens without one), the
    // cached answer is not used.
    ts.tick(90_000);
    token_with(&ts, &jwt).await;
    assert_eq!(ts.fxa.verify_calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_jwt_is_cached_until_it_expires() {
    let ts = Ts::start().await;
    let jwt = ts.jwt(Some(1));
    assert_eq!(token_with(&ts, &jwt).await.status, 200);
    // FxA replaces its key; a token under the new key makes us refetch, after which the
    // old key is gone from our set ...
    let rotated = rotated_key();
    ts.fxa.state.set_keys(&[&rotated]);
    ts.tick(61_000);
    let fresh = rotated.sign(&claims(FXA_UID, Some(1), ts.now_secs() + 3600));
    assert_eq!(token_with(&ts, &fresh).await.status, 200);
    assert_eq!(ts.fxa.jwks_calls(), 2);
    // ... yet the first token still works: its verification is cached ...
    ts.tick(1000);
    assert_eq!(token_with(&ts, &jwt).await.status, 200);
    // ... until its exp has passed.
    ts.tick(3600 * 1000);
    let a = token_with(&ts, &jwt).await;
    assert_eq!(a.status, 401);
    assert_eq!(ts.fxa.verify_calls(), 0);
}
