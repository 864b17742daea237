//! Consuming reads cancelled mid-flight, and what a crash then leaves.
//!
//! Under `AtLeastOnce` a cancelled read's entries must come back after a
//! crash (the store consumed nothing for a caller who never had them), and
//! while the process lives the next reads return every entry exactly once,
//! in order. Under `StrictlyAtOnce` the entries of a read whose caller went
//! away, even after they had arrived, go to the next read of the topic.

mod common;
use common::*;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use walrus_adapters::open_store;
use walrus_async::{Blocking, StoreKind};
use walrus_wal::testing::{Crash, SimStorage};
use walrus_wal::{Entry, FsyncSchedule, LogStore, ReadConsistency, Result, StoreConfig, Walrus};

const ENTRIES: u64 = 12;

/// A tokio runtime for `Blocking`, which needs no io_uring (only the
/// blocking pool), so these tests run where io_uring is refused too.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// A store whose reads wait while the gate is closed: a test polls a read
/// once, knowing its blocking job cannot finish meanwhile, and drops it.
struct Gated<S: ?Sized> {
    closed: AtomicBool,
    store: Box<S>,
}

impl<S: ?Sized + LogStore> Gated<S> {
    fn new(store: Box<S>) -> Gated<S> {
        Gated {
            closed: AtomicBool::new(false),
            store,
        }
    }

    fn wait(&self) {
        while self.closed.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl<S: ?Sized + LogStore> LogStore for Gated<S> {
    fn name(&self) -> &str {
        self.store.name()
    }

    fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.store.append(topic, payload)
    }

    fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        self.store.batch_append(topic, payloads)
    }

    fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        self.wait();
        self.store.read_next(topic, checkpoint)
    }

    fn batch_read(&self, topic: &str, max_bytes: usize, checkpoint: bool) -> Result<Vec<Entry>> {
        self.wait();
        self.store.batch_read(topic, max_bytes, checkpoint)
    }

    fn sync(&self) -> Result<()> {
        self.store.sync()
    }
}

/// Polls `fut` once, which must leave it pending, and drops it: its
/// blocking job runs on without a caller once `store`'s gate opens.
async fn cancel<S: ?Sized, F: Future>(store: &Gated<S>, fut: F) {
    store.closed.store(true, Ordering::SeqCst);
    {
        let mut fut = std::pin::pin!(fut);
        let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        assert!(
            polled.is_pending(),
            "the read finished behind a closed gate"
        );
    }
    store.closed.store(false, Ordering::SeqCst);
}

/// Polls `fut` once and drops it if it is not done.
async fn poll_once<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    match std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

fn at_least_once(persist_every: u32) -> ReadConsistency {
    ReadConsistency::AtLeastOnce { persist_every }
}

/// Sequence numbers left in `topic`, consumed.
fn remaining(wal: &Walrus, topic: &str) -> Vec<u64> {
    let mut seqs = Vec::new();
    loop {
        let batch = wal.batch_read_for_topic(topic, 1 << 20, true).unwrap();
        if batch.is_empty() {
            return seqs;
        }
        seqs.extend(batch.into_iter().map(|e| e.seq));
    }
}

#[test]
fn a_cancelled_at_least_once_read_is_redelivered_after_a_crash() {
    let rt = runtime();
    for persist_every in [1, 2] {
        for batch in [false, true] {
            let label = format!("persist_every {persist_every}, batch {batch}");
            let sim = SimStorage::new();
            let consistency = at_least_once(persist_every);
            let wal = on_sim(&sim).consistency(consistency).open().unwrap();
            for i in 0..ENTRIES {
                wal.append_for_topic("q", &payload(0, i as usize)).unwrap();
            }
            let wal = rt.block_on(async {
                let log = Blocking::new(Gated::new(Box::new(wal))).with_consistency(consistency);
                // Two delivered: with persist_every 1 or 2 the cursor is
                // persisted at 2.
                for seq in 0..2 {
                    assert_eq!(log.read_next("q", true).await.unwrap().unwrap().seq, seq);
                }
                if batch {
                    cancel(log.store(), log.batch_read("q", 1 << 20, true)).await;
                } else {
                    cancel(log.store(), log.read_next("q", true)).await;
                }
                // Waits for the cancelled read's job; the engine is not closed.
                log.into_inner().await.unwrap().store
            });
            wal.simulate_crash();
            for how in [Crash::Process, Crash::LoseUnsynced] {
                let wal = on_sim(&sim.crash(how))
                    .consistency(consistency)
                    .open()
                    .unwrap();
                assert_eq!(
                    remaining(&wal, "q"),
                    (2..ENTRIES).collect::<Vec<_>>(),
                    "{label}, {how:?}: the cancelled read's entries were skipped"
                );
                wal.simulate_crash();
            }
        }
    }
}

