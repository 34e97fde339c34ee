//! The SQLite VFS of the user files, and two of the unix VFS's system calls replaced.
//!
//! With 10,000 users almost every sync opens a file that was closed, so what SQLite's unix
//! VFS does at an open, a commit and a close is paid per sync. Three of those things cost a
//! device write without changing anything on disk: a folder fsync for a WAL that already
//! existed, and an inode write after a chown or a truncate that left the owner or the size
//! as it was. On this kind of virtual disk each write is a VM exit and a wait.

use std::ffi::CStr;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicPtr, Ordering};

use rusqlite::ffi;

const NAME: &CStr = c"syncserver-storage";

/// The name of the storage VFS, registered at the first call: SQLite's default VFS, except
/// that a WAL file that already exists is opened without SQLITE_OPEN_CREATE (see
/// `open_existing_wal_first`). Registering it also replaces the unix VFSes' `fchown` and
/// `ftruncate` (see `chown_unless_owned` and `truncate_unless_sized`), for every SQLite
/// file of the process; `db::configure_sqlite` does this before the first connection.
#[allow(unsafe_code)]
pub fn storage_vfs() -> &'static CStr {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: sqlite3_vfs_find returns SQLite's default VFS (alive for the process) or
        // null. The copy keeps every method and `pAppData` of it, so methods that read
        // their VFS argument see what they expect; only the name and xOpen differ. The
        // copy is leaked: SQLite keeps the registered pointer for the process's life.
        unsafe {
            let base = ffi::sqlite3_vfs_find(std::ptr::null());
            let Some(base_ref) = base.as_ref() else {
                tracing::warn!("SQLite has no default VFS");
                return;
            };
            BASE_VFS.store(base, Ordering::Release);
            let mut vfs = std::ptr::read(base_ref);
            vfs.zName = NAME.as_ptr();
            vfs.pNext = std::ptr::null_mut();
            vfs.xOpen = Some(open_existing_wal_first);
            let rc = ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0);
            if rc != ffi::SQLITE_OK {
                tracing::warn!(rc, "cannot register the storage VFS");
            }
            replace_system_calls(base);
        }
    });
    NAME
}

/// SQLite's default VFS, which `open_existing_wal_first` opens files with.
static BASE_VFS: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(std::ptr::null_mut());

/// xOpen of the storage VFS. SQLite opens every WAL with SQLITE_OPEN_CREATE, and the
/// default VFS then syncs the WAL's folder at the WAL's first sync, as if the file were
/// new. Our WAL files persist, so that was a folder fsync on the first commit of almost
/// every sync at 10,000 users. A WAL is first opened without the create flag; only when
/// that fails (no such file) is it opened as SQLite asked, creating it and syncing its
/// folder. Everything else goes straight to the default VFS. Load bench, 10,000 users:
/// 291-293 against 285-375 (median 308) µs per request, 4 alternating runs.
#[allow(unsafe_code)]
unsafe extern "C" fn open_existing_wal_first(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let base = BASE_VFS.load(Ordering::Acquire);
    // SAFETY: `base` was stored before this VFS was registered, so it is SQLite's default
    // VFS; its xOpen takes exactly these arguments, with `file` sized by its szOsFile,
    // which this VFS copied. A failed open leaves `file` without methods, so it can be
    // opened again.
    unsafe {
        let Some(open) = base.as_ref().and_then(|b| b.xOpen) else {
            return ffi::SQLITE_CANTOPEN;
        };
        let wal = flags & ffi::SQLITE_OPEN_WAL != 0;
        if wal && flags & ffi::SQLITE_OPEN_CREATE != 0 {
            let rc = open(
                base,
                name,
                file,
                flags & !ffi::SQLITE_OPEN_CREATE,
                out_flags,
            );
            if rc == ffi::SQLITE_OK {
                return rc;
            }
        }
        open(base, name, file, flags, out_flags)
    }
}

/// Installs `chown_unless_owned` and `truncate_unless_sized` in the unix VFSes' table of
/// system calls (one table for all of them).
///
/// # Safety
/// `base` must be SQLite's default VFS. The table is written without a lock, so no other
/// thread should be using SQLite: the server calls this from `db::configure_sqlite`,
/// before its first connection. (Where a test or command opens a file first, a thread
/// that reads the table meanwhile gets the old or the new pointer, one aligned word, and
/// either does the same on disk.)
#[allow(unsafe_code)]
unsafe fn replace_system_calls(base: *mut ffi::sqlite3_vfs) {
    type Fchown = unsafe extern "C" fn(c_int, libc::uid_t, libc::gid_t) -> c_int;
    type Ftruncate = unsafe extern "C" fn(c_int, libc::off_t) -> c_int;
    // SAFETY: `base` is valid (the caller's promise). SQLite's table stores every call as
    // a bare function pointer and casts it back to the call's own type where it calls it:
    // fchown(int, uid_t, gid_t) and ftruncate(int, off_t), the types given here.
    unsafe {
        let Some(set) = base.as_ref().and_then(|b| b.xSetSystemCall) else {
            return;
        };
        let chown: Fchown = chown_unless_owned;
        let truncate: Ftruncate = truncate_unless_sized;
        let mut calls = vec![(
            c"fchown",
            std::mem::transmute::<Fchown, unsafe extern "C" fn()>(chown),
        )];
        // SQLite is built with 64-bit file offsets; where libc's off_t is narrower (32-bit
        // targets), SQLite's ftruncate is the 64-bit one and stays as it is.
        if std::mem::size_of::<libc::off_t>() == 8 {
            calls.push((
                c"ftruncate",
                std::mem::transmute::<Ftruncate, unsafe extern "C" fn()>(truncate),
            ));
        }
        for (name, call) in calls {
            let rc = set(base, name.as_ptr(), Some(call));
            if rc != ffi::SQLITE_OK {
                tracing::debug!(rc, call = ?name, "SQLite's VFS has no such system call");
            }
        }
    }
}

