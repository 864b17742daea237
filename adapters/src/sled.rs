//! The sled 0.34 adapter.
//!
//! One tree per topic (`t:<topic>`), keyed by the big-endian u64 seq so that
//! key order is log order; one `cursors` tree mapping topic name to the next
//! seq to return. A batch is one `Batch` applied with `apply_batch`, which
//! sled makes atomic. Each topic's next seq is kept in memory (recovered from
//! the tree's last key at open) so an append does not read before it writes.
//!
//! Durability mapping (the brief's fair one; sled has no per-write sync):
//! * `SyncEach`: `Db::flush()` after every append and batch.
//! * `Milliseconds(n)`: sled's own flusher, `Config::flush_every_ms(Some(n))`.
//! * `NoFsync`: `flush_every_ms(None)`. Writes then sit in sled's in-process
//!   log buffers until a buffer fills or something flushes, so this mode
//!   **loses data even on a process crash**, unlike every other store's
//!   `NoFsync`; `docs/guarantees.md` says so.
//!
//! sled 0.34's `flush()` is not an fsync: it ends in `sync_file_range`, which
//! neither commits file metadata nor flushes the disk's write cache, and large
//! values live in blob files that sled never fsyncs. So `sync()`, `SyncEach`
//! and cursor persists here survive a process crash but are not a power-loss
//! guarantee. The adapter keeps the brief's mapping rather than adding fsyncs
//! sled does not do; `docs/guarantees.md` lists this as a known difference.
//!
//! Cursor updates go to the `cursors` tree and are made durable with
//! `Db::flush()`: before every consuming read returns under `StrictlyAtOnce`,
//! and every `persist_every` entries under `AtLeastOnce`.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use walrus_store::{
    lock_dir, validate_topic, Bytes, Entry, Error, FailureLatch, FsyncSchedule, LogStore,
    ReadConsistency, Result, StoreConfig,
};

use crate::kv_common::{self, decode_seq, Batch, KvRead, Topics, Want};

const STORE: &str = "sled";
const TOPIC_TREE_PREFIX: &[u8] = b"t:";
const CURSOR_TREE: &[u8] = b"cursors";

/// sled behind the `LogStore` contract. See the module docs.
pub struct SledStore {
    db: sled::Db,
    cursors: sled::Tree,
    config: StoreConfig,
    /// Each topic's entries live in its own tree.
    topics: Topics<sled::Tree>,
    /// Tripped by a failed flush: later writes are refused.
    failure: FailureLatch,
    /// The directory lock (`walrus_store::lock_dir`), held while open.
    /// Declared last so it is released after sled has closed.
    _lock: File,
}

type Topic = kv_common::Topic<sled::Tree>;

fn backend(e: sled::Error) -> Error {
    Error::backend(STORE, e)
}

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// How long `open` keeps retrying a held lock; see [`open_db`].
const LOCK_RETRY: Duration = Duration::from_secs(2);

/// Opens the sled `Db`, retrying for a bounded time while its file lock is
/// held: sled 0.34 finishes some background work on its own thread pool after
/// the last `Db` handle is dropped, and that work keeps the file (and so the
/// lock) open for a few milliseconds, so a close followed at once by a reopen
/// can find its own lock still held. A second instance never gets this far:
/// the directory lock taken before refuses it at once.
fn open_db(dir: &Path, flush_every_ms: Option<u64>) -> Result<sled::Db> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .flush_every_ms(flush_every_ms)
            .open();
        match opened {
            Ok(db) => return Ok(db),
            // sled reports a held lock as an `Other` I/O error whose text
            // is all that distinguishes it.
            Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= LOCK_RETRY {
                    return Err(Error::Locked(dir.to_path_buf()));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(other) => return Err(backend(other)),
        }
    }
}

impl SledStore {
    /// Opens (creating if needed) a sled store in `dir`.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<SledStore> {
        let flush_every_ms = match config.fsync {
            FsyncSchedule::Milliseconds(ms) => Some(ms),
            // SyncEach flushes explicitly; NoFsync never does.
            FsyncSchedule::SyncEach | FsyncSchedule::NoFsync => None,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let lock = lock_dir(dir)?;
        let db = open_db(dir, flush_every_ms)?;
        // sled writes its `conf` file at open and never fsyncs it
        // (sled-0.34.7/src/config.rs, `write_config`); a power loss could
        // leave a store whose configuration is gone. The conformance suite's
        // sync check found the dirty page.
        File::open(dir.join("conf"))
            .and_then(|f| f.sync_all())
            .and_then(|()| File::open(dir)?.sync_all())
            .map_err(|e| Error::io(format!("syncing {}", dir.join("conf").display()), e))?;
        let cursors = db.open_tree(CURSOR_TREE).map_err(backend)?;
        let store = SledStore {
            db,
            cursors,
            config,
            topics: Topics::new(),
            failure: FailureLatch::new(),
            _lock: lock,
        };
        store.recover()?;
        Ok(store)
    }

