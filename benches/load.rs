//! Load benchmark for the storage service (not a test).
//!
//! Starts the release `syncserver` binary on a temporary data directory, then drives a
//! realistic Sync mix over HTTP with real Hawk headers:
//!
//! 1. first sync for every user: PUT meta/global, PUT crypto/keys, and two
//!    `POST ?batch=true&commit=true` uploads of 100 records (bookmarks, history);
//! 2. incremental syncs from `--active` concurrent clients, each doing what Firefox does on
//!    a routine sync, again and again: GET info/collections, GET history?newer=…&full=1
//!    (newer = what that user's client last synced), and a small POST of 1–5 records.
//!    By default each client keeps one user for the whole phase, so `--active` of the
//!    `--users` on disk are active at a time (the target setup: 10,000 users on disk,
//!    ~100 active). With `--syncs-per-user K` a client instead picks a random user after
//!    every K syncs; K = 1 makes every sync a new random user, so with many users on disk
//!    nearly every sync finds the user's file closed (the worst case for the open-file
//!    cache).
//!    `--firefox` makes a routine sync what desktop Firefox was seen to send: GET
//!    info/collections, info/configuration, meta/global and clients?full=1&limit=1000, then
//!    the POST (the first sync then also uploads a clients record).
//!
//! It prints requests/s, p50/p99 latency per request kind, the server's CPU time per request
//! (from /proc/<pid>/stat; the load generator shares the machine, so server CPU per request is
//! the stable figure) and the server's peak RSS (VmHWM).
//!
//! Run: `cargo bench --bench load -- --users 10000 --active 100 --requests 30000`
//! Options: --users N (default 100), --active N (default min(users, 100)),
//! --requests N (incremental phase, default 20000), --synchronous full|normal (default full),
//! --data-dir D (keep the data there) with --skip-first-sync (reuse it), --rate R,
//! --syncs-per-user K (default: each client keeps its user), --firefox.
//!
//! By default the incremental clients send back to back, so the server is saturated and
//! latency is mostly queueing: with C clients, p50 ≈ C / throughput. `--rate R` offers R
//! requests/s instead (sessions start on a fixed schedule, whoever is free takes the next),
//! which shows the latency at a load below capacity.
//! `LOAD_BENCH_SERVER=path` benchmarks that server binary instead of this build's.

// The report goes to stdout; a setup step that fails ends the run with its message.
#![allow(clippy::print_stdout, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use syncserver::auth::hawk::{self, RequestTarget};
use syncserver::auth::{IssuedToken, TokenPayload, TokenSecret, make_token, new_salt};
use tokio::sync::Mutex;

const SECRET: &str = "benchmark master secret";

struct Options {
    users: u64,
    active: u64,
    requests: u64,
    synchronous: String,
    /// Reuse this data directory (kept afterwards) instead of a fresh temporary one.
    data_dir: Option<String>,
    /// Skip the first-sync phase (with `--data-dir` already holding those users).
    skip_first_sync: bool,
    /// Offered load of the incremental phase (requests/s); unset = as fast as possible.
    rate: Option<f64>,
    /// Incremental syncs a client makes for one user before it picks a random next one;
    /// unset = each client keeps its own user for the whole phase.
    syncs_per_user: Option<u64>,
    /// Routine syncs as Firefox sends them rather than the mix above.
    firefox: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let users = value("--users")
        .and_then(|v| v.parse().ok())
        .filter(|n: &u64| *n > 0)
        .unwrap_or(100);
    Options {
        users,
        active: value("--active")
            .and_then(|v| v.parse().ok())
            .filter(|a: &u64| *a > 0)
            .unwrap_or(users.min(100)),
        requests: value("--requests")
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000),
        synchronous: value("--synchronous").unwrap_or_else(|| "full".into()),
        data_dir: value("--data-dir"),
        skip_first_sync: args.iter().any(|a| a == "--skip-first-sync"),
        rate: value("--rate")
            .and_then(|v| v.parse().ok())
            .filter(|r: &f64| *r > 0.0),
        syncs_per_user: value("--syncs-per-user")
            .and_then(|v| v.parse().ok())
            .filter(|k: &u64| *k > 0),
        firefox: args.iter().any(|a| a == "--firefox"),
    }
}

