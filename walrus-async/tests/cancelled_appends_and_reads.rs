//! Cancellation: appends dropped mid-flight (a timer wins a `timeout`, a
//! task is aborted) are never acknowledged and leave whole entries or none;
//! every acknowledged entry is in the log exactly once, in order, after a
//! clean close and after a power loss. Consuming reads dropped mid-flight
//! lose nothing: the next read returns what they consumed.

mod common;
use common::*;
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;
use tokio::time::timeout;
use walrus_async::{AsyncWalrus, Runtime};
use walrus_wal::testing::{Crash, SimStorage};
use walrus_wal::{Backend, WalrusBuilder};

const TASKS: usize = 16;
const TOPICS: usize = 4;
const PER_TASK: usize = 60;

#[derive(Default)]
struct Log {
    acked: Vec<(usize, usize)>,
    /// Cancelled after their first poll: the frame was written.
    cancelled: Vec<(usize, usize)>,
}

/// Runs `fut` until `limit` passes, or with `None` polls it exactly once;
/// `None` if it was dropped unfinished. (A zero timer is no substitute for
/// the single poll: tokio's timers fire on a millisecond tick, and a fast
/// fsync can beat it.)
async fn cancel_after<F: Future>(limit: Option<Duration>, fut: F) -> Option<F::Output> {
    match limit {
        Some(limit) => timeout(limit, fut).await.ok(),
        None => {
            let mut fut = std::pin::pin!(fut);
            let once = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx)));
            match once.await {
                Poll::Ready(output) => Some(output),
                Poll::Pending => None,
            }
        }
    }
}

