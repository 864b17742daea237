//! Segment files, the extent allocator, and group commit.
//!
//! A segment is a fixed-size file carved into extents; each extent belongs to
//! one topic. Space is handed out per extent (1 MiB by default), not per entry,
//! so appenders of different topics only meet here once per extent.

use crate::format::{BlockHeader, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::storage::{FileKind, OpenMode, Storage, StorageFile};
use crate::store::{Error, Result};
// std's atomics and parking_lot's locks, or loom's models of them under
// `--cfg loom` (see `sync`). `Arc` stays std's: segments and their files are
// shared with code that loom does not model.
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Extents start on multiples of this; recovery probes for block headers at
/// these offsets.
pub const EXTENT_UNIT: u64 = 4096;

pub fn segment_name(id: u64) -> String {
    format!("seg-{id:020}.wal")
}

pub fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".wal")?
        .parse()
        .ok()
}

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

pub struct Segment {
    pub id: u64,
    pub path: PathBuf,
    pub file: Arc<dyn StorageFile>,
    pub size_bytes: u64,
    pub sync: GroupSync,
    /// Extents of this segment whose entries are not all consumed yet, plus
    /// [`SEALED`] once no more extents will be allocated here. One word, so
    /// that the seal and the release of the last extent are ordered and
    /// exactly one of them finds the segment sealed and empty. (As two
    /// atomics, a release could decrement to 0, stall while an extent is
    /// added and the segment sealed, then see `sealed` and claim a segment
    /// with a live extent; and a seal and a last release racing could each
    /// miss the other's store, so that neither claimed it.)
    live_blocks: AtomicUsize,
    deleted: AtomicBool,
}

/// The bit of [`Segment::live_blocks`] that marks the segment sealed.
const SEALED: usize = 1 << (usize::BITS - 1);

impl Segment {
    pub fn new(id: u64, path: PathBuf, file: Arc<dyn StorageFile>, size_bytes: u64) -> Segment {
        Segment {
            id,
            path,
            file,
            size_bytes,
            sync: GroupSync::new(),
            live_blocks: AtomicUsize::new(0),
            deleted: AtomicBool::new(false),
        }
    }

    pub fn add_block(&self) {
        let before = self.live_blocks.fetch_add(1, Ordering::AcqRel);
        debug_assert!(before & SEALED == 0, "an extent added to a sealed segment");
    }

    /// Marks one extent consumed; true when the segment can now be deleted.
    #[must_use]
    pub fn release_block(&self) -> bool {
        let before = self.live_blocks.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(before & !SEALED != 0, "more extents released than added");
        before == SEALED | 1 && self.claim_deletion()
    }

    /// Stops allocation here; true when the segment can now be deleted.
    #[must_use]
    pub fn seal(&self) -> bool {
        let before = self.live_blocks.fetch_or(SEALED, Ordering::AcqRel);
        before & !SEALED == 0 && self.claim_deletion()
    }

    fn claim_deletion(&self) -> bool {
        !self.deleted.swap(true, Ordering::AcqRel)
    }

    /// Syncs every write made so far (shared with concurrent callers).
    pub fn sync_all(&self) -> io::Result<()> {
        self.sync.sync_through(self.sync.current(), &*self.file)
    }
}

/// Hands out extents, one segment after another. Block headers are written
/// under the allocator's lock so that they reach the file in offset order:
/// a durable header then implies that every header before it is durable.
pub struct Allocator {
    current: Option<(Arc<Segment>, u64)>,
    next_id: u64,
    segment_bytes: u64,
    /// Offset in the current segment up to which reserving ahead was asked.
    prepared_to: u64,
    /// The segment before the current one, evicted whole once it is two
    /// segments old (see [`Preparer`]). Weak: a consumed segment's file is
    /// closed by whoever drops it last, and that should not be an appender.
    previous: Option<std::sync::Weak<Segment>>,
    preparer: Preparer,
}

