//! Request-level parameters: the query string of collection requests (§4.3, §4.8, §4.9) and
//! the `X-If-*` precondition headers (§4.12). Unknown parameters are ignored.

use actix_web::HttpRequest;

use super::bso::valid_id;
use super::error::StorageError;
use super::timestamp::parse_ts;

pub const MAX_IDS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Newest,
    Oldest,
    Index,
}

/// A continuation token from `X-Weave-Next-Offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// Skip this many rows of the ordered result.
    Rows(u64),
    /// Timestamp sorts: continue at rows with `modified` at or past `bound`, skipping `skip`
    /// of those that share it (stays correct when rows are added at the other end).
    Bound { bound: i64, skip: u64 },
}

impl Offset {
    fn parse(s: &str) -> Option<Offset> {
        match s.split_once(':') {
            Some((b, k)) => Some(Offset::Bound {
                bound: b.parse().ok().filter(|b: &i64| *b >= 0)?,
                skip: k.parse().ok()?,
            }),
            None => Some(Offset::Rows(s.parse().ok()?)),
        }
    }

    pub fn render(&self) -> String {
        match self {
            Offset::Rows(n) => n.to_string(),
            Offset::Bound { bound, skip } => format!("{bound}:{skip}"),
        }
    }
}

/// What the `batch` parameter asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchParam {
    New,
    Existing(i64),
}

/// The parameters of a collection request, validated.
#[derive(Debug, Clone, Default)]
pub struct CollectionQuery {
    pub ids: Option<Vec<String>>,
    pub newer: Option<i64>,
    pub older: Option<i64>,
    pub full: bool,
    pub limit: Option<u64>,
    pub offset: Option<Offset>,
    pub sort: Sort,
    pub batch: Option<BatchParam>,
    pub commit: bool,
}

impl CollectionQuery {
    /// The parameters of a `POST`: the listing ones and `batch` / `commit`.
    pub fn parse(query: &str) -> Result<CollectionQuery, StorageError> {
        Self::parse_with(query, true)
    }

    /// The parameters of a `GET` or `DELETE`: `batch` and `commit` mean nothing there, so
    /// they are ignored like any unknown parameter (§4.8: "on `POST` only").
    pub fn parse_listing(query: &str) -> Result<CollectionQuery, StorageError> {
        Self::parse_with(query, false)
    }

    fn parse_with(query: &str, batch_params: bool) -> Result<CollectionQuery, StorageError> {
        let bad = StorageError::bad_request;
        let mut q = CollectionQuery::default();
        let mut commit_seen = false;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                // A list left empty by dropping empty items filters nothing (RS).
                "ids" => q.ids = Some(parse_ids(&value)?).filter(|ids| !ids.is_empty()),
                "newer" => q.newer = Some(parse_ts(&value).ok_or_else(bad)?),
                "older" => q.older = Some(parse_ts(&value).ok_or_else(bad)?),
                "full" => q.full = true,
                "limit" => q.limit = Some(value.parse::<u32>().map_err(|_| bad())?.into()),
                "offset" => q.offset = Some(Offset::parse(&value).ok_or_else(bad)?),
                "sort" => {
                    q.sort = match value.as_ref() {
                        "newest" => Sort::Newest,
                        "oldest" => Sort::Oldest,
                        "index" => Sort::Index,
                        _ => return Err(bad()),
                    }
                }
                "batch" if batch_params => {
                    q.batch = Some(if value.is_empty() || value.eq_ignore_ascii_case("true") {
                        BatchParam::New
                    } else {
                        BatchParam::Existing(parse_batch_id(&value).ok_or_else(bad)?)
                    })
                }
                "commit" if batch_params => {
                    if !value.eq_ignore_ascii_case("true") {
                        return Err(bad());
                    }
                    commit_seen = true;
                }
                _ => {}
            }
        }
        q.commit = commit_seen;
        Ok(q)
    }
}

/// Comma-separated ids, trimmed, empties dropped; at most 100, each a valid BSO id.
fn parse_ids(value: &str) -> Result<Vec<String>, StorageError> {
    let ids: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.len() > MAX_IDS || !ids.iter().all(|id| valid_id(id)) {
        return Err(StorageError::bad_request());
    }
    Ok(ids)
}

