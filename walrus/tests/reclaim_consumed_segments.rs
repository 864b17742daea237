//! Segments whose entries are all consumed are deleted, so disk use stays
//! bounded under a steady produce-and-consume load.

mod common;
use common::*;

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
            max_segments = max_segments.max(segments(&wal_dir).len());
        }
        // 4,000 entries of ~170 bytes span several 256 KiB segments; only the
        // one being written (and the one before it) may remain.
        assert!(
            max_segments <= 3,
            "{backend}: {max_segments} segments at once"
        );
        assert!(segments(&wal_dir).len() <= 2);
        drop(wal);
        let wal = open(dir.path(), backend);
        assert!(drain(&wal, "t").is_empty(), "consumed entries came back");
        wal.append_for_topic("t", b"new").unwrap();
        let e = wal.read_next("t", true).unwrap().unwrap();
        assert_eq!(e.seq, 4000, "sequence numbers continue after reclamation");
    }
}
