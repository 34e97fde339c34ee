//! Test harness: a real server on 127.0.0.1:0 with a temporary data directory, a manual clock
//! and helpers to mint tokens and sign requests with Hawk like a Sync client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use syncserver::auth::hawk::{self, RequestTarget};
use syncserver::auth::{IssuedToken, TokenPayload, TokenSecret, make_token, new_salt};
use syncserver::clock::{Clock, ManualClock};
use syncserver::config::{Secret, Settings};
use syncserver::server::Server;
use tempfile::TempDir;

pub const TEST_SECRET: &str = "integration test master secret";

pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
    pub settings: Settings,
    pub client: reqwest::Client,
    pub secret: TokenSecret,
    handle: ServerHandle,
}

/// Settings every test starts from: temp data dir, fixed secret, and an FxA URL that goes
/// nowhere (tests that need FxA point it at their mock).
pub fn test_settings(data_dir: &Path) -> Settings {
    let mut s = Settings {
        data_dir: data_dir.to_path_buf(),
        secret: Some(Secret::new(TEST_SECRET)),
        ..Settings::default()
    };
    s.tokenserver.fxa_oauth_server_url = "http://127.0.0.1:9".into();
    s
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `adjust` changed the test settings.
    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = test_settings(dir.path());
        adjust(&mut settings);
        Self::start_in(dir, settings).await
    }

    /// Starts a server on an existing data directory with the given settings.
    pub async fn start_in(dir: TempDir, settings: Settings) -> TestServer {
        let clock = Arc::new(ManualClock::starting_now());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let server = Server::build_with_listener(settings.clone(), clock.clone(), listener)
            .await
            .expect("server builds");
        let addr = server.local_addr();
        let handle = server.spawn();
        let secret = TokenSecret::new(
            settings
                .secret
                .as_ref()
                .map(|s| s.expose().to_string())
                .unwrap_or_default()
                .as_str(),
        );
        TestServer {
            addr,
            base: format!("http://{addr}"),
            clock,
            dir,
            settings,
            client: reqwest::Client::new(),
            secret,
            handle,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    /// A storage token for `uid` as the tokenserver would mint it for this server.
    pub fn token_for(&self, uid: u64) -> IssuedToken {
        self.token_with(uid, &self.base, self.clock.now_secs() + 3600)
    }

    pub fn token_with(&self, uid: u64, node: &str, expires: i64) -> IssuedToken {
        mint_token(&self.secret, uid, node, expires)
    }

    /// A Hawk `Authorization` value for a request to this server, as Firefox makes it.
    pub fn hawk(&self, token: &IssuedToken, method: &str, path_and_query: &str) -> String {
        self.hawk_as(token, method, path_and_query, "127.0.0.1", self.addr.port())
    }

    /// As [`TestServer::hawk`] for a client that used another host/port (reverse proxy tests).
    pub fn hawk_as(
        &self,
        token: &IssuedToken,
        method: &str,
        target: &str,
        host: &str,
        port: u16,
    ) -> String {
        let req = RequestTarget {
            method,
            target,
            host,
            port,
        };
        hawk::sign_request(
            &token.id,
            token.key.as_bytes(),
            &req,
            self.clock.now_secs(),
            &hawk::random_nonce(),
            None,
            None,
        )
    }

    /// Sends a Hawk-signed request for `uid`'s token to `path_and_query`.
    pub fn signed(
        &self,
        token: &IssuedToken,
        method: reqwest::Method,
        path_and_query: &str,
    ) -> reqwest::RequestBuilder {
        let auth = self.hawk(token, method.as_str(), path_and_query);
        self.client
            .request(method, self.url(path_and_query))
            .header("Authorization", auth)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { handle.stop(false).await });
        }
    }
}

/// A storage token for `uid` on `node`, as the tokenserver mints them.
pub fn mint_token(secret: &TokenSecret, uid: u64, node: &str, expires: i64) -> IssuedToken {
    let payload = TokenPayload {
        node: node.to_string(),
        fxa_kid: "0000000001234-qqo".into(),
        fxa_uid: "319b98f9961ff1dbdd07313cd6ba925a".into(),
        hashed_device_id: "3a41cccbdd666ebc4199f1f9d1249d44".into(),
        hashed_fxa_uid: "4d00ecae64b98dd7dc7dea68d0dd615d".into(),
        expires,
        uid,
        tokenserver_origin: Some("rust".into()),
        salt: new_salt(),
    };
    make_token(secret, &payload)
}

