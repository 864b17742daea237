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
//!
//! `read_next` is a point lookup (`get_pinned`). `batch_read` keeps one
//! iterator per topic reader while the topic has a backlog, refreshed when
//! appends have moved the topic's end past what it can see, instead of
//! building one per call (see `IterCache` for RocksDB's snapshot semantics
//! and why a caught-up reader drops it). Measured with
//! `examples/rocksdb_batch_read.rs` (200,000 entries of 128 B, 5 alternated
//! rounds, medians): 1.49x the calls/s of a fresh iterator per call at 16
//! entries per call, no difference (0.98x, noise) at 256.
//!
//! One instance per directory is RocksDB's own `LOCK` file, not
//! `walrus_store::lock_dir`: that would `flock` the same file RocksDB holds
//! an `fcntl` lock on, and POSIX drops every `fcntl` lock a process holds on
//! a file when any descriptor of it closes, so a refused second open in the
//! same process would release the first instance's lock. A WAL sync that
//! fails trips the shared [`FailureLatch`](walrus_store::FailureLatch), as a
//! failed fsync does in every store: later writes get `Error::Failed`.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    DBCompressionType, DBRawIteratorWithThreadMode, Direction, IteratorMode, Options, ReadOptions,
    WriteBatch, WriteOptions, DB,
};
use walrus_store::{
    validate_topic, Bytes, Entry, Error, FailureLatch, FsyncSchedule, LogStore, ReadConsistency,
    Result, StoreConfig,
};

use crate::flusher::Flusher;
use crate::kv_common::{self, decode_seq, Batch, KvRead, Topics, Want};

const STORE: &str = "rocksdb";
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
    /// Shared with the cached iterators, which borrow it.
    db: Arc<DB>,
    config: StoreConfig,
    /// Whether `batch_read` keeps an iterator per topic reader (see
    /// [`IterCache`]); off only for the measurement that compares the two.
    reuse_iterators: bool,
    /// For appends: never synced in the write itself. Under `SyncEach` the
    /// WAL is synced after the topic's lock is released (see `write`).
    append_opts: WriteOptions,
    /// For cursor writes that must be durable.
    synced_opts: WriteOptions,
    topics: Topics<Keys, IterCache>,
    /// Tripped by a failed WAL sync: later writes are refused.
    failure: FailureLatch,
}

type Topic = kv_common::Topic<Keys, IterCache>;

type RawIter<'db> = DBRawIteratorWithThreadMode<'db, DB>;

self_cell::self_cell!(
    /// An iterator together with the `Arc` of the DB it borrows, so it can
    /// live in a topic's reader between calls.
    struct OwnedIter {
        owner: Arc<DB>,
        #[covariant]
        dependent: RawIter,
    }
);

/// A topic reader's iterator, kept from one `batch_read` to the next.
///
/// A RocksDB iterator reads the DB as it was when it was created or last
/// refreshed (an implicit snapshot). Appends publish a topic's visible end
/// only after their write returned, so an iterator created or refreshed
/// after loading `visible` sees every entry below it: `sees_to` records that
/// bound, and a read that wants entries past it refreshes the iterator first
/// (`Iterator::Refresh`, which keeps its allocations). A read that continues
/// where the last one stopped needs no seek either (`on`).
///
/// The iterator pins the memtables and SST files of its snapshot, so that
/// consumed ranges and flushed memtables are not freed while it lives. It is
/// therefore dropped as soon as a read reaches the topic's visible end: only
/// a reader working through a backlog keeps one, and a caught-up or idle
/// topic pins nothing.
#[derive(Default)]
struct IterCache {
    iter: Option<OwnedIter>,
    /// Entries below this seq are visible to `iter`.
    sees_to: u64,
    /// The seq of the entry `iter` is on, when known.
    on: Option<u64>,
}

/// Where a topic's entries and cursor live.
struct Keys {
    /// `DATA_TAG | len | name`; a data key is this plus the seq.
    data_prefix: Vec<u8>,
    cursor_key: Vec<u8>,
}

