//! The Walrus instance: opening (lock, recovery, cursors), appends, reads,
//! cursor persistence, the background thread (flusher and running recovery
//! checkpoints), and space reclamation.

use crate::cursor::CursorStore;
use crate::format::{align_up, encode_frame, frame_len, BlockHeader, ALIGN};
use crate::recovery::{self, RecoveryReport};
use crate::segment::{Allocator, Segment, EXTENT_UNIT};
use crate::storage::{Backend, Storage};
use crate::store::{
    validate_batch_len, validate_topic, Entry, Error, FsyncSchedule, LogStore, ReadConsistency,
    Result, MAX_BATCH_ENTRIES,
};
use crate::topic::{Block, Mark, Topic, MAX_EXTENT_BYTES};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
const DEFAULT_BLOCK_BYTES: u64 = 1 << 20;
const DEFAULT_CHECKPOINT_EVERY: u64 = 64 << 20;
const DEFAULT_DATA_DIR: &str = "wal_files";
const DEFAULT_KEY: &str = "default";
/// How far a consumer reading one entry at a time reads ahead.
const SINGLE_READ_AHEAD: u64 = 64 << 10;
/// The largest segment: every extent must fit a [`Mark`] (and frame lengths
/// are u32 on disk).
const MAX_SEGMENT_BYTES: u64 = MAX_EXTENT_BYTES - MAX_EXTENT_BYTES % EXTENT_UNIT;

/// Configures and opens a [`Walrus`]. Nothing here reads the process
/// environment unless asked to (`Walrus::new` and friends do).
#[derive(Clone, Debug)]
pub struct WalrusBuilder {
    data_dir: PathBuf,
    key: String,
    consistency: ReadConsistency,
    fsync: FsyncSchedule,
    backend: Backend,
    segment_bytes: u64,
    block_bytes: u64,
    checkpoint_every: u64,
    quiet: bool,
    #[cfg(feature = "test-support")]
    storage: Option<StorageOverride>,
}

#[cfg(feature = "test-support")]
#[derive(Clone)]
struct StorageOverride(Arc<dyn Storage>);

#[cfg(feature = "test-support")]
impl std::fmt::Debug for StorageOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.describe())
    }
}

impl Default for WalrusBuilder {
    fn default() -> Self {
        WalrusBuilder {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            key: DEFAULT_KEY.into(),
            consistency: ReadConsistency::StrictlyAtOnce,
            fsync: FsyncSchedule::Milliseconds(200),
            backend: Backend::Fd,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            block_bytes: DEFAULT_BLOCK_BYTES,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            quiet: false,
            #[cfg(feature = "test-support")]
            storage: None,
        }
    }
}

impl WalrusBuilder {
    /// Directory holding one subdirectory per instance key.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }

    /// Namespace inside the data directory: any non-empty UTF-8 key of up
    /// to 1,024 bytes, mapped to a directory name reversibly and without
    /// collisions (see [`crate::key`]).
    pub fn instance_key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    pub fn consistency(mut self, consistency: ReadConsistency) -> Self {
        self.consistency = consistency;
        self
    }

    pub fn fsync(mut self, fsync: FsyncSchedule) -> Self {
        self.fsync = fsync;
        self
    }

    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Size of new segment files (default 64 MiB). A larger entry or batch
    /// (up to 4 GiB - 12 KiB) gets a segment of its own, sized to fit it.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Default extent a topic reserves at a time (default 1 MiB).
    pub fn block_bytes(mut self, bytes: u64) -> Self {
        self.block_bytes = bytes;
        self
    }

    /// A sync round (the `Milliseconds` flusher's, an explicit `sync()`, or
    /// under `SyncEach` one the background thread runs for this purpose)
    /// also writes a recovery checkpoint once this much new extent space
    /// (default 64 MiB) was handed out since the last one. An open after a
    /// crash then re-reads only what was written after that checkpoint (plus
    /// each topic's current extent), not the whole log. 0 writes one only at
    /// a clean close. No checkpoint ever needs a sync the schedule would not
    /// do anyway, except under `SyncEach`, where everything is synced already.
    pub fn checkpoint_every_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_every = bytes;
        self
    }

    /// Suppresses the backend line logged at open.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Runs the engine on a caller-supplied storage (the simulated storage of
    /// the crash suites). No directory lock is taken: the storage is private.
    #[cfg(feature = "test-support")]
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(StorageOverride(storage));
        self
    }

    /// Applies `WALRUS_DATA_DIR`, `WALRUS_BACKEND`/`BACKEND` and `WALRUS_QUIET`.
    pub fn from_env(mut self) -> Result<Self> {
        if let Ok(dir) = std::env::var("WALRUS_DATA_DIR") {
            self.data_dir = dir.into();
        }
        self.backend = Backend::from_env().map_err(Error::InvalidInput)?;
        self.quiet = std::env::var("WALRUS_QUIET").is_ok_and(|v| v == "1");
        Ok(self)
    }

    pub fn open(self) -> Result<Walrus> {
        Walrus::open(self)
    }

    fn validate(&self) -> Result<()> {
        crate::key::encode(&self.key)?;
        let block_ok =
            self.block_bytes >= 2 * EXTENT_UNIT && self.block_bytes.is_multiple_of(EXTENT_UNIT);
        if !block_ok
            || self.segment_bytes < self.block_bytes + EXTENT_UNIT
            || self.segment_bytes > MAX_SEGMENT_BYTES
            || !self.segment_bytes.is_multiple_of(EXTENT_UNIT)
        {
            return Err(Error::InvalidInput(format!(
                "segment of {} bytes and block of {} bytes: both must be multiples of {EXTENT_UNIT}, \
                 the block at least {}, and the segment larger than one block and at most \
                 {MAX_SEGMENT_BYTES} bytes",
                self.segment_bytes,
                self.block_bytes,
                2 * EXTENT_UNIT
            )));
        }
        if let FsyncSchedule::Milliseconds(0) = self.fsync {
            return Err(Error::InvalidInput(
                "a Milliseconds schedule needs n > 0".into(),
            ));
        }
        Ok(())
    }
}

