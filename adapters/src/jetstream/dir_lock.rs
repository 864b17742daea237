//! One set of nodes per store directory, across processes.
//!
//! Two sets of nats-server nodes on one store directory corrupt each other's
//! streams: each believes it owns the `.blk` files and the Raft logs, and
//! acknowledged appends vanish (the process-kill suite saw it: a store whose
//! nodes were parked in one process while a second process started its own
//! on the same data). So a [`Cluster`](super::cluster::Cluster) holds an
//! exclusive `flock` on `<dir>/nodes.lock` for as long as any of its node
//! processes runs: the nodes' wrappers and the servers inherit the lock's
//! file description, so the lock outlives a SIGKILLed owner until its last
//! server has stopped, and nobody can start nodes before that.
//!
//! Who holds the lock, and how, is written to `<dir>/nodes.owner` (`<pid>
//! live` or `<pid> parked`). A process that finds the lock taken reads it:
//!
//! * **live** (a store is open in a running process): the open fails at
//!   once with [`Error::Locked`], as a second open of any other store does;
//! * **parked** (the store was dropped, its nodes kept for a fast reopen in
//!   that process): it asks for the nodes by creating `<dir>/nodes.release`.
//!   The owner's watcher thread sees the request, stops the parked nodes,
//!   and so frees the lock, which the asking process then takes;
//! * **a dead owner** (its nodes are still stopping): it waits.
//!
//! Whatever it waits for, it waits at most [`TAKEOVER_TIMEOUT`], then fails
//! with [`Error::Locked`]. The owner file only steers the waiting: the lock
//! alone decides who runs nodes, so a stale or torn owner file can cost a
//! wait or a `Locked`, never a second set of nodes.

use std::fs::{self, File, TryLockError};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use walrus_wal::{Error, Result};

/// The lock file in a store directory.
pub const LOCK_FILE: &str = "nodes.lock";
/// Who holds the lock: `<pid> live|parked`.
pub const OWNER_FILE: &str = "nodes.owner";
/// Present while another process asks for parked nodes.
pub const RELEASE_FILE: &str = "nodes.release";

/// The longest an open waits for another process's nodes to stop.
pub const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// How the holder of a directory's lock uses its nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// A store is open on them.
    Live,
    /// Dropped, kept running for a reopen in the same process.
    Parked,
}

impl Use {
    fn word(self) -> &'static str {
        match self {
            Use::Live => "live",
            Use::Parked => "parked",
        }
    }
}

/// Takes the exclusive lock on `dir`'s nodes, waiting as the module doc
/// says. The returned file holds it; pass it on to every node process.
pub fn acquire(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = walrus_store::open_lock_file(&path)?;
    let deadline = Instant::now() + TAKEOVER_TIMEOUT;
    let mut requested = false;
    let result = loop {
        match file.try_lock() {
            Ok(()) => break Ok(file),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                break Err(Error::io(format!("locking {}", path.display()), e))
            }
        }
        match read_owner(dir) {
            Some((pid, Use::Live)) if process_alive(pid) => break Err(Error::Locked(dir.into())),
            Some((_, Use::Parked)) if !requested => {
                requested = true;
                let request = dir.join(RELEASE_FILE);
                if let Err(e) = fs::write(&request, std::process::id().to_string()) {
                    break Err(Error::io(format!("writing {}", request.display()), e));
                }
                tracing::info!(
                    "jetstream: {} has parked nodes in another process; asking for them",
                    dir.display()
                );
            }
            _ => {} // parked and asked for, or a dead owner's nodes stopping
        }
        if Instant::now() >= deadline {
            break Err(Error::Locked(dir.into()));
        }
        std::thread::sleep(POLL);
    };
    if requested {
        let _ = fs::remove_file(dir.join(RELEASE_FILE));
    }
    result
}

/// Records how this process now uses the nodes whose lock it holds. The
/// file is synced, so no page of the store directory is left dirty by it
/// (the conformance suite's sync check looks at every file there).
pub fn set_owner(dir: &Path, use_: Use) -> Result<()> {
    let path = dir.join(OWNER_FILE);
    let tmp = dir.join(format!("{OWNER_FILE}.tmp"));
    let text = format!("{} {}\n", std::process::id(), use_.word());
    File::create(&tmp)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_data()
        })
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Whether another process has asked for the parked nodes of `dir`.
pub fn release_requested(dir: &Path) -> bool {
    dir.join(RELEASE_FILE).exists()
}

fn read_owner(dir: &Path) -> Option<(u32, Use)> {
    let text = fs::read_to_string(dir.join(OWNER_FILE)).ok()?;
    let (pid, word) = text.trim().split_once(' ')?;
    let use_ = match word {
        "live" => Use::Live,
        "parked" => Use::Parked,
        _ => return None,
    };
    Some((pid.parse().ok()?, use_))
}

/// Whether `pid` is a running (not zombie) process: `/proc/<pid>/stat`'s
/// state field, which follows the parenthesised command name.
fn process_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_directory_is_locked_at_once_and_a_second_lock_is_refused_while_live() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path()).unwrap();
        set_owner(dir.path(), Use::Live).unwrap();
        let started = Instant::now();
        assert!(matches!(acquire(dir.path()), Err(Error::Locked(_))));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a live owner is refused at once"
        );
        drop(held);
        acquire(dir.path()).expect("free again once the holder closes it");
    }

    #[test]
    fn parked_nodes_are_asked_for_and_the_lock_passes_when_they_stop() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path()).unwrap();
        set_owner(dir.path(), Use::Parked).unwrap();
        let path = dir.path().to_path_buf();
        let owner = std::thread::spawn(move || {
            while !release_requested(&path) {
                std::thread::sleep(POLL);
            }
            drop(held); // what stopping the parked nodes does
        });
        acquire(dir.path()).expect("the parked holder lets go when asked");
        owner.join().unwrap();
        assert!(!release_requested(dir.path()), "the request is withdrawn");
    }

    #[test]
    fn the_owner_file_of_a_dead_process_does_not_refuse() {
        let dir = tempfile::tempdir().unwrap();
        // pid_max is below 2^22 on Linux, so this pid never runs.
        fs::write(dir.path().join(OWNER_FILE), "4294967290 live\n").unwrap();
        acquire(dir.path()).expect("no lock is held, whatever the file says");
        assert!(!process_alive(4_294_967_290));
        assert!(process_alive(std::process::id()));
    }
}
