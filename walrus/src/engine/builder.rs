//! [`WalrusBuilder`]: an instance's settings, their defaults, and their
//! validation.

use super::Walrus;
use crate::segment::EXTENT_UNIT;
use crate::storage::Backend;
#[cfg(feature = "test-support")]
use crate::storage::Storage;
use crate::store::{Error, FsyncSchedule, ReadConsistency, Result};
use crate::topic::MAX_EXTENT_BYTES;
use std::path::PathBuf;
#[cfg(feature = "test-support")]
use std::sync::Arc;

const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
const DEFAULT_EXTENT_BYTES: u64 = 1 << 20;
const DEFAULT_SNAPSHOT_EVERY: u64 = 64 << 20;
const DEFAULT_DATA_DIR: &str = "wal_files";
const DEFAULT_KEY: &str = "default";
/// The default lane count: one per core, at least 4 (threads contend on a
/// file's inode lock also when they outnumber the cores: 4 lanes against 2
/// at 4 and 8 threads on 2 cores gave 1.19-1.25× and 0.90-1.11×) and at most
/// 16.
const DEFAULT_LANES: std::ops::RangeInclusive<usize> = 4..=16;
/// The most active segments an instance may have.
pub const MAX_ACTIVE_SEGMENTS: usize = 64;
/// The largest segment: every extent must fit a [`crate::topic::Mark`] (and
/// frame lengths are u32 on disk).
pub(super) const MAX_SEGMENT_BYTES: u64 = MAX_EXTENT_BYTES - MAX_EXTENT_BYTES % EXTENT_UNIT;

/// Configures and opens a [`Walrus`]. Nothing here reads the process
/// environment unless asked to (`Walrus::new` and friends do).
#[derive(Clone, Debug)]
pub struct WalrusBuilder {
    pub(super) data_dir: PathBuf,
    pub(super) key: String,
    pub(super) consistency: ReadConsistency,
    pub(super) fsync: FsyncSchedule,
    pub(super) backend: Backend,
    pub(super) segment_bytes: u64,
    pub(super) extent_bytes: u64,
    pub(super) snapshot_every: u64,
    pub(super) active_segments: Option<usize>,
    pub(super) quiet: bool,
    #[cfg(feature = "test-support")]
    pub(super) storage: Option<StorageOverride>,
}

