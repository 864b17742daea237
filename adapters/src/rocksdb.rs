//! The RocksDB adapter.
//!
//! Everything lives in the default column family (column families per topic
//! would cost a memtable each, which thousands of topics cannot afford):
//!
//! ```text
//! data key   = 0x02 | topic_len u8 | topic bytes | seq u64 big-endian  -> payload
//! cursor key = 0x03 | topic_len u8 | topic bytes                       -> next seq u64 big-endian
//! ```
//!
//! The length prefix keeps each topic's keys one contiguous range (no topic
//! name is a prefix of another's range) and big-endian seqs make key order
//! log order. A topic's next seq is kept in memory and recovered at open by
//! seeking to the last key of each topic's range. A batch is one
//! `WriteBatch`, atomic in RocksDB's WAL. Cursors live in the same DB and WAL
//! as the data, so they are exactly as durable as it.
//!
//! Durability mapping (the brief's fair one):
//! * `SyncEach`: `WriteOptions::set_sync(true)` on every write.
//! * `Milliseconds(n)`: `sync = false`, and a background thread calls
//!   `flush_wal(true)` every n ms (and once more at close).
//! * `NoFsync`: `sync = false` with the WAL on and automatic WAL flushing
//!   (`manual_wal_flush = false`), so every write reaches the OS before it is
//!   acknowledged and survives a process crash.
//!
//! Cursor writes that must be durable (every consuming read under
//! `StrictlyAtOnce`, every `persist_every` entries under `AtLeastOnce`) use
//! `sync = true`; that also syncs every earlier data write in the WAL.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rocksdb::{
    DBCompressionType, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};
use walrus_store::{
    validate_batch_len, validate_topic, Bytes, Entry, Error, FsyncSchedule, LogStore,
    ReadConsistency, Result, StoreConfig, MAX_BATCH_ENTRIES,
};

use crate::flusher::Flusher;

const DATA_TAG: u8 = 0x02;
const CURSOR_TAG: u8 = 0x03;

/// Memtable size. A log is written sequentially and read soon after; a large
/// memtable keeps recent entries readable from memory and makes flushes to
/// L0 rarer and larger (fewer, bigger SST files to compact).
const WRITE_BUFFER_BYTES: usize = 128 * 1024 * 1024;
/// Memtables that may exist at once: one filling while others flush, so a
/// flush in progress does not stall writers.
const MAX_WRITE_BUFFERS: i32 = 4;

/// RocksDB behind the `LogStore` contract. See the module docs.
pub struct RocksDbStore {
    inner: Arc<Inner>,
    /// Present for `FsyncSchedule::Milliseconds`; dropped (final WAL sync)
    /// before the DB closes.
    flusher: Option<Flusher>,
}

struct Inner {
    db: DB,
    config: StoreConfig,
    /// For appends: never synced in the write itself. Under `SyncEach` the
    /// WAL is synced after the topic's lock is released (see `write`).
    append_opts: WriteOptions,
    /// For cursor writes that must be durable.
    synced_opts: WriteOptions,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
}

struct Topic {
    name: String,
    /// `DATA_TAG | len | name`; a data key is this plus the seq.
    data_prefix: Vec<u8>,
    cursor_key: Vec<u8>,
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

fn backend(e: rocksdb::Error) -> Error {
    Error::backend("rocksdb", e)
}

/// The options, each with its reason (also listed in `docs/guarantees.md`).
fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.set_write_buffer_size(WRITE_BUFFER_BYTES);
    opts.set_max_write_buffer_number(MAX_WRITE_BUFFERS);
    // Payloads are opaque and often incompressible; compression would cost
    // CPU on the write path that no other store pays. (The crate is built
    // without codecs, too.)
    opts.set_compression_type(DBCompressionType::None);
    // Concurrent writers to different topics: the WAL write and memtable
    // insert of successive write groups overlap.
    opts.set_enable_pipelined_write(true);
    // WAL writes go to the OS on every write (the default, stated because
    // `NoFsync` relies on it for process-crash safety).
    opts.set_manual_wal_flush(false);
    opts
}

fn topic_prefix(tag: u8, topic: &str) -> Vec<u8> {
    let len = u8::try_from(topic.len()).expect("validate_topic bounds names to 255 bytes");
    let mut key = Vec::with_capacity(2 + topic.len() + 8);
    key.push(tag);
    key.push(len);
    key.extend_from_slice(topic.as_bytes());
    key
}

