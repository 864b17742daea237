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

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use walrus_store::{
    validate_batch_len, validate_topic, Bytes, Entry, Error, FsyncSchedule, LogStore,
    ReadConsistency, Result, StoreConfig, MAX_BATCH_ENTRIES,
};

const TOPIC_TREE_PREFIX: &[u8] = b"t:";
const CURSOR_TREE: &[u8] = b"cursors";

/// sled behind the `LogStore` contract. See the module docs.
pub struct SledStore {
    db: sled::Db,
    cursors: sled::Tree,
    config: StoreConfig,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
}

struct Topic {
    name: String,
    tree: sled::Tree,
    /// Next seq to assign; the lock orders appends of one topic.
    next_seq: Mutex<u64>,
    /// Entries below this are fully written; readers never look past it.
    visible: AtomicU64,
    reader: Mutex<Reader>,
}

struct Reader {
    cursor: u64,
    unpersisted: u64,
}

fn backend(e: sled::Error) -> Error {
    Error::backend("sled", e)
}

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn decode_seq(bytes: &[u8], what: &str) -> Result<u64> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| {
        Error::backend(
            "sled",
            format!("{what} is {} bytes, expected an 8-byte seq", bytes.len()),
        )
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// How long `open` keeps retrying a held lock; see [`open_db`].
const LOCK_RETRY: Duration = Duration::from_secs(2);

/// Opens the sled `Db`, retrying for a bounded time while its file lock is
/// held: sled 0.34 finishes some background work on its own thread pool after
/// the last `Db` handle is dropped, and that work keeps the file (and so the
/// lock) open for a few milliseconds, so a close followed at once by a reopen
/// can find its own lock still held. A lock still held after the retry
/// window is a real second instance and is reported as `Locked`.
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
        let db = open_db(dir, flush_every_ms)?;
        // sled writes its `conf` file at open and never fsyncs it
        // (sled-0.34.7/src/config.rs, `write_config`); a power loss could
        // leave a store whose configuration is gone. The conformance suite's
        // sync check found the dirty page.
        std::fs::File::open(dir.join("conf"))
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::File::open(dir)?.sync_all())
            .map_err(|e| Error::io(format!("syncing {}", dir.join("conf").display()), e))?;
        let cursors = db.open_tree(CURSOR_TREE).map_err(backend)?;
        let store = SledStore {
            db,
            cursors,
            config,
            topics: RwLock::new(HashMap::new()),
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
                .map_err(|_| Error::backend("sled", "a topic tree's name is not UTF-8"))?;
            let tree = self.db.open_tree(&tree_name).map_err(backend)?;
            let next_seq = match tree.last().map_err(backend)? {
                Some((key, _)) => decode_seq(&key, "a topic key")? + 1,
                None => 0,
            };
            let cursor = match self.cursors.get(name.as_bytes()).map_err(backend)? {
                Some(value) => decode_seq(&value, "a cursor")?,
                None => 0,
            };
            // sled recovers a prefix of its log and a cursor flush flushes
            // the data before it, so the cursor should never pass the data.
            // If it did, the topic resumes at the cursor: seqs it passed are
            // never reused for other data.
            let next_seq = next_seq.max(cursor);
            topics.insert(
                name.to_owned(),
                Arc::new(Topic::new(name, tree, next_seq, cursor)),
            );
        }
        Ok(())
    }

    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    fn topic_or_create(&self, name: &str) -> Result<Arc<Topic>> {
        if let Some(topic) = self.topic(name) {
            return Ok(topic);
        }
        let mut topics = self.topics.write();
        if let Some(topic) = topics.get(name) {
            return Ok(topic.clone());
        }
        let tree_name = [TOPIC_TREE_PREFIX, name.as_bytes()].concat();
        let tree = self.db.open_tree(tree_name).map_err(backend)?;
        let topic = Arc::new(Topic::new(name, tree, 0, 0));
        topics.insert(name.to_owned(), topic.clone());
        Ok(topic)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map(drop).map_err(backend)
    }

    fn write(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        validate_topic(topic)?;
        validate_batch_len(payloads.len())?;
        let topic = self.topic_or_create(topic)?;
        {
            let mut next_seq = topic.next_seq.lock();
            if let [payload] = payloads {
                topic
                    .tree
                    .insert(seq_key(*next_seq), *payload)
                    .map_err(backend)?;
            } else {
                let mut batch = sled::Batch::default();
                for (i, payload) in payloads.iter().enumerate() {
                    batch.insert(&seq_key(*next_seq + i as u64), *payload);
                }
                topic.tree.apply_batch(batch).map_err(backend)?;
            }
            *next_seq += payloads.len() as u64;
            topic.visible.store(*next_seq, Ordering::Release);
        }
        if self.config.fsync == FsyncSchedule::SyncEach {
            self.flush()?;
        }
        Ok(())
    }

    fn read(&self, topic: &str, budget: Option<usize>, consume: bool) -> Result<Vec<Entry>> {
        validate_topic(topic)?;
        let Some(topic) = self.topic(topic) else {
            return Ok(Vec::new());
        };
        let mut reader = topic.reader.lock();
        let visible = topic.visible.load(Ordering::Acquire);
        let mut out = Vec::new();
        if reader.cursor < visible && budget.is_none() {
            // One entry: a point lookup, not a range iterator.
            let value = topic
                .tree
                .get(seq_key(reader.cursor))
                .map_err(backend)?
                .ok_or_else(|| {
                    Error::backend(
                        "sled",
                        format!("topic {:?} is missing seq {}", topic.name, reader.cursor),
                    )
                })?;
            out.push(Entry {
                seq: reader.cursor,
                data: Bytes::copy_from_slice(&value),
            });
        } else if reader.cursor < visible {
            let mut total_bytes = 0usize;
            for item in topic.tree.range(seq_key(reader.cursor)..seq_key(visible)) {
                let (key, value) = item.map_err(backend)?;
                let seq = decode_seq(&key, "a topic key")?;
                let expected = reader.cursor + out.len() as u64;
                if seq != expected {
                    return Err(Error::backend(
                        "sled",
                        format!("topic {:?} is missing seq {expected}", topic.name),
                    ));
                }
                let fits = match budget {
                    None => out.is_empty(),
                    Some(max) => {
                        out.is_empty()
                            || (total_bytes.saturating_add(value.len()) <= max
                                && out.len() < MAX_BATCH_ENTRIES)
                    }
                };
                if !fits {
                    break;
                }
                total_bytes = total_bytes.saturating_add(value.len());
                out.push(Entry {
                    seq,
                    data: Bytes::copy_from_slice(&value),
                });
            }
        }
        if consume && !out.is_empty() {
            let cursor = reader.cursor + out.len() as u64;
            let persist = match self.config.consistency {
                ReadConsistency::StrictlyAtOnce => true,
                ReadConsistency::AtLeastOnce { persist_every } => {
                    reader.unpersisted + out.len() as u64 >= u64::from(persist_every)
                }
            };
            if persist {
                self.persist_cursor(&topic, cursor)?;
                reader.unpersisted = 0;
            } else {
                reader.unpersisted += out.len() as u64;
            }
            reader.cursor = cursor;
        }
        Ok(out)
    }

    fn persist_cursor(&self, topic: &Topic, cursor: u64) -> Result<()> {
        self.cursors
            .insert(topic.name.as_bytes(), &seq_key(cursor))
            .map_err(backend)?;
        self.flush()
    }
}

impl Topic {
    fn new(name: &str, tree: sled::Tree, next_seq: u64, cursor: u64) -> Topic {
        Topic {
            name: name.to_owned(),
            tree,
            next_seq: Mutex::new(next_seq),
            visible: AtomicU64::new(next_seq),
            reader: Mutex::new(Reader {
                cursor,
                unpersisted: 0,
            }),
        }
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // A clean close keeps every acknowledged append and consumed
        // position even in `NoFsync` mode, where nothing else would flush.
        for topic in self.topics.read().values() {
            let reader = topic.reader.lock();
            if reader.unpersisted > 0 {
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
        Ok(self.read(topic, None, checkpoint)?.pop())
    }

    fn batch_read(&self, topic: &str, max_bytes: usize, checkpoint: bool) -> Result<Vec<Entry>> {
        self.read(topic, Some(max_bytes), checkpoint)
    }

    fn sync(&self) -> Result<()> {
        self.flush()
    }
}