/// A topic's position: entries `next_to_read..next_to_append` are unconsumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// Sequence number the next consuming read returns.
    pub next_to_read: u64,
    /// Sequence number the next append gets.
    pub next_to_append: u64,
}

/// An append that is written but may not be durable yet: returned by
/// [`Walrus::append_pending`]. Dropping it does not undo the write; the
/// entries stay in the log and a later sync makes them durable, but the
/// append was never acknowledged.
///
/// Under `SyncEach` the entries become readable only once the write is
/// durable: when [`PendingWrite::wait`] returns, when a dropped
/// `PendingWrite` finds itself durable, when a later append of the topic is
/// acknowledged, or when `sync()` returns.
#[must_use = "an append is acknowledged only once its PendingWrite is durable"]
pub struct PendingWrite {
    /// `None` when the schedule asks for no sync before acknowledging
    /// (`Milliseconds`, `NoFsync`).
    sync: Option<SegmentSync>,
    ticket: u64,
    /// `SyncEach`: what the acknowledgement makes readable.
    publication: Option<Publication>,
}

/// The frames an acknowledged `SyncEach` append makes readable: its own, and
/// those of the topic's earlier blocks that were not readable yet (whose
/// durability it waits for too).
struct Publication {
    block: Arc<Block>,
    mark: Mark,
    behind: Vec<Arc<Block>>,
}

impl Publication {
    fn behind_durable(&self) -> bool {
        self.behind
            .iter()
            .all(|b| b.segment.sync.is_synced(b.last_ticket()))
    }

    /// Makes the frames readable; the caller has checked they are durable.
    fn publish(self) {
        for block in &self.behind {
            block.publish(block.written());
        }
        self.block.publish(self.mark);
    }
}

impl PendingWrite {
    /// Whether the append is already as durable as the schedule promises
    /// at acknowledgement: always for `Milliseconds` and `NoFsync`; for
    /// `SyncEach` once a sync of its segment that started after the write
    /// has finished (and the topic's earlier writes in other segments are
    /// durable too).
    pub fn is_durable(&self) -> bool {
        self.sync.as_ref().is_none_or(|s| s.is_synced(self.ticket))
            && self
                .publication
                .as_ref()
                .is_none_or(Publication::behind_durable)
    }

    /// Whether durability needs more than a sync of [`PendingWrite::segment`]
    /// through [`PendingWrite::ticket`]: the topic's previous block lives in
    /// another segment and its last frames are not durable yet. A driver
    /// that syncs segments itself then calls [`PendingWrite::wait`] where
    /// blocking is allowed.
    pub fn needs_other_segments(&self) -> bool {
        self.publication
            .as_ref()
            .is_some_and(|p| !p.behind_durable())
    }

    /// The write's place in its segment's sequence of writes; a sync that
    /// covers this ticket makes it durable.
    pub fn ticket(&self) -> u64 {
        self.ticket
    }

    /// The segment whose sync makes this write durable; `None` when the
    /// schedule needs no sync before acknowledging.
    pub fn segment(&self) -> Option<&SegmentSync> {
        self.sync.as_ref()
    }

    /// Blocks until the append is durable, sharing the fdatasync with every
    /// concurrent waiter on the same segment (group commit), and makes its
    /// entries readable. A failed sync is final: it fails this and every
    /// later write of the instance. Returns at once when the append is
    /// durable already.
    pub fn wait(mut self) -> Result<()> {
        if let Some(sync) = &self.sync {
            sync.sync_append(self.ticket)?;
            if let Some(publication) = &self.publication {
                for block in &publication.behind {
                    let ticket = block.last_ticket();
                    if !block.segment.sync.is_synced(ticket) {
                        let behind = SegmentSync {
                            inner: sync.inner.clone(),
                            segment: block.segment.clone(),
                        };
                        behind.sync_through(ticket)?;
                    }
                }
            }
        }
        if let Some(publication) = self.publication.take() {
            publication.publish();
        }
        Ok(())
    }
}

impl Drop for PendingWrite {
    /// An append dropped unacknowledged still becomes readable once it is
    /// durable; if it is not yet, a later acknowledgement or `sync()` of
    /// the topic publishes it.
    fn drop(&mut self) {
        if self.is_durable() {
            if let Some(publication) = self.publication.take() {
                publication.publish();
            }
        }
    }
}

/// The group commit of one segment file, for a driver that performs the
/// covering sync itself (the async front end issues it through io_uring).
/// The protocol: [`SegmentSync::try_lead`] makes the caller the one syncer
/// of the file and names the last write a sync now covers; the caller
/// fdatasyncs [`SegmentSync::fd`] (a duplicate of it) and reports the
/// outcome with [`SyncLead::finish`]. Blocking waiters of the same file
/// share that sync, and a failure fails the instance exactly as a failed
/// blocking sync does.
#[derive(Clone)]
pub struct SegmentSync {
    inner: Arc<Inner>,
    segment: Arc<Segment>,
}

impl SegmentSync {
    /// The segment's id (distinct among an instance's live segments).
    pub fn id(&self) -> u64 {
        self.segment.id
    }

    /// Whether a finished sync covers `ticket`.
    pub fn is_synced(&self, ticket: u64) -> bool {
        self.segment.sync.is_synced(ticket)
    }