/// How long the server may take to start and print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The server process and what we read about it from /proc.
struct ServerProcess {
    child: Child,
    port: u16,
}

impl ServerProcess {
    /// Starts the server on port 0 and learns its port from the `listening on` line it
    /// prints on stdout once it serves.
    fn start(data_dir: &Path, synchronous: &str) -> ServerProcess {
        // LOAD_BENCH_SERVER runs another build of the server (to compare two builds on
        // the same data and machine).
        let bin = std::env::var_os("LOAD_BENCH_SERVER")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_syncserver").into());
        let mut child = Command::new(&bin)
            .env_remove("RUST_LOG")
            .env("SYNCSERVER_DATA_DIR", data_dir)
            .env("SYNCSERVER_PORT", "0")
            .env("SYNCSERVER_SECRET", SECRET)
            .env("SYNCSERVER_LOG__LEVEL", "warn")
            .env("SYNCSERVER_STORAGE__SQLITE_SYNCHRONOUS", synchronous)
            .env(
                "SYNCSERVER_TOKENSERVER__FXA_OAUTH_SERVER_URL",
                "http://127.0.0.1:9",
            )
            .stdout(Stdio::piped())
            .spawn()
            .expect("start syncserver");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(STARTUP_TIMEOUT).unwrap_or_default();
        let port = line
            .trim_end()
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse::<SocketAddr>().ok())
            .map(|addr| addr.port());
        match port {
            Some(port) => ServerProcess { child, port },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not print `listening on <address>` on stdout within {STARTUP_TIMEOUT:?} \
                     (got {line:?}); builds without that line cannot be benchmarked",
                    bin.to_string_lossy()
                );
            }
        }
    }

    /// User + system CPU time of the server so far.
    fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
            .sum();
        // The kernel reports in USER_HZ, which is 100 on Linux.
        Duration::from_millis(ticks * 10)
    }

    fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// One simulated user: its credentials and what it last saw.
struct User {
    uid: u64,
    token: IssuedToken,
    /// The history timestamp this user's client has synced up to (Firefox's lastSync for
    /// the engine), sent as `newer`. Empty until known: this process has not synced the
    /// user yet (a reused `--data-dir`), so the first incremental sync takes it from
    /// info/collections, as a client that already holds everything on the server would.
    last_history: Mutex<String>,
}

struct Client {
    http: reqwest::Client,
    port: u16,
    latencies: Mutex<HashMap<&'static str, Vec<Duration>>>,
    errors: AtomicU64,
}

impl Client {
    async fn send(
        &self,
        kind: &'static str,
        user: &User,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Option<reqwest::Response> {
        let target = format!("/1.5/{}{}", user.uid, path);
        let auth = hawk::sign_request(
            &user.token.id,
            user.token.key.as_bytes(),
            &RequestTarget {
                method: method.as_str(),
                target: &target,
                host: "127.0.0.1",
                port: self.port,
            },
            unix_now(),
            &hawk::random_nonce(),
            None,
            None,
        );
        let mut req = self
            .http
            .request(method, format!("http://127.0.0.1:{}{}", self.port, target))
            .header("Authorization", auth);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.header("Content-Type", "text/plain").body(body);
        }
        let started = Instant::now();
        let res = req.send().await;
        let elapsed = started.elapsed();
        self.latencies
            .lock()
            .await
            .entry(kind)
            .or_default()
            .push(elapsed);
        match res {
            Ok(r) if r.status().is_success() || r.status() == 304 => Some(r),
            Ok(r) => {
                if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("{kind}: unexpected status {}", r.status());
                }
                None
            }
            Err(e) => {
                if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("{kind}: {e}");
                }
                None
            }
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An encrypted-looking payload of about `len` bytes, as Firefox stores.
fn payload(len: usize, seed: u64) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let cipher: String = (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            alphabet[(x >> 58) as usize] as char
        })
        .collect();
    format!(
        r#"{{\"ciphertext\":\"{cipher}\",\"IV\":\"q80sLmwKIz1WFCj1nwJ4pQ==\",\"hmac\":\"5f6e\"}}"#
    )
}

