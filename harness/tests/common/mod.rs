//! In-memory test doubles of `LogStore`: a correct one, and ones that are
//! wrong in a way a fast store could be (so verification must catch them).
#![allow(dead_code)] // each test file uses a different subset

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use walrus_harness::{Progress, RunEnv};
use walrus_wal::{Entry, LogStore, Result};

/// How a [`MemStore`] misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Acknowledges every `n`th append without storing it.
    DropAppend(u64),
    /// Flips one payload bit in every `n`th entry it returns.
    FlipBitOnRead(u64),
    /// Returns every `n`th entry twice.
    RepeatOnRead(u64),
    /// Fails every append after the first `n` with an I/O error.
    FailAppendAfter(u64),
    /// Stores everything, but logs one ERROR, on the `n`th append, as a
    /// store whose background sync failed would.
    LogErrorOnAppend(u64),
}

type Topic = (Vec<Vec<u8>>, usize);

/// A `LogStore` in memory: one mutex, per-topic vectors and cursors.
pub struct MemStore {
    name: String,
    fault: Fault,
    /// Per topic: its entries and its cursor.
    topics: Mutex<HashMap<String, Topic>>,
    appends: AtomicU64,
    reads: AtomicU64,
}

impl MemStore {
    pub fn new(name: impl Into<String>, fault: Fault) -> MemStore {
        MemStore {
            name: name.into(),
            fault,
            topics: Mutex::new(HashMap::new()),
            appends: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        }
    }

    fn every(counter: &AtomicU64, n: u64) -> bool {
        (counter.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(n)
    }

    fn take(&self, topic: &str, checkpoint: bool) -> Option<Entry> {
        let mut topics = self.topics.lock().unwrap();
        let (entries, cursor) = topics.get_mut(topic)?;
        let pos = *cursor;
        let mut data = entries.get(pos)?.clone();
        let mut advance = checkpoint;
        match self.fault {
            Fault::FlipBitOnRead(n) if Self::every(&self.reads, n) => {
                let last = data.len() - 1;
                data[last] ^= 1;
            }
            Fault::RepeatOnRead(n) if Self::every(&self.reads, n) => advance = false,
            _ => {}
        }
        if advance {
            *cursor += 1;
        }
        Some(Entry {
            seq: pos as u64,
            data: data.into(),
        })
    }
}

impl LogStore for MemStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.batch_append(topic, &[payload])
    }

    fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        match self.fault {
            Fault::FailAppendAfter(n) if self.appends.fetch_add(1, Ordering::Relaxed) >= n => {
                return Err(walrus_wal::Error::Io {
                    context: format!("appending to {topic} (a test store set to fail)"),
                    source: std::io::Error::other("the disk is on fire"),
                });
            }
            Fault::LogErrorOnAppend(n) if self.appends.fetch_add(1, Ordering::Relaxed) + 1 == n => {
                tracing::error!(store = %self.name, "background sync failed: the disk is on fire");
            }
            _ => {}
        }
        let mut topics = self.topics.lock().unwrap();
        let (entries, _) = topics.entry(topic.to_string()).or_default();
        for p in payloads {
            if let Fault::DropAppend(n) = self.fault {
                if Self::every(&self.appends, n) {
                    continue;
                }
            }
            entries.push(p.to_vec());
        }
        Ok(())
    }

    fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        Ok(self.take(topic, checkpoint))
    }

    fn batch_read(&self, topic: &str, max_bytes: usize, checkpoint: bool) -> Result<Vec<Entry>> {
        let mut out: Vec<Entry> = Vec::new();
        let mut bytes = 0;
        while let Some(e) = self.peek_len(topic) {
            if !out.is_empty() && bytes + e > max_bytes {
                break;
            }
            let Some(entry) = self.take(topic, checkpoint) else {
                break;
            };
            bytes += entry.data.len();
            out.push(entry);
            if !checkpoint {
                break; // without consuming, the cursor does not move
            }
        }
        Ok(out)
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

impl MemStore {
    fn peek_len(&self, topic: &str) -> Option<usize> {
        let topics = self.topics.lock().unwrap();
        let (entries, cursor) = topics.get(topic)?;
        entries.get(*cursor).map(Vec::len)
    }
}

/// A run environment in a temp dir, silent.
pub fn env(dir: &std::path::Path) -> RunEnv {
    RunEnv {
        data_dir: dir.to_path_buf(),
        keep_data: false,
        progress: Progress::silent(),
    }
}

pub const SHORT: Duration = Duration::from_millis(150);
