//! Many tasks appending to several topics with SyncEach: the moment an
//! append resolves, its entry is durable. Checked on the simulated storage
//! by cutting the power right after acknowledgements (a crash image that
//! keeps only synced data) and on disk, through io_uring, by reopening.
//! Concurrent appenders share fsyncs.

mod common;
use common::*;
use std::cell::RefCell;
use std::rc::Rc;
use walrus_async::{AsyncWalrus, Runtime};
use walrus_wal::testing::{Crash, FaultKind, SimStorage};

const TASKS: usize = 32;
const TOPICS: usize = 4;
const PER_TASK: usize = 40;

fn topic(w: usize) -> String {
    format!("topic-{}", w % TOPICS)
}

type Acked = Rc<RefCell<Vec<(usize, usize)>>>;
/// Called after every acknowledgement with everything acknowledged so far.
type OnAck = Rc<dyn Fn(&[(usize, usize)])>;
/// Power-loss images, each with what was acknowledged when it was taken.
type Images = Rc<RefCell<Vec<(SimStorage, Vec<(usize, usize)>)>>>;

/// Spawns TASKS appenders; each records its acknowledgements and, when
/// `snapshot` says so, captures a power-loss image at that very moment.
async fn append_everywhere(wal: Rc<AsyncWalrus>, acked: Acked, snapshot: OnAck) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|w| {
            let (wal, acked, snapshot) = (wal.clone(), acked.clone(), snapshot.clone());
            walrus_async::spawn(async move {
                for i in 0..PER_TASK {
                    // Entry indices 2i (and 2i + 1 for a batch): increasing.
                    if i % 5 == 4 {
                        let (a, b) = (payload(w, 2 * i), payload(w, 2 * i + 1));
                        wal.batch_append(&topic(w), &[&a, &b]).await.unwrap();
                        acked.borrow_mut().extend([(w, 2 * i), (w, 2 * i + 1)]);
                    } else {
                        wal.append(&topic(w), &payload(w, 2 * i)).await.unwrap();
                        acked.borrow_mut().push((w, 2 * i));
                    }
                    // No await between the ack and the image.
                    snapshot(&acked.borrow());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn check_all(wal: &walrus_wal::Walrus, acked: &[(usize, usize)], label: &str) -> usize {
    let mut total = 0;
    for t in 0..TOPICS {
        let mine: Vec<_> = acked
            .iter()
            .copied()
            .filter(|(w, _)| w % TOPICS == t)
            .collect();
        total += check_topic(&drain(wal, &format!("topic-{t}")), &mine, label);
    }
    total
}

#[test]
fn every_awaited_append_survives_a_power_loss_at_once() {
    let sim = SimStorage::new();
    let images: Images = Default::default();
    let acked: Acked = Default::default();
    let syncs_before = sim.count(FaultKind::Sync);
    Runtime::new().unwrap().block_on({
        let (sim, images, acked) = (sim.clone(), images.clone(), acked.clone());
        async move {
            let wal = Rc::new(AsyncWalrus::open(on_sim(&sim)).await.unwrap());
            let count = Rc::new(RefCell::new(0usize));
            let snap = {
                let (sim, images) = (sim.clone(), images.clone());
                Rc::new(move |acked: &[(usize, usize)]| {
                    let mut n = count.borrow_mut();
                    *n += 1;
                    if n.is_multiple_of(97) {
                        let image = sim.crash(Crash::LoseUnsynced);
                        images.borrow_mut().push((image, acked.to_vec()));
                    }
                })
            };
            append_everywhere(wal.clone(), acked, snap).await;
            Rc::try_unwrap(wal).ok().unwrap().close().await.unwrap();
        }
    });
    let appends = TASKS * PER_TASK;
    let syncs = (sim.count(FaultKind::Sync) - syncs_before) as usize;
    assert!(
        syncs * 4 < appends,
        "{syncs} syncs for {appends} appends: the tasks did not share fsyncs"
    );
    let images = images.take();
    assert!(
        images.len() >= 10,
        "only {} power-loss images",
        images.len()
    );
    for (k, (image, acked_then)) in images.into_iter().enumerate() {
        let wal = on_sim(&image).open().unwrap();
        check_all(&wal, &acked_then, &format!("image {k}"));
    }
    let wal = on_sim(&sim.crash(Crash::LoseUnsynced)).open().unwrap();
    let acked = acked.take();
    assert_eq!(acked.len(), appends + TASKS * PER_TASK / 5);
    assert_eq!(check_all(&wal, &acked, "after close"), acked.len());
}

#[test]
fn io_uring_syncs_on_both_backends_keep_every_acknowledged_append() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let acked: Acked = Default::default();
        Runtime::new().unwrap().block_on({
            let (acked, dir) = (acked.clone(), dir.path().to_owned());
            async move {
                let wal = Rc::new(AsyncWalrus::open(on_disk(&dir, backend)).await.unwrap());
                append_everywhere(wal.clone(), acked, Rc::new(|_: &[_]| {})).await;
                // A process crash: no close, no final flush.
                let wal = Rc::try_unwrap(wal).ok().unwrap();
                wal.into_walrus().await.unwrap().simulate_crash();
            }
        });
        let wal = on_disk(dir.path(), backend).open().unwrap();
        let acked = acked.take();
        assert_eq!(
            check_all(&wal, &acked, &format!("{backend}")),
            acked.len(),
            "{backend}: extra entries"
        );
    }
}