    /// The segment file's descriptor, to duplicate for an external sync.
    /// `None` for storage without one (the simulated storage of the
    /// tests): sync those with [`SegmentSync::sync_through`].
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.segment.file.fd()
    }

    /// Blocks until a sync covering `ticket` has finished, leading one if
    /// none is running (the blocking group commit).
    pub fn sync_through(&self, ticket: u64) -> Result<()> {
        self.segment
            .sync
            .sync_through(ticket, &*self.segment.file)
            .map_err(|e| self.fail(e))
    }

    /// As `sync_through`, for the appender that wrote `ticket`: a leader
    /// first gathers concurrent appenders' writes (see `GroupSync`).
    fn sync_append(&self, ticket: u64) -> Result<()> {
        self.segment
            .sync
            .sync_append(ticket, &*self.segment.file)
            .map_err(|e| self.fail(e))
    }

    /// Takes the lead of the next sync without blocking. `Ok(None)`: a sync
    /// is in progress already (wait for it with `sync_through`). An error
    /// means an earlier sync of this file failed; the instance is failed.
    pub fn try_lead(&self) -> Result<Option<SyncLead>> {
        match self.segment.sync.try_lead() {
            Ok(lead) => Ok(lead.map(|target| SyncLead {
                sync: self.clone(),
                target,
                finished: false,
            })),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&self, e: std::io::Error) -> Error {
        let context = format!("syncing {}", self.segment.path.display());
        self.inner.fail(Error::io(context, e))
    }
}

/// The lead of one sync of a segment, from [`SegmentSync::try_lead`]. Until
/// it is finished no other sync of the file starts; dropping it unfinished
/// counts the sync as failed, because its outcome is unknown.
#[must_use = "a lead must be finished with the outcome of its sync"]
pub struct SyncLead {
    sync: SegmentSync,
    target: u64,
    finished: bool,
}

impl SyncLead {
    /// Every ticket up to this one is durable once the sync succeeds.
    pub fn target(&self) -> u64 {
        self.target
    }

    /// Records the outcome of an fdatasync of the segment that started after
    /// this lead was taken. An error fails the instance (later writes get
    /// [`Error::Failed`]) and is returned with its context.
    pub fn finish(mut self, outcome: std::io::Result<()>) -> Result<()> {
        self.finished = true;
        self.sync.segment.sync.finish(self.target, outcome.is_ok());
        outcome.map_err(|e| self.sync.fail(e))
    }
}

impl Drop for SyncLead {
    fn drop(&mut self) {
        if !self.finished {
            self.sync.segment.sync.abandon();
            self.sync.fail(std::io::Error::other(
                "a sync was abandoned before its outcome was known",
            ));
        }
    }
}

/// What the write step of an append leaves for the durability step.
struct Written {
    segment: Arc<Segment>,
    ticket: u64,
    /// `SyncEach`: what to make readable once durable.
    publication: Option<Publication>,
}

/// A topic-based write-ahead log. See the crate docs and `docs/format.md`.
pub struct Walrus {
    inner: Arc<Inner>,
    background: Option<Background>,
    /// Set by `simulate_crash`: drop without the clean-close work.
    crashed: bool,
}

struct Inner {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    consistency: ReadConsistency,
    fsync: FsyncSchedule,
    block_bytes: u64,
    max_frame_bytes: u64,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    alloc: Mutex<Allocator>,
    segments: Mutex<BTreeMap<u64, Arc<Segment>>>,
    cursors: CursorStore,
    /// Extent bytes allocated since the last running checkpoint.
    since_checkpoint: AtomicU64,
    checkpoint_every: u64,
    /// Held while a checkpoint is taken and written (one file, one writer).
    checkpointing: Mutex<()>,
    signal: Signal,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    report: RecoveryReport,
    _lock: Option<File>,
}

impl Walrus {
    /// Opens the default instance (`WALRUS_DATA_DIR`, default `./wal_files`)
    /// with `StrictlyAtOnce` reads and a 200 ms fsync schedule.
    pub fn new() -> Result<Walrus> {
        Walrus::builder().from_env()?.open()
    }

    pub fn with_consistency(consistency: ReadConsistency) -> Result<Walrus> {
        Walrus::builder()
            .from_env()?
            .consistency(consistency)
            .open()
    }

    pub fn with_consistency_and_schedule(
        consistency: ReadConsistency,
        fsync: FsyncSchedule,
    ) -> Result<Walrus> {
        Walrus::builder()
            .from_env()?
            .consistency(consistency)
            .fsync(fsync)
            .open()
    }

    /// Opens the instance named `key` (any non-empty UTF-8 string; see
    /// [`crate::key`] for the directory it maps to) with the defaults of
    /// [`Walrus::new`].
    pub fn new_for_key(key: &str) -> Result<Walrus> {
        Walrus::builder().from_env()?.instance_key(key).open()
    }

    pub fn with_consistency_for_key(key: &str, consistency: ReadConsistency) -> Result<Walrus> {
        Walrus::builder()
            .from_env()?
            .instance_key(key)
            .consistency(consistency)
            .open()
    }

    pub fn with_consistency_and_schedule_for_key(
        key: &str,
        consistency: ReadConsistency,
        fsync: FsyncSchedule,
    ) -> Result<Walrus> {
        Walrus::builder()
            .from_env()?
            .instance_key(key)
            .consistency(consistency)
            .fsync(fsync)
            .open()
    }

    pub fn builder() -> WalrusBuilder {
        WalrusBuilder::default()
    }

