//! A consuming read whose cursor could not be made durable returned an
//! error, so its entries were never delivered: whatever the failed sync left
//! in the cursor files (in the page cache, or on the disk if writeback later
//! succeeded) must not move the cursor past them at the next open. The
//! syncs, renames and directory syncs of consuming reads (a cursor log
//! append, or a compaction) are failed one at a time; the image a process
//! crash leaves and the one a power loss leaves must each hold exactly the
//! entries no read delivered (StrictlyAtOnce: no skip, no redelivery).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use walrus_wal::testing::{Crash, Fault, FaultKind, SimStorage};
use walrus_wal::{FsyncSchedule, ReadConsistency, Walrus};

const ENTRIES: u64 = 40;

fn open(sim: &SimStorage) -> walrus_wal::Result<Walrus> {
    Walrus::builder()
        .data_dir(Path::new("/sim"))
        .storage(Arc::new(sim.clone()))
        .quiet(true)
        .segment_bytes(32 * 1024)
        .extent_bytes(8 * 1024)
        .consistency(ReadConsistency::StrictlyAtOnce)
        .fsync(FsyncSchedule::SyncEach)
        .open()
}

fn payload(i: u64) -> Vec<u8> {
    format!("entry-{i}").repeat(5).into_bytes()
}

const TOPICS: [&str; 2] = ["q", "other"];

/// What a run delivered, per topic of `TOPICS`.
type Delivered = [Vec<u64>; 2];

/// Appends, then consumes both topics by turns (single and batch reads
/// alternating) until reads come back empty or `failures` reads have failed.
/// `arm` runs just before the read numbered `at`.
fn consume(
    sim: &SimStorage,
    at: usize,
    failures: usize,
    arm: impl FnOnce(&SimStorage),
) -> (Walrus, Delivered, usize) {
    let wal = open(sim).unwrap();
    for i in 0..ENTRIES {
        for topic in TOPICS {
            wal.append_for_topic(topic, &payload(i)).unwrap();
        }
    }
    let mut arm = Some(arm);
    let mut delivered = Delivered::default();
    let mut failed = 0;
    let mut drained = [false; 2];
    for n in 0.. {
        if n == at {
            (arm.take().unwrap())(sim);
        }
        let t = n % 2;
        let read = if n % 4 < 2 {
            wal.read_next(TOPICS[t], true)
                .map(|e| e.into_iter().collect())
        } else {
            wal.batch_read_for_topic(TOPICS[t], 3 * payload(0).len(), true)
        };
        match read {
            Ok(entries) if entries.is_empty() => drained[t] = true,
            Ok(entries) => delivered[t].extend(entries.into_iter().map(|e| e.seq)),
            Err(_) => failed += 1,
        }
        if failed == failures || drained == [true; 2] {
            break;
        }
    }
    (wal, delivered, failed)
}

/// After each kind of crash, each topic holds exactly what was not delivered.
fn check_images(sim: &SimStorage, delivered: &Delivered, label: &str) {
    for how in [Crash::Process, Crash::LoseUnsynced] {
        let wal = open(&sim.crash(how)).unwrap_or_else(|e| panic!("{label} {how:?}: {e}"));
        for (t, topic) in TOPICS.into_iter().enumerate() {
            let mut left = Vec::new();
            loop {
                let batch = wal.batch_read_for_topic(topic, 1 << 20, true).unwrap();
                if batch.is_empty() {
                    break;
                }
                left.extend(batch.into_iter().map(|e| e.seq));
            }
            let undelivered: Vec<u64> =
                (0..ENTRIES).filter(|s| !delivered[t].contains(s)).collect();
            assert_eq!(
                left, undelivered,
                "{label} {how:?}: {topic} after delivering {:?}",
                delivered[t]
            );
        }
    }
}

#[test]
fn a_failed_cursor_sync_never_skips_undelivered_entries() {
    let mut swept = 0;
    for at in [0, 1, 6, 7] {
        // The consuming read's own cursor sync, and those of the next reads.
        for nth in 0..4 {
            for errno in [libc::EIO, libc::ENOSPC] {
                let sim = SimStorage::new();
                let (wal, delivered, failed) = consume(&sim, at, 1, |sim| {
                    sim.inject(Fault {
                        kind: FaultKind::Sync,
                        nth,
                        errno,
                    })
                });
                let label = format!("read {at}, sync #{nth}, errno {errno}");
                assert_eq!(failed, 1, "{label}: no read failed");
                wal.simulate_crash();
                sim.clear_faults();
                check_images(&sim, &delivered, &label);
                swept += 1;
            }
        }
    }
    assert_eq!(swept, 32);
}

