//! New directory entries that survive a power loss.
//!
//! `fsync` on a file makes its contents durable, not its name: a directory entry is durable
//! once the directory holding it has been synced. SQLite syncs the folder of a database when
//! it creates the WAL there, so a user's `.db` and `-wal` are covered; the folders above
//! them (`storage/34/12`), the data directory and the secret file are ours to sync. ext4's
//! journal happens to commit them with the next fsync of any file; XFS and btrfs make no such
//! promise.

use std::fs::{DirBuilder, File};
use std::io;
use std::path::{Path, PathBuf};

/// Flushes the entries of `dir` (the files and folders created in it) to disk. Best effort,
/// as SQLite's own folder syncs are: some network and FUSE filesystems refuse to sync a
/// folder, and the server must still work there, with names as durable as they make them.
pub fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|f| f.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "cannot sync folder");
    }
}

/// [`std::fs::create_dir_all`], then syncs the folder holding each new folder.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    create_dirs(&builder, dir)
}

/// Creates `dir` and its missing parents with `builder` (which must be recursive), then
/// syncs the folder holding each new one.
pub fn create_dirs(builder: &DirBuilder, dir: &Path) -> io::Result<()> {
    let missing = missing_dirs(dir);
    builder.create(dir)?;
    for new in missing.iter().rev() {
        sync_dir(holder(new));
    }
    Ok(())
}

/// `dir` and those of its parents that do not exist yet, deepest first.
fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect()
}

/// The folder holding `path`: its parent, or the working directory for a bare name.
fn holder(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_dirs_stops_at_the_first_existing_parent() {
        let root = tempfile::tempdir().expect("tempdir");
        let deep = root.path().join("a/b/c");
        assert_eq!(
            missing_dirs(&deep),
            vec![deep.clone(), root.path().join("a/b"), root.path().join("a")]
        );
        assert!(missing_dirs(root.path()).is_empty());
        assert_eq!(
            missing_dirs(Path::new("no-such-dir-here/x")),
            vec![
                PathBuf::from("no-such-dir-here/x"),
                PathBuf::from("no-such-dir-here")
            ]
        );
    }

    #[test]
    fn holder_of_a_bare_name_is_the_working_directory() {
        assert_eq!(holder(Path::new("data")), Path::new("."));
        assert_eq!(holder(Path::new("data/storage")), Path::new("data"));
        assert_eq!(holder(Path::new("/data")), Path::new("/"));
    }

    #[test]
    fn create_dirs_creates_every_level_and_tolerates_existing_ones() {
        let root = tempfile::tempdir().expect("tempdir");
        let deep = root.path().join("storage/34/12");
        create_dir_all(&deep).expect("created");
        assert!(deep.is_dir());
        create_dir_all(&deep).expect("exists already");
    }
}