    fn open(mut b: WalrusBuilder) -> Result<Walrus> {
        b.validate()?;
        if let ReadConsistency::AtLeastOnce { persist_every: 0 } = b.consistency {
            // As walrus-rust does: persisting every 0 reads can only mean
            // the strictest at-least-once setting.
            tracing::warn!("walrus: AtLeastOnce {{ persist_every: 0 }} taken as persist_every: 1");
            b.consistency = ReadConsistency::AtLeastOnce { persist_every: 1 };
        }
        let dir = crate::key::instance_dir(&b.data_dir, &b.key)?;
        #[cfg(feature = "test-support")]
        let (storage, lock) = match &b.storage {
            Some(StorageOverride(s)) => (s.clone(), None),
            None => (
                b.backend.storage(b.fsync == FsyncSchedule::SyncEach),
                Some(lock_dir(&b.data_dir, &dir)?),
            ),
        };
        #[cfg(not(feature = "test-support"))]
        let (storage, lock) = (
            b.backend.storage(b.fsync == FsyncSchedule::SyncEach),
            Some(lock_dir(&b.data_dir, &dir)?),
        );
        if !b.quiet {
            tracing::info!("walrus: {} at {}", storage.describe(), dir.display());
        }
        let (cursors, mut positions, cursor_damage) = CursorStore::open(storage.clone(), &dir)?;
        let checkpoint = crate::checkpoint::take(&*storage, &dir)?;
        let cursors_lost = cursor_damage.positions_lost;
        let cursor_damage = cursor_damage.found;
        let recovered = recovery::recover(
            &*storage,
            &dir,
            &positions,
            cursors_lost,
            checkpoint.as_ref(),
        )?;
        for d in &recovered.report.dropped {
            tracing::warn!(
                "walrus recovery dropped {} at {}: {}",
                d.file.display(),
                d.offset,
                d.reason
            );
        }
        let mut report = recovered.report;
        for d in &cursor_damage {
            tracing::warn!(
                "walrus: cursor file {} damaged at {}: {}",
                d.file.display(),
                d.offset,
                d.reason
            );
        }
        report.cursor_damage = cursor_damage;
        // What recovery accepted may exist only in the page cache (the
        // previous process crashed before syncing). Readers are shown it
        // from now on, and under `SyncEach` they may only see durable
        // entries; and new acknowledged entries must not follow entries a
        // power loss could still take.
        for segment in recovered.segments.values() {
            segment
                .file
                .sync()
                .map_err(|e| Error::io(format!("syncing {}", segment.path.display()), e))?;
        }
        let mut topics = HashMap::new();
        let mut deletable = Vec::new();
        for (name, state) in recovered.topics {
            // Recovery starts each chain at or below the cursor. Entries
            // below it may be gone (reclaimed, or consumed before a power
            // loss took them); sequence numbers never go back, so the topic
            // continues at least from its cursor.
            let mut cursor = positions.get(&name).copied().unwrap_or(0);
            if cursors_lost {
                // A cursor lost with a damaged cursor file restarts at the
                // oldest entry kept (never below it: that one was reclaimed).
                cursor = cursor.max(state.blocks.front().map_or(0, |b| b.first_seq));
            }
            debug_assert!(state.blocks.front().is_none_or(|b| b.first_seq <= cursor));
            positions.insert(name.clone(), cursor);
            let topic = Topic::new(
                name.clone(),
                state.blocks,
                state.next_seq.max(cursor),
                state.next_block_seq,
                cursor,
            );
            deletable.extend(release_consumed(&topic, cursor));
            topics.insert(name, Arc::new(topic));
        }
        // Topics whose data is all reclaimed live on in their cursors only.
        for (name, &cursor) in &positions {
            topics.entry(name.clone()).or_insert_with(|| {
                Arc::new(Topic::new(
                    name.clone(),
                    Default::default(),
                    cursor,
                    0,
                    cursor,
                ))
            });
        }
        cursors.reset(positions)?;
        for segment in recovered.segments.values() {
            if segment.seal() {
                deletable.push(segment.clone());
            }
        }
        let inner = Arc::new(Inner {
            dir,
            storage,
            consistency: b.consistency,
            fsync: b.fsync,
            block_bytes: b.block_bytes,
            // A frame larger than a segment gets a segment of its own (the
            // allocator sizes it), up to the largest one a mark describes.
            max_frame_bytes: MAX_SEGMENT_BYTES - 2 * EXTENT_UNIT,
            topics: RwLock::new(topics),
            alloc: Mutex::new(Allocator::new(recovered.next_segment_id, b.segment_bytes)),
            segments: Mutex::new(recovered.segments),
            cursors,
            since_checkpoint: AtomicU64::new(0),
            checkpoint_every: b.checkpoint_every,
            checkpointing: Mutex::new(()),
            signal: Signal::default(),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            report,
            _lock: lock,
        });
        for segment in deletable {
            inner.delete_segment(&segment);
        }
        let interval = b.fsync.interval();
        let background = Background::start(inner.clone(), interval)
            .map_err(|e| Error::io("starting the background thread", e))?;
        Ok(Walrus {
            inner,
            background: Some(background),
            crashed: false,
        })
    }

    /// What recovery found at open, including everything it dropped.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// Names of every topic this instance knows, sorted.
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.topics.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Where a topic's cursor and tail are; `None` for an unknown topic.
    pub fn topic_info(&self, topic: &str) -> Option<TopicInfo> {
        let topic = self.inner.topics.read().get(topic).cloned()?;
        let next_to_append = topic.writer.lock().next_seq;
        let next_to_read = topic.reader.lock().seq;
        Some(TopicInfo {
            next_to_read,
            next_to_append,
        })
    }

    /// The read consistency the instance was opened with.
    pub fn consistency(&self) -> ReadConsistency {
        self.inner.consistency
    }

