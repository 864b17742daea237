//! Group commit: one fdatasync shared by every writer of a segment waiting
//! for it. The engine's public face of it is `engine::pending`
//! (`PendingWrite`, `SegmentSync`, `SyncLead`).

use crate::storage::StorageFile;
// std's atomics and parking_lot's locks, or loom's models of them under
// `--cfg loom` (see `sync`).
use crate::sync::{AtomicBool, AtomicU64, Condvar, Mutex, Ordering};
use std::io;
use std::time::{Duration, Instant};

/// Shares one fdatasync among every writer waiting for it: a writer takes a
/// ticket after its write completes; the first waiter becomes the leader and
/// syncs everything written so far, and the others wait for that sync.
///
/// Appenders woken by one sync write again at nearly the same moment, and
/// the first of them to arrive leads the next sync. Left alone, it would
/// start that sync at once, covering only itself, and the rest would wait a
/// whole sync more: concurrent appenders would split into two alternating
/// groups of half the size. So an appending leader first gathers: while the
/// previous sync covered several writes, it waits until as many are pending
/// again, for at most a quarter of the previous sync's duration. It sleeps
/// on a condition variable that the write completing the group signals (a
/// yielding thread could lose the CPU for a whole time slice on a busy
/// machine). A lone appender never waits.
pub struct GroupSync {
    written: AtomicU64,
    synced: AtomicU64,
    in_progress: Mutex<bool>,
    done: Condvar,
    /// Once an fsync fails, later ones can succeed without the lost pages
    /// having reached the disk; so a failure is final for this file.
    failed: AtomicBool,
    /// Writes the previous sync covered, and how long it took.
    last_batch: AtomicU64,
    last_sync_nanos: AtomicU64,
    /// While a leader gathers: the pending writes it waits for (0 when no
    /// leader gathers). The write that completes them signals `gathered`.
    gather_want: AtomicU64,
    gather_lock: Mutex<()>,
    gathered: Condvar,
}

/// The longest a leader gathers, whatever the disk's sync latency.
const MAX_GATHER: Duration = Duration::from_micros(250);

impl GroupSync {
    pub fn new() -> GroupSync {
        GroupSync {
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            in_progress: Mutex::new(false),
            done: Condvar::new(),
            failed: AtomicBool::new(false),
            last_batch: AtomicU64::new(0),
            last_sync_nanos: AtomicU64::new(0),
            gather_want: AtomicU64::new(0),
            gather_lock: Mutex::new(()),
            gathered: Condvar::new(),
        }
    }

    /// Call after a write has completed; the ticket names it.
    pub fn note_write(&self) -> u64 {
        let ticket = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        debug_assert!(ticket > 0, "tickets start at 1 and never wrap");
        let want = self.gather_want.load(Ordering::SeqCst);
        if want != 0 && ticket.saturating_sub(self.synced.load(Ordering::Acquire)) >= want {
            let _lock = self.gather_lock.lock();
            self.gathered.notify_one();
        }
        ticket
    }

