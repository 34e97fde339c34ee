//! Value types that settings of several sections share: secrets, the public URL, list
//! syntax for TOML and the environment, and the error a section's validation reports.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

/// A setting that failed validation: its full key (`section.name`) and what was expected.
#[derive(Debug)]
pub struct InvalidSetting {
    pub key: &'static str,
    pub message: String,
}

impl InvalidSetting {
    pub fn new(key: &'static str, message: impl Into<String>) -> InvalidSetting {
        InvalidSetting {
            key,
            message: message.into(),
        }
    }
}

/// A secret string: never printed by `Debug`, redacted by `Serialize` (check-config output).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// A TOML array of strings, or (from the environment) one comma-separated string. Entries
/// are trimmed and empty ones dropped, so `SYNCSERVER_…=` (set but empty, as templates leave
/// it) means an empty list and `a, b` means `["a", "b"]`.
pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<String>),
        Text(String),
    }
    let entries = match ListOrText::deserialize(d)? {
        ListOrText::List(list) => list,
        ListOrText::Text(text) => text.split(',').map(str::to_string).collect(),
    };
    Ok(entries
        .into_iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

/// A TOML array, or (from the environment) a string holding a JSON array.
pub fn list_or_json<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<serde_json::Value>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrJson {
        List(Vec<serde_json::Value>),
        Json(String),
    }
    match ListOrJson::deserialize(d)? {
        ListOrJson::List(list) => Ok(list),
        ListOrJson::Json(text) if text.trim().is_empty() => Ok(Vec::new()),
        ListOrJson::Json(text) => serde_json::from_str(&text)
            .map_err(|e| serde::de::Error::custom(format!("expected a JSON array of JWKs: {e}"))),
    }
}

/// `public_url` split into the parts Hawk and the tokenserver need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    pub scheme: String,
    /// Lower-case host, IPv6 in brackets.
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing `/` (empty when mounted at the root).
    pub prefix: String,
}

impl PublicUrl {
    pub fn parse(text: &str) -> Result<PublicUrl, String> {
        let form = "expected an http(s) URL such as https://sync.example.com";
        let url = Url::parse(text).map_err(|e| format!("{e}; {form}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(form.into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("must not have a query or fragment; {form}"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("must not contain credentials; {form}"));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(addr)) => format!("[{addr}]"),
            Some(host) => host.to_string().to_ascii_lowercase(),
            None => return Err(form.into()),
        };
        let port = url.port_or_known_default().ok_or(form)?;
        Ok(PublicUrl {
            scheme: url.scheme().to_string(),
            host,
            port,
            prefix: url.path().trim_end_matches('/').to_string(),
        })
    }

    /// `scheme://host[:port]prefix`, default port dropped, no trailing `/`.
    pub fn origin_with_prefix(&self) -> String {
        let default_port = match self.scheme.as_str() {
            "https" => 443,
            _ => 80,
        };
        if self.port == default_port {
            format!("{}://{}{}", self.scheme, self.host, self.prefix)
        } else {
            format!(
                "{}://{}:{}{}",
                self.scheme, self.host, self.port, self.prefix
            )
        }
    }
}