    /// The instance directory (data directory joined with the instance key).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn append_for_topic(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.append_pending(topic, &[payload])?.wait()
    }

    /// Appends up to 2,000 entries atomically: after a crash all or none are
    /// there. An empty batch writes nothing and succeeds, as in walrus-rust.
    pub fn batch_append_for_topic(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        if payloads.is_empty() {
            return validate_topic(topic);
        }
        self.append_pending(topic, payloads)?.wait()
    }

    /// The first half of an append (one entry, or a batch of up to 2,000
    /// entries kept atomic): writes the frame and returns without waiting
    /// for the fsync that `SyncEach` needs. The entries are readable at once
    /// and survive a process crash; they are acknowledged (durable as the
    /// schedule promises) only once the returned [`PendingWrite`] is. The
    /// blocking appends are `append_pending(..)?.wait()`.
    pub fn append_pending(&self, topic: &str, payloads: &[&[u8]]) -> Result<PendingWrite> {
        let written = self.inner.write(topic, payloads)?;
        let sync = (self.inner.fsync == FsyncSchedule::SyncEach).then(|| SegmentSync {
            inner: self.inner.clone(),
            segment: written.segment,
        });
        Ok(PendingWrite {
            sync,
            ticket: written.ticket,
            publication: written.publication,
        })
    }

    pub fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        Ok(self.inner.read(topic, usize::MAX, 1, checkpoint)?.pop())
    }

    /// Reads entries totalling at most `max_bytes` of payload, but at least
    /// one when one is available, and at most [`MAX_BATCH_ENTRIES`] (2,000,
    /// walrus-rust's documented cap) in one call.
    pub fn batch_read_for_topic(
        &self,
        topic: &str,
        max_bytes: usize,
        checkpoint: bool,
    ) -> Result<Vec<Entry>> {
        self.inner
            .read(topic, max_bytes, MAX_BATCH_ENTRIES, checkpoint)
    }

    /// Makes every acknowledged append durable.
    pub fn sync(&self) -> Result<()> {
        self.inner.sync_round()
    }
}

impl Walrus {
    /// Closes the instance the way a crash of the process would: no final
    /// flush, no cursor persistence; only the directory lock is released so
    /// the test can reopen at once. What the OS page cache holds survives, as
    /// it does when a process is killed.
    #[cfg(feature = "test-support")]
    pub fn simulate_crash(mut self) {
        self.crashed = true;
    }
}

impl Drop for Walrus {
    fn drop(&mut self) {
        if let Some(background) = self.background.take() {
            background.stop(!self.crashed);
        }
        if self.crashed {
            return;
        }
        if let Err(e) = self.inner.persist_pending_cursors() {
            tracing::warn!("walrus: persisting cursors at close failed: {e}");
        }
        if let Err(e) = self.inner.checkpoint() {
            tracing::warn!("walrus: no recovery checkpoint at close ({e}); the next open scans");
        }
    }
}

impl LogStore for Walrus {
    fn name(&self) -> &str {
        "walrus"
    }

    fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.append_for_topic(topic, payload)
    }

    fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        self.batch_append_for_topic(topic, payloads)
    }

    fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        Walrus::read_next(self, topic, checkpoint)
    }

    fn batch_read(&self, topic: &str, max_bytes: usize, checkpoint: bool) -> Result<Vec<Entry>> {
        self.batch_read_for_topic(topic, max_bytes, checkpoint)
    }

    fn sync(&self) -> Result<()> {
        Walrus::sync(self)
    }
}

/// Frames up to this size are encoded into the writer's buffer and written
/// with one call; larger ones are written from the caller's payloads in
/// place, so appending a 1 GiB entry never holds a second copy of it.
const STREAMED_FRAME_BYTES: u64 = 1 << 20;
const STREAMED_PIECE_BYTES: usize = 4 << 20;

/// Writes a frame at `off` as its head (encoded into `buf`), then each
/// payload where it belongs, then the zero padding.
fn write_streamed_frame(
    file: &dyn crate::storage::StorageFile,
    buf: &mut Vec<u8>,
    off: u64,
    first_seq: u64,
    payloads: &[&[u8]],
) -> std::io::Result<()> {
    let len = crate::format::encode_frame_head(buf, first_seq, payloads);
    file.write_all_at(buf, off)?;
    let mut at = off + buf.len() as u64;
    for payload in payloads {
        // In pieces, each evicted once written: on the mmap backend the
        // mapped pages of a 1 GiB entry do not all stay in the process.
        // (The data stays dirty in the page cache; syncs write it as usual.)
        for piece in payload.chunks(STREAMED_PIECE_BYTES) {
            file.write_all_at(piece, at)?;
            file.evict(at, piece.len() as u64);
            at += piece.len() as u64;
        }
    }
    debug_assert_eq!(at, off + len, "frame length as computed");
    let padding = (align_up(len, ALIGN) - len) as usize;
    file.write_all_at(&[0u8; ALIGN as usize][..padding], at)
}

/// Takes the advisory lock of an instance directory, creating it if needed.
fn lock_dir(data_dir: &Path, dir: &Path) -> Result<File> {
    let bad = |reason: String| Error::BadDirectory {
        path: data_dir.to_owned(),
        reason,
    };
    if data_dir.exists() && !data_dir.is_dir() {
        return Err(bad("it is not a directory".into()));
    }
    create_dir_durably(dir).map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| bad(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked(dir.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::io(format!("locking {}", path.display()), e))
        }
    }
}

/// Creates `dir` and any missing parents, and fsyncs the parent of each
/// directory it created: a directory entry is durable only once its parent
/// is synced, and a segment synced into a directory a power loss forgets is
/// lost with it.
fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() {
        missing.push(at);
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            _ => break,
        }
    }
    std::fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        let parent = created
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        crate::storage::sync_dir(parent)?;
    }
    Ok(())
}

/// Drops the topic's leading extents whose entries are all below `consumed`;
/// returns segments that became empty.
fn release_consumed(topic: &Topic, consumed: u64) -> Vec<Arc<Segment>> {
    let mut deletable = Vec::new();
    let mut blocks = topic.blocks.write();
    while let Some(front) = blocks.front() {
        if !front.is_sealed() || front.written().seq > consumed {
            break;
        }
        let block = blocks.pop_front().expect("front exists");
        block.evict();
        if block.segment.release_block() {
            deletable.push(block.segment.clone());
        }
    }
    deletable
}

impl Inner {
    fn check_writable(&self) -> Result<()> {
        if self.failed.load(Ordering::Acquire) {
            let reason = self.failure.lock().clone().unwrap_or_default();
            return Err(Error::Failed(reason));
        }
        Ok(())
    }