    /// A ticket covering every write completed so far.
    pub fn current(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Whether a finished sync covers `ticket`.
    pub fn is_synced(&self, ticket: u64) -> bool {
        self.synced.load(Ordering::Acquire) >= ticket
    }

    /// Returns once a sync that started after `ticket`'s write has finished.
    pub fn sync_through(&self, ticket: u64, file: &dyn StorageFile) -> io::Result<()> {
        self.sync(ticket, file, false)
    }

    /// As `sync_through`, for an appender: a leader first gathers the
    /// writes of concurrent appenders (see the type's documentation).
    pub fn sync_append(&self, ticket: u64, file: &dyn StorageFile) -> io::Result<()> {
        self.sync(ticket, file, true)
    }

    fn sync(&self, ticket: u64, file: &dyn StorageFile, gather: bool) -> io::Result<()> {
        if self.is_synced(ticket) {
            return Ok(());
        }
        let mut in_progress = self.in_progress.lock();
        loop {
            if self.failed.load(Ordering::Acquire) {
                return Err(earlier_failure());
            }
            if self.is_synced(ticket) {
                return Ok(());
            }
            if *in_progress {
                self.done.wait(&mut in_progress);
                continue;
            }
            *in_progress = true;
            drop(in_progress);
            if gather {
                self.gather();
            }
            let target = self.written.load(Ordering::Acquire);
            let started = Instant::now();
            let result = file.sync();
            self.last_sync_nanos
                .store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            self.finish(target, result.is_ok());
            result?;
            in_progress = self.in_progress.lock();
        }
    }

    /// Becomes the leader of the next sync without blocking, for a caller
    /// that performs the sync itself (the async front end). `Ok(None)`: a
    /// sync is already in progress. On `Ok(Some(target))` the caller must
    /// sync the file and then call [`GroupSync::finish`]`(target, ..)`
    /// (or [`GroupSync::abandon`]); a successful sync covers every ticket up
    /// to `target`.
    pub fn try_lead(&self) -> io::Result<Option<u64>> {
        let mut in_progress = self.in_progress.lock();
        if self.failed.load(Ordering::Acquire) {
            return Err(earlier_failure());
        }
        if *in_progress {
            return Ok(None);
        }
        *in_progress = true;
        Ok(Some(self.written.load(Ordering::Acquire)))
    }

    /// Ends the sync a leader started: records what a successful sync
    /// covered, or that the file failed, and wakes the waiters.
    pub fn finish(&self, target: u64, ok: bool) {
        debug_assert!(
            target <= self.written.load(Ordering::Acquire),
            "a sync target beyond the writes counted"
        );
        let mut in_progress = self.in_progress.lock();
        *in_progress = false;
        if ok {
            let before = self.synced.fetch_max(target, Ordering::AcqRel);
            self.last_batch
                .store(target.saturating_sub(before), Ordering::Relaxed);
        } else {
            self.failed.store(true, Ordering::Release);
        }
        self.done.notify_all();
    }

    /// Ends a sync whose outcome nobody will learn (its driver went away
    /// mid-flight). It counts as failed: had it failed, the error would be
    /// lost, and a later fsync of the same open file could succeed without
    /// the lost pages on disk.
    pub fn abandon(&self) {
        self.finish(0, false);
    }
}

fn earlier_failure() -> io::Error {
    io::Error::other("an earlier fsync of this file failed")
}

impl GroupSync {
    /// Waits until as many writes are pending as the previous sync covered,
    /// or a quarter of that sync's duration has passed.
    fn gather(&self) {
        let want = self.last_batch.load(Ordering::Relaxed);
        if want <= 1 {
            return;
        }
        let budget = Duration::from_nanos(self.last_sync_nanos.load(Ordering::Relaxed) / 4);
        let deadline = Instant::now() + budget.min(MAX_GATHER);
        let pending = || {
            let synced = self.synced.load(Ordering::Acquire);
            self.written.load(Ordering::SeqCst).saturating_sub(synced)
        };
        let mut lock = self.gather_lock.lock();
        self.gather_want.store(want, Ordering::SeqCst);
        // A write that misses `gather_want` is still counted by `pending`;
        // one that sees it signals under the lock, after this thread waits.
        while pending() < want {
            if self.gathered.wait_until(&mut lock, deadline).timed_out() {
                break;
            }
        }
        self.gather_want.store(0, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sim::{Fault, FaultKind, SimStorage};
    use crate::storage::{FileKind, OpenMode, Storage};
    use std::path::Path;
    use std::sync::Arc;

    fn file() -> Arc<dyn StorageFile> {
        SimStorage::new()
            .open(Path::new("/d/f"), OpenMode::CreateNew, FileKind::Small)
            .unwrap()
    }

    #[test]
    fn a_lead_covers_writes_before_it_and_excludes_other_syncs() {
        let g = GroupSync::new();
        let (t1, t2) = (g.note_write(), g.note_write());
        let target = g.try_lead().unwrap().expect("nobody else syncs");
        assert_eq!(target, t2);
        assert_eq!(g.try_lead().unwrap(), None, "one sync at a time");
        let t3 = g.note_write();
        g.finish(target, true);
        assert!(g.is_synced(t1) && g.is_synced(t2));
        assert!(!g.is_synced(t3), "written after the lead was taken");
        assert_eq!(g.try_lead().unwrap(), Some(t3));
    }

    #[test]
    fn a_blocking_waiter_shares_an_external_sync() {
        let g = Arc::new(GroupSync::new());
        let f = file();
        let ticket = g.note_write();
        let target = g.try_lead().unwrap().unwrap();
        let waiter = {
            let (g, f) = (g.clone(), f.clone());
            std::thread::spawn(move || g.sync_through(ticket, &*f))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!waiter.is_finished(), "waits while the lead is out");
        g.finish(target, true);
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn a_failed_or_abandoned_lead_is_final() {
        for abandon in [false, true] {
            let g = GroupSync::new();
            let f = file();
            let ticket = g.note_write();
            let target = g.try_lead().unwrap().unwrap();
            if abandon {
                g.abandon();
            } else {
                g.finish(target, false);
            }
            assert!(!g.is_synced(ticket));
            assert!(g.try_lead().is_err());
            assert!(g.sync_through(ticket, &*f).is_err(), "never a false ack");
        }
    }

    #[test]
    fn sync_through_reports_a_failed_fsync_to_the_leader_and_after() {
        let sim = SimStorage::new();
        let f = sim
            .open(Path::new("/d/f"), OpenMode::CreateNew, FileKind::Small)
            .unwrap();
        let g = GroupSync::new();
        let ticket = g.note_write();
        sim.inject(Fault {
            kind: FaultKind::Sync,
            nth: 0,
            errno: libc::EIO,
        });
        let err = g.sync_through(ticket, &*f).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        assert!(g.sync_through(ticket, &*f).is_err());
    }
}

/// Exhaustive interleavings of the group commit (`make loom`; see
/// `crate::sync`).
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::segment::loom_tests::{explore, Coverage, FakeFile};
    use loom::sync::Arc as LoomArc;
    use loom::thread;

    /// `synced <= written`: `synced` is read first, and `written` only grows.
    fn check_counters(g: &GroupSync) {
        let synced = g.synced.load(Ordering::Acquire);
        let written = g.written.load(Ordering::Acquire);
        assert!(
            synced <= written,
            "synced {synced} beyond written {written}"
        );
    }

    /// Write `i`, its ticket, and a wait for its sync: `Ok` only once the
    /// write is durable; after an error every later write fails too.
    fn append(g: &GroupSync, f: &FakeFile, i: u32, gather: bool, cov: &Coverage) {
        f.write(i);
        let ticket = g.note_write();
        let result = if gather {
            g.sync_append(ticket, f)
        } else {
            g.sync_through(ticket, f)
        };
        check_counters(g);
        match result {
            Ok(()) => {
                assert!(
                    f.is_durable(i),
                    "write {i} acknowledged before it was durable"
                );
                cov.saw("an append is acknowledged");
            }
            Err(_) => {
                assert!(f.fail_nth.is_some(), "no sync failed");
                cov.saw("an append fails");
                // The write may still be durable: an earlier sync can have
                // covered it while this caller waited for the lock, which
                // looks at `failed` first. Asked again, it may then say Ok.
                if g.sync_through(ticket, f).is_ok() {
                    assert!(f.is_durable(i), "a false ack after a failure");
                    cov.saw("a failed append is acknowledged when asked again");
                }
                assert!(g.try_lead().is_err(), "a lead after a failure");
                f.write(i + 4);
                let later = g.note_write();
                assert!(
                    g.sync_through(later, f).is_err(),
                    "a write after the failure acked"
                );
                assert!(!f.is_durable(i + 4));
            }
        }
    }

    /// An external leader (the async front end): `try_lead`, the sync, and
    /// `finish`; or, while another sync is out, a wait for one.
    fn lead(g: &GroupSync, f: &FakeFile, i: u32, cov: &Coverage) {
        f.write(i);
        let ticket = g.note_write();
        match g.try_lead() {
            Ok(Some(target)) => {
                cov.saw("the external leader leads");
                assert!(target >= ticket, "a lead below a completed write");
                let result = f.sync();
                g.finish(target, result.is_ok());
                check_counters(g);
                if result.is_ok() {
                    assert!(f.is_durable(i), "the leader's sync missed its write");
                }
            }
            Ok(None) => {
                cov.saw("the external leader finds a sync in progress");
                match g.sync_through(ticket, f) {
                    Ok(()) => assert!(f.is_durable(i), "write {i} acknowledged before durable"),
                    Err(_) => assert!(f.fail_nth.is_some(), "no sync failed"),
                }
            }
            Err(_) => assert!(f.fail_nth.is_some(), "no sync failed"),
        }
    }

    /// Two appenders and (unless `gather`) an external leader on one group
    /// commit; with `gather`, a first sync of two writes makes the next
    /// appending leader gather.
    fn group_commit(fail_nth: Option<usize>, gather: bool, cov: &'static Coverage) {
        let g = LoomArc::new(GroupSync::new());
        let f = LoomArc::new(FakeFile::new(fail_nth));
        if gather {
            f.write(10);
            f.write(11);
            g.note_write();
            g.note_write();
            g.sync_through(2, &*f).unwrap();
            assert_eq!(g.last_batch.load(Ordering::Relaxed), 2);
        }
        let setup_syncs = f.syncs();
        let appenders: Vec<_> = (0..2)
            .map(|i| {
                let (g, f) = (g.clone(), f.clone());
                thread::spawn(move || append(&g, &f, i, gather, cov))
            })
            .collect();
        let mut writes = 2;
        if !gather {
            lead(&g, &f, 2, cov);
            writes += 1;
        }
        for a in appenders {
            a.join().unwrap();
        }
        check_counters(&g);
        assert!(!*g.in_progress.lock(), "a sync left in progress");
        if fail_nth.is_none() {
            assert!(g.is_synced(g.current()), "an append returned unsynced");
            if f.syncs() - setup_syncs < writes {
                cov.saw("writes share a sync");
            }
        }
    }

    #[test]
    fn loom_group_commit_acks_only_durable_writes() {
        static COVERAGE: Coverage = Coverage::new(&[
            "an append is acknowledged",
            "the external leader leads",
            "the external leader finds a sync in progress",
            "writes share a sync",
        ]);
        explore(
            "group commit, 2 appenders + an external leader",
            2,
            &COVERAGE,
            |cov| group_commit(None, false, cov),
        );
    }

    #[test]
    fn loom_group_commit_failure_is_final() {
        static FIRST: Coverage = Coverage::new(&["an append fails"]);
        explore("group commit, the first sync fails", 2, &FIRST, |cov| {
            group_commit(Some(0), false, cov)
        });
        static SECOND: Coverage = Coverage::new(&[
            "an append fails",
            "an append is acknowledged",
            "a failed append is acknowledged when asked again",
        ]);
        explore("group commit, the second sync fails", 2, &SECOND, |cov| {
            group_commit(Some(1), false, cov)
        });
    }

    #[test]
    fn loom_group_commit_gathering_appenders() {
        static COVERAGE: Coverage = Coverage::new(&["writes share a sync"]);
        explore("group commit, 2 gathering appenders", 2, &COVERAGE, |cov| {
            group_commit(None, true, cov)
        });
    }
}
