//! One open instance per data directory.
//!
//! Two instances writing one directory would interleave their appends and
//! overwrite each other's cursors. Every store that owns its files takes an
//! advisory `flock` on `<dir>/LOCK` at open and holds it until it is dropped;
//! a second open, in this process or another, gets [`Error::Locked`]. The
//! kernel releases the lock when the process dies, so a crash never leaves a
//! directory locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::{Error, Result};

/// The lock file's name inside a locked directory.
pub const LOCK_FILE: &str = "LOCK";

/// Takes the advisory lock of `dir` (an existing directory), creating its
/// [`LOCK_FILE`] if needed. The lock is held for as long as the returned
/// file is open.
pub fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Locked(dir.to_path_buf())),
        Err(TryLockError::Error(e)) => Err(Error::io(format!("locking {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let first = lock_dir(tmp.path()).unwrap();
        assert!(
            matches!(lock_dir(tmp.path()), Err(Error::Locked(ref d)) if d == tmp.path()),
            "a second lock while the first is held"
        );
        drop(first);
        lock_dir(tmp.path()).expect("the lock is free again once dropped");
    }

    #[test]
    fn a_missing_directory_is_an_io_error_that_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        match lock_dir(&missing) {
            Err(Error::Io { context, .. }) => assert!(context.contains("LOCK"), "{context}"),
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }
}
