//! One open instance per data directory.
//!
//! Two instances writing one directory would interleave their appends and
//! overwrite each other's cursors. Every store that owns its files takes an
//! advisory `flock` on `<dir>/LOCK` at open and holds it until it is dropped;
//! a second open, in this process or another, gets [`Error::Locked`]. The
//! kernel releases the lock when the process dies, so a crash never leaves a
//! directory locked. A refused lock is retried for [`RELEASE_GRACE`] first,
//! for the moment a forked child still shares a lock just released.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// The lock file's name inside a locked directory.
pub const LOCK_FILE: &str = "LOCK";

/// Takes the advisory lock of `dir` (an existing directory), creating its
/// [`LOCK_FILE`] if needed. The lock is held for as long as the returned
/// file is open.
pub fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = open_lock_file(&path)?;
    // A lock just released can still be held for a moment by a child that
    // another thread of this process forked and has not yet exec'd: the
    // child shares the lock's open file description until exec closes it.
    // So a refused lock is retried for a short while before it is
    // `Locked`; a live second instance costs that wait, nothing else.
    let deadline = Instant::now() + RELEASE_GRACE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(TryLockError::WouldBlock) => return Err(Error::Locked(dir.to_path_buf())),
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(format!("locking {}", path.display()), e))
            }
        }
    }
}

/// Opens (creating, never truncating) a file to take an `flock` on.
pub fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

/// How long a refused lock is retried (see [`lock_dir`]).
pub const RELEASE_GRACE: Duration = Duration::from_millis(100);

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

    /// Found as a rare `Locked` on a reopen in the walrus-wal test binary:
    /// another test's thread spawned a process between the close and the
    /// reopen, and the child held the released lock until its exec.
    #[test]
    fn a_reopen_while_other_threads_spawn_processes_is_not_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = std::process::Command::new("true").status();
                    }
                });
            }
            let refused = (0..2_000).find(|_| lock_dir(tmp.path()).is_err());
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(refused, None, "a reopen while processes spawn was refused");
        });
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
