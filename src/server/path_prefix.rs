//! With `public_url = https://example.com/sync`, a proxy may pass `/sync/1.5/…` through or strip
//! it to `/1.5/…`. Both are routed the same by removing the prefix here; Hawk later rebuilds the
//! signed request-target as prefix + path, which is what the client signed either way.

use actix_web::dev::ServiceRequest;
use actix_web::http::Uri;

/// Removes `prefix` from the front of the request path when present (on a `/` boundary).
pub fn strip(req: &mut ServiceRequest, prefix: Option<&str>) {
    let Some(prefix) = prefix.filter(|p| !p.is_empty()) else {
        return;
    };
    let Some(uri) = stripped_uri(req.uri(), prefix) else {
        return;
    };
    req.match_info_mut().get_mut().update(&uri);
    req.head_mut().uri = uri;
}

fn stripped_uri(uri: &Uri, prefix: &str) -> Option<Uri> {
    let rest = uri.path().strip_prefix(prefix)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let path = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    path_and_query.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip_str(uri: &str, prefix: &str) -> Option<String> {
        stripped_uri(&uri.parse().expect("uri"), prefix).map(|u| u.to_string())
    }

    #[test]
    fn strips_on_segment_boundary_and_keeps_query_raw() {
        assert_eq!(
            strip_str("/sync/1.5/42/storage/x?ids=%7Ba%7D", "/sync").as_deref(),
            Some("/1.5/42/storage/x?ids=%7Ba%7D")
        );
        assert_eq!(strip_str("/sync", "/sync").as_deref(), Some("/"));
        assert_eq!(strip_str("/syncfoo/1.5", "/sync"), None);
        assert_eq!(strip_str("/1.5/42/info/collections", "/sync"), None);
    }
}
