//! Builds the process-wide state once, binds the listener and runs actix-web with graceful
//! shutdown on SIGTERM and SIGINT.
//!
//! Everything shared between workers (clock, secrets, and later the per-user pool, nonce
//! cache and FxA caches) is created here, before `HttpServer::new`, and handed to every
//! worker through `web::Data`. State created inside the app factory would exist once per
//! worker.

mod path_prefix;
mod request_log;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};

use actix_web::dev::Service;
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::auth::token::TokenSecret;
use crate::clock::SharedClock;
use crate::config::{ConfigError, Settings};
use crate::health::{self, HealthChecks};
use crate::secret::{self, SecretSource};
use crate::state::AppState;
use crate::storage::Storage;
use crate::tokenserver::Tokenserver;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Component(String),
}

/// A bound, not yet running server.
pub struct Server {
    addr: SocketAddr,
    server: actix_web::dev::Server,
    storage: web::Data<Storage>,
    tokenserver: web::Data<Tokenserver>,
}

impl Server {
    /// Builds all shared state and binds `host:port` from the settings (port 0 picks one).
    pub async fn build(settings: Settings, clock: SharedClock) -> Result<Server, StartError> {
        let listener = bind(&settings.host, settings.port)?;
        Self::build_with_listener(settings, clock, listener).await
    }

    pub async fn build_with_listener(
        settings: Settings,
        clock: SharedClock,
        listener: TcpListener,
    ) -> Result<Server, StartError> {
        secret::create_private_dir(&settings.data_dir).map_err(|source| StartError::DataDir {
            path: settings.data_dir.display().to_string(),
            source,
        })?;
        let (master, source) = secret::master_secret(&settings)?;
        log_secret_source(&source);
        let public_url = settings.public_url();
        if public_url.is_none() {
            tracing::warn!(
                "public_url is not set: URLs are derived from each request's Host header; \
                 set public_url to the address Firefox uses (see syncserver.toml.example)"
            );
        }
        let state = web::Data::new(AppState {
            tokens: TokenSecret::new(master.expose()),
            public_url,
            clock,
            settings,
        });
        let storage = Storage::open(state.clone()).map_err(StartError::Component)?;
        let tokenserver = Tokenserver::start(state.clone(), storage.clone().into_inner())
            .await
            .map_err(StartError::Component)?;
        let mut checks = HealthChecks::new(&state.settings);
        for probe in tokenserver.health_probes() {
            checks.add(probe);
        }
        let checks = web::Data::new(checks);
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: "listener".into(),
            source,
        })?;
        let payload_limit =
            usize::try_from(state.settings.storage.max_request_bytes).unwrap_or(usize::MAX);

        let prefix = state.public_url.as_ref().map(|u| u.prefix.clone());
        let app_state = state.clone();
        let app_storage = storage.clone();
        let app_tokenserver = tokenserver.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(checks.clone())
                .app_data(app_storage.clone())
                .app_data(app_tokenserver.clone())
                .app_data(web::PayloadConfig::new(payload_limit))
                .configure(health::configure)
                .configure(crate::tokenserver::configure)
                .configure(crate::storage::configure)
                .default_service(web::to(not_found))
                .wrap_fn(request_log::log_request)
                .wrap_fn({
                    let prefix = prefix.clone();
                    move |mut req, srv| {
                        path_prefix::strip(&mut req, prefix.as_deref());
                        srv.call(req)
                    }
                })
                .wrap(actix_cors::Cors::permissive().max_age(3600))
        })
        .disable_signals()
        // Each worker's blocking pool, which runs the SQLite jobs (`MAX_DB_JOBS` at once
        // across workers) and a few other blocking calls. At actix's default (512 /
        // workers) a busy pool grew to ~20 threads per worker that contended for the
        // pool's one lock; more threads than SQLite jobs only add contention
        // (docs/performance.md §7.4).
        .worker_max_blocking_threads(crate::storage::MAX_DB_JOBS)
        .shutdown_timeout(30)
        .listen(widen_backlog(listener)?)
        .map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            source,
        })?
        .run();
        Ok(Server {
            addr,
            server,
            storage,
            tokenserver,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs until SIGTERM or SIGINT, then lets in-flight requests finish. Once both signals
    /// are handled it prints `listening on <address>` on stdout, whatever the log settings,
    /// so whoever started it on port 0 (the tests, the load bench) learns its port.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let stop = stop_signal();
        tokio::spawn(async move {
            stop.await;
            tracing::info!("shutting down: finishing in-flight requests");
            handle.stop(true).await;
        });
        tracing::info!(address = %self.addr, "listening");
        // A closed stdout is no reason to stop serving.
        let _ = writeln!(std::io::stdout(), "listening on {}", self.addr);
        self.server.await?;
        self.tokenserver.close().await;
        self.storage.close().await;
        tracing::info!("stopped");
        Ok(())
    }

    /// Runs on the current runtime in the background (tests); returns a handle to stop it.
    pub fn spawn(self) -> actix_web::dev::ServerHandle {
        let handle = self.server.handle();
        tokio::spawn(async move {
            let _ = self.server.await;
            self.tokenserver.close().await;
            self.storage.close().await;
        });
        handle
    }
}

