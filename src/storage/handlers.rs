//! Routes under `/1.5/{uid}` and the HTTP shape of each answer (PROTOCOL.md §4). Each handler
//! authenticates, parses its inputs, calls one `ops` function on the user's database and
//! builds the response; errors become responses in `error.rs`.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;

use super::Storage;
use super::auth::{Expiry, authenticate, check_body_hash};
use super::bso::{self, BodyKind, BsoIn, ItemLimits, PostItems, write_json_str};
use super::error::{StorageError, WEAVE_SIZE_LIMIT};
use super::ops::{self, Aggregate, BatchLimits, BsoOut, Env};
use super::query::{BatchParam, CollectionQuery, Precondition};
use super::timestamp::{format_ts, parse_ts, round_down, write_ts};

const X_LAST_MODIFIED: HeaderName = HeaderName::from_static("x-last-modified");
const X_WEAVE_TIMESTAMP: HeaderName = HeaderName::from_static("x-weave-timestamp");
const X_WEAVE_RECORDS: HeaderName = HeaderName::from_static("x-weave-records");
const X_WEAVE_NEXT_OFFSET: HeaderName = HeaderName::from_static("x-weave-next-offset");
const X_WEAVE_QUOTA_REMAINING: HeaderName = HeaderName::from_static("x-weave-quota-remaining");

type Answer = Result<HttpResponse, StorageError>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/1.5/{uid:[0-9]{1,10}}")
            .wrap(from_fn(weave_timestamp))
            .service(resource("").route(web::delete().to(delete_user)))
            .service(resource("/info/collections").route(web::get().to(info_collections)))
            .service(resource("/info/collection_counts").route(web::get().to(info_counts)))
            .service(resource("/info/collection_usage").route(web::get().to(info_usage)))
            .service(resource("/info/quota").route(web::get().to(info_quota)))
            .service(resource("/info/configuration").route(web::get().to(info_configuration)))
            .service(resource("/storage").route(web::delete().to(delete_storage)))
            .service(
                resource("/storage/{collection:[a-zA-Z0-9._-]{1,32}}")
                    .route(web::get().to(get_collection))
                    .route(web::post().to(post_collection))
                    .route(web::delete().to(delete_collection)),
            )
            .service(
                resource("/storage/{collection:[a-zA-Z0-9._-]{1,32}}/{bso}")
                    .route(web::get().to(get_bso))
                    .route(web::put().to(put_bso))
                    .route(web::delete().to(delete_bso)),
            )
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(StorageError::NotFound)
            })),
    );
    // Anything else under /1.5 (a uid that is not 1–10 digits) is a storage 404 too.
    cfg.service(
        web::scope("/1.5")
            .wrap(from_fn(weave_timestamp))
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(StorageError::NotFound)
            })),
    );
}

/// Middleware of the storage scopes: see [`add_weave_timestamp`].
async fn weave_timestamp(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let storage = req.app_data::<web::Data<Storage>>().cloned();
    let mut res = next.call(req).await?;
    if let Some(storage) = storage {
        add_weave_timestamp(res.response_mut(), storage.now_ms());
    }
    Ok(res)
}

/// A resource whose other methods answer 405 with a Weave body.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<HttpResponse, _>(StorageError::MethodNotAllowed)
    }))
}

/// Every storage response carries `X-Weave-Timestamp`: the write's timestamp when a handler
/// set it, else the current time, never less than `X-Last-Modified`.
fn add_weave_timestamp<B>(res: &mut HttpResponse<B>, now_ms: i64) {
    if res.headers().contains_key(X_WEAVE_TIMESTAMP) {
        return;
    }
    let last_modified = res
        .headers()
        .get(X_LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_ts)
        .unwrap_or(0);
    let ts = round_down(now_ms).max(last_modified);
    if let Ok(v) = HeaderValue::from_str(&format_ts(ts)) {
        res.headers_mut().insert(X_WEAVE_TIMESTAMP, v);
    }
}

