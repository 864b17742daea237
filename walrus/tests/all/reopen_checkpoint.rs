//! A clean close leaves a recovery checkpoint so the next open skips
//! re-reading extents; it is used once, and a crash or a damaged checkpoint
//! only means a full scan.

use crate::common::*;

fn fill(wal: &walrus_wal::Walrus) {
    for i in 0..300 {
        let t = ["a", "b", "c"][i % 3];
        wal.append_for_topic(t, &payload(t, i as u64)).unwrap();
    }
}

fn expect_all(wal: &walrus_wal::Walrus) {
    for (k, t) in ["a", "b", "c"].into_iter().enumerate() {
        let want: Vec<_> = (0..300)
            .filter(|i| i % 3 == k)
            .map(|i| payload(t, i as u64))
            .collect();
        let got: Vec<_> = wal
            .batch_read_for_topic(t, usize::MAX, false)
            .unwrap()
            .into_iter()
            .map(|e| e.data.to_vec())
            .collect();
        assert_eq!(got, want, "{t}");
    }
}

#[test]
fn a_clean_close_makes_the_next_open_skip_the_scan() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        fill(&open(dir.path(), backend));
        let wal = open(dir.path(), backend);
        let report = wal.recovery_report().clone();
        assert!(report.checkpointed_extents > 0, "{report:?}");
        expect_all(&wal);
        // Used once: a crash now means the next open scans.
        wal.simulate_crash();
        let wal = open(dir.path(), backend);
        assert_eq!(wal.recovery_report().checkpointed_extents, 0);
        expect_all(&wal);
    }
}

#[test]
fn a_damaged_checkpoint_only_costs_a_scan() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        fill(&open(dir.path(), backend));
        let ckpt = dir.path().join("default").join("recovery.ckpt");
        let mut bytes = std::fs::read(&ckpt).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&ckpt, &bytes).unwrap();
        let wal = open(dir.path(), backend);
        assert_eq!(wal.recovery_report().checkpointed_extents, 0);
        expect_all(&wal);
    }
}

/// While running, sync rounds write a checkpoint once `checkpoint_every`
/// bytes of extents were handed out since the last, so an open after a crash
/// re-reads only the tail. Nothing is lost either way. Under `NoFsync` only
/// an explicit `sync()` is a sync round.
#[test]
fn a_crash_reopen_skips_what_a_running_checkpoint_vouched_for() {
    use walrus_wal::FsyncSchedule;
    let cases = [
        (FsyncSchedule::SyncEach, false),
        (FsyncSchedule::Milliseconds(20), false),
        (FsyncSchedule::NoFsync, true),
        (FsyncSchedule::NoFsync, false),
    ];
    for backend in BACKENDS {
        for (fsync, call_sync) in cases {
            let dir = tempfile::tempdir().unwrap();
            let wal = builder(dir.path(), backend)
                .fsync(fsync)
                .recovery_snapshot_every_bytes(64 * 1024)
                .open()
                .unwrap();
            let ckpt = dir.path().join("default").join("recovery.ckpt");
            let append = |i: u64| {
                let t = ["a", "b", "c"][i as usize % 3];
                wal.append_for_topic(t, &vec![i as u8; 700]).unwrap();
            };
            // Write until a checkpoint exists (without sync rounds, for as
            // long as one would have taken), then a little more.
            let mut i = 0u64;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let expected = fsync != FsyncSchedule::NoFsync || call_sync;
            while !ckpt.exists() && (expected || i < 600) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no checkpoint {fsync:?}"
                );
                append(i);
                i += 1;
                if call_sync && i.is_multiple_of(100) {
                    wal.sync().unwrap();
                }
            }
            for _ in 0..30 {
                append(i);
                i += 1;
            }
            wal.simulate_crash();
            let wal = builder(dir.path(), backend).fsync(fsync).open().unwrap();
            let report = wal.recovery_report().clone();
            if expected {
                assert!(report.checkpointed_extents > 0, "{fsync:?} {report:?}");
            } else {
                assert_eq!(report.checkpointed_extents, 0, "{report:?}");
            }
            assert!(report.dropped.is_empty(), "{report:?}");
            for (k, t) in ["a", "b", "c"].into_iter().enumerate() {
                let want: Vec<Vec<u8>> = (0..i)
                    .filter(|n| *n as usize % 3 == k)
                    .map(|n| vec![n as u8; 700])
                    .collect();
                assert_eq!(drain(&wal, t), want, "{t} {fsync:?} {backend:?}");
            }
        }
    }
}
