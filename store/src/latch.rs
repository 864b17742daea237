//! The failure latch: once a sync fails, a store refuses every later write.
//!
//! After a failed `fsync`/`fdatasync` the kernel may have dropped the dirty
//! pages it could not write back and marked them clean, so a retried sync
//! can report success for data that never reached the disk. A store that
//! kept accepting writes would acknowledge appends it cannot promise are
//! durable; the latch makes the first failure final until the store is
//! reopened (recovery then finds what really is on disk).

use std::fmt;
use std::sync::OnceLock;

use crate::{Error, Result};

/// Set once, by the first failure; never cleared. Checking it is one atomic
/// load, so it can sit on every append path.
#[derive(Debug, Default)]
pub struct FailureLatch {
    reason: OnceLock<String>,
}

impl FailureLatch {
    /// A latch that has not tripped.
    pub const fn new() -> FailureLatch {
        FailureLatch {
            reason: OnceLock::new(),
        }
    }

    /// Refuses writes from now on because of `reason`. Returns `true` if
    /// this call tripped the latch (so the caller logs the failure once);
    /// a later failure keeps the first reason.
    pub fn trip(&self, reason: impl fmt::Display) -> bool {
        if self.is_tripped() {
            return false;
        }
        self.reason.set(reason.to_string()).is_ok()
    }

    /// `Err(Error::Failed(..))` with the first failure's reason once the
    /// latch has tripped.
    pub fn check(&self) -> Result<()> {
        match self.reason.get() {
            Some(reason) => Err(Error::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Whether a failure has tripped the latch.
    pub fn is_tripped(&self) -> bool {
        self.reason.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_is_final_and_keeps_its_reason() {
        let latch = FailureLatch::new();
        assert!(latch.check().is_ok());
        assert!(latch.trip("fdatasync of 3.log: EIO"));
        assert!(!latch.trip("a later failure"));
        assert!(latch.is_tripped());
        match latch.check() {
            Err(Error::Failed(reason)) => assert_eq!(reason, "fdatasync of 3.log: EIO"),
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn racing_failures_trip_it_once() {
        let latch = FailureLatch::new();
        let latch = &latch;
        let first: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| s.spawn(move || latch_trip(latch, i)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(first, 1, "exactly one caller sees itself trip the latch");
        assert!(latch.check().is_err());
    }

    fn latch_trip(latch: &FailureLatch, i: usize) -> usize {
        usize::from(latch.trip(format!("failure {i}")))
    }
}