/// How far past the last extent handed out a costly `reserve` is done ahead.
const RESERVE_AHEAD: u64 = 4 << 20;

pub struct Extent {
    pub segment: Arc<Segment>,
    pub start: u64,
}

impl Allocator {
    pub fn new(next_id: u64, segment_bytes: u64) -> Allocator {
        Allocator {
            current: None,
            next_id,
            segment_bytes,
            prepared_to: 0,
            previous: None,
            preparer: Preparer::default(),
        }
    }

    /// Allocates an extent for `header` (whose `extent_len` is a multiple of
    /// [`EXTENT_UNIT`] no larger than a segment's usable space) and writes the
    /// header. `on_new_segment` registers a created segment; `on_sealed`
    /// receives a segment that can be deleted at once.
    pub fn allocate(
        &mut self,
        storage: &dyn Storage,
        dir: &Path,
        header: &BlockHeader,
        on_new_segment: impl FnOnce(&Arc<Segment>),
        on_deletable: impl FnOnce(Arc<Segment>),
    ) -> Result<Extent> {
        let len = header.extent_len;
        let fits = matches!(&self.current, Some((seg, next)) if next + len <= seg.size_bytes);
        if !fits {
            let segment = self.create_segment(storage, dir, len)?;
            on_new_segment(&segment);
            self.prepared_to = 0;
            if let Some((old, old_next)) = self.current.replace((segment, EXTENT_UNIT)) {
                // No extent will ever use the old segment's tail; pages the
                // reserve-ahead thread faulted in there would stay mapped.
                old.file.evict(old_next, old.size_bytes - old_next);
                let older = self.previous.replace(Arc::downgrade(&old));
                if let Some(older) = older.and_then(|w| w.upgrade()) {
                    if older.file.reserve_is_costly() {
                        // A topic still appending there faults its pages back.
                        older.file.evict(0, older.size_bytes);
                    }
                }
                if old.seal() {
                    on_deletable(old);
                }
            }
        }
        let (segment, next) = self.current.as_mut().expect("a current segment");
        let start = *next;
        let bytes = header.encode();
        let io = |e| {
            Error::io(
                format!("writing a block header to {}", segment.path.display()),
                e,
            )
        };
        segment.file.reserve(start, len).map_err(io)?;
        segment.file.write_all_at(&bytes, start).map_err(io)?;
        *next += len;
        segment.add_block();
        if segment.file.reserve_is_costly() {
            self.preparer.note(segment.id, *next);
            let from = self.prepared_to.max(*next);
            let to = (*next + RESERVE_AHEAD).min(segment.size_bytes);
            if from < to {
                self.preparer.reserve(&segment.file, segment.id, from, to);
                self.prepared_to = to;
            }
        }
        Ok(Extent {
            segment: segment.clone(),
            start,
        })
    }

    /// Creates a segment, at least large enough for one extent of `len`, and
    /// makes its header and directory entry durable before any data goes in.
    fn create_segment(
        &mut self,
        storage: &dyn Storage,
        dir: &Path,
        len: u64,
    ) -> Result<Arc<Segment>> {
        let size_bytes = self.segment_bytes.max(EXTENT_UNIT + len);
        // Taken before trying: a half-created file must not block the next try.
        let id = self.next_id;
        self.next_id += 1;
        let path = dir.join(segment_name(id));
        // The file is made under a temporary name and renamed once its header
        // is durable: another thread's directory sync (a checkpoint, a cursor
        // compaction) could otherwise make the name durable while the header
        // is not, and a power loss tearing the header would leave a segment
        // recovery must refuse. Open deletes leftover temporary files.
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", segment_name(id)));
        let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
        let file = storage
            .open(&tmp, OpenMode::CreateNew, FileKind::Segment { size_bytes })
            .map_err(|e| io("creating", e))?;
        let header = SegmentHeader {
            id,
            size_bytes,
            block_unit_bytes: EXTENT_UNIT,
        }
        .encode();
        assert_eq!(header.len(), SEGMENT_HEADER_LEN);
        let made = file
            .reserve(0, EXTENT_UNIT)
            .map_err(|e| io("reserving", e))
            .and_then(|()| file.write_all_at(&header, 0).map_err(|e| io("writing", e)))
            .and_then(|()| file.sync().map_err(|e| io("syncing", e)))
            .and_then(|()| storage.rename(&tmp, &path).map_err(|e| io("naming", e)));
        if let Err(e) = made {
            let _ = storage.remove(&tmp);
            return Err(e);
        }
        storage
            .sync_dir(dir)
            .map_err(|e| io("syncing the directory of", e))?;
        Ok(Arc::new(Segment::new(id, path, file, size_bytes)))
    }
}

