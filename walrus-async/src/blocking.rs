//! `Blocking`: any `LogStore` as an `AsyncLogStore`, its calls run on tokio's
//! blocking pool so that no runtime thread waits for an fsync.
//!
//! Reads of a topic are serialized by an async lock that travels with the
//! entries a blocking job read: the topic's next read starts only once they
//! were taken by the caller or, when the caller's future was dropped
//! meanwhile (before or after they arrived), put back. What "put back"
//! means follows the store's [`ReadConsistency`], because the store has
//! already persisted what it consumed, or will at its next persist:
//!
//! * `StrictlyAtOnce`: the job consumes, as the store's own read would; the
//!   entries of a read whose caller went away go to the topic's stash, which
//!   the next reads return first. A crash before that loses them, as a crash
//!   loses entries a read returned but the caller has not processed yet.
//! * `AtLeastOnce`: the job only peeks. Once the caller has the entries, a
//!   second job consumes them in the store (before the topic's next read
//!   starts); if the caller went away, nothing was consumed and the store
//!   returns them again. So no entry is consumed in the store before a
//!   caller has it, and a crash never skips one. A crash between the hand
//!   over and that consumption returns the entries again, as the mode
//!   allows.
//!
//! Either way a cancelled read neither loses nor reorders entries while the
//! process lives. The wrapper must be the only consumer of its topics.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Mutex as AsyncMutex, OwnedMutexGuard};
use walrus_wal::{Entry, Error, LogStore, ReadConsistency, Result};

use crate::store::forward_async_log_store;

/// The read state of one topic, behind its lock.
#[derive(Default)]
struct TopicReads {
    /// `StrictlyAtOnce`: entries consumed by reads whose callers went away,
    /// for the next reads, oldest first.
    stash: VecDeque<Entry>,
    /// `AtLeastOnce`: entries handed to callers that the store has not
    /// consumed yet, oldest first, as (sequence number, payload length).
    /// Empty but for a consumption that failed (or is in flight); the next
    /// read consumes them before it reads.
    handed_out: VecDeque<(u64, usize)>,
}

type TopicLock = Arc<AsyncMutex<TopicReads>>;
type TopicGuard = OwnedMutexGuard<TopicReads>;

/// How long `close` sleeps between looks for blocking jobs still running.
const CLOSE_POLL: Duration = Duration::from_millis(1);

/// Runs a [`LogStore`] on tokio's blocking pool. Appends copy their payload
/// once (a blocking job cannot borrow the caller's bytes).
///
/// Tell it the store's read consistency with
/// [`Blocking::with_consistency`]: it decides what a cancelled consuming
/// read does (see the module docs). Without it the wrapper assumes
/// `StrictlyAtOnce`, which under an `AtLeastOnce` store lets a crash skip
/// the entries of a read cancelled just before.
pub struct Blocking<S: ?Sized + LogStore + 'static> {
    store: Arc<S>,
    consistency: ReadConsistency,
    topics: Mutex<HashMap<String, TopicLock>>,
}

/// What a read asks for.
#[derive(Clone, Copy)]
enum Want {
    Next,
    Bytes(usize),
}

impl<S: LogStore + 'static> Blocking<S> {
    pub fn new(store: S) -> Blocking<S> {
        Blocking::from_arc(Arc::new(store))
    }

    /// The store back, once no blocking job holds it any more. Entries that
    /// cancelled strict reads left in a stash are returned by no later read:
    /// they were consumed. Under `AtLeastOnce`, entries whose consumption
    /// failed after a caller had them are returned again by the store.
    pub async fn into_inner(self) -> Result<S> {
        let store = self.store;
        run_blocking(move || {
            wait_alone(&store);
            Arc::try_unwrap(store).map_err(|_| Error::Failed("the store is still shared".into()))
        })
        .await
    }
}

/// Blocks until `store` is the last handle: blocking jobs in flight (of
/// reads whose callers went away, and consumptions after a hand-over) each
/// hold one until they finish.
fn wait_alone<S: ?Sized>(store: &Arc<S>) {
    while Arc::strong_count(store) > 1 {
        std::thread::sleep(CLOSE_POLL);
    }
}

