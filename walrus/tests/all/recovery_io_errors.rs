//! A failed open or read during recovery says nothing about the file: the
//! open fails with the I/O error, or succeeds having lost nothing; it never
//! takes an intact file for damage. Regression: an EIO opening
//! `cursors.snap` had the snapshot moved to lost+found as damaged, and every
//! consumed entry was delivered again (found by
//! `fault_sweep::random_faults_and_torn_power_losses`).

use std::path::Path;
use std::sync::Arc;
use walrus_wal::testing::{Crash, Fault, FaultKind, SimStorage};
use walrus_wal::{Error, FsyncSchedule, ReadConsistency, Walrus};

fn open(sim: &SimStorage) -> walrus_wal::Result<Walrus> {
    Walrus::builder()
        .data_dir(Path::new("/sim"))
        .storage(Arc::new(sim.clone()))
        .quiet(true)
        .segment_bytes(16 * 1024)
        .extent_bytes(8 * 1024)
        .consistency(ReadConsistency::StrictlyAtOnce)
        .fsync(FsyncSchedule::SyncEach)
        .open()
}

#[test]
fn an_io_error_at_recovery_fails_the_open_or_costs_nothing() {
    let sim = SimStorage::new();
    {
        let wal = open(&sim).unwrap();
        for i in 0..40u32 {
            let topic = if i % 2 == 0 { "a" } else { "b" };
            wal.append_for_topic(topic, &[i as u8; 700]).unwrap();
        }
        for _ in 0..7 {
            wal.read_next("a", true).unwrap().unwrap();
        }
    }
    // One clean reopen folds the cursor log into a snapshot.
    drop(open(&sim).unwrap());
    let mut failed_opens = 0;
    for kind in [FaultKind::Open, FaultKind::Read] {
        for nth in 0..40 {
            let image = sim.crash(Crash::Process);
            image.inject(Fault {
                kind,
                nth,
                errno: libc_eio(),
            });
            match open(&image) {
                Err(Error::Io { .. }) => failed_opens += 1,
                Err(e) => panic!("{kind:?} #{nth}: not an I/O error: {e}"),
                Ok(wal) => {
                    // The fault may not have hit the open at all.
                    image.clear_faults();
                    let next = wal.read_next("a", false).unwrap().map(|e| e.seq);
                    assert_eq!(next, Some(7), "{kind:?} #{nth}: the cursor moved");
                    assert_eq!(wal.topic_info("b").map(|t| t.next_to_append), Some(20));
                    continue;
                }
            }
            // The failed open left everything for the next one.
            image.clear_faults();
            let wal = open(&image).unwrap();
            assert!(wal.recovery_report().dropped.is_empty(), "{kind:?} #{nth}");
            assert_eq!(wal.read_next("a", false).unwrap().map(|e| e.seq), Some(7));
        }
    }
    assert!(failed_opens > 0, "no fault hit recovery");
}

fn libc_eio() -> i32 {
    5 // EIO
}
