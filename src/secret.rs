//! The master secret: from the settings when given, else generated once into
//! `<data_dir>/secret` (mode 0600) and reused on every later start.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, Secret, Settings};

/// Name of the generated secret file inside `data_dir`.
pub const SECRET_FILE: &str = "secret";

/// Where the master secret came from, for the start-up log line (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Settings,
    File(PathBuf),
    Generated(PathBuf),
}

/// Returns the master secret, creating `<data_dir>/secret` on first start when none is configured.
pub fn master_secret(settings: &Settings) -> Result<(Secret, SecretSource), ConfigError> {
    if let Some(secret) = &settings.secret {
        return Ok((secret.clone(), SecretSource::Settings));
    }
    let path = settings.data_dir.join(SECRET_FILE);
    let io_err = |source| ConfigError::SecretFile {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let value = text.strip_suffix('\n').unwrap_or(&text);
            if value.is_empty() {
                return Err(io_err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "file is empty; delete it to generate a new secret",
                )));
            }
            Ok((Secret::new(value), SecretSource::File(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir(&settings.data_dir).map_err(io_err)?;
            let value = generate();
            write_private(&path, &value).map_err(io_err)?;
            crate::durable::sync_dir(&settings.data_dir);
            Ok((Secret::new(value), SecretSource::Generated(path)))
        }
        Err(e) => Err(io_err(e)),
    }
}

/// Creates `dir` (and missing parents, durably) readable by the owner only: it holds the
/// secret and every user's data. An existing directory keeps the permissions its operator
/// gave it.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    crate::durable::create_dirs(&builder, dir)
}

/// 32 random bytes as 64 lowercase hex characters.
fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Creates the file with mode 0600 from the start, so the secret is never readable by others.
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(value.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = Settings {
            data_dir: dir.path().join("nested"),
            ..Settings::default()
        };
        let (first, source) = master_secret(&settings).expect("generated");
        assert!(matches!(source, SecretSource::Generated(_)));
        assert_eq!(first.expose().len(), 64);
        let (second, source) = master_secret(&settings).expect("reused");
        assert!(matches!(source, SecretSource::File(_)));
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(settings.data_dir.join(SECRET_FILE))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(&settings.data_dir)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
    }

    #[test]
    fn configured_secret_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = Settings {
            data_dir: dir.path().to_path_buf(),
            secret: Some(Secret::new("configured")),
            ..Settings::default()
        };
        let (secret, source) = master_secret(&settings).expect("secret");
        assert_eq!(secret.expose(), "configured");
        assert_eq!(source, SecretSource::Settings);
        assert!(!dir.path().join(SECRET_FILE).exists());
    }
}
