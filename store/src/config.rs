//! The settings every store is opened with: when appends are made durable
//! ([`FsyncSchedule`]), when a consumer's cursor is ([`ReadConsistency`]),
//! and the one rule, [`ReadConsistency::persist_due`], by which every store
//! decides that a consuming read must persist its cursor.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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

impl ReadConsistency {
    /// Whether a consuming read that takes `consumed` entries must make the
    /// topic's cursor durable before it returns, when `unpersisted` entries
    /// were consumed since the cursor was last persisted: always under
    /// `StrictlyAtOnce`, and once `persist_every` entries have piled up
    /// under `AtLeastOnce` (so a crash returns at most that many again).
    ///
    /// A store that finds the persist not due adds `consumed` to its count
    /// of unpersisted entries; one that persists resets it to zero.
    pub fn persist_due(self, unpersisted: u64, consumed: u64) -> bool {
        match self {
            ReadConsistency::StrictlyAtOnce => true,
            ReadConsistency::AtLeastOnce { persist_every } => {
                unpersisted.saturating_add(consumed) >= u64::from(persist_every)
            }
        }
    }
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
    fn strict_reads_persist_every_time() {
        let strict = ReadConsistency::StrictlyAtOnce;
        assert!(strict.persist_due(0, 1));
        assert!(strict.persist_due(0, 0));
    }

    #[test]
    fn at_least_once_persists_once_persist_every_entries_pile_up() {
        let every_3 = ReadConsistency::AtLeastOnce { persist_every: 3 };
        assert!(!every_3.persist_due(0, 1));
        assert!(!every_3.persist_due(1, 1));
        assert!(every_3.persist_due(2, 1));
        // A batch that passes the mark in one read persists too.
        assert!(every_3.persist_due(0, 5));
        // No overflow at the extremes.
        assert!(every_3.persist_due(u64::MAX, u64::MAX));
    }
}
