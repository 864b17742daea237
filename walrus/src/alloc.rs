//! The extent allocator: hands out extents one segment after another,
//! creates segment files, and reserves space ahead of itself on a
//! background thread. [`Lanes`] runs several allocators side by side, each
//! with its own current segment, so that appenders of different topics do
//! not all write one file (see [`Lanes`]).

use crate::format::{ExtentHeader, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::segment::{segment_name, Segment, EXTENT_UNIT, TMP_SUFFIX};
use crate::storage::{FileKind, OpenMode, Storage, StorageFile};
use crate::store::{Error, Result};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Hands out extents, one segment after another. Extent headers are written
/// under the allocator's lock so that they reach the file in offset order:
/// a durable header then implies that every header before it is durable.
pub struct Allocator {
    current: Option<(Arc<Segment>, u64)>,
    /// The next segment id, shared by every lane.
    next_id: Arc<AtomicU64>,
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

pub struct Allocation {
    pub segment: Arc<Segment>,
    pub start: u64,
}

/// Several allocators ("lanes"), each with its own lock and its own
/// current segment. A topic takes a lane when it first needs an extent and
/// keeps it while the instance is open, so its extents lie in that lane's
/// segments; their order is the extents' own sequence numbers, never the
/// segment ids, so recovery does not care which lane wrote what.
///
/// Why: every buffered `pwrite` takes its file's inode lock exclusively, so
/// with one current segment all appenders of all topics serialize on one
/// lock (the fd backend's profile at 4 threads showed 17% of samples
/// spinning on it). With a lane per core they mostly write different files.
/// Under `SyncEach` one lane is better: a group commit then covers every
/// waiting append with one fdatasync of one file.
pub struct Lanes {
    lanes: Box<[parking_lot::Mutex<Allocator>]>,
    /// Round robin over the lanes, taken once per topic (not per append).
    next_lane: AtomicUsize,
    in_flight: Arc<ReservesInFlight>,
}

impl Lanes {
    /// `count` lanes (at least one) whose segments get ids from `next_id` on.
    pub fn new(count: usize, next_id: u64, segment_bytes: u64) -> Lanes {
        let next_id = Arc::new(AtomicU64::new(next_id));
        let in_flight = Arc::new(ReservesInFlight::default());
        let lanes = (0..count.max(1))
            .map(|_| {
                parking_lot::Mutex::new(Allocator::new(
                    next_id.clone(),
                    segment_bytes,
                    in_flight.clone(),
                ))
            })
            .collect();
        Lanes {
            lanes,
            next_lane: AtomicUsize::new(0),
            in_flight,
        }
    }

    /// The lane for a topic that has none yet.
    pub fn pick(&self) -> usize {
        self.next_lane.fetch_add(1, Ordering::Relaxed) % self.lanes.len()
    }

    /// The allocator of `lane` (taken modulo the lane count).
    pub fn lane(&self, lane: usize) -> &parking_lot::Mutex<Allocator> {
        &self.lanes[lane % self.lanes.len()]
    }

    /// The reserve-ahead jobs of every lane queued or running, for a sync
    /// to wait on.
    pub(crate) fn reserves(&self) -> &ReservesInFlight {
        &self.in_flight
    }
}

impl Allocator {
    fn new(
        next_id: Arc<AtomicU64>,
        segment_bytes: u64,
        in_flight: Arc<ReservesInFlight>,
    ) -> Allocator {
        Allocator {
            current: None,
            next_id,
            segment_bytes,
            prepared_to: 0,
            previous: None,
            preparer: Preparer {
                progress: Default::default(),
                in_flight,
                jobs: None,
                thread: None,
            },
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
        header: &ExtentHeader,
        on_new_segment: impl FnOnce(&Arc<Segment>),
        on_deletable: impl FnOnce(Arc<Segment>),
    ) -> Result<Allocation> {
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
        // An extent past the end would write another segment's worth of
        // data beyond the file the header describes: checked in every build.
        assert!(
            start + len <= segment.size_bytes,
            "extent [{start}, {}) past the end of a {}-byte segment",
            start + len,
            segment.size_bytes
        );
        debug_assert!(
            start.is_multiple_of(EXTENT_UNIT)
                && len.is_multiple_of(EXTENT_UNIT)
                && start >= EXTENT_UNIT,
            "extents lie on extent units, after the segment header's unit"
        );
        let bytes = header.encode();
        let io = |e| {
            Error::io(
                format!("writing an extent header to {}", segment.path.display()),
                e,
            )
        };
        segment.file.reserve(start, len).map_err(io)?;
        segment.file.write_all_at(&bytes, start).map_err(io)?;
        *next += len;
        segment.add_extent();
        if segment.file.reserve_is_costly() {
            self.preparer.note(segment.id, *next);
            let from = self.prepared_to.max(*next);
            let to = (*next + RESERVE_AHEAD).min(segment.size_bytes);
            if from < to {
                self.preparer.reserve(&segment.file, segment.id, from, to);
                self.prepared_to = to;
            }
        }
        Ok(Allocation {
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
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(segment_name(id));
        // The file is made under a temporary name and renamed once its header
        // is durable: another thread's directory sync (a recovery snapshot, a cursor
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
            extent_unit_bytes: EXTENT_UNIT,
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
    in_flight: Arc<ReservesInFlight>,
    jobs: Option<std::sync::mpsc::SyncSender<ReserveJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The reserve-ahead jobs queued or running. On the mmap backend reserving
/// dirties the pages it faults in (`MADV_POPULATE_WRITE` on a shared
/// mapping), so a sync waits for the jobs first: a page faulted in just
/// after a sync returned would be dirty, unsynced state the sync should have
/// covered (zeros, not data, but the conformance sync check cannot tell,
/// and found it: `mmap::sync_succeeds_under_every_schedule`, once).
#[derive(Default)]
pub(crate) struct ReservesInFlight {
    count: parking_lot::Mutex<u64>,
    done: parking_lot::Condvar,
}

impl ReservesInFlight {
    /// Waits until no reserve job is queued or running, for at most
    /// `timeout` (a sync never waits longer on a head start).
    pub(crate) fn wait_idle(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut count = self.count.lock();
        while *count > 0 {
            if self.done.wait_until(&mut count, deadline).timed_out() {
                return;
            }
        }
    }

    fn finished(&self) {
        let mut count = self.count.lock();
        debug_assert!(*count > 0, "a reserve job ends that was counted");
        *count -= 1;
        self.done.notify_all();
    }
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
            let in_flight = self.in_flight.clone();
            let spawned = std::thread::Builder::new()
                .name("walrus-reserve".into())
                .spawn(move || {
                    for job in queue {
                        Preparer::run(&progress, job);
                        in_flight.finished();
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
            *self.in_flight.count.lock() += 1;
            if jobs.try_send(job).is_err() {
                self.in_flight.finished(); // dropped: the queue is full
            }
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
