//! [`TopicHandle`]: a topic looked up once, for appends and reads that skip
//! the instance's topic map.
//!
//! `Walrus::append_for_topic(name, ..)` finds its topic in a map behind an
//! `RwLock` on every call: a hash of the name and a read-lock, whose atomic
//! update writes a cache line that every appender on every topic shares. A
//! handle holds the topic itself, so its appends touch only that topic's
//! own state and its segment's group-commit ticket (see
//! `docs/performance.md`, "Shared cache lines on the append path").

use super::{PendingWrite, Walrus};
use crate::store::{Entry, Result, MAX_BATCH_ENTRIES};
use crate::topic::Topic;
use std::sync::Arc;

/// One topic of a [`Walrus`] instance, from [`Walrus::topic`]. It borrows
/// the instance, so it cannot outlive it; share it between scoped threads
/// by reference, or take one handle per thread.
///
/// Every call behaves exactly as the instance's call of the same name with
/// this topic.
pub struct TopicHandle<'w> {
    wal: &'w Walrus,
    topic: Arc<Topic>,
}

impl Walrus {
    /// A handle on `topic` (created if it does not exist yet), whose calls
    /// skip the topic lookup of `append_for_topic` and the other calls.
    pub fn topic(&self, topic: &str) -> Result<TopicHandle<'_>> {
        crate::store::validate_topic(topic)?;
        Ok(TopicHandle {
            wal: self,
            topic: self.inner.topic(topic)?,
        })
    }
}

