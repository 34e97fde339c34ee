//! The process's limit on open files, raised when the storage starts.
//!
//! systemd starts services with a soft limit of 1,024 descriptors (the hard limit is far
//! higher). The pool alone may hold twice `max_open_databases` of them, and every client
//! connection takes one more: with the default 256 open files and a thousand clients
//! connected at once, opens failed with "unable to open database file" and 41% of the
//! load bench's requests were answered 503. Like Go's runtime and nginx, the server raises
//! its soft limit to the hard one, and warns when even that is too low.

use super::MAX_DB_JOBS;
use super::pool::{CLOSE_QUEUE, CLOSERS};

/// Descriptors one open user file holds: the database and its WAL. Exclusive locking mode
/// keeps the WAL index in memory, so there is no `-shm` file.
const FDS_PER_FILE: u64 = 2;
/// Files open beyond `max_open_databases`: evicted ones waiting for or being closed by the
/// closer threads, and one more per SQLite job (opening a file, or closing an evicted one
/// itself when the closers' queue is full).
const FILES_IN_TRANSIT: u64 = (CLOSE_QUEUE + CLOSERS + MAX_DB_JOBS) as u64;
/// Descriptors for everything but user files: client connections, the listener, the
/// tokenserver database, outgoing connections to Firefox Accounts, the log.
const HEADROOM: u64 = 1024;

/// Descriptors the server wants with `max_open_databases` open user files.
pub fn wanted(max_open_databases: usize) -> u64 {
    (max_open_databases as u64 + FILES_IN_TRANSIT) * FDS_PER_FILE + HEADROOM
}

/// Raises the soft limit on open files as far as the hard limit allows and logs the result.
pub fn raise(max_open_databases: usize) {
    let wanted = wanted(max_open_databases);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => match shortfall(limit, wanted) {
            None => tracing::debug!(limit, "open-file limit"),
            Some(message) => tracing::warn!(limit, wanted, "{message}"),
        },
        Err(e) => tracing::warn!(
            error = %e,
            wanted,
            "cannot read or raise the open-file limit; with too low a limit, requests fail \
             with 503 when user files cannot be opened"
        ),
    }
}

/// The warning for a limit below what `max_open_databases` wants, or `None`.
fn shortfall(limit: u64, wanted: u64) -> Option<String> {
    (limit < wanted).then(|| {
        format!(
            "the open-file limit ({limit}) is below the {wanted} descriptors that \
             storage.max_open_databases and client connections may need; requests will \
             fail with 503 when no descriptor is left. Raise it (systemd: LimitNOFILE=) \
             or lower storage.max_open_databases"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_counts_two_descriptors_per_file_and_headroom() {
        assert_eq!(FILES_IN_TRANSIT, 75);
        assert_eq!(wanted(256), (256 + 75) * 2 + 1024);
        assert_eq!(wanted(4), (4 + 75) * 2 + 1024);
    }

    #[test]
    fn shortfall_only_below_what_is_wanted() {
        let wanted = wanted(256);
        assert_eq!(shortfall(wanted, wanted), None);
        assert_eq!(shortfall(524_288, wanted), None);
        let message = shortfall(1024, wanted).expect("1024 is too low");
        assert!(message.contains("(1024)"), "{message}");
        assert!(message.contains(&wanted.to_string()), "{message}");
        assert!(message.contains("LimitNOFILE"), "{message}");
    }

    #[test]
    fn raise_lifts_the_soft_limit_to_the_hard_limit() {
        use rlimit::Resource;
        let (_, hard) = Resource::NOFILE.get().expect("getrlimit");
        // One below the hard limit, so the test fails if `raise` does nothing; lowering by
        // one cannot starve the tests running beside this one.
        Resource::NOFILE
            .set(hard - 1, hard)
            .expect("lower the soft limit");
        raise(256);
        assert_eq!(Resource::NOFILE.get().expect("getrlimit"), (hard, hard));
    }
}
