//! Settings: built-in defaults, then a TOML file, then `SYNCSERVER_…` environment variables
//! (later wins), validated once at start-up with messages an operator can act on.
//!
//! Every key is documented in `syncserver.toml.example`; a test keeps that file and the
//! defaults here in step.

pub mod values;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::storage::config::StorageSettings;
use crate::telemetry::LogSettings;
use crate::tokenserver::config::TokenserverSettings;

pub use values::{InvalidSetting, PublicUrl, Secret};

/// The example configuration shipped at the top of the repository.
pub const EXAMPLE_CONFIG: &str = include_str!("../../syncserver.toml.example");

/// File read when `--config` is not given and the file exists.
pub const DEFAULT_CONFIG_FILE: &str = "syncserver.toml";

const ENV_PREFIX: &str = "SYNCSERVER";

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address to listen on.
    pub host: String,
    /// TCP port to listen on; 0 takes a free one, which the `listening on` line on stdout
    /// names.
    pub port: u16,
    /// The URL Firefox uses to reach this server; derived per request when unset.
    pub public_url: Option<String>,
    /// Where the secret, the tokenserver database and the per-user storage files live.
    pub data_dir: PathBuf,
    /// Master secret shared by the tokenserver and storage; generated into
    /// `<data_dir>/secret` when unset.
    pub secret: Option<Secret>,
    pub tokenserver: TokenserverSettings,
    pub storage: StorageSettings,
    pub log: LogSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: "127.0.0.1".into(),
            port: 8000,
            public_url: None,
            data_dir: PathBuf::from("./data"),
            secret: None,
            tokenserver: TokenserverSettings::default(),
            storage: StorageSettings::default(),
            log: LogSettings::default(),
        }
    }
}

/// Why the settings could not be loaded; each message names the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment ({ENV_PREFIX}_…): {0}")]
    Environment(String),
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("secret file {path}: {source}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<InvalidSetting> for ConfigError {
    fn from(e: InvalidSetting) -> ConfigError {
        ConfigError::Invalid {
            key: e.key,
            message: e.message,
        }
    }
}

impl Settings {
    /// Loads defaults → `file` (or `./syncserver.toml` when present) → environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let file = match file {
            Some(path) => Some(path.to_path_buf()),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_FILE);
                default.is_file().then_some(default)
            }
        };
        Self::load_from(file.as_deref(), std::env::vars())
    }

    /// As [`Settings::load`], with the environment passed in (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            // Deserialize the file alone first, so a typo is reported against the file
            // rather than against the merged result.
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            let source = config::File::from_str(&text, config::FileFormat::Toml);
            let file_only = config::Config::builder()
                .add_source(source.clone())
                .build()
                .and_then(|c| c.try_deserialize::<Settings>());
            if let Err(e) = file_only {
                return Err(ConfigError::File {
                    path: path.to_path_buf(),
                    message: describe(e),
                });
            }
            builder = builder.add_source(source);
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}_")))
            .collect();
        check_env_names(env.keys())?;
        // No `try_parsing`: values stay the exact strings given, and the config crate turns
        // a string into a number or a bool where a field needs one. `try_parsing` would
        // rewrite strings that look like numbers (a secret `0123` would become `123`).
        let environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .source(Some(env));
        let settings: Settings = builder
            .add_source(environment)
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::Environment(describe(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            message: message.to_string(),
        };
        if self.host.trim().is_empty() {
            return Err(invalid("host", "expected an IP address or host name"));
        }
        if let Some(url) = &self.public_url {
            PublicUrl::parse(url).map_err(|m| invalid("public_url", &m))?;
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "expected a directory path"));
        }
        if self.secret.as_ref().is_some_and(|s| s.expose().is_empty()) {
            return Err(invalid(
                "secret",
                "must not be empty (remove it to use a generated one)",
            ));
        }
        self.tokenserver.validate()?;
        self.storage.validate()?;
        Ok(())
    }

    /// The parsed `public_url`, when set.
    pub fn public_url(&self) -> Option<PublicUrl> {
        self.public_url
            .as_deref()
            .and_then(|u| PublicUrl::parse(u).ok())
    }

    /// The tokenserver database URL, following `data_dir` unless set explicitly.
    pub fn tokenserver_database_url(&self) -> String {
        match &self.tokenserver.database_url {
            Some(url) => url.clone(),
            // sqlx reads the part after `?` as options and percent-decodes the path, so
            // those characters of the directory's name are escaped.
            None => {
                let path = self.data_dir.join("tokenserver.db").display().to_string();
                let escaped = path
                    .replace('%', "%25")
                    .replace('?', "%3F")
                    .replace('#', "%23");
                format!("sqlite://{escaped}")
            }
        }
    }

    /// The effective settings as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}