impl TopicHandle<'_> {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.topic.name
    }

    /// [`Walrus::append_for_topic`] to this topic.
    pub fn append(&self, payload: &[u8]) -> Result<()> {
        self.append_pending(&[payload])?.wait()
    }

    /// [`Walrus::batch_append_for_topic`] to this topic.
    pub fn batch_append(&self, payloads: &[&[u8]]) -> Result<()> {
        if payloads.is_empty() {
            return Ok(());
        }
        self.append_pending(payloads)?.wait()
    }

    /// [`Walrus::append_pending`] to this topic.
    pub fn append_pending(&self, payloads: &[&[u8]]) -> Result<PendingWrite> {
        let written = self.wal.inner.write_to(&self.topic, payloads)?;
        Ok(self.wal.inner.pending(written))
    }

    /// [`Walrus::read_next`] from this topic.
    pub fn read_next(&self, checkpoint: bool) -> Result<Option<Entry>> {
        Ok(self
            .wal
            .inner
            .read_from(&self.topic, usize::MAX, 1, checkpoint)?
            .pop())
    }

    /// [`Walrus::batch_read_for_topic`] from this topic.
    pub fn batch_read(&self, max_bytes: usize, checkpoint: bool) -> Result<Vec<Entry>> {
        self.wal
            .inner
            .read_from(&self.topic, max_bytes, MAX_BATCH_ENTRIES, checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Error, FsyncSchedule, ReadConsistency};
    use crate::{Backend, Walrus};
    use std::path::Path;

    fn open(dir: &Path, backend: Backend, fsync: FsyncSchedule) -> Walrus {
        Walrus::builder()
            .data_dir(dir)
            .backend(backend)
            .fsync(fsync)
            .consistency(ReadConsistency::StrictlyAtOnce)
            .segment_bytes(256 << 10)
            .extent_bytes(16 << 10)
            .quiet(true)
            .open()
            .unwrap()
    }

    fn payload(i: u64) -> Vec<u8> {
        format!("entry {i} ")
            .repeat(1 + (i % 40) as usize)
            .into_bytes()
    }

    /// Handle calls and by-name calls are one topic: they interleave, share
    /// the cursor, roll over extents and segments, and survive a reopen.
    #[test]
    fn handle_and_name_calls_share_one_topic_across_rollover_and_reopen() {
        for backend in [Backend::Fd, Backend::Mmap] {
            for fsync in [FsyncSchedule::SyncEach, FsyncSchedule::NoFsync] {
                let tmp = tempfile::tempdir().unwrap();
                let n = 2_000u64; // about 420 KiB: many extents, segment rollovers
                {
                    let wal = open(tmp.path(), backend, fsync);
                    let t = wal.topic("orders").unwrap();
                    assert_eq!(t.name(), "orders");
                    for i in 0..n {
                        if i % 3 == 0 {
                            wal.append_for_topic("orders", &payload(i)).unwrap();
                        } else if i % 3 == 1 {
                            t.append(&payload(i)).unwrap();
                        } else {
                            let p = payload(i);
                            t.batch_append(&[&p]).unwrap();
                        }
                    }
                    for i in 0..n / 2 {
                        let e = if i % 2 == 0 {
                            t.read_next(true).unwrap().unwrap()
                        } else {
                            wal.read_next("orders", true).unwrap().unwrap()
                        };
                        assert_eq!((e.seq, &e.data[..]), (i, &payload(i)[..]));
                    }
                    let peek = t.read_next(false).unwrap().unwrap();
                    assert_eq!(peek.seq, n / 2, "a peek leaves the cursor");
                    wal.close().unwrap();
                }
                let wal = open(tmp.path(), backend, fsync);
                let t = wal.topic("orders").unwrap();
                let mut next = n / 2;
                loop {
                    let got = t.batch_read(8 << 10, true).unwrap();
                    if got.is_empty() {
                        break;
                    }
                    for e in got {
                        assert_eq!((e.seq, &e.data[..]), (next, &payload(next)[..]));
                        next += 1;
                    }
                }
                assert_eq!(next, n, "{backend:?} {fsync:?}: every entry after reopen");
            }
        }
    }

    /// Several threads, each on its own handle (and two sharing one), append
    /// at once; every entry is there once, in each thread's order.
    #[test]
    fn handles_on_many_threads_lose_and_reorder_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let wal = open(tmp.path(), Backend::Fd, FsyncSchedule::SyncEach);
        let shared = wal.topic("shared").unwrap();
        std::thread::scope(|s| {
            for k in 0..3u64 {
                let wal = &wal;
                s.spawn(move || {
                    let own = wal.topic(&format!("t{k}")).unwrap();
                    for i in 0..200 {
                        own.append(&payload(i)).unwrap();
                    }
                });
            }
            for k in 0..2u64 {
                let shared = &shared;
                s.spawn(move || {
                    for i in 0..200 {
                        shared.append(format!("{k}:{i}").as_bytes()).unwrap();
                    }
                });
            }
        });
        for k in 0..3 {
            let own = wal.topic(&format!("t{k}")).unwrap();
            for i in 0..200 {
                assert_eq!(
                    &own.read_next(true).unwrap().unwrap().data[..],
                    &payload(i)[..]
                );
            }
            assert!(own.read_next(true).unwrap().is_none());
        }
        let mut last = [None::<u64>; 2];
        let mut count = 0;
        while let Some(e) = shared.read_next(true).unwrap() {
            let text = String::from_utf8(e.data.to_vec()).unwrap();
            let (k, i) = text.split_once(':').unwrap();
            let (k, i): (usize, u64) = (k.parse().unwrap(), i.parse().unwrap());
            assert_eq!(last[k].map_or(0, |l| l + 1), i, "thread {k}'s order");
            last[k] = Some(i);
            count += 1;
        }
        assert_eq!(count, 400);
    }

    #[test]
    fn a_bad_topic_name_is_refused_with_a_typed_error_and_an_empty_batch_is_a_no_op() {
        let tmp = tempfile::tempdir().unwrap();
        let wal = open(tmp.path(), Backend::Mmap, FsyncSchedule::NoFsync);
        assert!(matches!(wal.topic(""), Err(Error::InvalidTopic { .. })));
        let t = wal.topic("t").unwrap();
        t.batch_append(&[]).unwrap();
        assert!(t.read_next(true).unwrap().is_none());
        assert!(matches!(
            t.batch_append(&vec![&b"x"[..]; 2_001]),
            Err(Error::InvalidBatch { .. })
        ));
    }
}
