//! A clean close leaves a recovery checkpoint so the next open skips
//! re-reading extents; it is used once, and a crash or a damaged checkpoint
//! only means a full scan.

mod common;
use common::*;

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
            .map(|e| e.data)
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
