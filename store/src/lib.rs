//! The `LogStore` contract and the pieces every store shares.
//!
//! This crate owns the interface that Walrus, the RocksDB, sled, raw-file,
//! null and JetStream adapters, the benchmark harness and the property
//! suites all speak. It holds no storage engine and depends on none, so an
//! adapter that depends on it depends on the contract, not on Walrus
//! internals; `walrus-wal` re-exports all of it (`walrus_wal::store`,
//! `walrus_wal::Error`, ...).
//!
//! What it holds:
//!
//! | module | what |
//! |---|---|
//! | the crate root | [`LogStore`], [`Entry`], the limits, topic and batch validation |
//! | `config` | [`ReadConsistency`], [`FsyncSchedule`], [`StoreConfig`], and [`ReadConsistency::persist_due`], the cursor-persist rule every store applies |
//! | `error` | [`Error`], the one error type of every store, and [`Result`] |
//! | [`crc`] | [`crc64`], the CRC-64/XZ that Walrus and the raw baseline write, on carry-less-multiply kernels |
//! | `latch` | [`FailureLatch`]: refuse writes after a failed sync |
//! | `dir` | [`lock_dir`]: one open instance per directory |
//! | [`le`] | little-endian reads and writes at byte offsets |
//! | [`marker`] | the `LOGSTORE` file naming the store a data directory holds |
//!
//! # Contract
//!
//! * **Topics** are independent, ordered logs named by a non-empty UTF-8 string
//!   of at most [`MAX_TOPIC_LEN`] bytes without NUL. Entries of one topic are
//!   returned in the order their appends were acknowledged.
//! * **Appends.** [`LogStore::append`] adds one entry. [`LogStore::batch_append`]
//!   adds up to [`MAX_BATCH_ENTRIES`] entries atomically: after any crash the
//!   whole batch is present or none of it is.
//! * **Reads** go through one shared cursor per topic. `read_next(topic, true)`
//!   consumes the entry it returns; `read_next(topic, false)` peeks and leaves
//!   the cursor where it was. [`LogStore::batch_read`] returns entries whose
//!   payloads add up to at most `max_bytes`, except that it always returns at
//!   least one entry when one is available (so an entry larger than the budget
//!   can still be read).
//! * **`sync()`** is a barrier: every append acknowledged before the call is
//!   durable (survives power loss) when it returns, whatever the schedule.
//! * **Durability of appends** follows [`FsyncSchedule`]; **durability of the
//!   cursor** follows [`ReadConsistency`]. What each combination guarantees,
//!   store by store, is the table in `docs/guarantees.md`; the crash suites in
//!   `proptests/` check exactly that table.

mod config;
pub mod crc;
mod dir;
mod error;
mod latch;
pub mod le;
pub mod marker;

/// The buffer type of [`Entry::data`].
pub use bytes::Bytes;
pub use config::{FsyncSchedule, ReadConsistency, StoreConfig};
pub use crc::crc64;
pub use dir::{lock_dir, open_lock_file, LOCK_FILE};
pub use error::{Error, Result};
pub use latch::FailureLatch;

use std::fmt;

/// Longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 255;
/// Most entries one `batch_append` may carry.
pub const MAX_BATCH_ENTRIES: usize = 2_000;

/// One entry handed back by a read.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position of the entry in its topic, counting from 0.
    pub seq: u64,
    /// The bytes that were appended. Walrus hands out slices of the buffer
    /// a read filled (one allocation per read, not per entry), so an entry
    /// kept alive keeps that buffer alive too: up to the read-ahead of one
    /// batch read (at most 16 MiB) or 64 KiB for `read_next`. Copy it
    /// (`data.to_vec()`) to keep a few entries of a large batch for long.
    pub data: bytes::Bytes,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("seq", &self.seq)
            .field("len", &self.data.len())
            .finish()
    }
}

/// A topic-based log with per-topic shared cursors. See the module docs for
/// the contract every implementation keeps.
pub trait LogStore: Send + Sync {
    /// Short name of the store, as used on the command line (`walrus`, `rocksdb`, ...).
    fn name(&self) -> &str;

    /// Appends one entry to `topic`.
    fn append(&self, topic: &str, payload: &[u8]) -> Result<()>;

    /// Appends all `payloads` (at most [`MAX_BATCH_ENTRIES`]) to `topic`
    /// atomically, in order. An empty batch writes nothing and returns `Ok`
    /// (for a valid topic name), as walrus-rust's does.
    fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()>;

    /// Returns the entry at the topic's cursor, consuming it if `checkpoint`.
    fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>>;

    /// Returns entries from the cursor whose payloads total at most
    /// `max_bytes`, but at least one entry if any is available, and never
    /// more than [`MAX_BATCH_ENTRIES`] (2,000, walrus-rust's documented cap
    /// per call). Consumes them if `checkpoint`.
    fn batch_read(&self, topic: &str, max_bytes: usize, checkpoint: bool) -> Result<Vec<Entry>>;

    /// Makes every append acknowledged before this call durable.
    fn sync(&self) -> Result<()>;
}

/// Checks a topic name against the rules every store enforces.
#[inline]
pub fn validate_topic(topic: &str) -> Result<()> {
    if topic.is_empty() {
        return Err(Error::InvalidTopic {
            reason: "empty topic name".into(),
        });
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(Error::InvalidTopic {
            reason: format!(
                "topic name is {} bytes, the limit is {MAX_TOPIC_LEN}",
                topic.len()
            ),
        });
    }
    if topic.contains('\0') {
        return Err(Error::InvalidTopic {
            reason: "topic name contains NUL".into(),
        });
    }
    Ok(())
}

/// Checks a batch's entry count against [`MAX_BATCH_ENTRIES`].
#[inline]
pub fn validate_batch_len(len: usize) -> Result<()> {
    if len == 0 || len > MAX_BATCH_ENTRIES {
        return Err(Error::InvalidBatch {
            reason: format!("batch has {len} entries, allowed 1..={MAX_BATCH_ENTRIES}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_rules() {
        assert!(validate_topic("orders").is_ok());
        assert!(validate_topic("").is_err());
        assert!(validate_topic("a\0b").is_err());
        assert!(validate_topic(&"x".repeat(MAX_TOPIC_LEN + 1)).is_err());
        // Slashes and dots are fine: topic names never become paths.
        assert!(validate_topic("../../etc/passwd").is_ok());
    }

    #[test]
    fn batch_lengths_outside_one_to_the_cap_are_refused() {
        assert!(validate_batch_len(1).is_ok());
        assert!(validate_batch_len(MAX_BATCH_ENTRIES).is_ok());
        assert!(matches!(
            validate_batch_len(0),
            Err(Error::InvalidBatch { .. })
        ));
        assert!(matches!(
            validate_batch_len(MAX_BATCH_ENTRIES + 1),
            Err(Error::InvalidBatch { .. })
        ));
    }
}
