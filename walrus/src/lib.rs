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

mod alloc;
mod checkpoint;
mod crc;
mod cursor;
mod engine;
mod format;
mod frames;
mod group_commit;
pub mod key;
mod read;
mod recovery;
mod segment;
mod storage;
pub mod store;
mod sync;
mod topic;

pub use bytes::Bytes;
pub use crc::crc64;
pub use engine::{PendingWrite, SegmentSync, SyncLead, TopicInfo, Walrus, WalrusBuilder};
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
