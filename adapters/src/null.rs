//! The null store: every topic is a queue in memory, nothing touches a disk.
//!
//! It exists for the benchmark harness. Its row is what the harness itself
//! can drive (payload generation, the `LogStore` call through a `dyn`,
//! timing, verification), so a store whose figure comes close to it is
//! limited by the harness, not by its own work.
//!
//! What it claims: the `LogStore` contract within one open (appends in
//! order, atomic batches, `batch_read`'s byte and entry caps, consuming and
//! peeking reads, topic validation). What it does not: nothing survives a
//! reopen or a crash, whatever the fsync mode, and `sync` does nothing. It is
//! therefore not in `StoreKind::all_available()` and not run by the
//! conformance suite, whose properties reopen stores.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use walrus_store::{
    validate_batch_len, validate_topic, Bytes, Entry, LogStore, Result, StoreConfig,
    MAX_BATCH_ENTRIES,
};

#[derive(Default)]
struct Topic {
    /// Seq of the front of `entries`.
    head: u64,
    entries: VecDeque<Bytes>,
}

/// See the module docs.
#[derive(Default)]
pub struct NullStore {
    topics: RwLock<HashMap<String, Arc<Mutex<Topic>>>>,
}

impl NullStore {
    /// An empty store. `dir` and `config` are ignored: nothing is written.
    pub fn open(_dir: &Path, _config: StoreConfig) -> Result<NullStore> {
        Ok(NullStore::default())
    }

    fn topic(&self, name: &str) -> Result<Arc<Mutex<Topic>>> {
        validate_topic(name)?;
        if let Some(t) = self.topics.read().get(name) {
            return Ok(Arc::clone(t));
        }
        Ok(Arc::clone(
            self.topics.write().entry(name.to_owned()).or_default(),
        ))
    }
}

impl LogStore for NullStore {
    fn name(&self) -> &str {
        "null"
    }

    fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        let t = self.topic(topic)?;
        t.lock().entries.push_back(Bytes::copy_from_slice(payload));
        Ok(())
    }

    fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        validate_batch_len(payloads.len())?;
        let t = self.topic(topic)?;
        let copies: Vec<Bytes> = payloads.iter().map(|p| Bytes::copy_from_slice(p)).collect();
        t.lock().entries.extend(copies);
        Ok(())
    }

    fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        let t = self.topic(topic)?;
        let mut t = t.lock();
        let seq = t.head;
        let data = if checkpoint {
            let data = t.entries.pop_front();
            if data.is_some() {
                t.head += 1;
            }
            data
        } else {
            t.entries.front().cloned()
        };
        Ok(data.map(|data| Entry { seq, data }))
    }

    fn batch_read(&self, topic: &str, max_bytes: usize, checkpoint: bool) -> Result<Vec<Entry>> {
        let t = self.topic(topic)?;
        let mut t = t.lock();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for data in t.entries.iter() {
            if out.len() == MAX_BATCH_ENTRIES
                || (!out.is_empty() && bytes.saturating_add(data.len()) > max_bytes)
            {
                break;
            }
            bytes = bytes.saturating_add(data.len());
            out.push(Entry {
                seq: t.head + out.len() as u64,
                data: data.clone(),
            });
        }
        if checkpoint {
            t.entries.drain(..out.len());
            t.head += out.len() as u64;
        }
        Ok(out)
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_in_order_and_consumes() {
        let s = NullStore::default();
        s.append("t", b"a").unwrap();
        s.batch_append("t", &[b"bb", b"ccc"]).unwrap();
        assert_eq!(s.read_next("t", false).unwrap().unwrap().seq, 0);
        let e = s.read_next("t", true).unwrap().unwrap();
        assert_eq!((e.seq, &e.data[..]), (0, &b"a"[..]));
        let batch = s.batch_read("t", 2, true).unwrap();
        assert_eq!(batch.len(), 1, "max_bytes stops after bb");
        assert_eq!(batch[0].seq, 1);
        let rest = s.batch_read("t", 1 << 20, true).unwrap();
        assert_eq!((rest.len(), rest[0].seq), (1, 2));
        assert!(s.read_next("t", true).unwrap().is_none());
        assert!(s.append("", b"x").is_err());
    }
}
