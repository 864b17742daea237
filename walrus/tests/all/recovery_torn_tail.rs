//! A record torn by a crash mid-write is dropped with the rest of its topic's
//! tail; every entry before it, and every other topic, survives.

use crate::common::*;
use std::os::unix::fs::FileExt;

#[test]
fn a_torn_last_record_is_dropped_and_reported() {
    for backend in BACKENDS {
        // The last frame (entry 9) is 66 bytes long; every cut stays inside it.
        for cut in [1u64, 9, 25, 60] {
            let dir = tempfile::tempdir().unwrap();
            let wal_dir = dir.path().join("default");
            {
                let wal = open(dir.path(), backend);
                for i in 0..10 {
                    wal.append_for_topic("other", &payload("other", i)).unwrap();
                }
                for i in 0..10 {
                    wal.append_for_topic("t", &payload("t", i)).unwrap();
                }
                wal.simulate_crash();
            }
            // "t" was written last: its last frame ends at the segment's last
            // non-zero byte. Zero its final `cut` bytes.
            let seg = segments(&wal_dir).pop().unwrap();
            let bytes = std::fs::read(&seg).unwrap();
            let end = bytes.iter().rposition(|&b| b != 0).unwrap() as u64 + 1;
            let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
            file.write_all_at(&vec![0u8; cut as usize], end - cut)
                .unwrap();
            drop(file);

            let wal = open(dir.path(), backend);
            let report = wal.recovery_report();
            assert_eq!(report.dropped.len(), 1, "{backend} cut {cut}: {report:?}");
            assert_eq!(report.dropped[0].topic.as_deref(), Some("t"));
            let expect: Vec<_> = (0..9).map(|i| payload("t", i)).collect();
            assert_eq!(drain(&wal, "t"), expect);
            let other: Vec<_> = (0..10).map(|i| payload("other", i)).collect();
            assert_eq!(drain(&wal, "other"), other);
        }
    }
}

#[test]
fn appends_after_a_torn_tail_survive_the_next_recovery() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("default");
        {
            let wal = open(dir.path(), backend);
            for i in 0..5 {
                wal.append_for_topic("t", &payload("t", i)).unwrap();
            }
            wal.simulate_crash();
        }
        let seg = segments(&wal_dir).pop().unwrap();
        let bytes = std::fs::read(&seg).unwrap();
        let end = bytes.iter().rposition(|&b| b != 0).unwrap() as u64 + 1;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .write_all_at(&[0; 8], end - 8)
            .unwrap();
        {
            let wal = open(dir.path(), backend);
            wal.append_for_topic("t", b"after-1").unwrap();
            wal.append_for_topic("t", b"after-2").unwrap();
        }
        let wal = open(dir.path(), backend);
        let mut expect: Vec<_> = (0..4).map(|i| payload("t", i)).collect();
        expect.extend([b"after-1".to_vec(), b"after-2".to_vec()]);
        assert_eq!(drain(&wal, "t"), expect);
    }
}