// ---- request helpers ----

/// The uid of the URL. The router matched it after percent-decoding; the raw segment must
/// be the same digits, so `/1.5/%31/…` is no storage URL (404), like any non-digit uid.
/// (A `public_url` prefix is gone from the path by now: the server's path-prefix middleware.)
fn uid_of(req: &HttpRequest) -> Result<u64, StorageError> {
    let uid = req.match_info().get("uid").ok_or(StorageError::NotFound)?;
    // "/1.5/{uid}/…" splits into "", "1.5", uid, …
    let raw = req.uri().path().split('/').nth(2);
    if raw != Some(uid) {
        return Err(StorageError::NotFound);
    }
    uid.parse().map_err(|_| StorageError::NotFound)
}

fn collection_of(req: &HttpRequest) -> String {
    req.match_info()
        .get("collection")
        .unwrap_or_default()
        .to_string()
}

/// The BSO id: the raw last path segment, fully percent-decoded (`None` if undecodable).
fn bso_id_of(req: &HttpRequest) -> Option<String> {
    let raw = req.uri().path().rsplit('/').next()?;
    percent_decode(raw)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn query_of(req: &HttpRequest) -> Result<CollectionQuery, StorageError> {
    CollectionQuery::parse_listing(req.uri().query().unwrap_or(""))
}

fn post_query_of(req: &HttpRequest) -> Result<CollectionQuery, StorageError> {
    CollectionQuery::parse(req.uri().query().unwrap_or(""))
}

fn env(storage: &Storage) -> Env {
    Env {
        now: storage.now_ms(),
        quota: storage.settings().quota_bytes,
    }
}

fn content_type(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// 413 before reading anything when the declared length is already too big; else the
/// declared length (0 when absent).
fn check_content_length(req: &HttpRequest, limit: u64) -> Result<u64, StorageError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => Err(StorageError::PayloadTooLarge),
        n => Ok(n.unwrap_or(0)),
    }
}