fn records(count: usize, prefix: &str, seed: u64, len: usize) -> String {
    let items: Vec<String> = (0..count)
        .map(|i| {
            format!(
                r#"{{"id":"{prefix}{i:08}","sortindex":{i},"payload":"{}"}}"#,
                payload(len, seed + i as u64)
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

async fn first_sync(client: &Client, user: &User, firefox: bool) {
    use reqwest::Method;
    let meta = format!(
        r#"{{"id":"global","payload":"{}"}}"#,
        payload(200, user.uid)
    );
    let keys = format!(r#"{{"id":"keys","payload":"{}"}}"#, payload(300, user.uid));
    let unmodified = [("X-If-Unmodified-Since", "0")];
    client
        .send(
            "put",
            user,
            Method::PUT,
            "/storage/meta/global",
            Some(meta),
            &unmodified,
        )
        .await;
    client
        .send(
            "put",
            user,
            Method::PUT,
            "/storage/crypto/keys",
            Some(keys),
            &unmodified,
        )
        .await;
    for collection in ["bookmarks", "history"] {
        let body = records(100, &collection[..4], user.uid * 1000, 400);
        let path = format!("/storage/{collection}?batch=true&commit=true");
        let res = client
            .send(
                "post_batch_100",
                user,
                Method::POST,
                &path,
                Some(body),
                &unmodified,
            )
            .await;
        if collection == "history" {
            remember_history(user, res.as_ref()).await;
        }
    }
    if firefox {
        let record = format!(
            r#"[{{"id":"device{:08}","payload":"{}"}}]"#,
            user.uid,
            payload(500, user.uid)
        );
        client
            .send(
                "post_clients",
                user,
                Method::POST,
                "/storage/clients?batch=true&commit=true",
                Some(record),
                &unmodified,
            )
            .await;
    }
}

/// After an upload, the client has synced history up to the upload's X-Last-Modified.
async fn remember_history(user: &User, res: Option<&reqwest::Response>) {
    if let Some(modified) = res
        .and_then(|r| r.headers().get("X-Last-Modified"))
        .and_then(|v| v.to_str().ok())
    {
        *user.last_history.lock().await = modified.to_string();
    }
}

/// The history timestamp in an info/collections body ("0" when the user has none).
fn history_in_info(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("history").map(ToString::to_string))
        .unwrap_or_else(|| "0".into())
}

async fn incremental_sync(client: &Client, user: &User, round: u64, firefox: bool) -> u64 {
    use reqwest::Method;
    let mut sent = 0;
    let mut info = Vec::new();
    if let Some(res) = client
        .send(
            "info_collections",
            user,
            Method::GET,
            "/info/collections",
            None,
            &[],
        )
        .await
    {
        info = res.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    }
    sent += 1;
    if firefox {
        return sent + firefox_routine_sync(client, user, round).await;
    }
    let newer = {
        let mut last = user.last_history.lock().await;
        if last.is_empty() {
            *last = history_in_info(&info);
        }
        last.clone()
    };
    let path = format!("/storage/history?newer={newer}&full=1&limit=1000");
    if let Some(res) = client
        .send("get_newer", user, Method::GET, &path, None, &[])
        .await
    {
        let _ = res.bytes().await;
    }
    sent += 1;
    post_small(client, user, round).await;
    sent + 1
}

/// The routine upload: 1-5 new history records in one `batch=true&commit=true` POST, after
/// which the client has synced history up to the upload.
async fn post_small(client: &Client, user: &User, round: u64) {
    let count = 1 + (round % 5) as usize;
    let body = records(count, &format!("h{:03}", round % 1000), round, 300);
    let res = client
        .send(
            "post_small",
            user,
            reqwest::Method::POST,
            "/storage/history?batch=true&commit=true",
            Some(body),
            &[],
        )
        .await;
    remember_history(user, res.as_ref()).await;
}

/// The rest of a routine sync as desktop Firefox sends it, after info/collections:
/// nothing changed on the server, so no engine downloads; history has something to upload.
async fn firefox_routine_sync(client: &Client, user: &User, round: u64) -> u64 {
    use reqwest::Method;
    let reads = [
        ("info_configuration", "/info/configuration"),
        ("get_meta_global", "/storage/meta/global"),
        ("get_clients", "/storage/clients?full=1&limit=1000"),
    ];
    for (kind, path) in reads {
        if let Some(res) = client.send(kind, user, Method::GET, path, None, &[]).await {
            let _ = res.bytes().await;
        }
    }
    post_small(client, user, round).await;
    reads.len() as u64 + 1
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn report(
    phase: &str,
    client: &Client,
    server: &ServerProcess,
    cpu: Duration,
    wall: Duration,
) {
    let mut latencies = client.latencies.lock().await;
    let total: usize = latencies.values().map(Vec::len).sum();
    println!("\n== {phase}");
    println!(
        "requests: {total}  wall: {:.1} s  throughput: {:.0} req/s  errors: {}",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64(),
        client.errors.swap(0, Ordering::Relaxed)
    );
    println!(
        "server CPU: {:.2} s  = {:.0} µs per request ({:.0} requests per server-CPU-second)",
        cpu.as_secs_f64(),
        cpu.as_micros() as f64 / total.max(1) as f64,
        total as f64 / cpu.as_secs_f64().max(0.001)
    );
    println!(
        "server RSS: {} KiB now, {} KiB peak (VmHWM)",
        server.status_kib("VmRSS:"),
        server.status_kib("VmHWM:")
    );
    let mut kinds: Vec<_> = latencies.keys().copied().collect();
    kinds.sort();
    println!(
        "{:<18} {:>8} {:>10} {:>10}",
        "kind", "count", "p50 ms", "p99 ms"
    );
    for kind in kinds {
        let v = latencies.get_mut(kind).expect("kind present");
        v.sort();
        println!(
            "{:<18} {:>8} {:>10.2} {:>10.2}",
            kind,
            v.len(),
            percentile(v, 0.50).as_secs_f64() * 1000.0,
            percentile(v, 0.99).as_secs_f64() * 1000.0
        );
    }
    latencies.clear();
}

fn make_users(n: u64, port: u16) -> Vec<Arc<User>> {
    let secret = TokenSecret::new(SECRET);
    let node = format!("http://127.0.0.1:{port}");
    (1..=n)
        .map(|uid| {
            let payload = TokenPayload {
                node: node.clone(),
                fxa_kid: "0000000001234-qqo".into(),
                fxa_uid: format!("{uid:032x}"),
                hashed_device_id: "3a41cccbdd666ebc4199f1f9d1249d44".into(),
                hashed_fxa_uid: "4d00ecae64b98dd7dc7dea68d0dd615d".into(),
                expires: unix_now() + 86_400,
                uid,
                tokenserver_origin: Some("rust".into()),
                salt: new_salt(),
            };
            Arc::new(User {
                uid,
                token: make_token(&secret, &payload),
                last_history: Mutex::new(String::new()),
            })
        })
        .collect()
}

fn main() {
    let opts = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(opts));
}

async fn run(opts: Options) {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = opts
        .data_dir
        .as_deref()
        .map(Path::new)
        .unwrap_or(temp.path());
    let server = ServerProcess::start(dir, &opts.synchronous);
    println!(
        "syncserver load benchmark: {} users on disk, {} active clients, synchronous={}",
        opts.users, opts.active, opts.synchronous
    );
    let users = Arc::new(make_users(opts.users, server.port));
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(opts.active as usize)
            .build()
            .expect("client"),
        port: server.port,
        latencies: Mutex::new(HashMap::new()),
        errors: AtomicU64::new(0),
    });

    if !opts.skip_first_sync {
        first_sync_phase(&opts, &client, &users, &server).await;
    }
    incremental_phase(&opts, &client, &users, &server).await;
}

/// Runs one phase's client tasks to completion and reports it, with the server's CPU time
/// and the wall time measured around exactly that work.
async fn run_phase(
    title: &str,
    client: &Client,
    server: &ServerProcess,
    spawn: impl FnOnce() -> Vec<tokio::task::JoinHandle<()>>,
) {
    let cpu0 = server.cpu_time();
    let started = Instant::now();
    for t in spawn() {
        let _ = t.await;
    }
    let wall = started.elapsed();
    report(title, client, server, server.cpu_time() - cpu0, wall).await;
}

/// Phase 1: every user's first sync, `active` users at a time.
async fn first_sync_phase(
    opts: &Options,
    client: &Arc<Client>,
    users: &Arc<Vec<Arc<User>>>,
    server: &ServerProcess,
) {
    let title = if opts.firefox {
        "first sync (PUT meta/global + crypto/keys, 2 x POST 100 records, POST clients)"
    } else {
        "first sync (PUT meta/global + crypto/keys, 2 x POST 100 records)"
    };
    let firefox = opts.firefox;
    run_phase(title, client, server, || {
        let next = Arc::new(AtomicU64::new(0));
        (0..opts.active)
            .map(|_| {
                let (client, users, next) = (client.clone(), users.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(user) = users.get(i) else { break };
                        first_sync(&client, user, firefox).await;
                    }
                })
            })
            .collect()
    })
    .await;
}