/// Suffix of a segment file being created (see `Allocator::create_segment`).
pub const TMP_SUFFIX: &str = ".tmp";

/// Reserves ranges ahead of the allocator on one background thread, started
/// on first use. It is only a head start: the allocator still reserves every
/// extent itself and reports any failure, so a request that is dropped (the
/// queue is full) or fails here costs only time.
///
/// On the mmap backend reserving faults pages into the process. A page this
/// thread faults in after its extent was written, sealed and evicted (the
/// thread was descheduled mid-chunk) would stay mapped, so the allocator
/// evicts each segment whole once two newer segments exist.
#[derive(Default)]
struct Preparer {
    /// The allocator's current segment and the offset of its next extent:
    /// the thread skips what lies below (the appenders reserve it already,
    /// and may have evicted it since).
    /// parking_lot's, also under loom: the thread is a real one.
    progress: Arc<parking_lot::Mutex<(u64, u64)>>,
    jobs: Option<std::sync::mpsc::SyncSender<ReserveJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A range of a segment to reserve ahead.
struct ReserveJob {
    file: Arc<dyn StorageFile>,
    segment: u64,
    from: u64,
    to: u64,
}

/// The reserve-ahead thread checks the allocator's progress this often.
const RESERVE_STEP: u64 = 256 << 10;

impl Preparer {
    /// Records where the allocator is; call after each extent handed out.
    fn note(&self, segment: u64, next: u64) {
        *self.progress.lock() = (segment, next);
    }

    fn reserve(&mut self, file: &Arc<dyn StorageFile>, segment: u64, from: u64, to: u64) {
        if self.jobs.is_none() {
            let (jobs, queue) = std::sync::mpsc::sync_channel(8);
            let progress = self.progress.clone();
            let spawned = std::thread::Builder::new()
                .name("walrus-reserve".into())
                .spawn(move || {
                    for job in queue {
                        Preparer::run(&progress, job);
                    }
                });
            match spawned {
                Ok(thread) => {
                    self.jobs = Some(jobs);
                    self.thread = Some(thread);
                }
                Err(e) => {
                    tracing::debug!("walrus: no reserve-ahead thread: {e}");
                    return;
                }
            }
        }
        if let Some(jobs) = &self.jobs {
            let job = ReserveJob {
                file: file.clone(),
                segment,
                from,
                to,
            };
            let _ = jobs.try_send(job);
        }
    }