/// Reads the whole body (Hawk needs the raw bytes), refusing more than `limit` with 413.
/// The buffer starts at the declared length, so a 100-record upload is one allocation of
/// its size rather than a chain of doublings ending at up to twice its size; at most
/// `PREALLOCATE_MAX`, so a declared length alone (data not yet sent) cannot reserve much.
async fn read_body(
    mut payload: web::Payload,
    declared: u64,
    limit: u64,
    idle: Duration,
) -> Result<web::Bytes, StorageError> {
    const PREALLOCATE_MAX: u64 = 256 * 1024;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // `declared` is within `limit` already (`check_content_length`).
    let mut buf = web::BytesMut::with_capacity(declared.min(PREALLOCATE_MAX) as usize);
    // A client that stops sending would otherwise hold its connection and buffer forever.
    while let Some(chunk) = tokio::time::timeout(idle, payload.next())
        .await
        .map_err(|_| StorageError::BodyTimeout)?
    {
        let chunk = chunk.map_err(|_| StorageError::bad_request())?;
        if buf.len() + chunk.len() > limit {
            return Err(StorageError::PayloadTooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Authenticates and reads the body of a write.
async fn authed_body(
    req: &HttpRequest,
    storage: &Storage,
    uid: u64,
    payload: web::Payload,
) -> Result<web::Bytes, StorageError> {
    let limit = storage.settings().max_request_bytes;
    let declared = check_content_length(req, limit)?;
    let hawk = authenticate(req, storage, uid, Expiry::Strict)?;
    let idle = Duration::from_secs(storage.settings().body_timeout);
    let body = read_body(payload, declared, limit, idle).await?;
    check_body_hash(req, &hawk, &body)?;
    Ok(body)
}

// ---- response helpers ----

fn json(status: StatusCode, body: String, last_modified: i64) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .insert_header((X_LAST_MODIFIED, format_ts(last_modified)))
        .body(body)
}

/// A write's response: `X-Last-Modified` and `X-Weave-Timestamp` are its timestamp.
fn written(status: StatusCode, body: String, w: ops::Written) -> HttpResponse {
    let mut res = json(status, body, w.t);
    if let Ok(v) = HeaderValue::from_str(&format_ts(w.t)) {
        res.headers_mut().insert(X_WEAVE_TIMESTAMP, v);
    }
    with_quota(res, w.quota_remaining)
}

/// `X-Weave-Quota-Remaining` (KiB) when a quota is on.
fn with_quota(mut res: HttpResponse, left: Option<i64>) -> HttpResponse {
    if let Some(left) = left
        && let Ok(v) = HeaderValue::from_str(&format!("{:.2}", left as f64 / 1024.0))
    {
        res.headers_mut().insert(X_WEAVE_QUOTA_REMAINING, v);
    }
    res
}

fn with_records(mut res: HttpResponse, n: usize) -> HttpResponse {
    res.headers_mut()
        .insert(X_WEAVE_RECORDS, HeaderValue::from(n));
    res
}

fn modified_body(t: i64) -> String {
    let mut s = String::from("{\"modified\":");
    write_ts(&mut s, t);
    s.push('}');
    s
}

fn write_bso(out: &mut String, b: &BsoOut) {
    out.push_str("{\"id\":");
    write_json_str(out, &b.id);
    out.push_str(",\"modified\":");
    write_ts(out, b.modified);
    out.push_str(",\"payload\":");
    write_json_str(out, &b.payload);
    if let Some(s) = b.sortindex {
        out.push_str(",\"sortindex\":");
        out.push_str(&s.to_string());
    }
    out.push('}');
}

/// `{"success": [...], "failed": {...}}` members shared by POST responses.
fn write_outcome(out: &mut String, success: &[BsoIn], failed: &[(String, String)]) {
    out.push_str("\"success\":[");
    for (i, b) in success.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, &b.id);
    }
    out.push_str("],\"failed\":{");
    for (i, (id, reason)) in failed.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, id);
        out.push(':');
        write_json_str(out, reason);
    }
    out.push_str("}}");
}

// ---- info ----

async fn info_collections(req: HttpRequest, storage: web::Data<Storage>) -> Answer {
    let uid = uid_of(&req)?;
    authenticate(&req, &storage, uid, Expiry::Grace)?;
    let pre = Precondition::from_request(&req)?;
    let info = storage.info_collections(uid).await?;
    pre.check(info.modified)?;
    let res = json(StatusCode::OK, info.body.clone(), info.modified);
    Ok(with_records(res, info.records))
}

async fn info_counts(req: HttpRequest, storage: web::Data<Storage>) -> Answer {
    info_aggregate(req, storage, Aggregate::Count).await
}

async fn info_usage(req: HttpRequest, storage: web::Data<Storage>) -> Answer {
    info_aggregate(req, storage, Aggregate::Bytes).await
}

async fn info_aggregate(req: HttpRequest, storage: web::Data<Storage>, what: Aggregate) -> Answer {
    let uid = uid_of(&req)?;
    authenticate(&req, &storage, uid, Expiry::Strict)?;
    let pre = Precondition::from_request(&req)?;
    let env = env(&storage);
    let (rows, ts) = storage
        .read_user(uid, move |db| ops::info_aggregate(db, what, pre, &env))
        .await?;
    let mut map = serde_json::Map::new();
    for (name, n) in &rows {
        let value = match what {
            Aggregate::Count => serde_json::Value::from(*n),
            Aggregate::Bytes => serde_json::Value::from(*n as f64 / 1024.0),
        };
        map.insert(name.clone(), value);
    }
    let body = serde_json::Value::Object(map).to_string();
    Ok(with_records(json(StatusCode::OK, body, ts), rows.len()))
}