#[test]
fn a_failed_cursor_sync_refuses_later_consuming_reads() {
    let sim = SimStorage::new();
    let (wal, delivered, failed) = consume(&sim, 3, 1, |sim| {
        sim.inject(Fault {
            kind: FaultKind::Sync,
            nth: 0,
            errno: libc::EIO,
        })
    });
    assert_eq!(failed, 1);
    // Nothing is acknowledged on an unknown outcome: the store refuses to
    // move any cursor, and the cursors in memory did not move.
    for (t, topic) in TOPICS.into_iter().enumerate() {
        let err = wal.read_next(topic, true).unwrap_err();
        assert!(
            matches!(err, walrus_wal::Error::Failed(_)),
            "expected Error::Failed, got {err}"
        );
        let peek = wal.read_next(topic, false).unwrap().unwrap();
        assert_eq!(peek.seq, delivered[t].len() as u64);
    }
    wal.simulate_crash();
    check_images(&sim, &delivered, "refused reads");
}

/// A failed write retires the log, so the next consuming read persists by
/// compaction (a new log, a snapshot written, synced and renamed, the
/// directory synced); each of those steps fails in turn.
#[test]
fn a_failed_cursor_compaction_never_skips_undelivered_entries() {
    let mut swept = 0;
    for kind in [FaultKind::Sync, FaultKind::SyncDir, FaultKind::Rename] {
        for nth in 0..3 {
            let sim = SimStorage::new();
            let (wal, delivered, failed) = consume(&sim, 4, 2, |sim| {
                // The read's cursor record is its only write (the entries
                // are all appended): it fails, and so does the read.
                sim.inject(Fault {
                    kind: FaultKind::Write,
                    nth: 0,
                    errno: libc::EIO,
                });
                sim.inject(Fault {
                    kind,
                    nth,
                    errno: libc::EIO,
                });
            });
            // The write failed; the later fault hit the compaction's step,
            // or (past its last such step) a later read, or nothing.
            let label = format!("{kind:?} #{nth}");
            assert!(failed >= 1, "{label}");
            wal.simulate_crash();
            sim.clear_faults();
            check_images(&sim, &delivered, &label);
            swept += 1;
        }
    }
    assert_eq!(swept, 9);
}

/// Consumers of different topics share the cursor log's syncs (group
/// commit), so one failed sync fails several reads at once; none of their
/// positions may survive, and the positions acknowledged before it must.
#[test]
fn consumers_sharing_a_failed_sync_skip_nothing() {
    const THREADS: usize = 4;
    for nth in [0, 3, 10, 25] {
        for round in 0..3 {
            let sim = SimStorage::new();
            let wal = open(&sim).unwrap();
            let topics: Vec<String> = (0..THREADS).map(|t| format!("t{t}")).collect();
            for i in 0..ENTRIES {
                for topic in &topics {
                    wal.append_for_topic(topic, &payload(i)).unwrap();
                }
            }
            sim.inject(Fault {
                kind: FaultKind::Sync,
                nth,
                errno: libc::EIO,
            });
            // The first failure stops every consumer, as a crash right after
            // it would: no later persist may paper over what it left.
            let stop = AtomicBool::new(false);
            let delivered: Vec<Vec<u64>> = std::thread::scope(|s| {
                let handles: Vec<_> = topics
                    .iter()
                    .map(|topic| {
                        let (wal, stop) = (&wal, &stop);
                        s.spawn(move || {
                            let mut got = Vec::new();
                            while !stop.load(Ordering::SeqCst) {
                                match wal.read_next(topic, true) {
                                    Ok(Some(e)) => got.push(e.seq),
                                    Ok(None) => break,
                                    Err(_) => stop.store(true, Ordering::SeqCst),
                                }
                            }
                            got
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            wal.simulate_crash();
            sim.clear_faults();
            for how in [Crash::Process, Crash::LoseUnsynced] {
                let wal = open(&sim.crash(how)).unwrap();
                for (topic, delivered) in topics.iter().zip(&delivered) {
                    let first = wal.read_next(topic, false).unwrap().map(|e| e.seq);
                    let next = delivered.len() as u64;
                    assert_eq!(*delivered, (0..next).collect::<Vec<_>>());
                    let expected = (next < ENTRIES).then_some(next);
                    assert_eq!(
                        first, expected,
                        "sync #{nth}, round {round}, {how:?}: {topic} resumes wrongly"
                    );
                }
                wal.simulate_crash();
            }
        }
    }
}
