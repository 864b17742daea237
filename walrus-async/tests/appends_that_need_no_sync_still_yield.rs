//! Under `NoFsync` and `Milliseconds`, an append has nothing to wait for
//! and resolves at once. A task appending in a loop must still yield to
//! the runtime now and then: otherwise a timer on the same thread never
//! fires, and a writer that stops "when the timer says so" runs until the
//! disk is full (found by `ASYNC=1 make compare`, whose async no-fsync cell
//! wrote 26 GiB before the disk filled).

mod common;
use common::*;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use walrus_async::{AsyncWalrus, Runtime};
use walrus_wal::testing::SimStorage;
use walrus_wal::FsyncSchedule;

/// Far more appends than fit in the timer's 20 ms.
const BOUND: u64 = 2_000_000;

#[test]
fn a_timer_fires_while_a_task_appends_in_a_loop() {
    for fsync in [FsyncSchedule::NoFsync, FsyncSchedule::Milliseconds(60_000)] {
        let sim = SimStorage::new();
        let builder = on_sim(&sim).fsync(fsync).segment_bytes(64 << 20);
        let appended = Runtime::new().unwrap().block_on(async move {
            let wal = Rc::new(AsyncWalrus::open(builder).await.unwrap());
            let stop = Rc::new(Cell::new(false));
            let writer = {
                let (wal, stop) = (wal.clone(), stop.clone());
                walrus_async::spawn(async move {
                    let mut n = 0;
                    while !stop.get() && n < BOUND {
                        wal.append("t", b"x").await.unwrap();
                        n += 1;
                    }
                    n
                })
            };
            tokio::time::sleep(Duration::from_millis(20)).await;
            stop.set(true);
            let n = writer.await.unwrap();
            Rc::try_unwrap(wal).ok().unwrap().close().await.unwrap();
            n
        });
        assert!(
            appended < BOUND,
            "{fsync}: the timer never fired while the writer appended"
        );
    }
}
