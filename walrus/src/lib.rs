//! Walrus: a topic-based write-ahead log.
//!
//! Many named topics share a set of segment files; each topic has a consumer
//! cursor that survives restarts. Durability is chosen per instance with a
//! [`ReadConsistency`] (when cursors are persisted) and an [`FsyncSchedule`]
//! (when appends are). Storage runs on one of two backends, [`Backend::Fd`]
//! (pread/pwrite, io_uring for multi-range reads) or [`Backend::Mmap`].
//!
//! ```no_run
//! use walrus_wal::{FsyncSchedule, ReadConsistency, Walrus};
//!
//! let wal = Walrus::builder()
//!     .data_dir("/var/lib/myapp/wal")
//!     .consistency(ReadConsistency::AtLeastOnce { persist_every: 1_000 })
//!     .fsync(FsyncSchedule::Milliseconds(1_000))
//!     .open()?;
//! wal.append_for_topic("orders", b"order #1")?;
//! while let Some(entry) = wal.read_next("orders", true)? {
//!     println!("{} bytes", entry.data.len());
//! }
//! # Ok::<(), walrus_wal::Error>(())
//! ```
//!
//! The [`store`] module holds the `LogStore` contract shared with the other
//! stores of the workspace; it depends on nothing else in this crate.
//!
//! # Map of the crate
//!
//! Who owns which state, and which lock guards it:
//!
//! | module | owns | guarded by |
//! |---|---|---|
//! | `engine` (`mod.rs`) | [`Walrus`] and `Inner`, the state every engine module shares: the topic table, the live segments, the failure latch | `Inner::topics` (`RwLock`), `Inner::segments` (`Mutex`), `Inner::failure` (`Mutex`, with the `failed` flag) |
//! | `engine::builder` | [`WalrusBuilder`]: settings, defaults, validation | (owned by the caller) |
//! | `engine::open` | the directory lock, recovery at open, cursor reconciliation | runs before any other thread exists |
//! | `engine::write` | the append path: validation, the frame written, a fresh extent when full | the topic's writer mutex (`Topic::writer`) |
//! | `engine::pending` | [`PendingWrite`], [`SegmentSync`], [`SyncLead`]: the public face of group commit | none of its own (drives `GroupSync`) |
//! | `engine::read` | the engine's side of a read: cursor persistence as the consistency mode asks | the topic's reader mutex (`Topic::reader`) |
//! | `engine::flush` | sync rounds and running recovery snapshots | `Inner::snapshotting` (`Mutex<()>`, one recovery snapshot writer) |
//! | `engine::background` | the background thread; deletion of consumed segments | `Signal::state` (`Mutex`, with its `Condvar`) |
//! | `alloc` | the extent allocators (one per active segment) and their reserve-ahead threads | `Inner::alloc` (a `Mutex` per lane; a thread holds at most one); each reserve thread's own progress mutex |
//! | `segment` | a segment file and its count of live extents | atomics only |
//! | `group_commit` | `GroupSync`: one shared fdatasync per segment (and per cursor log) | its `in_progress` and gather mutexes (leaves) |
//! | `topic` | a topic's chain of extents (`Extent`, packed atomic marks) and its writer state | `Topic::extents` (`RwLock`), `Topic::writer` (`Mutex`) |
//! | `read` | the consumer cursor (`Reader`, fields private to it), finding and reading ahead frames | `Topic::reader` (`Mutex`) |
//! | `frames` | frames read back and checked (whole, read ahead, or streamed when large) | none |
//! | `cursor` | the cursor snapshot and log files | its own `RwLock`/`Mutex` inside `CursorStore` |
//! | `recovery`, `recovery_snapshot`, `format`, `crc`, `key`, `storage`, `store` | recovery's scan, the recovery snapshot file, the on-disk layouts, the checksum, instance keys, the storage backends, the `LogStore` contract | none shared |
//!
//! Locks are taken in this order, and never against it:
//!
//! 1. `Inner::snapshotting`
//! 2. `Inner::topics` (read; written only to add a topic, holding nothing else)
//! 3. a topic's `writer` or its `reader` (never both; never two topics' at once)
//! 4. one lane of `Inner::alloc`, then `Inner::segments` (the allocator registers a new
//!    segment while it holds its own lock)
//! 5. a topic's `extents` (never held together with `Inner::segments`)
//! 6. the cursor store's locks
//! 7. `Signal::state`
//!
//! `GroupSync`'s mutexes, `Inner::failure` and the reserve thread's progress
//! mutex are leaves: nothing else is taken while one is held. An append's
//! group-commit fdatasync runs with no engine lock held; the syncs that do
//! run under one are a new segment's header and directory entry (under the
//! writer and the allocator), a consuming read's cursor sync (under the
//! reader), and a recovery snapshot's (under `Inner::snapshotting`).

mod alloc;
mod crc;
mod cursor;
mod engine;
mod format;
mod frames;
mod group_commit;
pub mod key;
mod read;
mod recovery;
mod recovery_snapshot;
mod segment;
mod storage;
pub mod store;
mod sync;
mod topic;

pub use bytes::Bytes;
pub use crc::crc64;
pub use engine::{
    PendingWrite, SegmentSync, SyncLead, TopicHandle, TopicInfo, Walrus, WalrusBuilder,
    MAX_ACTIVE_SEGMENTS,
};
pub use recovery::{Dropped, RecoveryReport};
pub use storage::Backend;
pub use store::{
    Entry, Error, FsyncSchedule, LogStore, ReadConsistency, Result, StoreConfig, MAX_BATCH_ENTRIES,
    MAX_TOPIC_LEN,
};

/// Internals the property suites drive directly. Not a stable API.
#[cfg(feature = "test-support")]
pub mod testing {
    pub use crate::storage::sim::{Crash, Fault, FaultKind, SimStorage};
    pub use crate::storage::{FileKind, OpenMode, Storage, StorageFile};
}