    fn run(progress: &parking_lot::Mutex<(u64, u64)>, job: ReserveJob) {
        let mut at = job.from;
        loop {
            let (segment, next) = *progress.lock();
            at = at.max(next);
            if segment != job.segment || at >= job.to {
                return;
            }
            let len = RESERVE_STEP.min(job.to - at);
            if let Err(e) = job.file.reserve(at, len) {
                tracing::debug!("walrus: reserving ahead failed: {e}");
                return;
            }
            at += len;
        }
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        self.jobs = None; // ends the thread's loop once the queue is drained
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sim::{Fault, FaultKind, SimStorage};
    use crate::storage::{FileKind, OpenMode, Storage};

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

/// Exhaustive interleavings of the group commit and of a segment's extent
/// accounting (`make loom`; see `crate::sync`).
#[cfg(all(test, loom))]
pub(crate) mod loom_tests {
    use super::*;
    use loom::sync::Arc as LoomArc;
    use loom::thread;
    use std::time::Instant;

    /// Runs `f` under every interleaving loom explores (at most
    /// `preemptions` preemptions each, unless `LOOM_MAX_PREEMPTIONS` says
    /// otherwise), reports how many there were (also when one fails), and
    /// checks that every outcome of `coverage` was reached.
    pub(crate) fn explore(
        name: &str,
        preemptions: usize,
        coverage: &'static Coverage,
        f: impl Fn(&'static Coverage) + Sync + Send + 'static,
    ) {
        /// Prints the count when the exploration ends, by a panic too.
        struct Report<'a> {
            name: &'a str,
            runs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
            started: Instant,
        }
        impl Drop for Report<'_> {
            fn drop(&mut self) {
                let runs = self.runs.load(std::sync::atomic::Ordering::Relaxed);
                let took = self.started.elapsed();
                let how = if std::thread::panicking() {
                    "failed in interleaving"
                } else {
                    "interleavings"
                };
                eprintln!("loom: {}: {runs} {how} ({took:.2?})", self.name);
            }
        }
        let report = Report {
            name,
            runs: Default::default(),
            started: Instant::now(),
        };
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = builder.preemption_bound.or(Some(preemptions));
        let counter = report.runs.clone();
        builder.check(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            f(coverage);
        });
        drop(report);
        coverage.check(name);
    }

    /// Outcomes a model must reach in at least one interleaving. Loom's
    /// partial-order reduction can skip interleavings (tokio-rs/loom#166),
    /// so each test also checks that the ones it is about were explored.
    pub(crate) struct Coverage {
        outcomes: &'static [&'static str],
        seen: std::sync::atomic::AtomicU64,
    }

    impl Coverage {
        pub(crate) const fn new(outcomes: &'static [&'static str]) -> Coverage {
            Coverage {
                outcomes,
                seen: std::sync::atomic::AtomicU64::new(0),
            }
        }

        pub(crate) fn saw(&self, outcome: &str) {
            let Some(i) = self.outcomes.iter().position(|o| *o == outcome) else {
                return; // not one this model must reach
            };
            self.seen
                .fetch_or(1 << i, std::sync::atomic::Ordering::Relaxed);
        }

