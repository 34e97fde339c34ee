//! The effective URL of a request: `public_url` when set, else rebuilt from the `Host` header
//! (with `X-Forwarded-Proto` trusted only from a proxy on this machine). Hawk MACs, the token's
//! `node` and `api_endpoint` are all computed from it.

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::config::PublicUrl;

/// Scheme, host, port and path prefix the client used to reach us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOrigin {
    pub scheme: String,
    /// Lower-case; IPv6 in brackets.
    pub host: String,
    pub port: u16,
    /// Path prefix from `public_url` without a trailing `/`; empty when derived.
    pub prefix: String,
}

impl RequestOrigin {
    /// Computes the origin of `req`; `None` when `public_url` is unset and the `Host`
    /// header is missing or unusable.
    pub fn of(req: &HttpRequest, public_url: Option<&PublicUrl>) -> Option<RequestOrigin> {
        if let Some(url) = public_url {
            return Some(RequestOrigin {
                scheme: url.scheme.clone(),
                host: url.host.clone(),
                port: url.port,
                prefix: url.prefix.clone(),
            });
        }
        let scheme = forwarded_scheme(req).unwrap_or_else(|| "http".to_string());
        let host_header = req.headers().get(header::HOST)?.to_str().ok()?;
        let (host, port) = split_host_port(host_header, default_port(&scheme))?;
        Some(RequestOrigin {
            scheme,
            host,
            port,
            prefix: String::new(),
        })
    }

    /// `scheme://host[:port]prefix`, default port dropped.
    pub fn base_url(&self) -> String {
        if self.port == default_port(&self.scheme) {
            format!("{}://{}{}", self.scheme, self.host, self.prefix)
        } else {
            format!(
                "{}://{}:{}{}",
                self.scheme, self.host, self.port, self.prefix
            )
        }
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// `X-Forwarded-Proto`, believed only when the TCP peer is a loopback address.
fn forwarded_scheme(req: &HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?;
    if !peer.ip().is_loopback() {
        return None;
    }
    let value = req.headers().get("x-forwarded-proto")?.to_str().ok()?;
    let first = value.split(',').next()?.trim().to_ascii_lowercase();
    matches!(first.as_str(), "http" | "https").then_some(first)
}

/// Splits `host[:port]`, handling bracketed IPv6 literals; the host is lower-cased.
pub fn split_host_port(value: &str, default_port: u16) -> Option<(String, u16)> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &value[..end + 2];
        match &rest[end + 1..] {
            "" => (host, None),
            tail => (host, Some(tail.strip_prefix(':')?)),
        }
    } else {
        match value.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (value, None),
        }
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn host_port_split() {
        assert_eq!(
            split_host_port("Example.COM:8443", 80),
            Some(("example.com".into(), 8443))
        );
        assert_eq!(
            split_host_port("example.com", 443),
            Some(("example.com".into(), 443))
        );
        assert_eq!(
            split_host_port("[::1]:8000", 80),
            Some(("[::1]".into(), 8000))
        );
        assert_eq!(split_host_port("[::1]", 80), Some(("[::1]".into(), 80)));
        assert_eq!(split_host_port("host:notaport", 80), None);
        assert_eq!(split_host_port("", 80), None);
    }

    #[test]
    fn public_url_wins() {
        let url = PublicUrl::parse("https://example.com:8443/sync").expect("url");
        let req = TestRequest::default()
            .insert_header(("Host", "127.0.0.1:8000"))
            .to_http_request();
        let o = RequestOrigin::of(&req, Some(&url)).expect("origin");
        assert_eq!(o.base_url(), "https://example.com:8443/sync");
        assert_eq!((o.host.as_str(), o.port), ("example.com", 8443));
    }

    #[test]
    fn forwarded_proto_only_from_loopback() {
        let local = TestRequest::default()
            .peer_addr("127.0.0.1:40000".parse().expect("addr"))
            .insert_header(("Host", "sync.example.com"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .to_http_request();
        let o = RequestOrigin::of(&local, None).expect("origin");
        assert_eq!(o.base_url(), "https://sync.example.com");
        assert_eq!(o.port, 443);

        let remote = TestRequest::default()
            .peer_addr("203.0.113.9:40000".parse().expect("addr"))
            .insert_header(("Host", "sync.example.com"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .to_http_request();
        let o = RequestOrigin::of(&remote, None).expect("origin");
        assert_eq!(o.base_url(), "http://sync.example.com");
    }
}