fn decode_u64(bytes: &[u8], what: &str) -> Result<u64> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| {
        Error::backend(
            "rocksdb",
            format!("{what} is {} bytes, expected 8", bytes.len()),
        )
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// Splits a key into (topic name, rest after the name), checking the tag and
/// the length prefix.
fn split_key(key: &[u8], tag: u8) -> Option<(&str, &[u8])> {
    let (&key_tag, rest) = key.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if key_tag != tag || rest.len() < usize::from(len) {
        return None;
    }
    let (name, rest) = rest.split_at(usize::from(len));
    Some((std::str::from_utf8(name).ok()?, rest))
}

impl RocksDbStore {
    /// Opens (creating if needed) a RocksDB store in `dir`.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<RocksDbStore> {
        let db = DB::open(&db_options(), dir).map_err(|e| {
            let message = e.clone().into_string();
            if message.contains("lock") && message.contains("LOCK") {
                Error::Locked(dir.to_path_buf())
            } else {
                backend(e)
            }
        })?;
        let append_opts = WriteOptions::default();
        let mut synced_opts = WriteOptions::default();
        synced_opts.set_sync(true);
        let inner = Arc::new(Inner {
            db,
            config,
            append_opts,
            synced_opts,
            topics: RwLock::new(HashMap::new()),
        });
        inner.recover()?;
        let flusher = match config.fsync.interval() {
            Some(interval) => {
                let weak = Arc::downgrade(&inner);
                let flusher = Flusher::spawn("rocksdb-wal-sync", interval, move || {
                    if let Some(inner) = weak.upgrade() {
                        if let Err(e) = inner.db.flush_wal(true) {
                            tracing::error!(error = %e, "rocksdb: background WAL sync failed");
                        }
                    }
                })
                .map_err(|e| Error::io("starting the rocksdb WAL sync thread", e))?;
                Some(flusher)
            }
            None => None,
        };
        Ok(RocksDbStore { inner, flusher })
    }
}

impl Drop for RocksDbStore {
    fn drop(&mut self) {
        drop(self.flusher.take());
        let inner = &self.inner;
        for topic in inner.topics.read().values() {
            let reader = topic.reader.lock();
            if reader.unpersisted > 0 {
                if let Err(e) = inner.db.put_opt(
                    &topic.cursor_key,
                    reader.cursor.to_be_bytes(),
                    &inner.synced_opts,
                ) {
                    tracing::warn!(topic = %topic.name, error = %e, "rocksdb: cursor not persisted at close");
                }
            }
        }
    }
}

