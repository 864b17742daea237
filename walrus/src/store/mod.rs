//! The `LogStore` contract and the types every store shares.
//!
//! This module owns the interface that Walrus, the RocksDB, sled and raw-file
//! adapters, the benchmark harness and the property suites all speak. It holds
//! no storage code and imports nothing else of the engine, so an adapter that
//! depends on it depends on the contract, not on Walrus internals.
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

mod error;

pub use error::{Error, Result};

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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

/// When a consuming read's new cursor position is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadConsistency {
    /// The cursor is persisted before every consuming read returns. After a
    /// crash, an entry once returned by a consuming read is never returned
    /// again.
    StrictlyAtOnce,
    /// The cursor is persisted at least every `persist_every` consuming reads
    /// per topic. After a crash no entry is skipped and at most
    /// `persist_every` entries per topic are returned again.
    AtLeastOnce {
        /// Consumed entries per topic between two cursor persists.
        persist_every: u32,
    },
}

/// When appended data is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncSchedule {
    /// An append is durable when it returns.
    SyncEach,
    /// An append is durable at most this many milliseconds (plus one fsync's
    /// time) after it returns.
    Milliseconds(u64),
    /// Appends survive a crash of the process (the data is in the OS page
    /// cache) but not a power loss, unless `sync()` is called.
    NoFsync,
}

impl FsyncSchedule {
    /// The flush interval of a `Milliseconds` schedule.
    pub fn interval(&self) -> Option<Duration> {
        match self {
            FsyncSchedule::Milliseconds(ms) => Some(Duration::from_millis(*ms)),
            _ => None,
        }
    }
}

/// Durability settings every store is opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// When consumed positions are persisted.
    pub consistency: ReadConsistency,
    /// When appends are made durable.
    pub fsync: FsyncSchedule,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            consistency: ReadConsistency::StrictlyAtOnce,
            fsync: FsyncSchedule::Milliseconds(200),
        }
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
pub fn validate_batch_len(len: usize) -> Result<()> {
    if len == 0 || len > MAX_BATCH_ENTRIES {
        return Err(Error::InvalidBatch {
            reason: format!("batch has {len} entries, allowed 1..={MAX_BATCH_ENTRIES}"),
        });
    }
    Ok(())
}

/// Parses the guide's fsync spellings: `sync-each`, `no-fsync`, `async`
/// (1000 ms) and `<n>ms`.
impl FromStr for FsyncSchedule {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "sync-each" | "sync_each" | "synceach" => Ok(FsyncSchedule::SyncEach),
            "no-fsync" | "no_fsync" | "nofsync" | "none" => Ok(FsyncSchedule::NoFsync),
            "async" => Ok(FsyncSchedule::Milliseconds(1000)),
            other => match other.strip_suffix("ms").map(str::parse::<u64>) {
                Some(Ok(ms)) if ms > 0 => Ok(FsyncSchedule::Milliseconds(ms)),
                _ => Err(format!(
                    "`{s}` is not an fsync schedule; use sync-each, no-fsync, async or <n>ms (n > 0)"
                )),
            },
        }
    }
}

impl fmt::Display for FsyncSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncSchedule::SyncEach => f.write_str("sync-each"),
            FsyncSchedule::NoFsync => f.write_str("no-fsync"),
            FsyncSchedule::Milliseconds(ms) => write!(f, "{ms}ms"),
        }
    }
}

/// Parses `strict` (or `strictly-at-once`) and `at-least-once[:<n>]`
/// (default n = 1000).
impl FromStr for ReadConsistency {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        let bad = || {
            format!("`{s}` is not a read consistency; use strict or at-least-once[:<n>] (n > 0)")
        };
        match s.as_str() {
            "strict" | "strictly-at-once" | "strictlyatonce" => Ok(ReadConsistency::StrictlyAtOnce),
            other => {
                let rest = other
                    .strip_prefix("at-least-once")
                    .or_else(|| other.strip_prefix("atleastonce"))
                    .ok_or_else(bad)?;
                let persist_every = match rest.strip_prefix(':') {
                    None if rest.is_empty() => 1000,
                    Some(n) => n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(bad)?,
                    None => return Err(bad()),
                };
                Ok(ReadConsistency::AtLeastOnce { persist_every })
            }
        }
    }
}

impl fmt::Display for ReadConsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadConsistency::StrictlyAtOnce => f.write_str("strict"),
            ReadConsistency::AtLeastOnce { persist_every } => {
                write!(f, "at-least-once:{persist_every}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_spellings_of_the_guide_parse() {
        assert_eq!("sync-each".parse(), Ok(FsyncSchedule::SyncEach));
        assert_eq!("no-fsync".parse(), Ok(FsyncSchedule::NoFsync));
        assert_eq!("async".parse(), Ok(FsyncSchedule::Milliseconds(1000)));
        assert_eq!("500ms".parse(), Ok(FsyncSchedule::Milliseconds(500)));
        assert!("sometimes".parse::<FsyncSchedule>().is_err());
        assert!("0ms".parse::<FsyncSchedule>().is_err());
        assert!("-5ms".parse::<FsyncSchedule>().is_err());
    }

    #[test]
    fn consistency_spellings_parse_and_round_trip() {
        for c in [
            ReadConsistency::StrictlyAtOnce,
            ReadConsistency::AtLeastOnce { persist_every: 7 },
        ] {
            assert_eq!(c.to_string().parse(), Ok(c));
        }
        assert_eq!(
            "at-least-once".parse(),
            Ok(ReadConsistency::AtLeastOnce {
                persist_every: 1000
            })
        );
        assert!("at-least-once:0".parse::<ReadConsistency>().is_err());
        assert!("at-least-oncex".parse::<ReadConsistency>().is_err());
    }

    #[test]
    fn topic_rules() {
        assert!(validate_topic("orders").is_ok());
        assert!(validate_topic("").is_err());
        assert!(validate_topic("a\0b").is_err());
        assert!(validate_topic(&"x".repeat(MAX_TOPIC_LEN + 1)).is_err());
        // Slashes and dots are fine: topic names never become paths.
        assert!(validate_topic("../../etc/passwd").is_ok());
    }
}