/// A read cancelled before a clean close consumed nothing, on every store.
#[test]
fn a_cancelled_at_least_once_read_survives_a_clean_close_on_every_store() {
    let rt = runtime();
    let config = StoreConfig {
        consistency: at_least_once(1),
        fsync: FsyncSchedule::SyncEach,
    };
    for kind in StoreKind::all_available() {
        let dir = tempfile::tempdir().unwrap();
        let store = Gated::new(open_store(kind, dir.path(), config).unwrap());
        for i in 0..ENTRIES {
            store.append("q", &payload(0, i as usize)).unwrap();
        }
        rt.block_on(async {
            let log = Blocking::new(store).with_consistency(config.consistency);
            assert_eq!(log.read_next("q", true).await.unwrap().unwrap().seq, 0);
            cancel(log.store(), log.batch_read("q", 1 << 20, true)).await;
            log.close().await.unwrap();
        });
        let store = open_store(kind, dir.path(), config).unwrap();
        let next = store.read_next("q", true).unwrap().map(|e| e.seq);
        assert_eq!(
            next,
            Some(1),
            "{kind}: the cancelled read's entries are gone"
        );
    }
}

/// Entries of varying length, some empty: the consumption after a hand-over
/// must take exactly the entries handed out, also when empty ones follow.
fn mixed_payload(i: u64) -> Vec<u8> {
    if i % 5 < 2 {
        Vec::new()
    } else {
        vec![b'x'; (i as usize * 37) % 150]
    }
}

/// Reads by turns: single and batch reads under short timers that
/// cancel some mid-flight, reads polled once and dropped, and peeks; every
/// entry is delivered exactly once, in order, while the process lives.
#[test]
fn cancelled_at_least_once_reads_deliver_every_entry_once_in_order() {
    let rt = runtime();
    let total = 300u64;
    let dir = tempfile::tempdir().unwrap();
    let delivered = rt.block_on(async {
        let wal = on_disk(dir.path(), walrus_wal::Backend::Fd)
            .consistency(at_least_once(3))
            .open()
            .unwrap();
        for i in 0..total {
            wal.append_for_topic("q", &mixed_payload(i)).unwrap();
        }
        let log = Blocking::new(wal).with_consistency(at_least_once(3));
        let mut delivered = Vec::new();
        let mut round = 0u64;
        loop {
            round += 1;
            let limit = Duration::from_micros([0, 50, 10_000][(round % 3) as usize]);
            let got = match round % 4 {
                0 => tokio::time::timeout(limit, log.read_next("q", true))
                    .await
                    .map(|r| r.unwrap().into_iter().collect::<Vec<_>>())
                    .ok(),
                1 => tokio::time::timeout(limit, log.batch_read("q", 400, true))
                    .await
                    .map(|r| r.unwrap())
                    .ok(),
                2 => poll_once(log.batch_read("q", 400, true))
                    .await
                    .map(|r| r.unwrap()),
                _ => {
                    let peek = log.read_next("q", false).await.unwrap();
                    let next = log.read_next("q", true).await.unwrap();
                    assert_eq!(peek, next, "a peek disagrees with the next read");
                    Some(next.into_iter().collect())
                }
            };
            let Some(entries) = got else { continue };
            if entries.is_empty() {
                break;
            }
            for e in &entries {
                assert_eq!(*e.data, *mixed_payload(e.seq), "entry {} damaged", e.seq);
            }
            delivered.extend(entries.into_iter().map(|e| e.seq));
            assert!(round < 20 * total, "reads stopped making progress");
        }
        log.close().await.unwrap();
        delivered
    });
    assert_eq!(delivered, (0..total).collect::<Vec<_>>());
    // And the clean close left the cursor at the end.
    let wal = on_disk(dir.path(), walrus_wal::Backend::Fd)
        .consistency(at_least_once(3))
        .open()
        .unwrap();
    assert!(wal.read_next("q", true).unwrap().is_none());
}

/// A strict read whose entries had already reached the caller's channel
/// when the caller went away: they go to the next read, not with the
/// dropped future.
#[test]
fn a_strict_read_dropped_after_its_entries_arrived_passes_them_on() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let wal = on_disk(dir.path(), walrus_wal::Backend::Fd).open().unwrap();
    for i in 0..ENTRIES {
        wal.append_for_topic("q", &payload(0, i as usize)).unwrap();
    }
    rt.block_on(async {
        let log = Blocking::new(Gated::new(Box::new(wal)));
        log.store().closed.store(true, Ordering::SeqCst);
        {
            let mut read = std::pin::pin!(log.read_next("q", true));
            let polled = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
            assert!(polled.is_pending());
            log.store().closed.store(false, Ordering::SeqCst);
            // The job lets go of the store just before it sends; give the
            // send time to complete, then drop the read without polling it.
            while Arc::strong_count(log.store()) > 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let entry = log.read_next("q", true).await.unwrap().unwrap();
        assert_eq!(entry.seq, 0, "the dropped read's entry was lost");
        log.close().await.unwrap();
    });
}