impl<S: ?Sized + LogStore + 'static> Blocking<S> {
    /// Wraps a shared store, e.g. `Arc::<dyn LogStore>::from(open_store(..)?)`.
    pub fn from_arc(store: Arc<S>) -> Blocking<S> {
        Blocking {
            store,
            consistency: ReadConsistency::StrictlyAtOnce,
            topics: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the read consistency the store was opened with (the default is
    /// `StrictlyAtOnce`). Only the mode matters here, not `persist_every`.
    pub fn with_consistency(mut self, consistency: ReadConsistency) -> Blocking<S> {
        self.consistency = consistency;
        self
    }

    /// The wrapped store (for blocking calls of the caller's own).
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub async fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        let (store, topic, payload) = (self.store.clone(), topic.to_owned(), payload.to_vec());
        run_blocking(move || store.append(&topic, &payload)).await
    }

    pub async fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        let store = self.store.clone();
        let topic = topic.to_owned();
        let owned: Vec<Vec<u8>> = payloads.iter().map(|p| p.to_vec()).collect();
        run_blocking(move || {
            let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            store.batch_append(&topic, &refs)
        })
        .await
    }

    pub async fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        Ok(self.read(topic, Want::Next, checkpoint).await?.pop())
    }

    pub async fn batch_read(
        &self,
        topic: &str,
        max_bytes: usize,
        checkpoint: bool,
    ) -> Result<Vec<Entry>> {
        self.read(topic, Want::Bytes(max_bytes), checkpoint).await
    }

    pub async fn sync(&self) -> Result<()> {
        let store = self.store.clone();
        run_blocking(move || store.sync()).await
    }

    /// Waits until no blocking job holds the store any more, then syncs and
    /// drops it on the blocking pool (a store's drop may fsync).
    pub async fn close(self) -> Result<()> {
        let store = self.store;
        run_blocking(move || {
            wait_alone(&store);
            let synced = store.sync();
            drop(store);
            synced
        })
        .await
    }

    fn topic_lock(&self, topic: &str) -> TopicLock {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.entry(topic.to_owned()).or_default().clone()
    }

    async fn read(&self, topic: &str, want: Want, checkpoint: bool) -> Result<Vec<Entry>> {
        let mut reads = self.topic_lock(topic).lock_owned().await;
        if !reads.stash.is_empty() {
            return Ok(take(&mut reads.stash, want, checkpoint));
        }
        let kind = match (checkpoint, self.consistency) {
            (false, _) => ReadKind::Peek,
            (true, ReadConsistency::StrictlyAtOnce) => ReadKind::Consumed,
            (true, ReadConsistency::AtLeastOnce { .. }) => ReadKind::ConsumeOnDelivery,
        };
        let consume = matches!(kind, ReadKind::Consumed);
        let (store, topic) = (self.store.clone(), topic.to_owned());
        let (tx, rx) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            // Entries an earlier read handed out come first: the cursor must
            // be past them before this read (a peek included) looks.
            let result = consume_handed_out(&*store, &topic, &mut reads.handed_out).and_then(
                |()| match want {
                    Want::Next => store
                        .read_next(&topic, consume)
                        .map(|e| e.into_iter().collect()),
                    Want::Bytes(max) => store.batch_read(&topic, max, consume),
                },
            );
            drop(store);
            let handoff = result.map(|entries| Handoff {
                entries,
                topic,
                kind,
                reads: Some(reads),
            });
            // Sent or not, the hand-over ends in `Handoff::deliver` or in
            // its drop, and either releases the topic.
            let _ = tx.send(handoff);
        });
        let handoff = rx
            .await
            .unwrap_or_else(|_| Err(Error::Failed("the blocking read task died".into())))?;
        Ok(handoff.deliver(&self.store))
    }
}

/// What a read's entries are to the store, which decides what their
/// hand-over does.
#[derive(Clone, Copy)]
enum ReadKind {
    /// Peeked: nothing to do either way.
    Peek,
    /// Consumed by the job (`StrictlyAtOnce`): if the caller went away,
    /// into the stash for the next reads.
    Consumed,
    /// Peeked for a consuming read (`AtLeastOnce`): consumed in the store
    /// once the caller has them; if it went away, the store still has them.
    ConsumeOnDelivery,
}