async fn info_quota(req: HttpRequest, storage: web::Data<Storage>) -> Answer {
    let uid = uid_of(&req)?;
    authenticate(&req, &storage, uid, Expiry::Strict)?;
    let pre = Precondition::from_request(&req)?;
    let env = env(&storage);
    let (used, ts) = storage
        .read_user(uid, move |db| ops::info_quota(db, pre, &env))
        .await?;
    let quota = match storage.settings().quota_bytes {
        0 => serde_json::Value::Null,
        q => serde_json::Value::from(q as f64 / 1024.0),
    };
    let body = serde_json::json!([used as f64 / 1024.0, quota]).to_string();
    Ok(json(StatusCode::OK, body, ts))
}

/// The limits of §4.10 in RS's key order, plus `max_quota_limit` when a quota is set.
async fn info_configuration(req: HttpRequest, storage: web::Data<Storage>) -> Answer {
    let uid = uid_of(&req)?;
    authenticate(&req, &storage, uid, Expiry::Strict)?;
    let s = storage.settings();
    let mut body = format!(
        "{{\"max_post_bytes\":{},\"max_post_records\":{},\"max_record_payload_bytes\":{},\
         \"max_request_bytes\":{},\"max_total_bytes\":{},\"max_total_records\":{}",
        s.max_post_bytes,
        s.max_post_records,
        s.max_record_payload_bytes,
        s.max_request_bytes,
        s.max_total_bytes,
        s.max_total_records
    );
    if s.quota_bytes > 0 {
        body.push_str(&format!(",\"max_quota_limit\":{}", s.quota_bytes));
    }
    body.push('}');
    Ok(json(StatusCode::OK, body, 0))
}

// ---- collections ----

/// Output formats of a collection listing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Newlines,
}

/// RS's `Accept` negotiation: highest q first; JSON for `*/*`, a missing or unparseable
/// header; 406 when only other types are acceptable. As with RS's header parser, one
/// malformed entry (no `type/subtype`, a bad parameter or q) makes the whole header
/// unparseable.
fn negotiate(req: &HttpRequest) -> Result<Format, StorageError> {
    let Some(value) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Format::Json);
    };
    let parsed: Option<Vec<(f32, &str)>> = value
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(media_range)
        .collect();
    let mut ranges = match parsed {
        Some(ranges) if !ranges.is_empty() => ranges,
        _ => return Ok(Format::Json),
    };
    // Stable: among equal q, the header's order decides.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (q, media) in ranges {
        if q <= 0.0 {
            continue;
        }
        let media = media.to_ascii_lowercase();
        match media.as_str() {
            "application/json" | "application/*" | "*/*" => return Ok(Format::Json),
            "application/newlines" => return Ok(Format::Newlines),
            _ => {}
        }
    }
    Err(StorageError::NotAcceptable)
}

/// One `Accept` entry as (q, `type/subtype`); `None` when it is malformed.
fn media_range(part: &str) -> Option<(f32, &str)> {
    let mut pieces = part.split(';');
    let media = pieces.next()?.trim();
    let (kind, subtype) = media.split_once('/')?;
    if !is_token(kind) || !is_token(subtype) {
        return None;
    }
    let mut q = 1.0;
    for param in pieces {
        let (name, value) = param.split_once('=')?;
        let (name, value) = (name.trim(), value.trim());
        if !is_token(name) || value.is_empty() {
            return None;
        }
        if name.eq_ignore_ascii_case("q") {
            q = value
                .parse::<f32>()
                .ok()
                .filter(|q| (0.0..=1.0).contains(q))?;
        }
    }
    Some((q, media))
}

/// An HTTP token (RFC 9110 §5.6.2): what a media type, subtype or parameter name is made of.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

