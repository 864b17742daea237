//! The Walrus instance: [`Walrus`] and the state its modules share
//! ([`Inner`]). Each job is a module of its own:
//!
//! - `builder`: [`WalrusBuilder`], the settings and their validation;
//! - `open`: the directory lock, recovery, and cursor reconciliation;
//! - `write`: appends (frames written, extents allocated);
//! - `handle`: [`TopicHandle`], a topic looked up once;
//! - `pending`: the public group-commit API ([`PendingWrite`],
//!   [`SegmentSync`], [`SyncLead`]);
//! - `read`: reads and cursor persistence;
//! - `flush`: sync rounds and running recovery snapshots;
//! - `background`: the background thread and segment reclamation.

mod background;
mod builder;
mod flush;
mod handle;
mod open;
mod pending;
mod read;
mod write;

pub use builder::{WalrusBuilder, MAX_ACTIVE_SEGMENTS};
pub use handle::TopicHandle;
pub use pending::{PendingWrite, SegmentSync, SyncLead};

use crate::alloc::Lanes;
use crate::cursor::CursorStore;
use crate::recovery::RecoveryReport;
use crate::segment::Segment;
use crate::storage::Storage;
use crate::store::{
    validate_topic, Entry, Error, FailureLatch, FsyncSchedule, LogStore, ReadConsistency, Result,
    MAX_BATCH_ENTRIES,
};
use crate::topic::Topic;
use background::{Background, Signal};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

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
    extent_bytes: u64,
    max_frame_bytes: u64,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// The extent allocators, one per active segment, and their
    /// reserve-ahead jobs, which a sync waits for.
    alloc: Lanes,
    segments: Mutex<BTreeMap<u64, Arc<Segment>>>,
    cursors: CursorStore,
    /// Extent bytes allocated since the last running recovery snapshot.
    since_snapshot: AtomicU64,
    snapshot_every: u64,
    /// Held while a recovery snapshot is taken and written (one file, one writer).
    snapshotting: Mutex<()>,
    signal: Signal,
    /// Tripped by the first failed sync: every later write is refused.
    failure: FailureLatch,
    report: RecoveryReport,
    _lock: Option<File>,
}

/// A topic's position: entries `next_to_read..next_to_append` are unconsumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// Sequence number the next consuming read returns.
    pub next_to_read: u64,
    /// Sequence number the next append gets.
    pub next_to_append: u64,
}

impl Walrus {
    /// Opens the default instance (`WALRUS_DATA_DIR`, default `./wal_files`)
    /// with `StrictlyAtOnce` reads and a 200 ms fsync schedule.
    pub fn new() -> Result<Walrus> {
        Walrus::builder().from_env()?.open()
    }

    /// Opens the default instance with `consistency` reads, and the other
    /// defaults of [`Walrus::new`].
    pub fn with_consistency(consistency: ReadConsistency) -> Result<Walrus> {
        Walrus::builder()
            .from_env()?
            .consistency(consistency)
            .open()
    }

    /// Opens the default instance with `consistency` reads and the `fsync`
    /// schedule.
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

    /// Opens the instance named `key` with `consistency` reads.
    pub fn with_consistency_for_key(key: &str, consistency: ReadConsistency) -> Result<Walrus> {
        Walrus::builder()
            .from_env()?
            .instance_key(key)
            .consistency(consistency)
            .open()
    }

    /// Opens the instance named `key` with `consistency` reads and the
    /// `fsync` schedule.
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

    /// A builder with every setting at its default, reading no
    /// environment variable.
    pub fn builder() -> WalrusBuilder {
        WalrusBuilder::default()
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
        self.inner.topic_info(topic)
    }

    /// The read consistency the instance was opened with.
    pub fn consistency(&self) -> ReadConsistency {
        self.inner.consistency
    }

    /// The instance directory (data directory joined with the instance key).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Appends one entry, and returns once it is acknowledged (durable as
    /// the fsync schedule promises).
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
        Ok(self.inner.pending(written))
    }

    /// Returns the entry at the topic's cursor, `None` when there is none
    /// yet. With `checkpoint` the read consumes it: the cursor moves past
    /// it and is persisted as the consistency mode asks; without, the
    /// cursor stays.
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

impl Walrus {
    /// Closes the instance, reporting what dropping it only logs: a failed
    /// final flush (`Milliseconds`), cursor persist or recovery snapshot.
    /// Every step runs even when an earlier one failed; the first error is
    /// returned. Appends acknowledged before a failed close are as durable
    /// as the schedule promised, no more: call [`Walrus::sync`] first to
    /// know that they all are.
    pub fn close(mut self) -> Result<()> {
        self.shut_down()
    }

    /// The clean-close work, done once (by `close` or by `Drop`): stops the
    /// background thread after its last flush, persists the cursors of
    /// consumed but unpersisted entries, and writes a last recovery
    /// recovery snapshot. Each failure is logged too.
    fn shut_down(&mut self) -> Result<()> {
        let flushed = match self.background.take() {
            Some(background) => background.stop(!self.crashed),
            None => return Ok(()),
        };
        if self.crashed {
            return Ok(());
        }
        let cursors = self.inner.persist_pending_cursors();
        if let Err(e) = &cursors {
            tracing::warn!("walrus: persisting cursors at close failed: {e}");
        }
        let snapshot = self.inner.write_recovery_snapshot();
        if let Err(e) = &snapshot {
            tracing::warn!("walrus: no recovery snapshot at close ({e}); the next open scans");
        }
        flushed.and(cursors).and(snapshot)
    }
}

impl Drop for Walrus {
    fn drop(&mut self) {
        // Failures are logged by `shut_down`; `close` is how to learn them.
        let _ = self.shut_down();
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

impl Inner {
    #[inline(always)]
    fn check_writable(&self) -> Result<()> {
        self.failure.check()
    }

    /// Refuses all later writes: the data an fsync failed to persist cannot
    /// be assumed durable, and a retried fsync may falsely succeed.
    fn fail(&self, error: Error) -> Error {
        self.failure.trip(&error);
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
}
