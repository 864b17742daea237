//! `Walrus::close` reports what dropping an instance only logs: a failed
//! final flush, a failed cursor persist, a failed recovery checkpoint.

use std::path::Path;
use std::sync::Arc;
use walrus_wal::testing::{Fault, FaultKind, SimStorage};
use walrus_wal::{Error, FsyncSchedule, ReadConsistency, Walrus};

fn open(sim: &SimStorage, consistency: ReadConsistency, fsync: FsyncSchedule) -> Walrus {
    Walrus::builder()
        .data_dir(Path::new("/sim"))
        .storage(Arc::new(sim.clone()))
        .quiet(true)
        .segment_bytes(32 * 1024)
        .extent_bytes(8 * 1024)
        .consistency(consistency)
        .fsync(fsync)
        .open()
        .expect("open")
}

fn fail_every_sync(sim: &SimStorage) {
    for nth in 0..16 {
        sim.inject(Fault {
            kind: FaultKind::Sync,
            nth,
            errno: libc::EIO,
        });
    }
}

#[test]
fn a_clean_close_succeeds_and_keeps_entries_and_cursors() {
    let sim = SimStorage::new();
    let every = ReadConsistency::AtLeastOnce { persist_every: 100 };
    let wal = open(&sim, every, FsyncSchedule::Milliseconds(1_000));
    for i in 0..5u8 {
        wal.append_for_topic("t", &[i; 10]).unwrap();
    }
    // Two consumed, not yet persisted: close persists them.
    assert!(wal.read_next("t", true).unwrap().is_some());
    assert!(wal.read_next("t", true).unwrap().is_some());
    wal.close().expect("a clean close");
    let wal = open(&sim, every, FsyncSchedule::Milliseconds(1_000));
    let info = wal.topic_info("t").expect("topic kept");
    assert_eq!((info.next_to_read, info.next_to_append), (2, 5));
    assert_eq!(
        &wal.read_next("t", true).unwrap().unwrap().data[..],
        &[2u8; 10]
    );
}

#[test]
fn close_reports_a_failed_final_flush() {
    let sim = SimStorage::new();
    // An hour between flushes: only the close's own flush syncs the append.
    let wal = open(
        &sim,
        ReadConsistency::StrictlyAtOnce,
        FsyncSchedule::Milliseconds(3_600_000),
    );
    wal.append_for_topic("t", b"unsynced").unwrap();
    fail_every_sync(&sim);
    let err = wal.close().expect_err("the final flush failed");
    assert!(
        matches!(err, Error::Io { .. } | Error::Failed(_)),
        "expected the sync's error, got {err}"
    );
}

#[test]
fn close_reports_a_failed_cursor_persist() {
    let sim = SimStorage::new();
    let every = ReadConsistency::AtLeastOnce { persist_every: 100 };
    let wal = open(&sim, every, FsyncSchedule::NoFsync);
    wal.append_for_topic("t", b"one").unwrap();
    wal.sync().unwrap();
    assert!(wal.read_next("t", true).unwrap().is_some());
    // NoFsync runs no final flush: the first sync of the close is the
    // cursor file's.
    fail_every_sync(&sim);
    let err = wal.close().expect_err("the cursor persist failed");
    assert!(
        matches!(err, Error::Io { .. } | Error::Failed(_)),
        "expected the cursor sync's error, got {err}"
    );
}

#[test]
fn closing_and_dropping_leave_the_same_readable_state() {
    // Dropping and closing leave the same files behind when nothing fails.
    let (a, b) = (SimStorage::new(), SimStorage::new());
    for (sim, close) in [(&a, true), (&b, false)] {
        let wal = open(
            sim,
            ReadConsistency::StrictlyAtOnce,
            FsyncSchedule::SyncEach,
        );
        wal.append_for_topic("t", b"x").unwrap();
        if close {
            wal.close().unwrap();
        } else {
            drop(wal);
        }
    }
    for sim in [&a, &b] {
        let wal = open(
            sim,
            ReadConsistency::StrictlyAtOnce,
            FsyncSchedule::SyncEach,
        );
        assert_eq!(&wal.read_next("t", true).unwrap().unwrap().data[..], b"x");
        assert!(wal.recovery_report().dropped.is_empty());
    }
}
