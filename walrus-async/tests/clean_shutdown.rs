//! `close().await` serves every append still waiting, flushes whatever the
//! schedule had not synced yet, persists cursors and closes the engine: a
//! power loss right after it loses no acknowledged entry under any
//! schedule, and a reopen resumes after what was consumed. Closing while
//! other handles live is a typed error.

mod common;
use common::*;
use std::rc::Rc;
use walrus_async::{AsyncLogStore, AsyncWalrus, Runtime};
use walrus_wal::testing::{Crash, SimStorage};
use walrus_wal::{Error, FsyncSchedule, ReadConsistency};

#[test]
fn nothing_acknowledged_is_lost_after_close_under_every_schedule() {
    for fsync in [
        FsyncSchedule::SyncEach,
        FsyncSchedule::Milliseconds(60_000),
        FsyncSchedule::NoFsync,
    ] {
        let sim = SimStorage::new();
        let builder = on_sim(&sim)
            .fsync(fsync)
            .consistency(ReadConsistency::AtLeastOnce {
                persist_every: 1_000,
            });
        let acked = Runtime::new().unwrap().block_on(async move {
            let wal = Rc::new(AsyncWalrus::open(builder).await.unwrap());
            let tasks: Vec<_> = (0..8)
                .map(|w| {
                    let wal = wal.clone();
                    walrus_async::spawn(async move {
                        for i in 0..50 {
                            wal.append(&format!("t{}", w % 2), &payload(w, i))
                                .await
                                .unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            // Consume 10 entries of t0; AtLeastOnce has not persisted them.
            for _ in 0..10 {
                wal.read_next("t0", true).await.unwrap().unwrap();
            }
            let closing = wal.clone();
            let err = AsyncLogStore::close(closing).await.unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
            Rc::try_unwrap(wal).ok().unwrap().close().await.unwrap();
            (0..8)
                .flat_map(|w| (0..50).map(move |i| (w, i)))
                .collect::<Vec<_>>()
        });
        let wal = on_sim(&sim.crash(Crash::LoseUnsynced)).open().unwrap();
        let t0 = drain(&wal, "t0");
        let t1 = drain(&wal, "t1");
        let label = format!("{fsync}");
        let in_t0: Vec<_> = acked.iter().copied().filter(|(w, _)| w % 2 == 0).collect();
        let in_t1: Vec<_> = acked.iter().copied().filter(|(w, _)| w % 2 == 1).collect();
        assert_eq!(check_topic(&t1, &in_t1, &label), in_t1.len());
        assert_eq!(
            t0.len(),
            in_t0.len() - 10,
            "{label}: the cursor persisted at close"
        );
        let rest: Vec<_> = t0.iter().map(|e| parse(e)).collect();
        check_topic(&t0, &in_t0[..0], &label);
        assert!(
            in_t0.iter().filter(|a| !rest.contains(a)).count() == 10,
            "{label}: exactly the consumed entries are gone"
        );
    }
}
