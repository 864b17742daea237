//! Issue 15's scenarios, one test each: damaged files and small
//! filesystems. Every acknowledged entry that is not readable after an open
//! must be named in the recovery report, damaged files are kept (moved to
//! `lost+found`), one damaged file never blocks the whole instance, reads
//! go on up to damage, a read that found damage keeps the next checkpoint
//! from vouching for it, cursor-log damage is reported, and the mmap backend
//! never dies of SIGBUS on a tmpfs.

use crate::scratch_fs;

use crate::common::*;
use std::path::Path;
use walrus_wal::{Backend, Error, FsyncSchedule, ReadConsistency, Walrus};

fn wal_dir(root: &Path) -> std::path::PathBuf {
    root.join("default")
}

fn fixed(i: u64) -> Vec<u8> {
    let mut p = vec![b'x'; 100];
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

fn read_all(wal: &Walrus, topic: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(e) = wal.read_next(topic, true).expect("read") {
        out.push(e.data.to_vec());
    }
    out
}

fn zero(path: &Path, at: u64, len: usize) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&vec![0u8; len], at).unwrap();
}

/// Scenario 1a: A newer segment truncated to 0 bytes: its loss is reported and the
/// file kept in lost+found, not deleted.
#[test]
fn damage_1_an_emptied_segment_is_reported_and_kept() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        for run in 0..2 {
            let wal = open(dir.path(), backend);
            for i in 0..3 {
                wal.append_for_topic("t", &fixed(run * 3 + i)).unwrap();
            }
        }
        let segs = segments(&wal_dir(dir.path()));
        assert_eq!(segs.len(), 2, "{segs:?}");
        std::fs::File::create(&segs[1]).unwrap(); // truncate to 0
        let wal = open(dir.path(), backend);
        let report = wal.recovery_report().clone();
        assert!(
            report.dropped.iter().any(|d| d.file == segs[1]),
            "{backend}: the emptied segment is named: {report:?}"
        );
        let name = segs[1].file_name().unwrap();
        assert!(wal_dir(dir.path()).join("lost+found").join(name).exists());
        assert_eq!(read_all(&wal, "t"), (0..3).map(fixed).collect::<Vec<_>>());
    }
}

/// Scenario 1b: The first 4 KiB of a one-segment log zeroed (its header): the
/// extents behind it are still read, and the damage reported.
#[test]
fn damage_1_a_zeroed_segment_header_is_reported_and_read_past() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = open(dir.path(), backend);
            for i in 0..6 {
                wal.append_for_topic("t", &fixed(i)).unwrap();
            }
        }
        let seg = segments(&wal_dir(dir.path())).pop().unwrap();
        zero(&seg, 0, 4096);
        let wal = open(dir.path(), backend);
        let report = wal.recovery_report().clone();
        assert!(
            report.dropped.iter().any(|d| d.file == seg),
            "{backend}: {report:?}"
        );
        assert_eq!(read_all(&wal, "t"), (0..6).map(fixed).collect::<Vec<_>>());
    }
}

/// Scenario 1c: One frame header zeroed in the middle of a topic: the entries after
/// it are dropped, and that is reported.
#[test]
fn damage_1_a_zeroed_frame_header_mid_topic_is_reported() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = open(dir.path(), backend);
            for i in 0..10 {
                wal.append_for_topic("t", &fixed(i)).unwrap();
            }
            wal.sync().unwrap();
            wal.simulate_crash(); // no checkpoint: the next open scans
        }
        let seg = segments(&wal_dir(dir.path())).pop().unwrap();
        // Extent at 4096; topic "t": frames from 4096 + 48, 128 bytes each.
        zero(&seg, 4096 + 48 + 5 * 128, 24);
        let wal = open(dir.path(), backend);
        let report = wal.recovery_report().clone();
        assert!(
            report
                .dropped
                .iter()
                .any(|d| d.topic.as_deref() == Some("t") && d.offset == 4096 + 48 + 5 * 128),
            "{backend}: {report:?}"
        );
        assert_eq!(read_all(&wal, "t"), (0..5).map(fixed).collect::<Vec<_>>());
    }
}