/// Entries on their way from a blocking job to the caller, with the topic's
/// lock. Dropped undelivered (the caller's future went away before or after
/// they were sent), it puts them back and releases the topic.
struct Handoff {
    entries: Vec<Entry>,
    topic: String,
    kind: ReadKind,
    /// `None` once delivered.
    reads: Option<TopicGuard>,
}

impl Handoff {
    /// The caller has the entries. After a `ConsumeOnDelivery` read, a
    /// blocking job now consumes them in the store, holding the topic until
    /// it is done; the caller does not wait for it. If that fails, they stay
    /// in `handed_out`, and the topic's next read consumes them first or
    /// fails with the error (so none is returned twice while the process
    /// lives).
    fn deliver<S: ?Sized + LogStore + 'static>(mut self, store: &Arc<S>) -> Vec<Entry> {
        let entries = std::mem::take(&mut self.entries);
        let mut reads = self.reads.take().expect("a hand-over is delivered once");
        if matches!(self.kind, ReadKind::ConsumeOnDelivery) && !entries.is_empty() {
            reads
                .handed_out
                .extend(entries.iter().map(|e| (e.seq, e.data.len())));
            let (store, topic) = (store.clone(), std::mem::take(&mut self.topic));
            tokio::task::spawn_blocking(move || {
                let _ = consume_handed_out(&*store, &topic, &mut reads.handed_out);
            });
        }
        entries
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        if let (Some(reads), ReadKind::Consumed) = (&mut self.reads, self.kind) {
            reads.stash.extend(self.entries.drain(..));
        }
    }
}

/// Consumes, in the store, the entries of `topic` that `handed_out` lists
/// (they are at its cursor), exactly those: each one is removed once the
/// store has consumed it.
fn consume_handed_out<S: ?Sized + LogStore>(
    store: &S,
    topic: &str,
    handed_out: &mut VecDeque<(u64, usize)>,
) -> Result<()> {
    while !handed_out.is_empty() {
        let total: usize = handed_out.iter().map(|&(_, len)| len).sum();
        let consumed = if handed_out.len() > 1 && total > 0 {
            // A budget one byte short of their total stops before the last
            // of them: with the full total, empty entries appended after
            // them would fit too, and be consumed without a caller.
            store.batch_read(topic, total - 1, true)?
        } else {
            store.read_next(topic, true)?.into_iter().collect()
        };
        if consumed.is_empty() {
            return Err(Error::Failed(format!(
                "topic {topic}: entries handed to a reader are no longer in the store"
            )));
        }
        for entry in consumed {
            match handed_out.pop_front() {
                Some((seq, _)) if seq == entry.seq => {}
                _ => {
                    return Err(Error::Failed(format!(
                        "topic {topic}: the store's cursor is not where this front end left \
                         it (does another consumer read the topic?)"
                    )))
                }
            }
        }
    }
    Ok(())
}

/// Serves a read from a topic's stash, as the store would have.
fn take(stash: &mut VecDeque<Entry>, want: Want, checkpoint: bool) -> Vec<Entry> {
    let count = match want {
        Want::Next => 1,
        Want::Bytes(max) => {
            let mut total = 0usize;
            let fits = stash
                .iter()
                .take_while(|e| {
                    total += e.data.len();
                    total <= max
                })
                .count();
            fits.max(1)
        }
    };
    let count = count.min(stash.len());
    if checkpoint {
        stash.drain(..count).collect()
    } else {
        stash.iter().take(count).cloned().collect()
    }
}

async fn run_blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(job)
        .await
        .unwrap_or_else(|e| Err(Error::Failed(format!("a blocking store call died: {e}"))))
}