/// Settings keys that may be unset by default (absent from the serialized defaults).
const OPTIONAL_KEYS: &[&str] = &["public_url", "secret"];

/// A misspelt `SYNCSERVER_…` variable is an error naming the variable, like a typo in the file.
fn check_env_names<'a>(names: impl Iterator<Item = &'a String>) -> Result<(), ConfigError> {
    let mut known: Vec<String> = OPTIONAL_KEYS.iter().map(|k| k.to_string()).collect();
    let sections = [("tokenserver", TokenserverSettings::OPTIONAL_KEYS)];
    for (section, keys) in sections {
        known.extend(keys.iter().map(|key| format!("{section}.{key}")));
    }
    if let Ok(toml::Value::Table(defaults)) = toml::Value::try_from(Settings::default()) {
        for (key, value) in defaults {
            match value {
                toml::Value::Table(section) => {
                    known.extend(section.keys().map(|sub| format!("{key}.{sub}")))
                }
                _ => known.push(key),
            }
        }
    }
    for name in names {
        let key = setting_key(name);
        if !known.contains(&key) {
            return Err(ConfigError::Environment(format!(
                "unknown variable {name} (no setting `{key}`; see syncserver.toml.example)"
            )));
        }
    }
    Ok(())
}

/// The setting a `SYNCSERVER_…` variable sets: `SYNCSERVER_STORAGE__QUOTA_BYTES` →
/// `storage.quota_bytes`. Callers pass only names that start with the prefix.
fn setting_key(name: &str) -> String {
    name.get(ENV_PREFIX.len() + 1..)
        .unwrap_or_default()
        .to_ascii_lowercase()
        .replace("__", ".")
}

