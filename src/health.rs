//! Health and landing endpoints: `/__lbheartbeat__`, `/__heartbeat__`, `/__version__` and the
//! `/` page that tells a self-hoster what to put into Firefox. None needs authentication and
//! none contacts Firefox Accounts.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{HttpRequest, HttpResponse, guard, web};
use futures_util::future::BoxFuture;
use serde_json::json;

use crate::config::Settings;
use crate::state::AppState;

pub const NAME: &str = env!("CARGO_PKG_NAME");
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Set by build.rs from `git rev-parse`; absent when built outside a git checkout.
pub const GIT_COMMIT: Option<&str> = option_env!("BUILD_GIT_COMMIT");

/// One dependency `/__heartbeat__` checks.
pub trait HealthProbe: Send + Sync {
    fn name(&self) -> &'static str;
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// The probes `/__heartbeat__` runs, in order.
pub struct HealthChecks {
    probes: Vec<Arc<dyn HealthProbe>>,
}

impl HealthChecks {
    /// Starts with the data-directory check; components add their own with [`HealthChecks::add`].
    pub fn new(settings: &Settings) -> Self {
        HealthChecks {
            probes: vec![Arc::new(DataDirProbe(settings.data_dir.clone()))],
        }
    }

    pub fn add(&mut self, probe: Arc<dyn HealthProbe>) {
        self.probes.push(probe);
    }
}

/// The data directory must accept a new file (disk full, read-only mount, wrong owner).
struct DataDirProbe(PathBuf);

/// Numbers the data-directory probe's files.
static PROBE_SEQ: AtomicU64 = AtomicU64::new(0);

impl HealthProbe for DataDirProbe {
    fn name(&self) -> &'static str {
        "data_dir"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let dir = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                // A name per probe: two heartbeats at once must not delete each other's file
                // (the second delete would fail and report a healthy directory as broken).
                let n = PROBE_SEQ.fetch_add(1, Ordering::Relaxed);
                let path = dir.join(format!(".heartbeat-{}-{n}", std::process::id()));
                let written = std::fs::write(&path, b"ok");
                // Removed even when the write failed half-way (a full disk leaves it empty).
                let removed = std::fs::remove_file(&path);
                written
                    .and(removed)
                    .map_err(|e| format!("{} is not writable: {e}", dir.display()))
            })
            .await
            .map_err(|e| format!("check did not finish: {e}"))?
        })
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/__lbheartbeat__", get_or_head().to(lbheartbeat))
        .route("/__heartbeat__", get_or_head().to(heartbeat))
        .route("/__version__", get_or_head().to(version))
        .route("/", get_or_head().to(index));
}

/// GET, and HEAD answered the same without a body: uptime monitors and load balancers
/// often probe with HEAD, and a 404 there reads as "server down". actix-http sends the
/// headers of a HEAD response (its `content-length` included) and drops the body.
fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

async fn lbheartbeat() -> HttpResponse {
    HttpResponse::Ok().json(json!({}))
}

async fn heartbeat(checks: web::Data<HealthChecks>) -> HttpResponse {
    let mut results = serde_json::Map::new();
    let mut failed = Vec::new();
    for probe in &checks.probes {
        match probe.check().await {
            Ok(()) => {
                results.insert(probe.name().into(), json!("ok"));
            }
            Err(message) => {
                tracing::error!(check = probe.name(), %message, "heartbeat check failed");
                results.insert(probe.name().into(), json!("error"));
                failed.push(probe.name());
            }
        }
    }
    if failed.is_empty() {
        HttpResponse::Ok().json(json!({"status": "ok", "version": VERSION, "checks": results}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({
            "status": "error",
            "version": VERSION,
            "failed": failed,
            "checks": results,
        }))
    }
}

async fn version() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": NAME,
        "version": VERSION,
        "commit": GIT_COMMIT.unwrap_or("unknown"),
    }))
}

async fn index(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let configured = state.public_url.is_some();
    let base = state
        .origin(&req)
        .map(|o| o.base_url())
        .unwrap_or_else(|| "http://<this server>".into());
    let uri = format!("{base}/1.0/sync/1.5");
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(index_page(&escape_html(&uri), configured))
}

fn index_page(uri: &str, configured: bool) -> String {
    let origin_note = if configured {
        String::new()
    } else {
        "<p class=\"warn\"><strong>public_url is not set.</strong> The address below was \
         derived from this request; set <code>public_url</code> in the configuration to the \
         address Firefox uses, or Firefox may fail to sync behind a proxy.</p>"
            .to_string()
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>syncserver</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
code {{ background: #f2f2f2; padding: .1rem .3rem; border-radius: 3px; word-break: break-all; }}
.warn {{ background: #fff4d6; padding: .5rem .75rem; border-radius: 4px; }}
</style>
</head>
<body>
<h1>syncserver is running</h1>
<p>This is a Firefox Sync server (version {VERSION}).</p>
{origin_note}
<p>Tokenserver URL for this server:</p>
<p><code id="tokenserver-uri">{uri}</code></p>
<h2>Firefox desktop</h2>
<ol>
<li>Open <code>about:config</code> and accept the warning.</li>
<li>Set <code>identity.sync.tokenserver.uri</code> to <code>{uri}</code>
(if you were already signed in to Sync, sign out first).</li>
<li>Sign in to Sync with your Firefox Account.</li>
</ol>
<p>For Firefox on Android and iOS, see the README that comes with syncserver.</p>
</body>
</html>
"#
    )
}

/// The derived URL comes from the client's `Host` header, so it must not become markup.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn page_shows_uri_and_warns_when_derived() {
        let page = index_page("http://h/1.0/sync/1.5", false);
        assert!(page.contains("<code id=\"tokenserver-uri\">http://h/1.0/sync/1.5</code>"));
        assert!(page.contains("public_url is not set"));
        assert!(!index_page("https://s/1.0/sync/1.5", true).contains("public_url is not set"));
    }
}