/// Sends raw bytes to the server at `addr` and returns the raw response (the connection is
/// closed by the request's `Connection: close`, or by the server after an error).
pub async fn raw_http(addr: SocketAddr, request: Vec<u8>) -> String {
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .expect("timeout");
        let mut w = s.try_clone().expect("clone");
        // Write on another thread: the server may answer (and stop reading) early.
        let writer = std::thread::spawn(move || {
            for chunk in request.chunks(16 * 1024) {
                if w.write_all(chunk).is_err() {
                    break;
                }
            }
        });
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let _ = writer.join();
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("raw request")
}

/// Path of the built `syncserver` binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_syncserver"))
}

/// How long the binary may take to bind and report its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The port in the `listening on 127.0.0.1:PORT` line the binary prints first on stdout.
fn announced_port(stdout: ChildStdout) -> Result<u16, String> {
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("reading its stdout: {e}"))?;
    line.trim_end()
        .strip_prefix("listening on ")
        .and_then(|addr| addr.parse::<SocketAddr>().ok())
        .map(|addr| addr.port())
        .ok_or_else(|| format!("first line on stdout: {line:?}"))
}

/// The real binary running `serve` on a port it picked, with stderr captured to a file.
pub struct BinaryServer {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl BinaryServer {
    /// Starts the binary in `cwd` with extra environment; it is serving on return.
    pub async fn start(cwd: &Path, env: &[(&str, &str)], log_name: &str) -> BinaryServer {
        Self::launch(Command::new(binary()), cwd, env, log_name).await
    }

    /// As [`BinaryServer::start`], started by a shell that first lowers the soft limit on
    /// open files to `limit` (as systemd's default of 1,024 would be).
    pub async fn start_with_open_file_limit(
        cwd: &Path,
        env: &[(&str, &str)],
        log_name: &str,
        limit: u32,
    ) -> BinaryServer {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -S -n {limit} && exec \"$0\""))
            .arg(binary());
        Self::launch(cmd, cwd, env, log_name).await
    }

    /// Starts the binary on port 0 and learns the port it bound from the `listening on`
    /// line it prints on stdout once it serves and handles signals.
    async fn launch(
        mut cmd: Command,
        cwd: &Path,
        env: &[(&str, &str)],
        log_name: &str,
    ) -> BinaryServer {
        let log = cwd.join(log_name);
        let stderr = std::fs::File::create(&log).expect("log file");
        cmd.current_dir(cwd)
            .env_remove("RUST_LOG")
            .env("SYNCSERVER_PORT", "0")
            .env(
                "SYNCSERVER_TOKENSERVER__FXA_OAUTH_SERVER_URL",
                "http://127.0.0.1:9",
            )
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let announced = tokio::time::timeout(
            STARTUP_TIMEOUT,
            tokio::task::spawn_blocking(move || announced_port(stdout)),
        )
        .await;
        match announced {
            Ok(Ok(Ok(port))) => BinaryServer { child, port, log },
            failed => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "binary did not report its address ({failed:?}); log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// A Hawk-signed storage request of `uid` (real clock), for a binary started with
    /// `SYNCSERVER_SECRET` = [`TEST_SECRET`].
    pub fn signed(&self, uid: u64, method: &str, path: &str) -> reqwest::RequestBuilder {
        let now = syncserver::clock::SystemClock.now_secs();
        let token = mint_token(
            &TokenSecret::new(TEST_SECRET),
            uid,
            &self.url(""),
            now + 3600,
        );
        let target = format!("/1.5/{uid}{path}");
        let req = RequestTarget {
            method,
            target: &target,
            host: "127.0.0.1",
            port: self.port,
        };
        let auth = hawk::sign_request(
            &token.id,
            token.key.as_bytes(),
            &req,
            now,
            &hawk::random_nonce(),
            None,
            None,
        );
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        reqwest::Client::new()
            .request(method, self.url(&target))
            .header("Authorization", auth)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = self.child.wait().expect("child exits");
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        (exit, log)
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
