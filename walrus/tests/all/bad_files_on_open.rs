//! Damaged or foreign files in the instance directory are reported and
//! moved to `lost+found` at open (a file of a newer format version is a
//! typed error), and never cost data that was acknowledged before.

use crate::common::*;
use walrus_wal::{Backend, Error};

fn seed(dir: &std::path::Path) {
    let wal = open(dir, Backend::Fd);
    wal.append_for_topic("t", b"kept").unwrap();
    wal.sync().unwrap();
}

fn kept(dir: &std::path::Path, backend: Backend) {
    let wal = open(dir, backend);
    assert_eq!(drain(&wal, "t"), vec![b"kept".to_vec()]);
}

#[test]
fn a_segment_with_unknown_magic_is_reported_and_moved_aside() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path());
        let wal_dir = dir.path().join("default");
        let bogus = wal_dir.join("seg-00000000000000000099.wal");
        std::fs::write(&bogus, vec![0x5a; 8192]).unwrap();
        {
            let wal = open(dir.path(), backend);
            let report = wal.recovery_report();
            assert!(report.dropped.iter().any(|d| d.file == bogus), "{report:?}");
            assert!(!bogus.exists());
            let moved = wal_dir
                .join("lost+found")
                .join("seg-00000000000000000099.wal");
            assert_eq!(std::fs::read(&moved).unwrap(), vec![0x5a; 8192]);
            assert_eq!(report.moved, vec![moved]);
        }
        kept(dir.path(), backend);
    }
}

#[test]
fn a_segment_of_a_newer_format_version_is_refused() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path());
        let seg = segments(&dir.path().join("default")).pop().unwrap();
        let mut bytes = std::fs::read(&seg).unwrap();
        let original = bytes.clone();
        bytes[8] = 2; // format version 2, with a checksum that agrees
        let crc = walrus_wal::crc64(&[&bytes[0..56]]);
        bytes[56..64].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&seg, &bytes).unwrap();
        match builder(dir.path(), backend).open() {
            Err(Error::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }) => {}
            other => panic!("expected UnsupportedVersion, got {:?}", other.err()),
        }
        std::fs::write(&seg, &original).unwrap();
        kept(dir.path(), backend);
    }
}

#[test]
fn zero_length_and_headerless_segments_are_reported_and_moved_aside() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path());
        let wal_dir = dir.path().join("default");
        let empty = wal_dir.join("seg-00000000000000000050.wal");
        std::fs::write(&empty, b"").unwrap();
        // A sparse file whose header is gone: a named segment always had
        // one (it is renamed into place once its header is durable).
        let sparse = wal_dir.join("seg-00000000000000000051.wal");
        std::fs::File::create(&sparse)
            .unwrap()
            .set_len(256 * 1024)
            .unwrap();
        {
            let wal = open(dir.path(), backend);
            let report = wal.recovery_report();
            for f in [&empty, &sparse] {
                assert!(report.dropped.iter().any(|d| &d.file == f), "{report:?}");
                assert!(!f.exists());
                assert!(wal_dir
                    .join("lost+found")
                    .join(f.file_name().unwrap())
                    .exists());
            }
            assert_eq!(drain(&wal, "t"), vec![b"kept".to_vec()]);
        }
    }
}

#[test]
fn a_garbage_or_truncated_cursor_snapshot_is_reported_and_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let snap = dir.path().join("default").join("cursors.snap");
    let original = std::fs::read(&snap).unwrap();
    std::fs::write(&snap, &original[..original.len() - 3]).unwrap();
    {
        let wal = open(dir.path(), Backend::Fd);
        let damage = &wal.recovery_report().cursor_damage;
        assert!(damage.iter().any(|d| d.file == snap), "{damage:?}");
        assert_eq!(drain(&wal, "t"), vec![b"kept".to_vec()]);
    }
    std::fs::write(&snap, b"garbage garbage garbage garbage garbage").unwrap();
    let wal = open(dir.path(), Backend::Fd);
    assert_eq!(wal.recovery_report().cursor_damage.len(), 1);
    let lost_found = dir.path().join("default").join("lost+found");
    assert!(lost_found.join("cursors.snap").exists());
    assert!(lost_found.join("cursors.snap.1").exists());
}

#[test]
fn a_torn_cursor_log_tail_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open(dir.path(), Backend::Fd);
        for i in 0..5 {
            wal.append_for_topic("t", &payload("t", i)).unwrap();
        }
        wal.read_next("t", true).unwrap();
        wal.read_next("t", true).unwrap();
        wal.simulate_crash();
    }
    let wal_dir = dir.path().join("default");
    let log = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .unwrap();
    let bytes = std::fs::read(&log).unwrap();
    // The log is preallocated with zeros; its records end at the last
    // non-zero byte (the second record's topic name).
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    std::fs::write(&log, &bytes[..end - 5]).unwrap(); // tear the second record
    let wal = open(dir.path(), Backend::Fd);
    // The first consuming read's record survived; the torn second did not.
    // A torn last record cannot be told from damage to it, so it is
    // reported as a possible loss of that position.
    let damage = &wal.recovery_report().cursor_damage;
    assert!(damage.iter().any(|d| d.file == log), "{damage:?}");
    assert_eq!(wal.read_next("t", true).unwrap().unwrap().seq, 1);
}

/// (A read-only directory is not tested here: CI runs as root, for whom
/// permission bits do not apply, so such a test could not fail.)
#[test]
fn a_missing_data_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("does/not/exist/yet");
    {
        let wal = open(&nested, Backend::Fd);
        wal.append_for_topic("t", b"x").unwrap();
    }
    let wal = open(&nested, Backend::Mmap);
    assert_eq!(drain(&wal, "t"), vec![b"x".to_vec()]);
}
