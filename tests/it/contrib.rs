//! The packaging files in contrib/ are correct: the systemd unit verifies cleanly against the
//! built binary, and the nginx site matches the server's limits and Hawk's needs.

use std::path::Path;
use std::process::Command;

use syncserver::config::Settings;

use crate::common::binary;

const UNIT: &str = include_str!("../../contrib/syncserver.service");
const NGINX: &str = include_str!("../../contrib/nginx.conf");

/// `systemd-analyze`, from Debian's `systemd` package, which `.ci/run` installs when it is
/// missing; tests never install anything themselves.
fn systemd_analyze() -> &'static str {
    const PATH: &str = "/usr/bin/systemd-analyze";
    assert!(
        Path::new(PATH).exists(),
        "this test needs {PATH} (Debian package `systemd`): run `.ci/run`, which installs it, \
         or `apt-get install systemd`"
    );
    PATH
}

#[test]
fn systemd_unit_verifies_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let unit = UNIT.replace(
        "ExecStart=/usr/local/bin/syncserver",
        &format!("ExecStart={}", binary().display()),
    );
    assert_ne!(unit, UNIT, "ExecStart line not found");
    let path = dir.path().join("syncserver.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(systemd_analyze())
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let own: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("syncserver.service"))
        .collect();
    assert!(own.is_empty(), "warnings about the unit: {own:?}");
}

#[test]
fn systemd_unit_has_required_settings() {
    for line in [
        "ExecStart=/usr/local/bin/syncserver --config /etc/syncserver/syncserver.toml",
        "Environment=SYNCSERVER_DATA_DIR=/var/lib/syncserver",
        "StateDirectory=syncserver",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ReadWritePaths=/var/lib/syncserver",
    ] {
        assert!(UNIT.lines().any(|l| l == line), "missing: {line}");
    }
    assert!(
        UNIT.lines()
            .any(|l| l.starts_with("RestrictAddressFamilies="))
    );
}

fn nginx_directive<'a>(name: &str) -> Vec<&'a str> {
    NGINX
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(name))
        .map(|rest| rest.trim().trim_end_matches(';').trim())
        .collect()
}

#[test]
fn nginx_body_limit_covers_max_request_bytes() {
    let sizes = nginx_directive("client_max_body_size ");
    assert_eq!(sizes.len(), 1);
    let size = sizes[0];
    let bytes: u64 = match size.strip_suffix(['m', 'M']) {
        Some(n) => n.parse::<u64>().unwrap() * 1024 * 1024,
        None => match size.strip_suffix(['k', 'K']) {
            Some(n) => n.parse::<u64>().unwrap() * 1024,
            None => size.parse().unwrap(),
        },
    };
    assert!(
        bytes >= Settings::default().storage.max_request_bytes,
        "{size}"
    );
}

#[test]
fn nginx_passes_path_unchanged_with_forwarding_headers() {
    let targets = nginx_directive("proxy_pass ");
    assert_eq!(
        targets,
        vec!["http://127.0.0.1:8000"],
        "no URI part after the address"
    );
    let headers = nginx_directive("proxy_set_header ");
    for h in ["Host $host", "X-Forwarded-Proto $scheme", "X-Forwarded-For"] {
        assert!(headers.iter().any(|l| l.starts_with(h)), "missing {h}");
    }
    assert!(!nginx_directive("ssl_certificate ").is_empty());
    assert!(NGINX.contains("public_url"));
}