/// Appenders racing short timers, plus appenders aborted mid-flight.
async fn storm(wal: Rc<AsyncWalrus>, log: Rc<RefCell<Log>>) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|w| {
            let (wal, log) = (wal.clone(), log.clone());
            walrus_async::spawn(async move {
                let topic = format!("topic-{}", w % TOPICS);
                for i in 0..PER_TASK {
                    // None: the append is polled once (it writes), then
                    // dropped while it waits for its fsync. Otherwise a
                    // timer races it.
                    let limit = [None, Some(50), Some(200), Some(5_000)][(i + w) % 4]
                        .map(Duration::from_micros);
                    let p = payload(w, i);
                    let outcome = if i % 7 == 3 {
                        let q = payload(w, i + PER_TASK);
                        cancel_after(limit, wal.batch_append(&topic, &[&p, &q])).await
                    } else {
                        cancel_after(limit, wal.append(&topic, &p)).await
                    };
                    let mut log = log.borrow_mut();
                    match outcome {
                        Some(Ok(())) => log.acked.push((w, i)),
                        Some(Err(e)) => panic!("append failed: {e}"),
                        None => log.cancelled.push((w, i)),
                    }
                }
            })
        })
        .collect();
    // Aborted tasks: killed while some append waits for its sync.
    let doomed: Vec<_> = (TASKS..TASKS + 4)
        .map(|w| {
            let (wal, log) = (wal.clone(), log.clone());
            walrus_async::spawn(async move {
                for i in 0.. {
                    wal.append(&format!("topic-{}", w % TOPICS), &payload(w, i))
                        .await
                        .unwrap();
                    log.borrow_mut().acked.push((w, i));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for d in doomed {
        d.abort();
        assert!(d.await.unwrap_err().is_cancelled());
    }
}

/// Checks every topic; acknowledged entries (and batches' second halves)
/// must be there, cancelled ones may be. Returns the entries found.
fn check(wal: &walrus_wal::Walrus, log: &Log, label: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    for t in 0..TOPICS {
        let entries = drain(wal, &format!("topic-{t}"));
        let mut acked: Vec<_> = log
            .acked
            .iter()
            .copied()
            .filter(|(w, _)| w % TOPICS == t)
            .collect();
        // A batch's second entry carries index i + PER_TASK, after every
        // single entry of its writer; order it accordingly.
        let batch_halves: Vec<_> = acked
            .iter()
            .filter(|(w, i)| *w < TASKS && i % 7 == 3)
            .map(|(w, i)| (*w, i + PER_TASK))
            .collect();
        acked.extend(batch_halves);
        let entries: Vec<_> = entries.iter().map(|e| parse(e)).collect();
        // Batches are atomic: both halves or neither.
        for &(w, i) in &entries {
            if w < TASKS && i < PER_TASK && i % 7 == 3 {
                assert!(
                    entries.contains(&(w, i + PER_TASK)),
                    "{label}: half a batch"
                );
            }
        }
        check_unordered_halves(&entries, &acked, label);
        found.extend(entries);
    }
    found
}

/// `check_topic` on (writer, index) pairs, with batch halves (index ≥
/// PER_TASK) checked for presence only: they sit mid-sequence.
fn check_unordered_halves(entries: &[(usize, usize)], acked: &[(usize, usize)], label: &str) {
    use std::collections::{HashMap, HashSet};
    let mut last: HashMap<usize, usize> = HashMap::new();
    let mut seen = HashSet::new();
    for &(w, i) in entries {
        assert!(seen.insert((w, i)), "{label}: {w}:{i} twice");
        if w < TASKS && i >= PER_TASK {
            continue;
        }
        if let Some(prev) = last.insert(w, i) {
            assert!(prev < i, "{label}: writer {w}'s {i} after its {prev}");
        }
    }
    for a in acked {
        assert!(seen.contains(a), "{label}: acknowledged {a:?} lost");
    }
}

fn run_storm(builder: WalrusBuilder, log: Rc<RefCell<Log>>) -> walrus_wal::Walrus {
    Runtime::new().unwrap().block_on(async move {
        let wal = Rc::new(AsyncWalrus::open(builder).await.unwrap());
        storm(wal.clone(), log).await;
        Rc::try_unwrap(wal)
            .ok()
            .unwrap()
            .into_walrus()
            .await
            .unwrap()
    })
}

#[test]
fn cancelled_appends_are_whole_or_absent_and_never_cost_an_ack() {
    for backend in [Backend::Fd, Backend::Mmap] {
        let dir = tempfile::tempdir().unwrap();
        let log: Rc<RefCell<Log>> = Default::default();
        drop(run_storm(on_disk(dir.path(), backend), log.clone()));
        let log = log.take();
        assert!(
            log.cancelled.len() >= TASKS * PER_TASK / 4,
            "{backend}: only {} appends were cancelled",
            log.cancelled.len()
        );
        let wal = on_disk(dir.path(), backend).open().unwrap();
        let found = check(&wal, &log, &format!("{backend}"));
        // Cancelled after their write, closed cleanly: they are all there.
        for c in &log.cancelled {
            assert!(found.contains(c), "{backend}: written {c:?} vanished");
        }
    }
}

#[test]
fn after_a_power_loss_every_acknowledged_append_survives_the_cancellations() {
    let sim = SimStorage::new();
    let log: Rc<RefCell<Log>> = Default::default();
    run_storm(on_sim(&sim), log.clone()).simulate_crash();
    let log = log.take();
    assert!(!log.cancelled.is_empty());
    let wal = on_sim(&sim.crash(Crash::LoseUnsynced)).open().unwrap();
    check(&wal, &log, "power loss");
}

#[test]
fn a_cancelled_consuming_read_hands_its_entries_to_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let total = 300;
    let delivered = Runtime::new().unwrap().block_on(async {
        let wal = AsyncWalrus::open(on_disk(dir.path(), Backend::Fd))
            .await
            .unwrap();
        for i in 0..total {
            wal.append("q", &payload(0, i)).await.unwrap();
        }
        let mut delivered = Vec::new();
        let mut round = 0usize;
        loop {
            round += 1;
            // Every other read is dropped while its blocking job runs.
            let limit = Duration::from_micros(if round.is_multiple_of(2) { 0 } else { 10_000 });
            let got = match round % 3 {
                0 => timeout(limit, wal.read_next("q", true))
                    .await
                    .map(|r| r.unwrap().into_iter().collect::<Vec<_>>()),
                1 => timeout(limit, wal.batch_read("q", 700, true))
                    .await
                    .map(|r| r.unwrap()),
                _ => {
                    // A peek must show the stash's head, and consume nothing.
                    let peek = wal.read_next("q", false).await.unwrap();
                    let next = wal.read_next("q", true).await.unwrap();
                    assert_eq!(peek, next, "a peek disagrees with the next read");
                    Ok(next.into_iter().collect())
                }
            };
            let Ok(entries) = got else { continue };
            if entries.is_empty() {
                break;
            }
            delivered.extend(entries.into_iter().map(|e| parse(&e.data).1));
            assert!(round < 10 * total, "reads stopped making progress");
        }
        wal.close().await.unwrap();
        delivered
    });
    assert_eq!(delivered, (0..total).collect::<Vec<_>>());
}