/// Turns a `config` error into one line, without the crate's internal phrasing where possible.
fn describe(e: config::ConfigError) -> String {
    // TOML parse errors span several lines with a caret diagram; keep the operator's
    // terminal and the journal to one line.
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && l.trim_start_matches(['|', '^', ' ']).len() > 1)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn file_with(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let f = file_with(EXAMPLE_CONFIG);
        let loaded = Settings::load_from(Some(f.path()), no_env()).expect("example parses");
        assert_eq!(loaded, Settings::default());
    }

    fn is_assignment(line: &str) -> bool {
        line.split_once(" = ").is_some_and(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
    }

    #[test]
    fn example_config_documents_every_key() {
        // Uncommenting every `# key = value` line must still parse and equal the defaults,
        // so commented-out (derived) keys are real keys with their real defaults.
        let text: String = EXAMPLE_CONFIG
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if is_assignment(rest) => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let table: toml::Table = toml::from_str(&text).expect("uncommented example is TOML");
        let defaults = toml::Table::try_from(Settings::default()).expect("defaults as TOML");
        for (key, value) in &defaults {
            assert!(table.contains_key(key), "example lacks top-level key {key}");
            if let toml::Value::Table(section) = value {
                let documented = table[key].as_table().expect("section");
                for sub in section.keys() {
                    assert!(documented.contains_key(sub), "example lacks {key}.{sub}");
                }
            }
        }
        for key in ["public_url", "secret"] {
            assert!(table.contains_key(key), "example lacks {key}");
        }
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let f = file_with("prot = 8001\n");
        let err = Settings::load_from(Some(f.path()), no_env()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("prot"), "{msg}");
        assert!(msg.contains(&f.path().display().to_string()), "{msg}");
    }

    #[test]
    fn unknown_key_in_section_is_rejected() {
        let f = file_with("[storage]\nmax_post_record = 5\n");
        let msg = Settings::load_from(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("max_post_record"), "{msg}");
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_lists_are_trimmed_and_empty_means_none() {
        let load = |value: &str| {
            Settings::load_from(
                None,
                env(&[("SYNCSERVER_TOKENSERVER__ALLOWED_FXA_UIDS", value)]),
            )
            .expect("loads")
            .tokenserver
            .allowed_fxa_uids
        };
        assert!(load("").is_empty(), "set but empty: no allow-list");
        assert_eq!(load("aaa, bbb ,"), vec!["aaa", "bbb"]);
        assert_eq!(load("0123"), vec!["0123"]);
    }

    #[test]
    fn env_strings_are_taken_verbatim_and_still_convert_to_numbers_and_bools() {
        let s = Settings::load_from(
            None,
            env(&[
                ("SYNCSERVER_SECRET", "0123"),
                ("SYNCSERVER_TOKENSERVER__FXA_METRICS_HASH_SECRET", "TRUE"),
                ("SYNCSERVER_DATA_DIR", "007"),
                ("SYNCSERVER_PORT", "8002"),
                ("SYNCSERVER_TOKENSERVER__ALLOW_NEW_USERS", "False"),
                ("SYNCSERVER_STORAGE__QUOTA_BYTES", "1000"),
            ]),
        )
        .expect("loads");
        assert_eq!(s.secret.as_ref().map(Secret::expose), Some("0123"));
        let metrics = s.tokenserver.fxa_metrics_hash_secret.as_ref();
        assert_eq!(metrics.map(Secret::expose), Some("TRUE"));
        assert_eq!(s.data_dir, PathBuf::from("007"));
        assert_eq!(s.port, 8002);
        assert!(!s.tokenserver.allow_new_users);
        assert_eq!(s.storage.quota_bytes, 1000);
    }

    #[test]
    fn bad_port_names_key() {
        let f = file_with("port = \"eighty\"\n");
        let msg = Settings::load_from(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("port"), "{msg}");
        let f = file_with("port = 70000\n");
        let msg = Settings::load_from(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("port"), "{msg}");
    }

    #[test]
    fn env_overrides_file() {
        let f = file_with("port = 8001\n[storage]\nmax_post_records = 20\n");
        let env = vec![
            ("SYNCSERVER_PORT".to_string(), "8002".to_string()),
            (
                "SYNCSERVER_STORAGE__MAX_POST_RECORDS".to_string(),
                "50".to_string(),
            ),
            (
                "SYNCSERVER_TOKENSERVER__ALLOW_NEW_USERS".to_string(),
                "false".to_string(),
            ),
            (
                "SYNCSERVER_DATA_DIR".to_string(),
                "/var/lib/syncserver".to_string(),
            ),
            (
                "SYNCSERVER_TOKENSERVER__ALLOWED_FXA_UIDS".to_string(),
                "aaa,bbb".to_string(),
            ),
        ];
        let s = Settings::load_from(Some(f.path()), env).expect("loads");
        assert_eq!(s.port, 8002);
        assert_eq!(s.storage.max_post_records, 50);
        assert!(!s.tokenserver.allow_new_users);
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/syncserver"));
        assert_eq!(s.tokenserver.allowed_fxa_uids, vec!["aaa", "bbb"]);
        assert_eq!(
            s.tokenserver_database_url(),
            "sqlite:///var/lib/syncserver/tokenserver.db"
        );
    }

    #[test]
    fn unknown_env_variable_is_named() {
        let env = vec![("SYNCSERVER_STORAGE__MAX_POST".to_string(), "1".to_string())];
        let msg = Settings::load_from(None, env).unwrap_err().to_string();
        assert!(msg.contains("SYNCSERVER_STORAGE__MAX_POST"), "{msg}");
        let env = vec![(
            "SYNCSERVER_PUBLIC_URL".to_string(),
            "https://x.example".to_string(),
        )];
        let s = Settings::load_from(None, env).expect("optional key accepted");
        assert_eq!(s.public_url.as_deref(), Some("https://x.example"));
    }

    #[test]
    fn jwks_from_env_json() {
        let env = vec![(
            "SYNCSERVER_TOKENSERVER__FXA_OAUTH_JWKS".to_string(),
            r#"[{"kty":"RSA","kid":"k1","n":"abc","e":"AQAB"}]"#.to_string(),
        )];
        let s = Settings::load_from(None, env).expect("loads");
        assert_eq!(s.tokenserver.fxa_oauth_jwks.len(), 1);
        assert_eq!(s.tokenserver.fxa_oauth_jwks[0]["kid"], "k1");
    }

    #[test]
    fn bad_enum_value_names_key() {
        let f = file_with("[log]\nformat = \"xml\"\n");
        let msg = Settings::load_from(Some(f.path()), no_env())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("format") || msg.contains("xml"), "{msg}");
    }

    #[test]
    fn public_url_parts() {
        let u = PublicUrl::parse("https://Example.com:8443/sync/").expect("parses");
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, 8443);
        assert_eq!(u.prefix, "/sync");
        assert_eq!(u.origin_with_prefix(), "https://example.com:8443/sync");
        let u = PublicUrl::parse("https://sync.example.com").expect("parses");
        assert_eq!(u.port, 443);
        assert_eq!(u.origin_with_prefix(), "https://sync.example.com");
        assert!(PublicUrl::parse("ftp://x").is_err());
        assert!(PublicUrl::parse("sync.example.com").is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Settings {
            secret: Some(Secret::new("topsecretvalue")),
            ..Settings::default()
        };
        assert!(!s.to_redacted_toml().contains("topsecretvalue"));
        assert!(!format!("{s:?}").contains("topsecretvalue"));
    }
}