async fn get_collection(req: HttpRequest, storage: web::Data<Storage>) -> Answer {
    let uid = uid_of(&req)?;
    authenticate(&req, &storage, uid, Expiry::Strict)?;
    let q = query_of(&req)?;
    let format = negotiate(&req)?;
    let pre = Precondition::from_request(&req)?;
    let name = collection_of(&req);
    let env = env(&storage);
    let cap = storage.settings().max_total_records;
    let full = q.full;
    let listing = storage
        .read_user(uid, move |db| {
            ops::get_collection(db, &name, &q, pre, &env, cap)
        })
        .await?;
    let mut body = String::with_capacity(64 + listing.items.len() * if full { 256 } else { 16 });
    if format == Format::Json {
        body.push('[');
    }
    for (i, b) in listing.items.iter().enumerate() {
        if i > 0 && format == Format::Json {
            body.push(',');
        }
        if full {
            write_bso(&mut body, b);
        } else {
            write_json_str(&mut body, &b.id);
        }
        if format == Format::Newlines {
            body.push('\n');
        }
    }
    let content_type = match format {
        Format::Json => {
            body.push(']');
            "application/json"
        }
        Format::Newlines => "application/newlines",
    };
    let mut res = HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((X_LAST_MODIFIED, format_ts(listing.last_modified)))
        .insert_header((X_WEAVE_RECORDS, listing.items.len()))
        .body(body);
    if let Some(next) = listing.next_offset
        && let Ok(v) = HeaderValue::from_str(&next.render())
    {
        res.headers_mut().insert(X_WEAVE_NEXT_OFFSET, v);
    }
    Ok(res)
}

/// `X-Weave-Records`/`-Bytes`/`-Total-Records`/`-Total-Bytes` over the limits → 400/17;
/// a value that is not an integer → 400/0.
fn check_weave_size_headers(req: &HttpRequest, storage: &Storage) -> Result<(), StorageError> {
    let s = storage.settings();
    let checks = [
        ("x-weave-records", s.max_post_records),
        ("x-weave-bytes", s.max_post_bytes),
        ("x-weave-total-records", s.max_total_records),
        ("x-weave-total-bytes", s.max_total_bytes),
    ];
    for (name, limit) in checks {
        let Some(value) = req.headers().get(name) else {
            continue;
        };
        let n: u64 = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(StorageError::bad_request)?;
        if n > limit {
            return Err(StorageError::BadRequest(WEAVE_SIZE_LIMIT));
        }
    }
    Ok(())
}

fn item_limits(storage: &Storage) -> ItemLimits {
    let s = storage.settings();
    ItemLimits {
        max_payload_bytes: s.max_record_payload_bytes,
        max_post_bytes: s.max_post_bytes,
        max_post_records: s.max_post_records,
    }
}

fn batch_limits(storage: &Storage) -> BatchLimits {
    let s = storage.settings();
    BatchLimits {
        ttl_ms: i64::try_from(s.max_batch_ttl.saturating_mul(1000)).unwrap_or(i64::MAX),
        max_total_records: s.max_total_records,
        max_total_bytes: s.max_total_bytes,
    }
}

/// §4.6: the `crypto` collection refuses the all-zero IV of a once-buggy client.
fn check_crypto_iv<'a>(
    collection: &str,
    mut items: impl Iterator<Item = &'a BsoIn>,
) -> Result<(), StorageError> {
    if collection == "crypto" && items.any(|b| b.payload.as_deref().is_some_and(bso::has_zero_iv)) {
        return Err(StorageError::invalid_bso());
    }
    Ok(())
}