/// Phase 2: incremental syncs, of the clients' own users or of random ones.
async fn incremental_phase(
    opts: &Options,
    client: &Arc<Client>,
    users: &Arc<Vec<Arc<User>>>,
    server: &ServerProcess,
) {
    let mut title = if opts.firefox {
        "routine syncs as Firefox sends them (info/collections, info/configuration, \
         meta/global, clients, POST 1-5 records)"
    } else {
        "incremental syncs (info/collections, GET newer, POST 1-5 records)"
    }
    .to_string();
    if let Some(r) = opts.rate {
        title.push_str(&format!(" offered at {r} req/s"));
    }
    match opts.syncs_per_user {
        None => title.push_str(&format!(
            ", each client keeping its user ({} of {} active)",
            opts.active.min(opts.users),
            opts.users
        )),
        Some(1) => title.push_str(", a random user for every sync"),
        Some(k) => title.push_str(&format!(", a random user every {k} syncs")),
    }
    // With a rate, session k starts at k × interval (a session is 3 requests, 5 with
    // --firefox).
    let per_session = if opts.firefox { 5.0 } else { 3.0 };
    let schedule = opts
        .rate
        .map(|r| (Instant::now(), Duration::from_secs_f64(per_session / r)));
    let late = Arc::new(AtomicU64::new(0));
    run_phase(&title, client, server, || {
        let sent = Arc::new(AtomicU64::new(0));
        let next_session = Arc::new(AtomicU64::new(0));
        (0..opts.active)
            .map(|task| {
                let (client, users, sent) = (client.clone(), users.clone(), sent.clone());
                let (next_session, late) = (next_session.clone(), late.clone());
                let budget = opts.requests;
                let (syncs_per_user, firefox) = (opts.syncs_per_user, opts.firefox);
                // Without --syncs-per-user, client `task` keeps user `own`: distinct users,
                // spread over the whole storage tree.
                let own = (task * users.len() as u64 / opts.active) as usize;
                tokio::spawn(async move {
                    let mut x = task.wrapping_mul(2654435761).wrapping_add(12345);
                    let mut round = 0;
                    while sent.load(Ordering::Relaxed) < budget {
                        if let Some((start, interval)) = schedule {
                            let k = next_session.fetch_add(1, Ordering::Relaxed) as u32;
                            let due = start + interval * k;
                            tokio::time::sleep_until(due.into()).await;
                            if due.elapsed() > Duration::from_millis(10) {
                                late.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        let user = match syncs_per_user {
                            None => &users[own],
                            Some(k) => {
                                if round % k == 0 {
                                    x ^= x << 13;
                                    x ^= x >> 7;
                                    x ^= x << 17;
                                }
                                &users[(x % users.len() as u64) as usize]
                            }
                        };
                        round += 1;
                        let n = incremental_sync(&client, user, round * 1000 + task, firefox).await;
                        sent.fetch_add(n, Ordering::Relaxed);
                    }
                })
            })
            .collect()
    })
    .await;
    if schedule.is_some() {
        println!(
            "sessions that started over 10 ms late (every client busy): {}",
            late.load(Ordering::Relaxed)
        );
    }
}
