//! Several active segments ("lanes", `WalrusBuilder::active_segments`): each
//! topic's extents come from one lane's segments, so topics appended by
//! different threads write different files. What must hold whatever the lane
//! count: every topic reads back whole and in order, also after a reopen with
//! another lane count and after a crash; consumed segments of every lane are
//! reclaimed; and a count out of range is a typed error.

use crate::common::*;
use std::thread;
use walrus_wal::{Error, FsyncSchedule, Walrus, MAX_ACTIVE_SEGMENTS};

fn topic(t: usize) -> String {
    format!("lane-topic-{t}")
}

#[test]
fn topics_of_different_lanes_write_different_segment_files() {
    for backend in BACKENDS {
        for lanes in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let wal = builder(dir.path(), backend)
                .active_segments(lanes)
                .open()
                .unwrap();
            for t in 0..3 {
                wal.append_for_topic(&topic(t), b"first").unwrap();
            }
            let files = segments(&dir.path().join("default")).len();
            assert_eq!(
                files, lanes,
                "{backend}, {lanes} lane(s): one segment per lane in use"
            );
        }
    }
}

/// Four threads on eight topics with 32 KiB segments (rollover every few
/// appends), through a clean reopen with one lane, a crash, and a reopen
/// with four: each topic is exactly its appends, in order.
#[test]
fn every_topic_reads_back_in_order_whatever_the_lane_count_of_each_open() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 2;
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let open = |lanes: usize| {
            builder(dir.path(), backend)
                .segment_bytes(32 * 1024)
                .extent_bytes(8 * 1024)
                .active_segments(lanes)
                .open()
                .unwrap()
        };
        let mut next = [0u64; THREADS * PER_THREAD];
        for (round, lanes) in [(0, 3), (1, 1), (2, 4)] {
            let wal = open(lanes);
            let counts: Vec<u64> = thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|th| {
                        let wal = &wal;
                        let next = &next;
                        s.spawn(move || {
                            for i in 0..150u64 {
                                let t = th * PER_THREAD + (i as usize % PER_THREAD);
                                let n = next[t] + i / PER_THREAD as u64;
                                if i % 7 == 0 {
                                    let p = payload(&topic(t), n);
                                    wal.batch_append_for_topic(&topic(t), &[&p[..]]).unwrap();
                                } else {
                                    wal.append_for_topic(&topic(t), &payload(&topic(t), n))
                                        .unwrap();
                                }
                            }
                            150u64 / PER_THREAD as u64
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for (th, c) in counts.iter().enumerate() {
                for k in 0..PER_THREAD {
                    next[th * PER_THREAD + k] += c;
                }
            }
            if round == 1 {
                wal.sync().unwrap();
                wal.simulate_crash();
            } else {
                drop(wal);
            }
        }
        let wal = open(2);
        for (t, &n) in next.iter().enumerate() {
            let got = drain(&wal, &topic(t));
            let want: Vec<Vec<u8>> = (0..n).map(|i| payload(&topic(t), i)).collect();
            assert_eq!(got.len(), want.len(), "{backend}: {} entries", topic(t));
            assert!(
                got == want,
                "{backend}: {} read back out of order or changed",
                topic(t)
            );
        }
    }
}

#[test]
fn consumed_segments_of_every_lane_are_reclaimed() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("default");
        let wal = builder(dir.path(), backend)
            .segment_bytes(32 * 1024)
            .extent_bytes(8 * 1024)
            .active_segments(3)
            .open()
            .unwrap();
        for round in 0..20u64 {
            for t in 0..3 {
                for i in 0..40 {
                    wal.append_for_topic(&topic(t), &payload(&topic(t), round * 40 + i))
                        .unwrap();
                }
            }
            for t in 0..3 {
                assert_eq!(drain(&wal, &topic(t)).len(), 40);
            }
        }
        // Only each lane's current segment (and its previous one, until the
        // background thread deletes it) may remain.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut left = segments(&wal_dir).len();
        while left > 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            left = segments(&wal_dir).len();
        }
        assert!(
            left <= 3,
            "{backend}: {left} segments left after every entry was consumed"
        );
    }
}

#[test]
fn an_active_segment_count_out_of_range_is_a_typed_error() {
    for bad in [0, MAX_ACTIVE_SEGMENTS + 1] {
        let dir = tempfile::tempdir().unwrap();
        let got = Walrus::builder()
            .data_dir(dir.path())
            .quiet(true)
            .active_segments(bad)
            .open();
        assert!(
            matches!(got, Err(Error::InvalidInput(ref m)) if m.contains("active segments")),
            "{bad} active segments: {:?}",
            got.err()
        );
    }
}

/// The default: one lane under `SyncEach` (one fdatasync covers a group) and
/// on mmap; more on fd otherwise (when the host has more than one core).
#[test]
fn sync_each_and_mmap_default_to_one_active_segment() {
    for (backend, fsync) in [
        (walrus_wal::Backend::Fd, FsyncSchedule::SyncEach),
        (walrus_wal::Backend::Mmap, FsyncSchedule::NoFsync),
        (walrus_wal::Backend::Mmap, FsyncSchedule::Milliseconds(100)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let wal = builder(dir.path(), backend).fsync(fsync).open().unwrap();
        for t in 0..4 {
            wal.append_for_topic(&topic(t), b"x").unwrap();
        }
        assert_eq!(
            segments(&dir.path().join("default")).len(),
            1,
            "{backend} {fsync:?}"
        );
    }
}

/// Damage in one lane's segment costs only what it hits: the topics of the
/// other lanes read back whole, and the loss is reported.
#[test]
fn a_flipped_bit_in_one_lanes_segment_spares_the_other_lanes() {
    use std::os::unix::fs::FileExt;
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = builder(dir.path(), backend)
                .active_segments(3)
                .open()
                .unwrap();
            for t in 0..3 {
                wal.append_for_topic(&topic(t), b"before").unwrap();
                wal.append_for_topic(&topic(t), format!("MARK-{t}").as_bytes())
                    .unwrap();
            }
            wal.simulate_crash();
        }
        let marker = b"MARK-1";
        let hit: Vec<_> = segments(&dir.path().join("default"))
            .into_iter()
            .filter_map(|seg| {
                let bytes = std::fs::read(&seg).unwrap();
                let at = bytes.windows(marker.len()).position(|w| w == marker)?;
                Some((seg, at, bytes[at]))
            })
            .collect();
        assert_eq!(hit.len(), 1, "{backend}: the marker is in one file");
        let (seg, at, byte) = &hit[0];
        let file = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
        file.write_all_at(&[byte ^ 0x10], *at as u64).unwrap();
        drop(file);
        let wal = builder(dir.path(), backend).open().unwrap();
        assert_eq!(
            wal.recovery_report().dropped.len(),
            1,
            "{:?}",
            wal.recovery_report()
        );
        assert_eq!(drain(&wal, &topic(1)), vec![b"before".to_vec()]);
        for t in [0, 2] {
            let want = vec![b"before".to_vec(), format!("MARK-{t}").into_bytes()];
            assert_eq!(drain(&wal, &topic(t)), want, "{backend}: {}", topic(t));
        }
    }
}
