//! What the key-value adapters (RocksDB, sled) share: a topic table, each
//! topic's append counter and consumer cursor, and the read path around
//! them. A store supplies only where its entries live (`K`: key prefixes, a
//! tree), any state its reader keeps between reads (`R`: RocksDB's cached
//! iterator), and the calls that fetch entries and persist a cursor.
//!
//! Both keep a topic's entries under big-endian seq keys, so key order is
//! log order; the next seq to assign is kept in memory (recovered at open),
//! so an append does not read before it writes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockWriteGuard};
use walrus_store::{
    validate_batch_len, validate_topic, Bytes, Entry, Error, ReadConsistency, Result,
    MAX_BATCH_ENTRIES,
};

/// One topic of a key-value store.
pub(crate) struct Topic<K, R = ()> {
    pub(crate) name: String,
    /// Where the store keeps this topic's entries.
    pub(crate) keys: K,
    /// Next seq to assign; the lock orders appends of one topic.
    next_seq: Mutex<u64>,
    /// Entries below this are fully written; readers never look past it.
    visible: AtomicU64,
    reader: Mutex<Reader<R>>,
}

/// A topic's consumer cursor.
pub(crate) struct Reader<R> {
    /// Seq of the next entry to return.
    pub(crate) cursor: u64,
    /// Consumed since the cursor was last persisted (`AtLeastOnce`).
    unpersisted: u64,
    /// What the store keeps between reads of this topic.
    pub(crate) state: R,
}

impl<K, R: Default> Topic<K, R> {
    pub(crate) fn new(name: &str, keys: K, next_seq: u64, cursor: u64) -> Topic<K, R> {
        Topic {
            name: name.to_owned(),
            keys,
            next_seq: Mutex::new(next_seq),
            visible: AtomicU64::new(next_seq),
            reader: Mutex::new(Reader {
                cursor,
                unpersisted: 0,
                state: R::default(),
            }),
        }
    }
}

impl<K, R> Topic<K, R> {
    /// Next seq an append gets (RocksDB's recovery reads it).
    #[cfg_attr(not(feature = "rocksdb"), allow(dead_code))]
    pub(crate) fn next_seq(&self) -> u64 {
        *self.next_seq.lock()
    }

    /// Appends `count` entries under the topic's append lock: `write` gets
    /// the first seq and writes them all (one store write, so a batch is
    /// atomic). Returns the seq after the last one. The entries are not yet
    /// visible to readers: see [`Topic::publish`].
    pub(crate) fn append(
        &self,
        count: usize,
        write: impl FnOnce(u64) -> Result<()>,
    ) -> Result<u64> {
        let mut next_seq = self.next_seq.lock();
        write(*next_seq)?;
        *next_seq += count as u64;
        Ok(*next_seq)
    }

    /// Lets readers see every entry below `end` (an [`append`](Topic::append)'s
    /// result, once it is as durable as the schedule promises).
    pub(crate) fn publish(&self, end: u64) {
        self.visible.fetch_max(end, Ordering::AcqRel);
    }

    /// The topic's consumer cursor, locked (for a store's close).
    pub(crate) fn reader(&self) -> MutexGuard<'_, Reader<R>> {
        self.reader.lock()
    }

    /// The error for an entry below the visible end that the store lacks.
    pub(crate) fn missing(&self, store: &'static str, seq: u64) -> Error {
        Error::backend(
            store,
            format!("topic {:?} is missing seq {seq} below its end", self.name),
        )
    }
}

impl<R> Reader<R> {
    /// Consumed entries not yet persisted.
    pub(crate) fn unpersisted(&self) -> u64 {
        self.unpersisted
    }

    /// Moves the cursor past `taken` entries just read, persisting it first
    /// when the consistency mode says it is due: `persist(from, to)` makes
    /// the cursor `to` durable, `from` being the last persisted position
    /// (so what lies between may be reclaimed). If `persist` fails the
    /// cursor stays where it was and the entries count as not returned.
    fn consume(
        &mut self,
        consistency: ReadConsistency,
        taken: u64,
        persist: impl FnOnce(u64, u64) -> Result<()>,
    ) -> Result<()> {
        let cursor = self.cursor + taken;
        if consistency.persist_due(self.unpersisted, taken) {
            persist(self.cursor - self.unpersisted, cursor)?;
            self.unpersisted = 0;
        } else {
            self.unpersisted += taken;
        }
        self.cursor = cursor;
        Ok(())
    }
}