/// Connections the kernel queues for the server before it accepts them. std's
/// `TcpListener::bind` listens with 128, which a burst of clients connecting at once
/// overflows, and each overflow costs its client a SYN retransmission (1 s or more;
/// docs/performance.md §7.6). actix's own default is 2,048; Linux caps it at
/// `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 2048;

/// Listens again on `listener` with [`LISTEN_BACKLOG`]; Linux and the BSDs let a listening
/// socket change its backlog this way.
fn widen_backlog(listener: TcpListener) -> Result<TcpListener, StartError> {
    match socket2::SockRef::from(&listener).listen(LISTEN_BACKLOG) {
        Ok(()) => Ok(listener),
        Err(source) => Err(StartError::Bind {
            addr: listener
                .local_addr()
                .map_or_else(|_| "listener".into(), |a| a.to_string()),
            source,
        }),
    }
}

fn bind(host: &str, port: u16) -> Result<TcpListener, StartError> {
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    TcpListener::bind(&addr).map_err(|source| StartError::Bind { addr, source })
}

fn log_secret_source(source: &SecretSource) {
    match source {
        SecretSource::Settings => tracing::info!("master secret: from the settings"),
        SecretSource::File(path) => {
            tracing::info!(path = %path.display(), "master secret: read from file")
        }
        SecretSource::Generated(path) => tracing::info!(
            path = %path.display(),
            "master secret: generated a new one; back this file up with the data"
        ),
    }
}

/// Handles SIGTERM and SIGINT from the call on, not from the first poll, so a signal sent
/// as soon as the `listening on` line appears still stops the server gracefully. The
/// future ends at the first of them.
#[cfg(unix)]
fn stop_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let Ok(mut interrupt) = interrupt else { return };
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
                interrupt.recv().await;
            }
        }
    }
}

#[cfg(not(unix))]
fn stop_signal() -> impl Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Unknown paths: 404 with the bare Weave code `0`, as storage clients expect.
async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("application/json")
        .body("0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::time::Duration;

    /// A listener that accepts nothing queues backlog + 1 connections and drops the SYNs of
    /// later ones, whose connect then times out. Linux caps the backlog at somaxconn.
    #[test]
    fn widened_listener_queues_more_than_128_connections() {
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(4096);
        let wanted = 400.min(somaxconn);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let listener = widen_backlog(listener).expect("listen again");
        let addr = listener.local_addr().expect("address");
        let queued: Vec<TcpStream> = (0..wanted)
            .map(|i| {
                TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                    .unwrap_or_else(|e| panic!("connection {i} of {wanted}: {e}"))
            })
            .collect();
        assert_eq!(queued.len(), wanted);
    }
}