#[cfg(feature = "test-support")]
#[derive(Clone)]
pub(super) struct StorageOverride(pub(super) Arc<dyn Storage>);

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
            extent_bytes: DEFAULT_EXTENT_BYTES,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            active_segments: None,
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

    /// When consumed positions are persisted (default `StrictlyAtOnce`).
    pub fn consistency(mut self, consistency: ReadConsistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// When appends are made durable (default `Milliseconds(200)`).
    pub fn fsync(mut self, fsync: FsyncSchedule) -> Self {
        self.fsync = fsync;
        self
    }

    /// The storage backend (default [`Backend::Fd`]).
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

    /// Size of the extent a topic takes at a time (default 1 MiB, a
    /// multiple of 4 KiB and at least 8 KiB); a larger entry gets an extent
    /// sized to fit it.
    pub fn extent_bytes(mut self, bytes: u64) -> Self {
        self.extent_bytes = bytes;
        self
    }

    /// The old name of [`WalrusBuilder::extent_bytes`] ("block" was the
    /// old word for an extent). It is to become `#[deprecated]` once no
    /// crate of the workspace calls it (walrus-async's tests still do).
    pub fn block_bytes(self, bytes: u64) -> Self {
        self.extent_bytes(bytes)
    }

    /// A sync round (the `Milliseconds` flusher's, an explicit `sync()`, or
    /// under `SyncEach` one the background thread runs for this purpose)
    /// also writes a recovery snapshot once this much new extent space
    /// (default 64 MiB) was handed out since the last one. An open after a
    /// crash then re-reads only what was written after that recovery snapshot (plus
    /// each topic's current extent), not the whole log. 0 writes one only at
    /// a clean close. No recovery snapshot ever needs a sync the schedule would not
    /// do anyway, except under `SyncEach`, where everything is synced already.
    pub fn recovery_snapshot_every_bytes(mut self, bytes: u64) -> Self {
        self.snapshot_every = bytes;
        self
    }

    /// The old name of [`WalrusBuilder::recovery_snapshot_every_bytes`]:
    /// the recovery snapshot was called the recovery checkpoint, which
    /// "checkpoint", the consume flag of `read_next`, now only means.
    #[deprecated(note = "renamed recovery_snapshot_every_bytes")]
    pub fn checkpoint_every_bytes(self, bytes: u64) -> Self {
        self.recovery_snapshot_every_bytes(bytes)
    }

    /// How many segments take new extents at once (1 to
    /// [`MAX_ACTIVE_SEGMENTS`]). Each topic writes the segments of one of
    /// them, chosen round robin as topics first append, so appenders of
    /// different topics mostly write different files: a buffered write
    /// takes its file's inode lock, and one shared file serializes them.
    ///
    /// Default: one under `SyncEach` (a group commit then covers all
    /// waiting appends with one fdatasync) and on the mmap backend (its
    /// stores take no inode lock); otherwise one per available core, at
    /// least 4 and at most 16. `WALRUS_ACTIVE_SEGMENTS` sets it in
    /// [`Self::from_env`] (and in the benchmark harness).
    pub fn active_segments(mut self, count: usize) -> Self {
        self.active_segments = Some(count);
        self
    }

    /// The lane count [`Self::active_segments`] asked for, or its default.
    pub(super) fn lanes(&self) -> usize {
        self.active_segments.unwrap_or_else(|| {
            if self.fsync == FsyncSchedule::SyncEach || self.backend == Backend::Mmap {
                1
            } else {
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .clamp(*DEFAULT_LANES.start(), *DEFAULT_LANES.end())
            }
        })
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

    /// Applies `WALRUS_DATA_DIR`, `WALRUS_BACKEND`/`BACKEND`, `WALRUS_QUIET`
    /// and `WALRUS_ACTIVE_SEGMENTS`.
    pub fn from_env(mut self) -> Result<Self> {
        if let Ok(dir) = std::env::var("WALRUS_DATA_DIR") {
            self.data_dir = dir.into();
        }
        self.backend = Backend::from_env().map_err(Error::InvalidInput)?;
        self.quiet = std::env::var("WALRUS_QUIET").is_ok_and(|v| v == "1");
        self.active_segments_from_env()
    }

    /// Applies `WALRUS_ACTIVE_SEGMENTS` when it is set (a count that is not
    /// a number is `InvalidInput`; one out of range fails at open).
    pub fn active_segments_from_env(mut self) -> Result<Self> {
        if let Ok(v) = std::env::var("WALRUS_ACTIVE_SEGMENTS") {
            let count = v.trim().parse().map_err(|_| {
                Error::InvalidInput(format!(
                    "WALRUS_ACTIVE_SEGMENTS={v}: a count from 1 to {MAX_ACTIVE_SEGMENTS}"
                ))
            })?;
            self.active_segments = Some(count);
        }
        Ok(self)
    }

    /// Opens the instance: takes the directory lock, recovers, and starts
    /// the background thread.
    pub fn open(self) -> Result<Walrus> {
        Walrus::open(self)
    }

    pub(super) fn validate(&self) -> Result<()> {
        crate::key::encode(&self.key)?;
        let extent_ok =
            self.extent_bytes >= 2 * EXTENT_UNIT && self.extent_bytes.is_multiple_of(EXTENT_UNIT);
        if !extent_ok
            || self.segment_bytes < self.extent_bytes + EXTENT_UNIT
            || self.segment_bytes > MAX_SEGMENT_BYTES
            || !self.segment_bytes.is_multiple_of(EXTENT_UNIT)
        {
            return Err(Error::InvalidInput(format!(
                "segment of {} bytes and extent of {} bytes: both must be multiples of {EXTENT_UNIT}, \
                 the extent at least {}, and the segment larger than one extent and at most \
                 {MAX_SEGMENT_BYTES} bytes",
                self.segment_bytes,
                self.extent_bytes,
                2 * EXTENT_UNIT
            )));
        }
        if let Some(n) = self
            .active_segments
            .filter(|n| !(1..=MAX_ACTIVE_SEGMENTS).contains(n))
        {
            return Err(Error::InvalidInput(format!(
                "{n} active segments: from 1 to {MAX_ACTIVE_SEGMENTS}"
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
