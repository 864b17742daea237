//! A flipped bit inside a record is caught by its checksum: the entry is not
//! returned, the topic keeps the valid prefix before it, and other topics,
//! including those written later in the same segment, survive.

use crate::common::*;
use std::os::unix::fs::FileExt;

/// One active segment: the topics these tests damage share one file.
fn one_segment(dir: &std::path::Path, backend: walrus_wal::Backend) -> walrus_wal::Walrus {
    builder(dir, backend).active_segments(1).open().unwrap()
}

#[test]
fn a_flipped_bit_drops_that_entry_and_later_topics_survive() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("default");
        let marker = b"FLIP-ME-PLEASE";
        {
            let wal = one_segment(dir.path(), backend);
            wal.append_for_topic("victim", b"before").unwrap();
            wal.append_for_topic("victim", marker).unwrap();
            wal.append_for_topic("victim", b"after").unwrap();
            for i in 0..20 {
                wal.append_for_topic("later", &payload("later", i)).unwrap();
            }
            wal.simulate_crash();
        }
        let seg = segments(&wal_dir).pop().unwrap();
        let bytes = std::fs::read(&seg).unwrap();
        let at = bytes
            .windows(marker.len())
            .position(|w| w == marker)
            .unwrap() as u64
            + 3;
        let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        file.write_all_at(&[bytes[at as usize] ^ 0x04], at).unwrap();
        drop(file);

        let wal = open(dir.path(), backend);
        let report = wal.recovery_report();
        assert_eq!(report.dropped.len(), 1, "{report:?}");
        assert!(report.dropped[0].reason.contains("checksum"), "{report:?}");
        assert_eq!(drain(&wal, "victim"), vec![b"before".to_vec()]);
        let later: Vec<_> = (0..20).map(|i| payload("later", i)).collect();
        assert_eq!(drain(&wal, "later"), later);
    }
}

#[test]
fn a_flipped_bit_in_an_extent_header_spares_other_topics() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("default");
        {
            let wal = one_segment(dir.path(), backend);
            wal.append_for_topic("first-topic", b"x").unwrap();
            wal.append_for_topic("second-topic", b"y").unwrap();
            wal.simulate_crash();
        }
        let seg = segments(&wal_dir).pop().unwrap();
        let bytes = std::fs::read(&seg).unwrap();
        let name = b"first-topic";
        let at = bytes.windows(name.len()).position(|w| w == name).unwrap() as u64;
        let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        file.write_all_at(&[bytes[at as usize] ^ 0x01], at).unwrap();
        drop(file);

        let wal = open(dir.path(), backend);
        assert_eq!(
            wal.recovery_report().dropped.len(),
            1,
            "{:?}",
            wal.recovery_report()
        );
        assert_eq!(drain(&wal, "first-topic"), Vec::<Vec<u8>>::new());
        assert_eq!(drain(&wal, "second-topic"), vec![b"y".to_vec()]);
    }
}

/// After a clean close the checkpoint vouches for extents, so open does not
/// re-read them: bit rot found later is reported by the read that meets it,
/// as a typed error, and the entry is never returned.
#[test]
fn after_a_clean_close_a_flipped_bit_is_reported_by_the_read() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("default");
        let marker = b"FLIP-ME-PLEASE";
        {
            let wal = one_segment(dir.path(), backend);
            wal.append_for_topic("victim", b"before").unwrap();
            wal.append_for_topic("victim", marker).unwrap();
        }
        let seg = segments(&wal_dir).pop().unwrap();
        let bytes = std::fs::read(&seg).unwrap();
        let at = bytes
            .windows(marker.len())
            .position(|w| w == marker)
            .unwrap() as u64;
        let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        file.write_all_at(&[bytes[at as usize] ^ 0x04], at).unwrap();
        drop(file);

        let wal = open(dir.path(), backend);
        assert!(wal.recovery_report().checkpointed_extents > 0);
        assert_eq!(
            wal.read_next("victim", true).unwrap().unwrap().data,
            &b"before"[..]
        );
        match wal.read_next("victim", true) {
            Err(walrus_wal::Error::Corruption { reason, .. }) => {
                assert!(reason.contains("checksum"))
            }
            other => panic!("expected a checksum error, got {other:?}"),
        }
    }
}
