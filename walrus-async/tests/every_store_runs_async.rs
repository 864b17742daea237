//! The same async application runs against every store compiled in:
//! Walrus natively, the others through the blocking pool. Many tasks append
//! with awaited durability, a consumer drains, the store closes, and a
//! blocking reopen of the same directory finds everything consumed and the
//! appended entries in each task's order.

mod common;
use common::*;
use std::rc::Rc;
use walrus_adapters::open_store;
use walrus_async::{open_async_store, AsyncLogStore, Runtime, StoreKind};
use walrus_wal::{FsyncSchedule, ReadConsistency, StoreConfig};

const TASKS: usize = 16;
const PER_TASK: usize = 25;

async fn app(log: Rc<dyn AsyncLogStore>) -> Vec<Vec<u8>> {
    let tasks: Vec<_> = (0..TASKS)
        .map(|w| {
            let log = log.clone();
            walrus_async::spawn(async move {
                for i in 0..PER_TASK {
                    if i % 5 == 0 {
                        let (a, b) = (payload(w, 2 * i), payload(w, 2 * i + 1));
                        log.batch_append("events", &[&a, &b]).await.unwrap();
                    } else {
                        log.append("events", &payload(w, 2 * i)).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    log.sync().await.unwrap();
    let mut got = Vec::new();
    while let Some(e) = log.read_next("events", true).await.unwrap() {
        got.push(e.data.to_vec());
        if got.len() % 7 == 0 {
            got.extend(
                log.batch_read("events", 900, true)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.data.to_vec()),
            );
        }
    }
    got
}

#[test]
fn one_async_application_runs_on_every_store() {
    let config = StoreConfig {
        consistency: ReadConsistency::StrictlyAtOnce,
        fsync: FsyncSchedule::SyncEach,
    };
    for kind in StoreKind::all_available() {
        let dir = tempfile::tempdir().unwrap();
        let got = Runtime::new().unwrap().block_on(async {
            let log = open_async_store(kind, dir.path(), config).await.unwrap();
            let got = app(log.clone()).await;
            log.close().await.unwrap();
            got
        });
        let acked: Vec<_> = (0..TASKS)
            .flat_map(|w| {
                (0..PER_TASK).flat_map(move |i| {
                    let both = if i % 5 == 0 { 2 } else { 1 };
                    (0..both).map(move |k| (w, 2 * i + k))
                })
            })
            .collect();
        let label = kind.to_string();
        assert_eq!(check_topic(&got, &acked, &label), acked.len(), "{label}");
        let reopened = open_store(kind, dir.path(), config).unwrap();
        assert!(
            reopened.read_next("events", true).unwrap().is_none(),
            "{label}: a consumed entry came back"
        );
    }
}