    /// Refuses all later writes: the data an fsync failed to persist cannot
    /// be assumed durable, and a retried fsync may falsely succeed.
    fn fail(&self, error: Error) -> Error {
        let mut failure = self.failure.lock();
        failure.get_or_insert_with(|| error.to_string());
        self.failed.store(true, Ordering::Release);
        tracing::error!("walrus: refusing further writes: {error}");
        error
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        if let Some(t) = self.topics.read().get(name) {
            return Ok(t.clone());
        }
        validate_topic(name)?;
        let mut topics = self.topics.write();
        let topic = topics
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Topic::new(name.to_owned(), Default::default(), 0, 0, 0)));
        Ok(topic.clone())
    }

    /// The write step of an append: validates, encodes the frame and writes
    /// it under the topic's writer lock. Readers see the entries when this
    /// returns; the caller decides how to wait for durability.
    fn write(&self, topic_name: &str, payloads: &[&[u8]]) -> Result<Written> {
        validate_topic(topic_name)?;
        validate_batch_len(payloads.len())?;
        let len = frame_len(payloads.iter().map(|p| p.len()));
        if len > self.max_frame_bytes {
            let biggest = payloads.iter().map(|p| p.len()).max().unwrap_or(0) as u64;
            return Err(if payloads.len() == 1 || biggest > self.max_frame_bytes {
                Error::EntryTooLarge {
                    size: biggest,
                    max: self.max_frame_bytes - frame_len([0]),
                }
            } else {
                Error::InvalidBatch {
                    reason: format!(
                        "batch frame of {len} bytes exceeds the limit of {}",
                        self.max_frame_bytes
                    ),
                }
            });
        }
        self.check_writable()?;
        let topic = self.topic(topic_name)?;
        let sync_each = self.fsync == FsyncSchedule::SyncEach;
        let mut w = topic.writer.lock();
        let need = align_up(len, ALIGN);
        let block = match &w.block {
            Some(b) if b.room() >= need => b.clone(),
            _ => self.new_block(&topic, &mut w, need)?,
        };
        let at = block.written();
        let first_seq = w.next_seq;
        let wrote = if need <= STREAMED_FRAME_BYTES {
            encode_frame(&mut w.buf, first_seq, payloads);
            assert_eq!(w.buf.len() as u64, need, "frame length as computed");
            block.segment.file.write_all_at(&w.buf, at.off)
        } else {
            write_streamed_frame(
                &*block.segment.file,
                &mut w.buf,
                at.off,
                first_seq,
                payloads,
            )
        };
        if let Err(e) = wrote {
            // The extent's tail may now hold a partial frame: never write
            // after it again.
            w.block = None;
            self.retire_block(&mut w, block.clone());
            return Err(Error::io(
                format!("appending to {}", block.segment.path.display()),
                e,
            ));
        }
        w.next_seq += payloads.len() as u64;
        let mark = Mark {
            off: at.off + need,
            seq: w.next_seq,
        };
        // The ticket is taken before the frame is recorded: a checkpoint
        // that sees the frame then also finds it counted, so the sync it
        // runs before vouching covers the frame.
        let ticket = block.segment.sync.note_write();
        block.record_write(mark, ticket, !sync_each);
        let publication = sync_each.then(|| {
            w.behind.retain(|b| !b.fully_readable());
            Publication {
                block: block.clone(),
                mark,
                behind: w.behind.clone(),
            }
        });
        Ok(Written {
            segment: block.segment.clone(),
            ticket,
            publication,
        })
    }

    /// The writer is done with `block`: no frame is written there again.
    /// Under `SyncEach` a block whose last frames are not readable yet is
    /// kept in `behind`, so that later appends wait for them.
    fn retire_block(&self, w: &mut crate::topic::Writer, block: Arc<Block>) {
        block.seal();
        // The writer is done with it; readers fault back what they need.
        block.evict();
        if self.fsync == FsyncSchedule::SyncEach && !block.fully_readable() {
            w.behind.push(block);
        }
    }

    /// Gives the topic a fresh extent with room for a frame of `need` bytes.
    fn new_block(
        &self,
        topic: &Topic,
        w: &mut crate::topic::Writer,
        need: u64,
    ) -> Result<Arc<Block>> {
        let data_offset = BlockHeader::data_offset(topic.name.len());
        let extent_len = self
            .block_bytes
            .max(align_up(data_offset + need, EXTENT_UNIT));
        let header = BlockHeader {
            topic: topic.name.clone(),
            extent_len,
            block_seq: w.next_block_seq,
            first_entry_seq: w.next_seq,
        };
        let mut deletable = None;
        let extent = self.alloc.lock().allocate(
            &*self.storage,
            &self.dir,
            &header,
            |segment| {
                self.segments.lock().insert(segment.id, segment.clone());
            },
            |segment| deletable = Some(segment),
        )?;
        if let Some(segment) = deletable {
            self.delete_segment(&segment);
        }
        let start = extent.start;
        let block = Arc::new(Block::new(
            extent.segment,
            start + data_offset,
            start + extent_len,
            w.next_block_seq,
            w.next_seq,
        ));
        w.next_block_seq += 1;
        topic.blocks.write().push_back(block.clone());
        self.count_toward_checkpoint(extent_len);
        if let Some(old) = w.block.replace(block.clone()) {
            self.retire_block(w, old);
        }
        Ok(block)
    }

    /// Reads up to `max_entries` entries totalling at most `max_bytes` of
    /// payload (at least one entry when any is available).
    fn read(
        &self,
        topic_name: &str,
        max_bytes: usize,
        max_entries: usize,
        checkpoint: bool,
    ) -> Result<Vec<Entry>> {
        validate_topic(topic_name)?;
        let Some(topic) = self.topics.read().get(topic_name).cloned() else {
            return Ok(Vec::new());
        };
        let mut r = topic.reader.lock();
        let r = &mut *r;
        let mut pos = r.pos.clone();
        let mut seq = r.seq;
        let mut out = Vec::new();
        let mut total = 0usize;
        if max_entries > 1 {
            if pos.is_none() {
                // Find the cursor's frame first so the read-ahead starts there.
                if let Some(entry) = topic.next_entry(seq, &mut pos, &mut r.frames)? {
                    total += entry.data.len();
                    out.push(entry);
                    seq += 1;
                }
            }
            if let Some(p) = pos.as_ref().filter(|_| total < max_bytes) {
                topic.prefetch(p, (max_bytes - total) as u64, &mut r.frames)?;
            }
        } else if let Some(p) = pos.as_ref().filter(|p| !r.frames.holds(p)) {
            // One entry at a time: read a small window ahead once, rather
            // than a header and a body per entry. It is kept for the next
            // reads (committed bytes never change).
            topic.prefetch(p, SINGLE_READ_AHEAD, &mut r.frames)?;
        }
        while out.len() < max_entries {
            let before = pos.clone();
            let next = match topic.next_entry(seq, &mut pos, &mut r.frames) {
                // Damage ends a batch after the entries before it: only a
                // read whose first entry is damaged fails.
                Err(Error::Corruption { .. }) if !out.is_empty() => {
                    pos = before;
                    break;
                }
                next => next?,
            };
            let Some(entry) = next else {
                break;
            };
            if !out.is_empty() && total + entry.data.len() > max_bytes {
                pos = before;
                break;
            }
            total += entry.data.len();
            out.push(entry);
            seq += 1;
        }
        if max_entries > 1 {
            r.frames.end_batch();
        }
        if checkpoint && !out.is_empty() {
            self.persist_cursor(&topic, r, seq, out.len() as u64)?;
            r.seq = seq;
            r.pos = pos;
            // A cursor at the end of a sealed block lets the block go (the
            // next read finds the next one), so a drained segment's file is
            // not held open, and its space is freed, by an idle reader.
            let at_end = r.pos.as_ref().is_some_and(|p| {
                p.idx == 0 && p.block.is_sealed() && p.off >= p.block.written().off
            });
            if at_end {
                r.pos = None;
            }
        }
        // A large frame (its entries stay in the file) is let go once the
        // cursor has left it, so an idle reader never pins its segment.
        let left_large_frame = r.frames.last.as_ref().is_some_and(|f| {
            f.len_padded > crate::topic::LARGE_FRAME_BYTES
                && r.pos
                    .as_ref()
                    .is_none_or(|p| (p.block.segment.id, p.off) != f.key)
        });
        if left_large_frame {
            r.frames.last = None;
        }
        Ok(out)
    }

    /// Persists a consuming read's new cursor as the consistency mode asks,
    /// before the read returns. On error the in-memory cursor is unchanged.
    fn persist_cursor(
        &self,
        topic: &Topic,
        r: &mut crate::topic::Reader,
        seq: u64,
        consumed: u64,
    ) -> Result<()> {
        let due = match self.consistency {
            ReadConsistency::StrictlyAtOnce => true,
            ReadConsistency::AtLeastOnce { persist_every } => {
                r.unpersisted + consumed >= persist_every as u64
            }
        };
        if !due {
            r.unpersisted += consumed;
            return Ok(());
        }
        self.cursors.persist(&topic.name, seq, true)?;
        r.unpersisted = 0;
        for segment in release_consumed(topic, seq) {
            self.delete_segment(&segment);
        }
        Ok(())
    }

    fn persist_pending_cursors(&self) -> Result<()> {
        let topics: Vec<_> = self.topics.read().values().cloned().collect();
        let mut any = false;
        for topic in topics {
            let mut r = topic.reader.lock();
            if r.unpersisted > 0 {
                self.cursors.persist(&topic.name, r.seq, false)?;
                r.unpersisted = 0;
                any = true;
            }
        }
        if any {
            self.cursors.sync()?;
        }
        Ok(())
    }

    /// Records where each live extent's frames end, syncs every segment, and
    /// writes that down as the recovery checkpoint, so that the next open
    /// re-reads only what follows. Positions are taken before the sync, so
    /// the checkpoint claims nothing the sync did not cover; concurrent
    /// appends only make it conservative.
    fn checkpoint(&self) -> Result<()> {
        self.check_writable()?;
        let _one_writer = self.checkpointing.lock();
        self.since_checkpoint.store(0, Ordering::Relaxed);
        let mut extents = crate::checkpoint::Extents::new();
        for topic in self.topics.read().values() {
            for block in topic.blocks.read().iter() {
                if block.is_damaged() {
                    // A read found damage: the next open must re-read it.
                    continue;
                }
                // Sealed first: a sealed block's written mark is final. The
                // mark is one atomic, so its offset and entry agree.
                let sealed = block.is_sealed();
                let end = block.written();
                let vouched = crate::checkpoint::Vouched {
                    end_off: end.off,
                    end_seq: end.seq,
                    sealed,
                };
                extents.insert((block.segment.id, block.extent_start()), vouched);
            }
        }
        self.sync_segments()?;
        crate::checkpoint::write(&*self.storage, &self.dir, &extents)
    }

    /// Syncs every segment, and writes a checkpoint too once one is due.
    fn sync_round(&self) -> Result<()> {
        let every = self.checkpoint_every;
        if every > 0 && self.since_checkpoint.load(Ordering::Relaxed) >= every {
            self.checkpoint()
        } else {
            self.sync_segments()
        }
    }

    /// Counts extent space toward the next checkpoint. Under `SyncEach`
    /// nothing else runs sync rounds, so the background thread is asked for
    /// one each time another `checkpoint_every` bytes have been handed out.
    fn count_toward_checkpoint(&self, extent_len: u64) {
        if self.checkpoint_every == 0 {
            return;
        }
        let before = self
            .since_checkpoint
            .fetch_add(extent_len, Ordering::Relaxed);
        if self.fsync == FsyncSchedule::SyncEach
            && before < self.checkpoint_every
            && before + extent_len >= self.checkpoint_every
        {
            let mut state = self.signal.state.lock();
            state.checkpoint = true;
            self.signal.wake.notify_all();
        }
    }

    /// Syncs every segment. Under `SyncEach` the frames written before the
    /// sync then become readable (appends that were never acknowledged
    /// would otherwise stay invisible until a later one is).
    fn sync_segments(&self) -> Result<()> {
        let unreadable = if self.fsync == FsyncSchedule::SyncEach {
            self.unreadable_marks()
        } else {
            Vec::new()
        };
        let segments: Vec<_> = self.segments.lock().values().cloned().collect();
        for segment in segments {
            segment.sync_all().map_err(|e| {
                self.fail(Error::io(format!("syncing {}", segment.path.display()), e))
            })?;
        }
        for (block, mark) in unreadable {
            block.publish(mark);
        }
        Ok(())
    }

    /// The written marks of every block whose frames are not all readable.
    /// Blocks become readable in order, so each topic's walk stops at its
    /// first sealed, fully readable block from the tail.
    fn unreadable_marks(&self) -> Vec<(Arc<Block>, Mark)> {
        let mut marks = Vec::new();
        for topic in self.topics.read().values() {
            for block in topic.blocks.read().iter().rev() {
                // Sealed first: then the written mark read below is final.
                let sealed = block.is_sealed();
                if block.fully_readable() {
                    if sealed {
                        break;
                    }
                    continue;
                }
                marks.push((block.clone(), block.written()));
            }
        }
        marks
    }

    /// Retires a segment whose entries are all consumed: it is no longer
    /// synced or checkpointed, and the background thread deletes the file
    /// and, normally, drops the last reference to it. That last drop closes
    /// the file, and the kernel then frees its cached pages on the dropping
    /// thread: about a tenth of a consumer's CPU when it was the consumer's
    /// (`perf`: page-cache invalidation under batch reads). A file left
    /// behind by a crash is deleted by the next open (its entries are below
    /// the cursor).
    fn delete_segment(&self, segment: &Arc<Segment>) {
        self.segments.lock().remove(&segment.id);
        self.signal.state.lock().reclaim.push(segment.clone());
        self.signal.wake.notify_all();
    }

    fn reclaim(&self, segment: Arc<Segment>) {
        // Unmapping takes the process's memory-map lock for writing, which
        // stalls every page fault of the consumers meanwhile; dropping the
        // pages first (under the lock for reading) keeps that section short.
        segment.file.evict(0, segment.size_bytes);
        if let Err(e) = self.storage.remove(&segment.path) {
            tracing::warn!(
                "walrus: could not delete consumed {}: {e}",
                segment.path.display()
            );
        }
    }
}

