//! Logging setup: text to stderr by default (no colours unless stderr is a terminal, no
//! timestamps under systemd since journald adds its own), or one JSON object per line.

use std::io::IsTerminal;

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter such as `info,syncserver=debug`.
    pub level: String,
    /// `text` (human-readable) or `json` (one object per line).
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `log.level`.
pub fn init(settings: &LogSettings) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => EnvFilter::try_new(value),
        _ => EnvFilter::try_new(&settings.level),
    }
    .map_err(|e| format!("invalid setting `log.level`: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => {
            let tty = std::io::stderr().is_terminal();
            // journald stamps every line itself; JOURNAL_STREAM tells us it is listening.
            let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
            let builder = builder.with_ansi(tty);
            if under_journald {
                builder.without_time().try_init()
            } else {
                builder.try_init()
            }
        }
    };
    result.map_err(|e| format!("cannot install logger: {e}"))
}