/// SQLite's `fchown`. Running as root, SQLite gives every WAL it opens the database file's
/// owner, and a chown changes the file's ctime even when the owner stays the same: the
/// WAL's inode was written at the next commit's fdatasync, one more device write per sync
/// at 10,000 users (perf: 6,608 inode writes in a 6,766-sync run, 209 without). The owner
/// is set only when it differs, the one case where the chown did anything.
#[allow(unsafe_code)]
unsafe extern "C" fn chown_unless_owned(fd: c_int, uid: libc::uid_t, gid: libc::gid_t) -> c_int {
    match file_status(fd) {
        Some(st) if st.st_uid == uid && st.st_gid == gid => 0,
        // SAFETY: fchown only reads its integer arguments.
        _ => unsafe { libc::fchown(fd, uid, gid) },
    }
}

/// SQLite's `ftruncate`. Every checkpoint that copies the whole WAL ends by truncating the
/// database to its page count, which is nearly always its size already; the truncate
/// still changes the file's times, and the checkpoint's fsync then wrote the inode (one
/// device write per close that folds a WAL). A truncate to the current size is skipped.
#[allow(unsafe_code)]
unsafe extern "C" fn truncate_unless_sized(fd: c_int, len: libc::off_t) -> c_int {
    match file_status(fd) {
        Some(st) if st.st_size == len => 0,
        // SAFETY: ftruncate only reads its integer arguments.
        _ => unsafe { libc::ftruncate(fd, len) },
    }
}

/// fstat of a descriptor SQLite holds; None when it fails (the caller then makes the call
/// it replaces, which reports the error).
#[allow(unsafe_code)]
fn file_status(fd: c_int) -> Option<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `stat` to the pointer when it returns 0, and nothing
    // otherwise; the value is only read after a 0.
    unsafe { (libc::fstat(fd, st.as_mut_ptr()) == 0).then(|| st.assume_init()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;

    fn change_time(file: &std::fs::File) -> (i64, i64) {
        let m = file.metadata().expect("metadata");
        (m.ctime(), m.ctime_nsec())
    }

    /// A file and its change time, then a pause past the kernel's timestamp granularity
    /// (one tick, at most 10 ms), so that any change would show.
    fn file_of(len: u64) -> (tempfile::NamedTempFile, (i64, i64)) {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        file.as_file().set_len(len).expect("set_len");
        let ctime = change_time(file.as_file());
        std::thread::sleep(Duration::from_millis(30));
        (file, ctime)
    }

    #[test]
    #[allow(unsafe_code)]
    fn truncate_to_the_current_size_changes_nothing() {
        let (file, before) = file_of(8192);
        let fd = file.as_file().as_raw_fd();
        // SAFETY: `fd` is open for the whole test.
        assert_eq!(unsafe { truncate_unless_sized(fd, 8192) }, 0);
        assert_eq!(change_time(file.as_file()), before);
        assert_eq!(unsafe { truncate_unless_sized(fd, 4096) }, 0);
        assert_eq!(file.as_file().metadata().expect("metadata").len(), 4096);
        assert_ne!(change_time(file.as_file()), before);
    }

    #[test]
    #[allow(unsafe_code)]
    fn truncate_of_a_bad_descriptor_fails_as_ftruncate_does() {
        // SAFETY: -1 is no descriptor; both calls only fail.
        assert_eq!(unsafe { truncate_unless_sized(-1, 0) }, -1);
        assert_eq!(unsafe { chown_unless_owned(-1, 0, 0) }, -1);
    }

    #[test]
    #[allow(unsafe_code)]
    fn chown_to_the_current_owner_changes_nothing() {
        let (file, before) = file_of(0);
        let meta = file.as_file().metadata().expect("metadata");
        let fd = file.as_file().as_raw_fd();
        // SAFETY: `fd` is open for the whole test.
        assert_eq!(unsafe { chown_unless_owned(fd, meta.uid(), meta.gid()) }, 0);
        assert_eq!(change_time(file.as_file()), before);
        // Another group is a real chown: done as root, refused by fchown otherwise.
        let other_gid = meta.gid().wrapping_add(1);
        let rc = unsafe { chown_unless_owned(fd, meta.uid(), other_gid) };
        let now = file.as_file().metadata().expect("metadata");
        if rc == 0 {
            assert_eq!(now.gid(), other_gid);
            assert_ne!(change_time(file.as_file()), before);
        } else {
            assert_eq!(now.gid(), meta.gid());
        }
    }
}
