//! Segments whose entries are all consumed are deleted, so disk use stays
//! bounded under a steady produce-and-consume load. The background thread
//! deletes them, so the test gives it a moment after each round.

use crate::common::*;

#[test]
fn consumed_segments_are_deleted() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("default");
        let wal = open(dir.path(), backend);
        let mut max_segments = 0;
        for round in 0..40u64 {
            for i in 0..100 {
                wal.append_for_topic("t", &payload("t", round * 100 + i))
                    .unwrap();
            }
            assert_eq!(drain(&wal, "t").len(), 100);
            // 4,000 entries of ~170 bytes span several 256 KiB segments; only
            // the one being written (and the one before it) may remain.
            let left = settled_segments(&wal_dir, 2);
            assert!(left <= 2, "{backend}: {left} segments after round {round}");
            max_segments = max_segments.max(left);
        }
        assert!(max_segments >= 1);
        drop(wal);
        let wal = open(dir.path(), backend);
        assert!(drain(&wal, "t").is_empty(), "consumed entries came back");
        wal.append_for_topic("t", b"new").unwrap();
        let e = wal.read_next("t", true).unwrap().unwrap();
        assert_eq!(e.seq, 4000, "sequence numbers continue after reclamation");
    }
}

/// The number of segments once it is at most `want`, or after 5 s.
fn settled_segments(wal_dir: &std::path::Path, want: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let n = segments(wal_dir).len();
        if n <= want || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