/// Every topic of a store, by name.
pub(crate) struct Topics<K, R = ()> {
    map: RwLock<HashMap<String, Arc<Topic<K, R>>>>,
}

impl<K, R: Default> Topics<K, R> {
    pub(crate) fn new() -> Topics<K, R> {
        Topics {
            map: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Topic<K, R>>> {
        self.map.read().get(name).cloned()
    }

    /// The topic `name`, created empty (with the keys `make` gives) if it
    /// does not exist yet.
    pub(crate) fn get_or_create(
        &self,
        name: &str,
        make: impl FnOnce() -> Result<K>,
    ) -> Result<Arc<Topic<K, R>>> {
        if let Some(topic) = self.get(name) {
            return Ok(topic);
        }
        let mut map = self.map.write();
        if let Some(topic) = map.get(name) {
            return Ok(topic.clone());
        }
        let topic = Arc::new(Topic::new(name, make()?, 0, 0));
        map.insert(name.to_owned(), topic.clone());
        Ok(topic)
    }

    /// The table itself, for recovery at open.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Arc<Topic<K, R>>>> {
        self.map.write()
    }

    /// Every topic, for a store's close.
    pub(crate) fn all(&self) -> Vec<Arc<Topic<K, R>>> {
        self.map.read().values().cloned().collect()
    }

    /// Validates an append of `payloads.len()` entries and finds (or
    /// creates) its topic.
    pub(crate) fn for_append(
        &self,
        name: &str,
        payloads: &[&[u8]],
        make: impl FnOnce() -> Result<K>,
    ) -> Result<Arc<Topic<K, R>>> {
        validate_topic(name)?;
        validate_batch_len(payloads.len())?;
        self.get_or_create(name, make)
    }
}

/// What one read asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Want {
    /// One entry (`read_next`): a point lookup.
    One,
    /// `batch_read` with this byte budget.
    Batch { max_bytes: usize },
}

/// The entries of a `batch_read`: at least one, then as many more as fit
/// in `max_bytes` of payload and [`MAX_BATCH_ENTRIES`].
pub(crate) struct Batch {
    pub(crate) entries: Vec<Entry>,
    max_bytes: usize,
    total_bytes: usize,
}

impl Batch {
    pub(crate) fn new(max_bytes: usize) -> Batch {
        Batch {
            entries: Vec::new(),
            max_bytes,
            total_bytes: 0,
        }
    }

    /// Whether an entry of `len` bytes still fits.
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.entries.is_empty()
            || (self.total_bytes.saturating_add(len) <= self.max_bytes
                && self.entries.len() < MAX_BATCH_ENTRIES)
    }

    /// Entries taken so far.
    #[cfg_attr(not(feature = "rocksdb"), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn push(&mut self, entry: Entry) {
        self.total_bytes = self.total_bytes.saturating_add(entry.data.len());
        self.entries.push(entry);
    }
}

/// How a store reads and persists, for [`read`].
pub(crate) trait KvRead<K, R> {
    /// The store's name, for errors.
    const STORE: &'static str;

    /// The store's topics.
    fn topics(&self) -> &Topics<K, R>;

    /// When the store persists a cursor.
    fn consistency(&self) -> ReadConsistency;

    /// The payload stored at `seq`, by a point lookup.
    fn lookup(&self, topic: &Topic<K, R>, seq: u64) -> Result<Option<Bytes>>;

    /// Entries from `from` (below `to`, the visible end) that fit in
    /// `batch`, usually by [`fill`]ing it from an iterator.
    fn scan(
        &self,
        topic: &Topic<K, R>,
        state: &mut R,
        from: u64,
        to: u64,
        batch: &mut Batch,
    ) -> Result<()>;

    /// Makes `topic`'s cursor `to` durable; `from` is its last persisted
    /// position.
    fn persist_cursor(&self, topic: &Topic<K, R>, from: u64, to: u64) -> Result<()>;
}