impl Keys {
    fn new(name: &str) -> Keys {
        Keys {
            data_prefix: topic_prefix(DATA_TAG, name),
            cursor_key: topic_prefix(CURSOR_TAG, name),
        }
    }

    fn data_key(&self, seq: u64) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.data_prefix.len() + 8);
        key.extend_from_slice(&self.data_prefix);
        key.extend_from_slice(&seq.to_be_bytes());
        key
    }
}

fn backend(e: rocksdb::Error) -> Error {
    Error::backend(STORE, e)
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

/// The entry the iterator is on: `None` at the end of its range (or of
/// `topic`'s keys), an error if the iterator failed.
fn entry_at(it: &RawIter<'_>, topic: &str) -> Result<Option<(u64, Bytes)>> {
    let (Some(key), Some(value)) = (it.key(), it.value()) else {
        it.status().map_err(backend)?;
        return Ok(None);
    };
    Ok(data_key_seq(key, topic)?.map(|seq| (seq, Bytes::copy_from_slice(value))))
}

/// The seq of a data key of `topic`, if it is one.
fn data_key_seq(key: &[u8], topic: &str) -> Result<Option<u64>> {
    split_key(key, DATA_TAG)
        .filter(|(name, _)| *name == topic)
        .map(|(_, seq)| decode_seq(STORE, seq, "a data key's seq"))
        .transpose()
}

impl RocksDbStore {
    /// Opens (creating if needed) a RocksDB store in `dir`.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<RocksDbStore> {
        RocksDbStore::open_with(dir, config, true)
    }

    /// Opens with a fresh iterator for every `batch_read`, as the adapter
    /// read before it kept one per topic reader: the baseline that
    /// `examples/rocksdb_batch_read.rs` measures the reuse against. Not for
    /// applications; `open` is the store.
    pub fn open_without_iterator_reuse(dir: &Path, config: StoreConfig) -> Result<RocksDbStore> {
        RocksDbStore::open_with(dir, config, false)
    }

    fn open_with(dir: &Path, config: StoreConfig, reuse_iterators: bool) -> Result<RocksDbStore> {
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
            db: Arc::new(db),
            config,
            reuse_iterators,
            append_opts,
            synced_opts,
            topics: Topics::new(),
            failure: FailureLatch::new(),
        });
        inner.recover()?;
        let flusher = match config.fsync.interval() {
            Some(interval) => {
                let weak = Arc::downgrade(&inner);
                let flusher = Flusher::spawn("rocksdb-wal-sync", interval, move || {
                    if let Some(inner) = weak.upgrade() {
                        // Logged and latched there: the next append fails.
                        let _ = inner.sync_wal();
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
        for topic in inner.topics.all() {
            let reader = topic.reader();
            if reader.unpersisted() > 0 {
                if let Err(e) = inner.db.put_opt(
                    &topic.keys.cursor_key,
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
        let undecodable = || Error::backend(STORE, "a data key does not decode");
        let mut it = self.db.raw_iterator();
        it.seek([DATA_TAG]);
        while it.valid() {
            let key = it.key().expect("valid iterator has a key");
            if key.first() != Some(&DATA_TAG) {
                break;
            }
            let name = split_key(key, DATA_TAG)
                .map(|(name, _)| name.to_owned())
                .ok_or_else(undecodable)?;
            let mut past_topic = topic_prefix(DATA_TAG, &name);
            past_topic.extend_from_slice(&[0xff; 8]);
            it.seek_for_prev(&past_topic);
            let last_key = it
                .key()
                .ok_or_else(|| Error::backend(STORE, "a topic's range vanished during recovery"))?;
            let seq = data_key_seq(last_key, &name)?.ok_or_else(undecodable)?;
            topics.insert(
                name.clone(),
                Arc::new(Topic::new(&name, Keys::new(&name), seq + 1, 0)),
            );
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
            let cursor = decode_seq(STORE, &value, "a cursor")?;
            let next_seq = topics.get(name).map_or(0, |t| t.next_seq());
            // The WAL replays a prefix, and a synced cursor write syncs the
            // data before it, so the cursor cannot pass the data. If it did,
            // the topic resumes at the cursor: seqs it passed are never
            // reused for other data.
            let topic = Topic::new(name, Keys::new(name), next_seq.max(cursor), cursor);
            topics.insert(name.to_owned(), Arc::new(topic));
        }
        Ok(())
    }

    /// Syncs the WAL, tripping the failure latch if that fails: what it did
    /// not write back cannot be assumed durable.
    fn sync_wal(&self) -> Result<()> {
        self.db.flush_wal(true).map_err(|e| {
            let err = backend(e);
            if self.failure.trip(&err) {
                tracing::error!(error = %err, "rocksdb: WAL sync failed; refusing further writes");
            }
            err
        })
    }

    fn write(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        self.failure.check()?;
        let topic = self
            .topics
            .for_append(topic, payloads, || Ok(Keys::new(topic)))?;
        // One WriteBatch, also for a single entry: RocksDB's `put` builds
        // one itself.
        let end = topic.append(payloads.len(), |first| {
            let mut batch = WriteBatch::default();
            for (seq, payload) in (first..).zip(payloads) {
                batch.put(topic.keys.data_key(seq), payload);
            }
            self.db.write_opt(batch, &self.append_opts).map_err(backend)
        })?;
        // The sync runs outside the topic's lock, so writers of one topic
        // queue behind one fsync rather than one each: the WAL is one file
        // written in order, so a sync that returns covers every write before
        // it, this one and those of the writers it overlapped.
        if self.config.fsync == FsyncSchedule::SyncEach {
            self.sync_wal()?;
        }
        topic.publish(end);
        Ok(())
    }
}

impl Inner {
    /// An iterator over `topic`'s data keys.
    fn new_iter(&self, topic: &Topic) -> OwnedIter {
        // Past every data key of the topic (prefix + 8-byte seq), before the
        // next topic's.
        let mut past_topic = topic.keys.data_prefix.clone();
        past_topic.extend_from_slice(&[0xff; 9]);
        OwnedIter::new(self.db.clone(), |db| {
            let mut opts = ReadOptions::default();
            opts.set_iterate_upper_bound(past_topic);
            db.raw_iterator_opt(opts)
        })
    }
}

impl KvRead<Keys, IterCache> for Inner {
    const STORE: &'static str = STORE;

    fn topics(&self) -> &Topics<Keys, IterCache> {
        &self.topics
    }

    fn consistency(&self) -> ReadConsistency {
        self.config.consistency
    }

    /// One entry: a point lookup is cheaper than an iterator.
    fn lookup(&self, topic: &Topic, seq: u64) -> Result<Option<Bytes>> {
        let value = self
            .db
            .get_pinned(topic.keys.data_key(seq))
            .map_err(backend)?;
        Ok(value.map(|v| Bytes::copy_from_slice(&v)))
    }

    fn scan(
        &self,
        topic: &Topic,
        cache: &mut IterCache,
        from: u64,
        to: u64,
        batch: &mut Batch,
    ) -> Result<()> {
        let mut iter = match cache.iter.take() {
            Some(iter) if self.reuse_iterators => iter,
            _ => {
                *cache = IterCache::default();
                // Created after the caller loaded `to`: it sees every entry below.
                cache.sees_to = to;
                self.new_iter(topic)
            }
        };
        let filled = iter.with_dependent_mut(|_, it| {
            if to > cache.sees_to {
                it.refresh().map_err(backend)?;
                cache.sees_to = to;
                cache.on = None;
            }
            match cache.on {
                Some(on) if on == from => {}
                Some(on) if on + 1 == from => it.next(),
                _ => it.seek(topic.keys.data_key(from)),
            }
            let mut fetched = 0u64;
            let items = std::iter::from_fn(|| {
                // Moves on only when asked for the next item, so the
                // iterator stays on the last entry fetched.
                if fetched > 0 {
                    it.next();
                }
                fetched += 1;
                entry_at(it, &topic.name).transpose()
            });
            let filled = kv_common::fill(STORE, topic, from, to, items, batch);
            cache.on = (fetched > 0 && it.valid()).then(|| from + fetched - 1);
            filled
        });
        filled?;
        // Keep it only while a backlog remains (see `IterCache`).
        if from + (batch.len() as u64) < to {
            cache.iter = Some(iter);
        } else {
            *cache = IterCache::default();
        }
        Ok(())
    }

    /// The cursor and the deletion of what it now passes, in one synced
    /// batch: consumed entries become a range tombstone, reclaimed by
    /// compaction, so a long run measures RocksDB with its reclamation cost
    /// as every other store pays its own. Only up to a persisted cursor:
    /// entries an at-least-once reader may get again after a crash stay.
    fn persist_cursor(&self, topic: &Topic, from: u64, to: u64) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put(&topic.keys.cursor_key, to.to_be_bytes());
        batch.delete_range(topic.keys.data_key(from), topic.keys.data_key(to));
        self.db.write_opt(batch, &self.synced_opts).map_err(backend)
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
        Ok(kv_common::read(&*self.inner, topic, Want::One, checkpoint)?.pop())
    }

    fn batch_read(&self, topic: &str, max_bytes: usize, checkpoint: bool) -> Result<Vec<Entry>> {
        kv_common::read(&*self.inner, topic, Want::Batch { max_bytes }, checkpoint)
    }

    fn sync(&self) -> Result<()> {
        self.inner.sync_wal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use walrus_store::ReadConsistency;

    /// Appends, peeks, `read_next`s and small `batch_read`s interleaved
    /// (xorshift-chosen), checked against a model: with a reused iterator a
    /// read must still see every append acknowledged before it (refresh),
    /// continue after a `read_next` moved the cursor (seek), and return the
    /// same entries after a peek.
    fn interleaved_reads_match_the_model(reuse: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            consistency: ReadConsistency::AtLeastOnce { persist_every: 7 },
            fsync: FsyncSchedule::NoFsync,
        };
        let store = RocksDbStore::open_with(tmp.path(), config, reuse).unwrap();
        let (mut appended, mut cursor) = (0u64, 0u64);
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..3_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            match rng % 6 {
                0 | 1 => {
                    let n = 1 + (rng >> 8) % 5;
                    let payloads: Vec<Vec<u8>> = (appended..appended + n)
                        .map(|s| s.to_le_bytes().to_vec())
                        .collect();
                    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                    store.batch_append("t", &refs).unwrap();
                    appended += n;
                }
                2 => {
                    let got = store.read_next("t", true).unwrap();
                    assert_eq!(got.map(|e| e.seq), (cursor < appended).then_some(cursor));
                    cursor = (cursor + 1).min(appended);
                }
                3 => {
                    let peeked = store.batch_read("t", 3 * 8, false).unwrap();
                    let again = store.batch_read("t", 3 * 8, false).unwrap();
                    assert_eq!(peeked, again, "a peek moves nothing");
                }
                _ => {
                    let max_entries = 1 + (rng >> 8) % 4;
                    let got = store
                        .batch_read("t", max_entries as usize * 8, true)
                        .unwrap();
                    let want = max_entries.min(appended - cursor);
                    assert_eq!(
                        got.len() as u64,
                        want,
                        "cursor {cursor}, appended {appended}"
                    );
                    for (entry, seq) in got.iter().zip(cursor..) {
                        assert_eq!(entry.seq, seq);
                        assert_eq!(entry.data.as_ref(), seq.to_le_bytes());
                    }
                    cursor += want;
                }
            }
        }
    }

    #[test]
    fn interleaved_reads_match_the_model_with_a_reused_iterator() {
        interleaved_reads_match_the_model(true);
    }

    #[test]
    fn interleaved_reads_match_the_model_with_a_fresh_iterator_per_read() {
        interleaved_reads_match_the_model(false);
    }
}
