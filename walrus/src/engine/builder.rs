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
        if let FsyncSchedule::Milliseconds(0) = self.fsync {
            return Err(Error::InvalidInput(
                "a Milliseconds schedule needs n > 0".into(),
            ));
        }
        Ok(())
    }
}