        fn check(&self, name: &str) {
            let seen = self.seen.load(std::sync::atomic::Ordering::Relaxed);
            for (i, outcome) in self.outcomes.iter().enumerate() {
                assert!(
                    seen & 1 << i != 0,
                    "{name}: no interleaving where {outcome}"
                );
            }
        }
    }

    /// A file whose writes are numbered bits. A successful `sync` makes
    /// durable the writes completed before it started; once one fails, the
    /// later ones succeed without making anything durable (the lost pages
    /// are gone, as with a real fsync after an error).
    pub(crate) struct FakeFile {
        /// Bit `i`: write `i` has completed.
        written: AtomicU64,
        /// Bit `i`: a successful sync covered write `i`.
        durable: AtomicU64,
        /// Syncs in progress, and started so far.
        active: AtomicUsize,
        started: AtomicUsize,
        /// The sync (counted from 0) that fails, if any.
        fail_nth: Option<usize>,
        failed: AtomicBool,
    }

    impl FakeFile {
        pub(crate) fn new(fail_nth: Option<usize>) -> FakeFile {
            FakeFile {
                written: AtomicU64::new(0),
                durable: AtomicU64::new(0),
                active: AtomicUsize::new(0),
                started: AtomicUsize::new(0),
                fail_nth,
                failed: AtomicBool::new(false),
            }
        }

        /// Completes write `i`.
        pub(crate) fn write(&self, i: u32) {
            self.written.fetch_or(1 << i, Ordering::Release);
        }

        /// Whether a successful sync covered write `i`.
        pub(crate) fn is_durable(&self, i: u32) -> bool {
            self.durable.load(Ordering::Acquire) & 1 << i != 0
        }

        fn syncs(&self) -> usize {
            self.started.load(Ordering::Acquire)
        }
    }

    impl StorageFile for FakeFile {
        fn len(&self) -> io::Result<u64> {
            unimplemented!("only sync is modelled")
        }
        fn read_exact_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
            unimplemented!("only sync is modelled")
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
            unimplemented!("only sync is modelled")
        }
        fn reserve(&self, _: u64, _: u64) -> io::Result<()> {
            unimplemented!("only sync is modelled")
        }
        fn sync(&self) -> io::Result<()> {
            assert_eq!(
                self.active.fetch_add(1, Ordering::AcqRel),
                0,
                "two syncs at once"
            );
            let nth = self.started.fetch_add(1, Ordering::AcqRel);
            let covered = self.written.load(Ordering::Acquire);
            let result = if self.fail_nth == Some(nth) {
                self.failed.store(true, Ordering::Release);
                Err(io::Error::from_raw_os_error(libc::EIO))
            } else {
                if !self.failed.load(Ordering::Acquire) {
                    self.durable.fetch_or(covered, Ordering::Release);
                }
                Ok(())
            };
            self.active.fetch_sub(1, Ordering::AcqRel);
            result
        }
    }

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

    fn segment() -> Segment {
        let file: Arc<dyn StorageFile> = Arc::new(FakeFile::new(None));
        Segment::new(1, PathBuf::from("seg"), file, 1 << 20)
    }

    /// A claim is the only one, and comes once the segment is sealed and
    /// holds no live extent.
    fn claimed(seg: &Segment, claims: &AtomicUsize) {
        let state = seg.live_blocks.load(Ordering::Acquire);
        assert!(state & SEALED != 0, "claimed before sealed");
        assert_eq!(state & !SEALED, 0, "claimed while an extent is live");
        assert_eq!(claims.fetch_add(1, Ordering::AcqRel), 0, "claimed twice");
    }

    /// `blocks` extents added, released by one thread each while the
    /// allocator seals the segment; with `late`, the allocator adds the
    /// last extent only after the first one's release has started.
    fn release_and_seal(blocks: usize, late: bool, cov: &'static Coverage) {
        let seg = LoomArc::new(segment());
        let claims = LoomArc::new(AtomicUsize::new(0));
        let release = |seg: &LoomArc<Segment>| {
            let (seg, claims) = (seg.clone(), claims.clone());
            thread::spawn(move || {
                if seg.release_block() {
                    claimed(&seg, &claims);
                    cov.saw("a release claims the segment");
                }
            })
        };
        let mut releasers = Vec::new();
        let early = if late { blocks - 1 } else { blocks };
        for _ in 0..early {
            seg.add_block();
        }
        for _ in 0..early {
            releasers.push(release(&seg));
        }
        if late {
            seg.add_block();
            releasers.push(release(&seg));
        }
        if seg.seal() {
            claimed(&seg, &claims);
            cov.saw("the seal claims the segment");
        }
        for r in releasers {
            r.join().unwrap();
        }
        assert_eq!(
            claims.load(Ordering::Acquire),
            1,
            "the segment was never claimed"
        );
    }

    #[test]
    fn loom_segment_claimed_once_when_sealed_and_empty() {
        const BOTH: &[&str] = &[
            "a release claims the segment",
            "the seal claims the segment",
        ];
        static TWO: Coverage = Coverage::new(BOTH);
        explore("segment, 2 releases racing the seal", 3, &TWO, |cov| {
            release_and_seal(2, false, cov)
        });
        static LATE: Coverage = Coverage::new(&["a release claims the segment"]);
        explore(
            "segment, a release, a late extent, the seal",
            3,
            &LATE,
            |cov| release_and_seal(2, true, cov),
        );
        static ONE: Coverage = Coverage::new(BOTH);
        explore("segment, 1 release racing the seal", 3, &ONE, |cov| {
            release_and_seal(1, false, cov)
        });
    }
}
