//! Golden files: an instance directory written in today's on-disk format is
//! committed under `tests/golden/v1/`, and every backend must open it and
//! read back exactly what was written. A change to any layout (segment,
//! extent or frame header, cursor snapshot or log, recovery snapshot) fails
//! these tests, so that a format change is a deliberate act: a new version,
//! new golden files, and this test kept for the old ones.
//!
//! The directory was written by [`regenerate_golden_files`] (run it with
//! `cargo test -p walrus-wal --features test-support --test all --
//! --ignored golden::regenerate`); regenerating rewrites the committed files and
//! must only be done together with a format version change. The byte-level
//! checks against the `format` module are the crate's own unit tests
//! (`format::tests`), and `golden_decoder.rs` decodes the same files with a
//! reader written from `docs/format.md` alone.

use std::path::{Path, PathBuf};
use walrus_wal::{Backend, FsyncSchedule, ReadConsistency, Walrus, WalrusBuilder};

/// Where the golden instance directory lives.
fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

use crate::golden_history::*;

fn builder(data_dir: &Path, backend: Backend) -> WalrusBuilder {
    Walrus::builder()
        .data_dir(data_dir)
        .backend(backend)
        .quiet(true)
        .segment_bytes(SEGMENT_BYTES)
        .extent_bytes(EXTENT_BYTES)
        .fsync(FsyncSchedule::SyncEach)
        .consistency(ReadConsistency::StrictlyAtOnce)
}

/// Files of an instance directory that belong in the golden copy (not the
/// lock file, which only exists while an instance is open).
fn instance_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "LOCK"))
        .collect();
    files.sort();
    files
}

/// Writes the golden instance directory afresh. Ignored: it rewrites
/// committed files, which only a format version change should do.
#[test]
#[ignore = "rewrites tests/golden/v1; run only with a format version change"]
fn regenerate_golden_files() {
    let scratch = tempfile::tempdir().unwrap();
    let mut wal = builder(scratch.path(), Backend::Fd).open().unwrap();
    for op in ops() {
        match op {
            Op::Append(t, payloads) if payloads.len() == 1 => {
                wal.append_for_topic(t, &payloads[0]).unwrap()
            }
            Op::Append(t, payloads) => {
                let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
                wal.batch_append_for_topic(t, &refs).unwrap()
            }
            Op::Consume(t, n) => {
                for _ in 0..n {
                    wal.read_next(t, true)
                        .unwrap()
                        .expect("an entry to consume");
                }
            }
            Op::Reopen => {
                wal.close().unwrap();
                wal = builder(scratch.path(), Backend::Fd).open().unwrap();
            }
        }
    }
    wal.close().unwrap();
    let out = golden_dir();
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    for file in instance_files(&scratch.path().join("default")) {
        std::fs::copy(&file, out.join(file.file_name().unwrap())).unwrap();
    }
}

/// A copy of the golden directory as the instance `default` of a fresh data
/// directory: opening it rewrites cursor files and deletes the recovery
/// snapshot, which must not touch the committed files.
fn golden_copy() -> tempfile::TempDir {
    let data_dir = tempfile::tempdir().unwrap();
    let instance = data_dir.path().join("default");
    std::fs::create_dir(&instance).unwrap();
    let files = instance_files(&golden_dir());
    assert!(!files.is_empty(), "no golden files in {:?}", golden_dir());
    for file in files {
        std::fs::copy(&file, instance.join(file.file_name().unwrap())).unwrap();
    }
    data_dir
}

#[test]
fn the_golden_directory_holds_every_file_kind() {
    let names: Vec<String> = instance_files(&golden_dir())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let segments = names.iter().filter(|n| n.ends_with(".wal")).count();
    assert!(segments >= 3, "{names:?}");
    for name in ["cursors.snap", "recovery.ckpt"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    assert!(names
        .iter()
        .any(|n| n.starts_with("cursors-") && n.ends_with(".log")));
}

#[test]
fn every_backend_reads_the_golden_files_back_exactly() {
    let want = expected();
    for backend in [Backend::Fd, Backend::Mmap] {
        let data_dir = golden_copy();
        let wal = builder(data_dir.path(), backend).open().unwrap();
        let report = wal.recovery_report().clone();
        assert!(report.dropped.is_empty(), "{backend:?}: {report:?}");
        assert!(report.cursor_damage.is_empty(), "{backend:?}: {report:?}");
        assert!(report.moved.is_empty(), "{backend:?}: {report:?}");
        // The recovery snapshot was read: every extent was vouched for.
        assert!(report.checkpointed_extents > 0, "{backend:?}: {report:?}");
        assert_eq!(report.topics, want.len(), "{backend:?}");
        let mut topics = wal.topics();
        topics.sort();
        let mut names: Vec<&str> = want.keys().copied().collect();
        names.sort();
        assert_eq!(topics, names, "{backend:?}");
        for (topic, exp) in &want {
            let info = wal.topic_info(topic).unwrap();
            assert_eq!(info.next_to_read, exp.cursor as u64, "{backend:?} {topic}");
            assert_eq!(info.next_to_append, exp.entries.len() as u64, "{topic}");
            for (seq, data) in exp.entries.iter().enumerate().skip(exp.cursor) {
                let entry = wal.read_next(topic, true).unwrap().expect("an entry");
                assert_eq!(entry.seq, seq as u64, "{backend:?} {topic}");
                assert_eq!(entry.data.as_ref(), data.as_slice(), "{topic} #{seq}");
            }
            assert!(wal.read_next(topic, false).unwrap().is_none(), "{topic}");
        }
        wal.close().unwrap();
    }
}

#[test]
fn the_golden_files_open_the_same_without_their_recovery_snapshot() {
    // The full scan (no recovery snapshot to vouch for any extent) finds
    // the same entries and cursors.
    let want = expected();
    for backend in [Backend::Fd, Backend::Mmap] {
        let data_dir = golden_copy();
        std::fs::remove_file(data_dir.path().join("default/recovery.ckpt")).unwrap();
        let wal = builder(data_dir.path(), backend).open().unwrap();
        let report = wal.recovery_report().clone();
        assert!(report.dropped.is_empty(), "{backend:?}: {report:?}");
        assert_eq!(report.checkpointed_extents, 0, "{backend:?}");
        let live: usize = want.values().map(|e| e.entries.len()).sum();
        assert_eq!(report.entries, live as u64, "{backend:?}: {report:?}");
        for (topic, exp) in &want {
            let got = wal.batch_read_for_topic(topic, usize::MAX, false).unwrap();
            let got: Vec<(u64, Vec<u8>)> =
                got.into_iter().map(|e| (e.seq, e.data.to_vec())).collect();
            let wanted: Vec<(u64, Vec<u8>)> = exp
                .entries
                .iter()
                .enumerate()
                .skip(exp.cursor)
                .map(|(i, d)| (i as u64, d.clone()))
                .collect();
            assert_eq!(got, wanted, "{backend:?} {topic}");
        }
    }
}