async fn post_collection(
    req: HttpRequest,
    storage: web::Data<Storage>,
    payload: web::Payload,
) -> Answer {
    let uid = uid_of(&req)?;
    let body = authed_body(&req, &storage, uid, payload).await?;
    let q = post_query_of(&req)?;
    if q.commit && q.batch.is_none() {
        return Err(StorageError::bad_request());
    }
    let pre = Precondition::from_request(&req)?;
    check_weave_size_headers(&req, &storage)?;
    let kind = bso::body_kind(content_type(&req))?;
    let PostItems { valid, failed } = bso::parse_post(&body, kind, item_limits(&storage))?;
    // The raw body is not needed past parsing; free it before waiting for the database.
    drop(body);
    let name = collection_of(&req);
    check_crypto_iv(&name, valid.iter())?;
    let env = env(&storage);
    let limits = batch_limits(&storage);

    let mut out = String::with_capacity(64 + valid.len() * 16);
    match (q.batch, q.commit) {
        // A plain POST, `batch=true&commit=true` (the same thing) or a batch commit.
        (None, _) | (Some(_), true) => {
            let (w, valid) = storage
                .with_user(uid, move |db| {
                    match q.batch {
                        Some(BatchParam::Existing(batch)) => {
                            ops::batch_commit(db, &name, batch, &valid, pre, &env, limits)
                        }
                        _ => ops::post_bsos(db, &name, &valid, pre, &env),
                    }
                    .map(|w| (w, valid))
                })
                .await?;
            out.push_str("{\"modified\":");
            write_ts(&mut out, w.t);
            out.push(',');
            write_outcome(&mut out, &valid, &failed);
            Ok(written(StatusCode::OK, out, w))
        }
        (Some(param), false) => {
            let (batch, modified, left, valid) = storage
                .with_user(uid, move |db| match param {
                    BatchParam::New => ops::batch_create(db, &name, &valid, pre, &env, limits)
                        .map(|(id, m, left)| (id, m, left, valid)),
                    BatchParam::Existing(id) => {
                        ops::batch_append(db, &name, id, &valid, pre, &env, limits)
                            .map(|(m, left)| (id, m, left, valid))
                    }
                })
                .await?;
            out.push_str("{\"batch\":\"");
            out.push_str(&batch.to_string());
            out.push_str("\",");
            write_outcome(&mut out, &valid, &failed);
            Ok(with_quota(json(StatusCode::ACCEPTED, out, modified), left))
        }
    }
}

async fn delete_collection(req: HttpRequest, storage: web::Data<Storage>) -> Answer {
    let uid = uid_of(&req)?;
    authenticate(&req, &storage, uid, Expiry::Strict)?;
    let q = query_of(&req)?;
    let pre = Precondition::from_request(&req)?;
    let name = collection_of(&req);
    let env = env(&storage);
    // `ids=` with nothing in it parses as no ids: the whole collection, as in RS.
    let ids = q.ids;
    let (w, wrote) = storage
        .with_user(uid, move |db| {
            ops::delete_collection(db, &name, ids.as_deref(), pre, &env)
        })
        .await?;
    if wrote {
        Ok(written(StatusCode::OK, modified_body(w.t), w))
    } else {
        Ok(json(StatusCode::OK, modified_body(w.t), w.t))
    }
}

// ---- single items ----

async fn get_bso(req: HttpRequest, storage: web::Data<Storage>) -> Answer {
    let uid = uid_of(&req)?;
    authenticate(&req, &storage, uid, Expiry::Strict)?;
    let pre = Precondition::from_request(&req)?;
    let id = bso_id_of(&req)
        .filter(|id| bso::valid_id(id))
        .ok_or(StorageError::NotFound)?;
    let name = collection_of(&req);
    let env = env(&storage);
    let b = storage
        .read_user(uid, move |db| ops::get_bso(db, &name, &id, pre, &env))
        .await?;
    let mut body = String::with_capacity(b.payload.len() + 96);
    write_bso(&mut body, &b);
    Ok(json(StatusCode::OK, body, b.modified))
}