    fn recover(&self) -> Result<()> {
        let mut topics = self.topics.write();
        for tree_name in self.db.tree_names() {
            let Some(name) = tree_name.strip_prefix(TOPIC_TREE_PREFIX) else {
                continue;
            };
            let name = std::str::from_utf8(name)
                .map_err(|_| Error::backend(STORE, "a topic tree's name is not UTF-8"))?;
            let tree = self.db.open_tree(&tree_name).map_err(backend)?;
            let next_seq = match tree.last().map_err(backend)? {
                Some((key, _)) => decode_seq(STORE, &key, "a topic key")? + 1,
                None => 0,
            };
            let cursor = match self.cursors.get(name.as_bytes()).map_err(backend)? {
                Some(value) => decode_seq(STORE, &value, "a cursor")?,
                None => 0,
            };
            // sled recovers a prefix of its log and a cursor flush flushes
            // the data before it, so the cursor should never pass the data.
            // If it did, the topic resumes at the cursor: seqs it passed are
            // never reused for other data.
            let next_seq = next_seq.max(cursor);
            topics.insert(
                name.to_owned(),
                std::sync::Arc::new(Topic::new(name, tree, next_seq, cursor)),
            );
        }
        Ok(())
    }

    /// `Db::flush`, tripping the failure latch if it fails: what it did not
    /// write back cannot be assumed durable.
    fn flush(&self) -> Result<()> {
        self.db.flush().map(drop).map_err(|e| {
            let err = backend(e);
            if self.failure.trip(&err) {
                tracing::error!(error = %err, "sled: flush failed; refusing further writes");
            }
            err
        })
    }

    fn write(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        self.failure.check()?;
        let topic = self.topics.for_append(topic, payloads, || {
            let tree_name = [TOPIC_TREE_PREFIX, topic.as_bytes()].concat();
            self.db.open_tree(tree_name).map_err(backend)
        })?;
        let end = topic.append(payloads.len(), |first| {
            if let [payload] = payloads {
                topic.keys.insert(seq_key(first), *payload).map(drop)
            } else {
                let mut batch = sled::Batch::default();
                for (i, payload) in payloads.iter().enumerate() {
                    batch.insert(&seq_key(first + i as u64), *payload);
                }
                topic.keys.apply_batch(batch)
            }
            .map_err(backend)
        })?;
        topic.publish(end);
        if self.config.fsync == FsyncSchedule::SyncEach {
            self.flush()?;
        }
        Ok(())
    }
}

impl KvRead<sled::Tree, ()> for SledStore {
    const STORE: &'static str = STORE;

    fn topics(&self) -> &Topics<sled::Tree> {
        &self.topics
    }

    fn consistency(&self) -> ReadConsistency {
        self.config.consistency
    }

    /// One entry: a point lookup, not a range iterator.
    fn lookup(&self, topic: &Topic, seq: u64) -> Result<Option<Bytes>> {
        let value = topic.keys.get(seq_key(seq)).map_err(backend)?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn scan(
        &self,
        topic: &Topic,
        _state: &mut (),
        from: u64,
        to: u64,
        batch: &mut Batch,
    ) -> Result<()> {
        let items = topic.keys.range(seq_key(from)..seq_key(to)).map(|item| {
            let (key, value) = item.map_err(backend)?;
            let seq = decode_seq(STORE, &key, "a topic key")?;
            Ok((seq, Bytes::copy_from_slice(&value)))
        });
        kv_common::fill(STORE, topic, from, to, items, batch)
    }

    fn persist_cursor(&self, topic: &Topic, _from: u64, to: u64) -> Result<()> {
        self.cursors
            .insert(topic.name.as_bytes(), &seq_key(to))
            .map_err(backend)?;
        self.flush()
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // A clean close keeps every acknowledged append and consumed
        // position even in `NoFsync` mode, where nothing else would flush.
        for topic in self.topics.all() {
            let reader = topic.reader();
            if reader.unpersisted() > 0 {
                if let Err(e) = self
                    .cursors
                    .insert(topic.name.as_bytes(), &seq_key(reader.cursor))
                {
                    tracing::warn!(topic = %topic.name, error = %e, "sled: cursor not persisted at close");
                }
            }
        }
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "sled: flush at close failed");
        }
    }
}

impl LogStore for SledStore {
    fn name(&self) -> &str {
        "sled"
    }

    fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.write(topic, &[payload])
    }

    fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        if payloads.is_empty() {
            return validate_topic(topic); // a no-op, as in walrus-rust
        }
        self.write(topic, payloads)
    }

    fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        Ok(kv_common::read(self, topic, Want::One, checkpoint)?.pop())
    }

    fn batch_read(&self, topic: &str, max_bytes: usize, checkpoint: bool) -> Result<Vec<Entry>> {
        kv_common::read(self, topic, Want::Batch { max_bytes }, checkpoint)
    }

    fn sync(&self) -> Result<()> {
        self.flush()
    }
}
