//! Damaged or foreign files in the instance directory give typed errors at
//! open (or are safely ignored where they are a crash artefact), and never
//! cost data that was acknowledged before.

mod common;
use common::*;
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
fn a_segment_with_unknown_magic_is_refused() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path());
        let bogus = dir
            .path()
            .join("default")
            .join("seg-00000000000000000099.wal");
        std::fs::write(&bogus, vec![0x5a; 8192]).unwrap();
        assert!(matches!(
            builder(dir.path(), backend).open(),
            Err(Error::BadMagic { .. })
        ));
        std::fs::remove_file(&bogus).unwrap();
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
        bytes[8] = 2; // format version 2
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
fn zero_length_and_never_written_segments_are_removed() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path());
        let wal_dir = dir.path().join("default");
        std::fs::write(wal_dir.join("seg-00000000000000000050.wal"), b"").unwrap();
        // A sparse file whose header never reached the disk.
        let sparse = std::fs::File::create(wal_dir.join("seg-00000000000000000051.wal")).unwrap();
        sparse.set_len(256 * 1024).unwrap();
        drop(sparse);
        kept(dir.path(), backend);
        assert!(!wal_dir.join("seg-00000000000000000050.wal").exists());
        assert!(!wal_dir.join("seg-00000000000000000051.wal").exists());
    }
}

#[test]
fn a_garbage_or_truncated_cursor_snapshot_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let snap = dir.path().join("default").join("cursors.snap");
    let original = std::fs::read(&snap).unwrap();
    std::fs::write(&snap, &original[..original.len() - 3]).unwrap();
    assert!(matches!(
        builder(dir.path(), Backend::Fd).open(),
        Err(Error::Corruption { .. })
    ));
    std::fs::write(&snap, b"garbage garbage garbage garbage").unwrap();
    assert!(matches!(
        builder(dir.path(), Backend::Fd).open(),
        Err(Error::BadMagic { .. })
    ));
    std::fs::write(&snap, &original).unwrap();
    kept(dir.path(), Backend::Fd);
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