async fn put_bso(req: HttpRequest, storage: web::Data<Storage>, payload: web::Payload) -> Answer {
    let uid = uid_of(&req)?;
    let body = authed_body(&req, &storage, uid, payload).await?;
    let pre = Precondition::from_request(&req)?;
    // A PUT body is one JSON object. `application/newlines` is a POST format; a PUT
    // labelled with it is refused as RS does (§4.6: 400 body 8), not stored.
    if bso::body_kind(content_type(&req))? != BodyKind::Json {
        return Err(StorageError::invalid_bso());
    }
    let id = bso_id_of(&req)
        .filter(|id| bso::valid_id(id))
        .ok_or_else(StorageError::invalid_bso)?;
    let item = bso::parse_put(&body, &id, storage.settings().max_record_payload_bytes)?;
    drop(body);
    let name = collection_of(&req);
    check_crypto_iv(&name, std::iter::once(&item))?;
    let env = env(&storage);
    let w = storage
        .with_user(uid, move |db| ops::put_bso(db, &name, &item, pre, &env))
        .await?;
    Ok(written(StatusCode::OK, format_ts(w.t), w))
}

async fn delete_bso(req: HttpRequest, storage: web::Data<Storage>) -> Answer {
    let uid = uid_of(&req)?;
    authenticate(&req, &storage, uid, Expiry::Strict)?;
    let pre = Precondition::from_request(&req)?;
    let id = bso_id_of(&req)
        .filter(|id| bso::valid_id(id))
        .ok_or(StorageError::NotFound)?;
    let name = collection_of(&req);
    let env = env(&storage);
    let w = storage
        .with_user(uid, move |db| ops::delete_bso(db, &name, &id, pre, &env))
        .await?;
    Ok(written(StatusCode::OK, modified_body(w.t), w))
}

// ---- whole-user deletes ----

async fn delete_storage(req: HttpRequest, storage: web::Data<Storage>) -> Answer {
    let uid = uid_of(&req)?;
    authenticate(&req, &storage, uid, Expiry::Strict)?;
    let pre = Precondition::from_request(&req)?;
    let env = env(&storage);
    let w = storage
        .with_user(uid, move |db| ops::delete_storage(db, pre, &env))
        .await?;
    Ok(written(StatusCode::OK, "{}".into(), w))
}

async fn delete_user(req: HttpRequest, storage: web::Data<Storage>) -> Answer {
    let uid = uid_of(&req)?;
    authenticate(&req, &storage, uid, Expiry::Strict)?;
    let pre = Precondition::from_request(&req)?;
    storage.delete_user_if(uid, pre).await?;
    let left = env(&storage).whole_quota();
    Ok(with_quota(json(StatusCode::OK, "{}".into(), 0), left))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn accept_negotiation() {
        let fmt = |accept: Option<&str>| {
            let mut r = TestRequest::default();
            if let Some(a) = accept {
                r = r.insert_header(("Accept", a));
            }
            negotiate(&r.to_http_request()).ok()
        };
        assert!(fmt(None) == Some(Format::Json));
        assert!(fmt(Some("application/json")) == Some(Format::Json));
        assert!(fmt(Some("application/newlines")) == Some(Format::Newlines));
        assert!(fmt(Some("text/html, */*;q=0.1")) == Some(Format::Json));
        assert!(
            fmt(Some("application/json;q=0.5, application/newlines")) == Some(Format::Newlines)
        );
        assert!(fmt(Some("x/yy")).is_none());
        assert!(fmt(Some("text/plain")).is_none());
        assert!(fmt(Some("text/plain;q=0, application/newlines;q=0.2")) == Some(Format::Newlines));
        // Unparseable headers read as none at all: JSON.
        for garbage in [
            "garbage",
            "garbage;;;",
            ";",
            ",",
            "x/yy, junk",
            "x/yy;q=abc",
            "x/yy;q=2",
        ] {
            assert!(fmt(Some(garbage)) == Some(Format::Json), "{garbage}");
        }
    }

    #[test]
    fn percent_decoding_of_ids() {
        assert_eq!(percent_decode("%7Babc%7D").as_deref(), Some("{abc}"));
        assert_eq!(percent_decode("a%0Ab").as_deref(), Some("a\nb"));
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("trunc%4"), None);
    }
}