/// Scenario 2: The newest segment truncated mid-way: the instance opens, every
/// topic keeps its valid prefix, and the damaged file is in the report.
#[test]
fn damage_2_a_truncated_segment_does_not_block_other_topics() {
    for backend in BACKENDS {
        for cut in [5000u64, 20_000, 70_000, 150_000] {
            let dir = tempfile::tempdir().unwrap();
            {
                let wal = open(dir.path(), backend);
                for i in 0..600 {
                    for t in ["a", "b", "c"] {
                        wal.append_for_topic(t, &payload(t, i)).unwrap();
                    }
                }
            }
            let seg = segments(&wal_dir(dir.path())).pop().unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&seg)
                .unwrap()
                .set_len(cut)
                .unwrap();
            let wal = builder(dir.path(), backend)
                .open()
                .unwrap_or_else(|e| panic!("{backend} cut {cut}: {e}"));
            let report = wal.recovery_report().clone();
            assert!(report.dropped.iter().any(|d| d.file == seg), "{report:?}");
            for t in ["a", "b", "c"] {
                let got = read_all(&wal, t);
                let want: Vec<_> = (0..got.len() as u64).map(|i| payload(t, i)).collect();
                assert_eq!(got, want, "{backend} cut {cut}: {t} keeps a prefix");
            }
        }
    }
}

/// Writes 200 entries to "t" and closes cleanly (so a checkpoint vouches
/// for them); then zeroes entry 120's frame payload. Returns the directory.
fn vouched_log_with_a_damaged_frame(backend: Backend) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open(dir.path(), backend);
        for i in 0..200 {
            wal.append_for_topic("t", &fixed(i)).unwrap();
        }
    }
    let seg = segments(&wal_dir(dir.path())).pop().unwrap();
    // 16 KiB extents: (16384 - 48) / 128 = 127 frames in the first one.
    zero(&seg, 4096 + 48 + 120 * 128 + 40, 16);
    dir
}

/// Scenario 3: A batch read returns the entries before the damage, and fails only
/// when the first entry it would return is damaged.
#[test]
fn damage_3_batch_read_returns_the_entries_before_damage() {
    for backend in BACKENDS {
        let dir = vouched_log_with_a_damaged_frame(backend);
        let wal = open(dir.path(), backend);
        let batch = wal.batch_read_for_topic("t", 1 << 20, true).unwrap();
        assert_eq!(batch.len(), 120, "{backend}");
        assert_eq!(batch[119].data.to_vec(), fixed(119));
        assert!(matches!(
            wal.batch_read_for_topic("t", 1 << 20, true),
            Err(Error::Corruption { .. })
        ));
    }
}

/// Scenario 4: After a read found damage, the checkpoint written at close no longer
/// vouches for it: the next open cuts it (and reports it), and the topic
/// goes on.
#[test]
fn damage_4_read_errors_clear_after_a_reopen() {
    for backend in BACKENDS {
        let dir = vouched_log_with_a_damaged_frame(backend);
        {
            let wal = open(dir.path(), backend);
            assert_eq!(
                wal.batch_read_for_topic("t", 1 << 20, true).unwrap().len(),
                120
            );
            assert!(wal.read_next("t", true).is_err());
        }
        let wal = open(dir.path(), backend);
        let report = wal.recovery_report().clone();
        assert!(
            report
                .dropped
                .iter()
                .any(|d| d.topic.as_deref() == Some("t")),
            "{backend}: {report:?}"
        );
        assert!(wal.read_next("t", true).unwrap().is_none(), "{backend}");
        wal.append_for_topic("t", b"after").unwrap();
        assert_eq!(
            wal.read_next("t", true).unwrap().unwrap().data.as_ref(),
            b"after"
        );
    }
}

/// Scenario 5: Garbage in the cursor log is reported, and the records after it
/// still count: a StrictlyAtOnce consumer gets no consumed entry again.
#[test]
fn damage_5_cursor_log_garbage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open(dir.path(), Backend::Fd);
        for i in 0..50 {
            wal.append_for_topic("t", &fixed(i)).unwrap();
        }
        for _ in 0..30 {
            wal.read_next("t", true).unwrap().unwrap();
        }
        wal.simulate_crash();
    }
    let log = std::fs::read_dir(wal_dir(dir.path()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        f.write_all_at(&[0xa5; 43], 74).unwrap();
    }
    let wal = open(dir.path(), Backend::Fd);
    let report = wal.recovery_report().clone();
    assert!(
        report.cursor_damage.iter().any(|d| d.file == log),
        "{report:?}"
    );
    let next = wal.read_next("t", true).unwrap().unwrap();
    assert_eq!(next.seq, 30, "no consumed entry comes back");
}