/// The background thread. It deletes consumed segments; under
/// `Milliseconds(n)` it runs a sync round every n ms (a checkpoint included
/// when one is due) and once more when stopped; under `SyncEach` it writes
/// the checkpoints the appenders ask for.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum Stop {
    #[default]
    No,
    Flush,
    Now,
}

#[derive(Default)]
struct SignalState {
    stop: Stop,
    checkpoint: bool,
    /// Consumed segments to delete.
    reclaim: Vec<Arc<Segment>>,
}

/// How the engine and `Walrus::drop` reach the background thread.
#[derive(Default)]
struct Signal {
    state: Mutex<SignalState>,
    wake: Condvar,
}

struct Background {
    inner: Arc<Inner>,
    handle: JoinHandle<()>,
}

impl Background {
    fn start(inner: Arc<Inner>, interval: Option<Duration>) -> std::io::Result<Background> {
        let inner2 = inner.clone();
        let handle = std::thread::Builder::new()
            .name("walrus-background".into())
            .spawn(move || Background::run(&inner2, interval))?;
        Ok(Background { inner, handle })
    }

    fn run(inner: &Inner, interval: Option<Duration>) {
        // When the next sync round is due (never without an interval). Other
        // wake-ups (deletions, checkpoint requests) do not move it, so they
        // add no sync rounds to the schedule.
        // An interval too long for `Instant` (`Milliseconds(u64::MAX)`)
        // means no timed round at all.
        let mut next_round = interval.and_then(|every| Instant::now().checked_add(every));
        loop {
            let (stop, checkpoint, reclaim) = {
                let mut state = inner.signal.state.lock();
                if state.stop == Stop::No && !state.checkpoint && state.reclaim.is_empty() {
                    match next_round {
                        Some(at) => {
                            inner.signal.wake.wait_until(&mut state, at);
                        }
                        None => inner.signal.wake.wait(&mut state),
                    }
                }
                (
                    state.stop,
                    std::mem::take(&mut state.checkpoint),
                    std::mem::take(&mut state.reclaim),
                )
            };
            if stop == Stop::Now {
                return;
            }
            for segment in reclaim {
                inner.reclaim(segment);
            }
            let round_due =
                next_round.is_some_and(|at| stop == Stop::Flush || Instant::now() >= at);
            let round = if checkpoint && stop == Stop::No {
                inner.checkpoint()
            } else if round_due {
                next_round = interval.and_then(|every| Instant::now().checked_add(every));
                inner.sync_round()
            } else {
                Ok(())
            };
            if let Err(e) = round {
                tracing::error!("walrus background thread: {e}");
            }
            if stop == Stop::Flush {
                return;
            }
        }
    }

    /// Stops the thread, after one last flush if `flush`.
    fn stop(self, flush: bool) {
        self.inner.signal.state.lock().stop = if flush { Stop::Flush } else { Stop::Now };
        self.inner.signal.wake.notify_all();
        if self.handle.join().is_err() {
            tracing::error!("walrus background thread panicked");
        }
    }
}