impl Inner {
    /// Finds every topic (two seeks per topic) and every cursor.
    fn recover(&self) -> Result<()> {
        let mut topics = self.topics.write();
        let mut it = self.db.raw_iterator();
        it.seek([DATA_TAG]);
        while it.valid() {
            let key = it.key().expect("valid iterator has a key");
            if key.first() != Some(&DATA_TAG) {
                break;
            }
            let name = split_key(key, DATA_TAG)
                .map(|(name, _)| name.to_owned())
                .ok_or_else(|| Error::backend("rocksdb", "a data key does not decode"))?;
            let mut past_topic = topic_prefix(DATA_TAG, &name);
            past_topic.extend_from_slice(&[0xff; 8]);
            it.seek_for_prev(&past_topic);
            let last_key = it.key().ok_or_else(|| {
                Error::backend("rocksdb", "a topic's range vanished during recovery")
            })?;
            let (_, seq) = split_key(last_key, DATA_TAG)
                .ok_or_else(|| Error::backend("rocksdb", "a data key does not decode"))?;
            let next_seq = decode_u64(seq, "a data key's seq")? + 1;
            topics.insert(name.clone(), Arc::new(Topic::new(&name, next_seq)));
            it.seek(&past_topic);
            if it.key() == Some(past_topic.as_slice()) {
                it.next();
            }
        }
        it.status().map_err(backend)?;

        let cursors = self
            .db
            .iterator(IteratorMode::From(&[CURSOR_TAG], Direction::Forward));
        for item in cursors {
            let (key, value) = item.map_err(backend)?;
            let Some((name, _)) = split_key(&key, CURSOR_TAG) else {
                break;
            };
            let cursor = decode_u64(&value, "a cursor")?;
            let next_seq = topics.get(name).map_or(0, |t| *t.next_seq.lock());
            // The WAL replays a prefix, and a synced cursor write syncs the
            // data before it, so the cursor cannot pass the data. If it did,
            // the topic resumes at the cursor: seqs it passed are never
            // reused for other data.
            let topic = Arc::new(Topic::new(name, next_seq.max(cursor)));
            topic.reader.lock().cursor = cursor;
            topics.insert(name.to_owned(), topic);
        }
        Ok(())
    }

    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    fn topic_or_create(&self, name: &str) -> Arc<Topic> {
        if let Some(topic) = self.topic(name) {
            return topic;
        }
        self.topics
            .write()
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Topic::new(name, 0)))
            .clone()
    }

    fn write(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        validate_topic(topic)?;
        validate_batch_len(payloads.len())?;
        let topic = self.topic_or_create(topic);
        let end = {
            let mut next_seq = topic.next_seq.lock();
            if let [payload] = payloads {
                self.db
                    .put_opt(topic.data_key(*next_seq), payload, &self.append_opts)
                    .map_err(backend)?;
            } else {
                let mut batch = WriteBatch::default();
                for (i, payload) in payloads.iter().enumerate() {
                    batch.put(topic.data_key(*next_seq + i as u64), payload);
                }
                self.db
                    .write_opt(batch, &self.append_opts)
                    .map_err(backend)?;
            }
            *next_seq += payloads.len() as u64;
            *next_seq
        };
        // The sync runs outside the topic's lock, so writers of one topic
        // queue behind one fsync rather than one each: the WAL is one file
        // written in order, so a sync that returns covers every write before
        // it, this one and those of the writers it overlapped.
        if self.config.fsync == FsyncSchedule::SyncEach {
            self.db.flush_wal(true).map_err(backend)?;
        }
        topic.visible.fetch_max(end, Ordering::AcqRel);
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
        if reader.cursor < visible {
            match budget {
                // One entry: a point lookup is cheaper than an iterator.
                None => {
                    let value = self
                        .db
                        .get_pinned(topic.data_key(reader.cursor))
                        .map_err(backend)?
                        .ok_or_else(|| topic.missing(reader.cursor))?;
                    out.push(Entry {
                        seq: reader.cursor,
                        data: Bytes::copy_from_slice(&value),
                    });
                }
                Some(max_bytes) => {
                    self.scan(&topic, reader.cursor, visible, max_bytes, &mut out)?
                }
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
                // The cursor and the deletion of what it now passes, in one
                // synced batch: consumed entries become a range tombstone,
                // reclaimed by compaction, so a long run measures RocksDB
                // with its reclamation cost as every other store pays its
                // own. Only up to a persisted cursor: entries an
                // at-least-once reader may get again after a crash stay.
                let persisted_before = reader.cursor - reader.unpersisted;
                let mut batch = WriteBatch::default();
                batch.put(&topic.cursor_key, cursor.to_be_bytes());
                batch.delete_range(topic.data_key(persisted_before), topic.data_key(cursor));
                self.db
                    .write_opt(batch, &self.synced_opts)
                    .map_err(backend)?;
                reader.unpersisted = 0;
            } else {
                reader.unpersisted += out.len() as u64;
            }
            reader.cursor = cursor;
        }
        Ok(out)
    }

    /// Collects entries `from..to` within `max_bytes` (at least one).
    fn scan(
        &self,
        topic: &Topic,
        from: u64,
        to: u64,
        max_bytes: usize,
        out: &mut Vec<Entry>,
    ) -> Result<()> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(topic.data_key(to));
        let mut it = self.db.raw_iterator_opt(opts);
        it.seek(topic.data_key(from));
        let mut total_bytes = 0usize;
        let mut expected = from;
        while expected < to {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                it.status().map_err(backend)?;
                return Err(topic.missing(expected));
            };
            let seq = split_key(key, DATA_TAG)
                .filter(|(name, _)| *name == topic.name)
                .map(|(_, seq)| decode_u64(seq, "a data key's seq"))
                .transpose()?;
            if seq != Some(expected) {
                return Err(topic.missing(expected));
            }
            let full = total_bytes.saturating_add(value.len()) > max_bytes
                || out.len() >= MAX_BATCH_ENTRIES;
            if !out.is_empty() && full {
                break;
            }
            total_bytes = total_bytes.saturating_add(value.len());
            out.push(Entry {
                seq: expected,
                data: Bytes::copy_from_slice(value),
            });
            expected += 1;
            it.next();
        }
        Ok(())
    }
}

impl Topic {
    fn new(name: &str, next_seq: u64) -> Topic {
        Topic {
            name: name.to_owned(),
            data_prefix: topic_prefix(DATA_TAG, name),
            cursor_key: topic_prefix(CURSOR_TAG, name),
            next_seq: Mutex::new(next_seq),
            visible: AtomicU64::new(next_seq),
            reader: Mutex::new(Reader {
                cursor: 0,
                unpersisted: 0,
            }),
        }
    }

    fn data_key(&self, seq: u64) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.data_prefix.len() + 8);
        key.extend_from_slice(&self.data_prefix);
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }

    fn missing(&self, seq: u64) -> Error {
        Error::backend(
            "rocksdb",
            format!("topic {:?} is missing seq {seq} below its end", self.name),
        )
    }
}

impl LogStore for RocksDbStore {
    fn name(&self) -> &str {
        "rocksdb"
    }

    fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.inner.write(topic, &[payload])
    }

    fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        if payloads.is_empty() {
            return validate_topic(topic); // a no-op, as in walrus-rust
        }
        self.inner.write(topic, payloads)
    }

    fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        Ok(self.inner.read(topic, None, checkpoint)?.pop())
    }

    fn batch_read(&self, topic: &str, max_bytes: usize, checkpoint: bool) -> Result<Vec<Entry>> {
        self.inner.read(topic, Some(max_bytes), checkpoint)
    }

    fn sync(&self) -> Result<()> {
        self.inner.db.flush_wal(true).map_err(backend)
    }
}