fn tmpfs_or_skip(mib: u64) -> Option<scratch_fs::Mount> {
    match scratch_fs::tmpfs(mib) {
        Ok(m) => Some(m),
        Err(e) => {
            println!("skipped (tmpfs unavailable: {e})");
            None
        }
    }
}

/// Scenario 6a: mmap on a 16 MiB tmpfs with 64 MiB segments: a reopen reads no
/// never-written page (it would allocate one, or die of SIGBUS).
#[test]
fn damage_6_mmap_reopens_on_a_small_tmpfs() {
    let Some(mnt) = tmpfs_or_skip(16) else { return };
    let open = || {
        Walrus::builder()
            .data_dir(&mnt.path)
            .backend(Backend::Mmap)
            .quiet(true)
            .open()
            .unwrap()
    };
    {
        let wal = open();
        for i in 0..3 {
            wal.append_for_topic("t", &fixed(i)).unwrap();
        }
    }
    let before = mnt.used_bytes();
    let wal = open();
    let grew = mnt.used_bytes().saturating_sub(before);
    println!("the reopen took {grew} bytes of tmpfs");
    assert!(grew < 4 << 20, "the reopen took {grew} bytes of tmpfs");
    assert_eq!(read_all(&wal, "t"), (0..3).map(fixed).collect::<Vec<_>>());
}

/// Fills the filesystem at `root`, consumes half, crashes and reopens on
/// the full filesystem: no SIGBUS, every acknowledged entry is there, the
/// rest drains, and then appends succeed again.
/// With one segment holding everything, the append after the drain used to
/// fail: the reader's position kept the drained segment's file open.
fn fill_consume_half_reopen(
    root: &Path,
    backend: Backend,
    fsync: FsyncSchedule,
    segment_bytes: u64,
) -> u64 {
    let builder = || {
        Walrus::builder()
            .data_dir(root)
            .backend(backend)
            .segment_bytes(segment_bytes)
            .quiet(true)
            .fsync(fsync)
            .consistency(ReadConsistency::StrictlyAtOnce)
    };
    let what = format!("{backend} {fsync:?}");
    let payload = vec![7u8; 64 << 10];
    let mut acked = 0u64;
    {
        let wal = builder().open().unwrap();
        while wal.append_for_topic("t", &payload).is_ok() {
            acked += 1;
            assert!(acked < 10_000, "{what}: the filesystem never filled");
        }
        assert!(acked > 10, "{what}: {acked}");
        wal.sync().unwrap();
        for _ in 0..acked / 2 {
            wal.read_next("t", true).unwrap().unwrap();
        }
        wal.simulate_crash();
    }
    let wal = builder().open().expect("reopen on a full filesystem");
    let mut got = 0;
    while let Some(e) = wal.read_next("t", true).unwrap() {
        assert_eq!(e.seq, acked / 2 + got, "{what}");
        got += 1;
    }
    assert_eq!(acked / 2 + got, acked, "{what}: acknowledged entries lost");
    // The background thread deletes the consumed segments just after the
    // reads; the append succeeds once it has.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Err(e) = wal.append_for_topic("t", b"after") {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: no append once drained: {e}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(wal);
    std::fs::remove_dir_all(root.join("default")).unwrap();
    acked
}

/// Scenario 6b: A full 20 MiB tmpfs (the mmap backend died of SIGBUS here under
/// SyncEach) and a full 32 MiB loop-mounted ext4, both backends.
#[test]
fn damage_6_reopens_on_a_full_tmpfs_and_ext4() {
    for (label, mnt) in [
        ("tmpfs", tmpfs_or_skip(20)),
        (
            "ext4",
            scratch_fs::loop_ext4(32)
                .map_err(|e| println!("skipped (loop ext4 unavailable: {e})"))
                .ok(),
        ),
    ] {
        let Some(mnt) = mnt else { continue };
        // 64 MiB (the default: one segment holds everything, the issue's
        // SIGBUS case with mmap under SyncEach) and 4 MiB segments.
        for segment in [64u64 << 20, 4 << 20] {
            for backend in BACKENDS {
                for fsync in [FsyncSchedule::SyncEach, FsyncSchedule::NoFsync] {
                    let acked = fill_consume_half_reopen(&mnt.path, backend, fsync, segment);
                    println!(
                        "full {label}: {backend} {fsync:?}, {} MiB segments: {acked} appends \
                         until ENOSPC",
                        segment >> 20
                    );
                }
            }
        }
    }
}