/// Batch ids are positive decimal integers (random, so not guessable).
pub fn parse_batch_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n: &i64| *n > 0)
}

/// The `X-If-Modified-Since` / `X-If-Unmodified-Since` of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    #[default]
    None,
    ModifiedSince(i64),
    UnmodifiedSince(i64),
}

impl Precondition {
    /// Both headers, a negative or a non-numeric value → 400.
    pub fn from_request(req: &HttpRequest) -> Result<Precondition, StorageError> {
        let get = |name: &str| -> Result<Option<i64>, StorageError> {
            match req.headers().get(name) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .ok()
                    .and_then(parse_ts)
                    .map(Some)
                    .ok_or_else(StorageError::bad_request),
            }
        };
        match (get("x-if-modified-since")?, get("x-if-unmodified-since")?) {
            (Some(_), Some(_)) => Err(StorageError::bad_request()),
            (Some(ts), None) => Ok(Precondition::ModifiedSince(ts)),
            (None, Some(ts)) => Ok(Precondition::UnmodifiedSince(ts)),
            (None, None) => Ok(Precondition::None),
        }
    }

    /// Checks against the resource's last-modified: 304 when unchanged since, 412 when
    /// changed since.
    pub fn check(self, last_modified: i64) -> Result<(), StorageError> {
        match self {
            Precondition::ModifiedSince(ts) if last_modified <= ts => {
                Err(StorageError::NotModified { last_modified })
            }
            Precondition::UnmodifiedSince(ts) if last_modified > ts => {
                Err(StorageError::PreconditionFailed { last_modified })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_ignores_unknown() {
        let q = CollectionQuery::parse("ids=a,%20b,,c&newer=1.5&full=0&limit=2&sort=oldest&v=123")
            .expect("valid");
        assert_eq!(
            q.ids.as_deref(),
            Some(&["a".to_string(), "b".into(), "c".into()][..])
        );
        assert_eq!(q.newer, Some(1500));
        assert!(q.full);
        assert_eq!(q.limit, Some(2));
        assert_eq!(q.sort, Sort::Oldest);
        let q = CollectionQuery::parse("ids=a%2Cb").expect("encoded commas");
        assert_eq!(q.ids.map(|v| v.len()), Some(2));
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            "newer=abc",
            "older=-1",
            "limit=-1",
            "limit=x",
            "sort=random",
            "offset=zz",
            "batch=sammich",
            "commit=false",
            "ids=a%0Ab",
        ] {
            assert!(CollectionQuery::parse(bad).is_err(), "{bad}");
        }
        let many = (0..101)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(CollectionQuery::parse(&format!("ids={many}")).is_err());
    }

    #[test]
    fn batch_params() {
        assert_eq!(
            CollectionQuery::parse("batch").expect("ok").batch,
            Some(BatchParam::New)
        );
        assert_eq!(
            CollectionQuery::parse("batch=TRUE").expect("ok").batch,
            Some(BatchParam::New)
        );
        let q = CollectionQuery::parse("batch=123&commit=true").expect("ok");
        assert_eq!(q.batch, Some(BatchParam::Existing(123)));
        assert!(q.commit);
    }

    #[test]
    fn listing_requests_ignore_batch_parameters() {
        let q = CollectionQuery::parse_listing("batch=foo&commit=no&newer=5").expect("ignored");
        assert_eq!((q.batch, q.commit, q.newer), (None, false, Some(5000)));
        assert!(CollectionQuery::parse("batch=foo").is_err());
        assert!(CollectionQuery::parse("commit=no").is_err());
        assert!(CollectionQuery::parse_listing("newer=x").is_err());
    }

    #[test]
    fn preconditions() {
        assert!(matches!(
            Precondition::ModifiedSince(10).check(10),
            Err(StorageError::NotModified { last_modified: 10 })
        ));
        assert!(Precondition::ModifiedSince(10).check(20).is_ok());
        assert!(Precondition::UnmodifiedSince(0).check(0).is_ok());
        assert!(matches!(
            Precondition::UnmodifiedSince(0).check(10),
            Err(StorageError::PreconditionFailed { .. })
        ));
    }
}
