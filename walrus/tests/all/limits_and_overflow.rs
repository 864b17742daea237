//! Settings and file contents at the edges of their ranges: a clear error or
//! a working instance, never an overflow, a panic or a dead background
//! thread.

use crate::common::*;
use std::path::Path;
use std::sync::Arc;
use walrus_wal::testing::{FileKind, OpenMode, SimStorage, Storage};
use walrus_wal::{Backend, Error, FsyncSchedule, Walrus};

#[test]
fn a_segment_too_large_for_u32_frame_lengths_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bytes in [4u64 << 30, 8 << 30, u64::MAX - 4095] {
        let got = builder(dir.path(), Backend::Fd).segment_bytes(bytes).open();
        assert!(
            matches!(got, Err(Error::InvalidInput(_))),
            "segment_bytes({bytes}) must be refused"
        );
    }
}

#[test]
fn an_interval_too_long_for_instant_keeps_the_background_thread_alive() {
    for ms in [u64::MAX, u64::MAX / 2, 1 << 60] {
        let dir = tempfile::tempdir().unwrap();
        let wal = builder(dir.path(), Backend::Fd)
            .fsync(FsyncSchedule::Milliseconds(ms))
            .open()
            .expect("open");
        // Entries over several segments, all consumed: deleting the consumed
        // segments is the background thread's job, so they go only if it
        // still runs.
        for i in 0..600u32 {
            wal.append_for_topic("t", &[i as u8; 1024]).unwrap();
        }
        assert_eq!(drain(&wal, "t").len(), 600);
        let instance = dir.path().join("default");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while segments(&instance).len() > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            segments(&instance).len() <= 1,
            "Milliseconds({ms}): consumed segments not reclaimed: {:?}",
            segments(&instance)
        );
        wal.append_for_topic("t", b"after").unwrap();
        drop(wal);
        let wal = open(dir.path(), Backend::Fd);
        assert_eq!(drain(&wal, "t"), vec![b"after".to_vec()]);
    }
}

fn sim_open(sim: &SimStorage) -> Walrus {
    Walrus::builder()
        .data_dir(Path::new("/sim"))
        .storage(Arc::new(sim.clone()))
        .quiet(true)
        .segment_bytes(64 * 1024)
        .extent_bytes(8 * 1024)
        .fsync(FsyncSchedule::SyncEach)
        .open()
        .expect("open")
}

#[test]
fn a_segment_named_with_the_largest_id_is_reported_not_overflowed() {
    let sim = SimStorage::new();
    let wal = sim_open(&sim);
    wal.append_for_topic("t", b"kept").unwrap();
    drop(wal);
    let odd = Path::new("/sim/default").join(format!("seg-{:020}.wal", u64::MAX));
    let f = sim
        .open(&odd, OpenMode::CreateNew, FileKind::Small)
        .unwrap();
    f.write_all_at(&[0x11; 4096], 0).unwrap();
    f.sync().unwrap();
    sim.sync_dir(Path::new("/sim/default")).unwrap();
    let wal = sim_open(&sim);
    let report = wal.recovery_report();
    assert!(
        report.dropped.iter().any(|d| d.file == odd),
        "the out-of-range segment is named: {report:?}"
    );
    assert_eq!(
        wal.read_next("t", true).unwrap().map(|e| e.data.to_vec()),
        Some(b"kept".to_vec())
    );
    // New segments still get ids that were never used.
    for i in 0..200u32 {
        wal.append_for_topic("t", &[i as u8; 1000]).unwrap();
    }
}