/// The read path of both stores: validates the name, reads from the
/// topic's cursor up to its visible end, and consumes what it returns if
/// `consume`, persisting the cursor as the store's consistency mode asks.
pub(crate) fn read<K, R: Default, S: KvRead<K, R>>(
    store: &S,
    name: &str,
    want: Want,
    consume: bool,
) -> Result<Vec<Entry>> {
    validate_topic(name)?;
    let Some(topic) = store.topics().get(name) else {
        return Ok(Vec::new());
    };
    let mut reader = topic.reader.lock();
    let reader = &mut *reader;
    let visible = topic.visible.load(Ordering::Acquire);
    let entries = if reader.cursor >= visible {
        Vec::new()
    } else {
        match want {
            Want::One => {
                let seq = reader.cursor;
                let data = store.lookup(&topic, seq)?;
                vec![Entry {
                    seq,
                    data: data.ok_or_else(|| topic.missing(S::STORE, seq))?,
                }]
            }
            Want::Batch { max_bytes } => {
                let mut batch = Batch::new(max_bytes);
                store.scan(
                    &topic,
                    &mut reader.state,
                    reader.cursor,
                    visible,
                    &mut batch,
                )?;
                batch.entries
            }
        }
    };
    if consume && !entries.is_empty() {
        reader.consume(store.consistency(), entries.len() as u64, |from, to| {
            store.persist_cursor(&topic, from, to)
        })?;
    }
    Ok(entries)
}

/// Fills `batch` with the entries `from..to` of `topic`, taken from
/// `items`: (seq, payload) pairs in key order from `from`. An item that is
/// missing or out of order below `to` is an error: those entries were
/// acknowledged. Stops at the first entry that does not fit; `items` is
/// not asked for more than it gives.
pub(crate) fn fill<K, R>(
    store: &'static str,
    topic: &Topic<K, R>,
    from: u64,
    to: u64,
    mut items: impl Iterator<Item = Result<(u64, Bytes)>>,
    batch: &mut Batch,
) -> Result<()> {
    for expected in from..to {
        let (seq, data) = items
            .next()
            .unwrap_or(Err(topic.missing(store, expected)))?;
        if seq != expected {
            return Err(topic.missing(store, expected));
        }
        if !batch.fits(data.len()) {
            break;
        }
        batch.push(Entry { seq, data });
    }
    Ok(())
}

/// A big-endian u64 (a seq key or a stored cursor) of store `store`.
pub(crate) fn decode_seq(store: &'static str, bytes: &[u8], what: &str) -> Result<u64> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| {
        Error::backend(
            store,
            format!("{what} is {} bytes, expected an 8-byte seq", bytes.len()),
        )
    })?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_takes_one_entry_whatever_its_size_then_what_fits() {
        let entry = |n: usize| Entry {
            seq: 0,
            data: Bytes::from(vec![0; n]),
        };
        let mut batch = Batch::new(10);
        assert!(batch.fits(100), "the first entry always fits");
        batch.push(entry(100));
        assert!(!batch.fits(1));
        let mut batch = Batch::new(10);
        batch.push(entry(4));
        assert!(batch.fits(6));
        assert!(!batch.fits(7));
    }

    #[test]
    fn consuming_persists_when_due_and_a_failed_persist_moves_nothing() {
        let topic: Topic<()> = Topic::new("t", (), 10, 0);
        let every_2 = ReadConsistency::AtLeastOnce { persist_every: 2 };
        let mut reader = topic.reader();
        let mut persisted = Vec::new();
        reader
            .consume(every_2, 1, |from, to| {
                persisted.push((from, to));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            (reader.cursor, reader.unpersisted(), persisted.len()),
            (1, 1, 0)
        );
        let failed = reader.consume(every_2, 1, |_, _| Err(Error::Failed("disk".into())));
        assert!(failed.is_err());
        assert_eq!((reader.cursor, reader.unpersisted()), (1, 1));
        reader
            .consume(every_2, 1, |from, to| {
                persisted.push((from, to));
                Ok(())
            })
            .unwrap();
        assert_eq!((reader.cursor, reader.unpersisted()), (2, 0));
        assert_eq!(persisted, [(0, 2)]);
    }
}