forward_async_log_store!([S: ?Sized + LogStore + 'static] Blocking<S>, |me| me.store.name());

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use walrus_wal::Bytes;

    /// One topic in memory. Its consuming reads fail while
    /// `failing_consumes` is above zero, and first append what
    /// `appended_by_consume` holds (as a concurrent appender would).
    #[derive(Default)]
    struct Memory {
        entries: Mutex<Vec<Vec<u8>>>,
        cursor: Mutex<usize>,
        failing_consumes: AtomicUsize,
        appended_by_consume: Mutex<Vec<Vec<u8>>>,
    }

    impl Memory {
        fn with(entries: &[&[u8]]) -> Memory {
            let memory = Memory::default();
            *memory.entries.lock().unwrap() = entries.iter().map(|e| e.to_vec()).collect();
            memory
        }

        fn read(&self, max_entries: usize, max_bytes: usize, consume: bool) -> Result<Vec<Entry>> {
            if consume && self.failing_consumes.load(Ordering::SeqCst) > 0 {
                self.failing_consumes.fetch_sub(1, Ordering::SeqCst);
                return Err(Error::Failed("injected".into()));
            }
            let mut entries = self.entries.lock().unwrap();
            if consume {
                entries.append(&mut self.appended_by_consume.lock().unwrap());
            }
            let mut cursor = self.cursor.lock().unwrap();
            let (mut out, mut total) = (Vec::new(), 0);
            for (seq, data) in entries.iter().enumerate().skip(*cursor) {
                let full = out.len() == max_entries || total + data.len() > max_bytes;
                if !out.is_empty() && full {
                    break;
                }
                total += data.len();
                out.push(Entry {
                    seq: seq as u64,
                    data: Bytes::from(data.clone()),
                });
            }
            if consume {
                *cursor += out.len();
            }
            Ok(out)
        }
    }

    impl LogStore for Memory {
        fn name(&self) -> &str {
            "memory"
        }

        fn append(&self, _topic: &str, payload: &[u8]) -> Result<()> {
            self.entries.lock().unwrap().push(payload.to_vec());
            Ok(())
        }

        fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
            payloads.iter().try_for_each(|p| self.append(topic, p))
        }

        fn read_next(&self, _topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
            Ok(self.read(1, usize::MAX, checkpoint)?.pop())
        }

        fn batch_read(
            &self,
            _topic: &str,
            max_bytes: usize,
            checkpoint: bool,
        ) -> Result<Vec<Entry>> {
            self.read(usize::MAX, max_bytes, checkpoint)
        }

        fn sync(&self) -> Result<()> {
            Ok(())
        }
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn seqs(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.seq).collect()
    }

    fn at_least_once() -> ReadConsistency {
        ReadConsistency::AtLeastOnce { persist_every: 1 }
    }

    #[test]
    fn entries_handed_out_are_consumed_exactly_even_before_empty_ones() {
        let memory = Memory::with(&[b"x", b"", b"y"]);
        // Appended between the hand-over and its consumption: an empty
        // entry fits any budget that the three entries fit.
        *memory.appended_by_consume.lock().unwrap() = vec![Vec::new()];
        let store = run(async {
            let log = Blocking::new(memory).with_consistency(at_least_once());
            assert_eq!(
                seqs(&log.batch_read("q", 100, true).await.unwrap()),
                [0, 1, 2]
            );
            log.into_inner().await.unwrap()
        });
        assert_eq!(
            *store.cursor.lock().unwrap(),
            3,
            "consumed past the hand-over"
        );
    }

    #[test]
    fn a_failed_consumption_fails_the_next_read_and_repeats_nothing() {
        let memory = Memory::with(&[b"a", b"b", b"c", b"d"]);
        // The consumption after the first hand-over fails, and so does its
        // retry by the next read.
        memory.failing_consumes.store(2, Ordering::SeqCst);
        run(async {
            let log = Blocking::new(memory).with_consistency(at_least_once());
            assert_eq!(seqs(&log.batch_read("q", 2, true).await.unwrap()), [0, 1]);
            assert!(log.read_next("q", true).await.is_err());
            assert_eq!(log.read_next("q", true).await.unwrap().unwrap().seq, 2);
            assert_eq!(log.read_next("q", false).await.unwrap().unwrap().seq, 3);
            assert_eq!(seqs(&log.batch_read("q", 9, true).await.unwrap()), [3]);
            let store = log.into_inner().await.unwrap();
            assert_eq!(*store.cursor.lock().unwrap(), 4);
        });
    }
}
