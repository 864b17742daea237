//! A full disk. Appends fail with a typed ENOSPC and nothing acknowledged
//! is lost; the log can still be consumed, both by the running instance and
//! after a reopen on the still-full disk, and consuming frees the space of
//! the segments it used up. (A WAL that cannot be drained when its disk is
//! full can only be rescued by deleting someone else's files.)

use std::path::Path;
use std::sync::Arc;
use walrus_wal::testing::SimStorage;
use walrus_wal::{Error, FsyncSchedule, ReadConsistency, Walrus};

fn open(sim: &SimStorage, consistency: ReadConsistency) -> walrus_wal::Result<Walrus> {
    Walrus::builder()
        .data_dir(Path::new("/sim"))
        .storage(Arc::new(sim.clone()))
        .quiet(true)
        .segment_bytes(64 * 1024)
        .extent_bytes(8 * 1024)
        .fsync(FsyncSchedule::SyncEach)
        .consistency(consistency)
        .open()
}

fn entry(i: u64) -> Vec<u8> {
    let mut e = i.to_le_bytes().to_vec();
    e.resize(200, i as u8);
    e
}

/// A long topic name makes each cursor record long, so that the consumers
/// below fill the cursor log past the point where it asks for a compaction
/// (which the full disk refuses).
fn topic() -> String {
    "t".repeat(250)
}

fn segments(sim: &SimStorage) -> usize {
    sim.files()
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|x| x == "wal"))
        .count()
}

#[test]
fn a_full_disk_can_still_be_drained() {
    for consistency in [
        ReadConsistency::StrictlyAtOnce,
        ReadConsistency::AtLeastOnce { persist_every: 10 },
    ] {
        let sim = SimStorage::new();
        let wal = open(&sim, consistency).unwrap();
        let mut acked = 0;
        while acked < 1_000 {
            wal.append_for_topic(&topic(), &entry(acked)).unwrap();
            acked += 1;
        }
        sim.set_full(true);
        loop {
            match wal.append_for_topic(&topic(), &entry(acked)) {
                Ok(()) => acked += 1,
                Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOSPC) => {
                    break
                }
                Err(e) => panic!("{consistency}: expected ENOSPC, got {e}"),
            }
            assert!(acked < 10_000, "{consistency}: the full disk never filled");
        }
        let full_segments = segments(&sim);

        // The running instance consumes most of it, one entry at a time...
        let before_reopen = 850.min(acked - 50);
        for i in 0..before_reopen {
            let e = wal.read_next(&topic(), true).unwrap().expect("an entry");
            assert_eq!((e.seq, e.data.to_vec()), (i, entry(i)), "{consistency}");
        }
        drop(wal);

        // ...and a reopen on the same full disk consumes the rest.
        let wal = open(&sim, consistency)
            .unwrap_or_else(|e| panic!("{consistency}: reopening on a full disk: {e}"));
        let mut next = wal
            .read_next(&topic(), false)
            .unwrap()
            .expect("an entry")
            .seq;
        assert!(
            next <= before_reopen,
            "{consistency}: consumed entries skipped"
        );
        loop {
            let batch = wal.batch_read_for_topic(&topic(), 4096, true).unwrap();
            if batch.is_empty() {
                break;
            }
            for e in batch {
                assert_eq!(
                    (e.seq, &e.data.to_vec()),
                    (next, &entry(next)),
                    "{consistency}"
                );
                next += 1;
            }
        }
        assert_eq!(next, acked, "{consistency}: acknowledged entries lost");
        // The background thread deletes consumed segments: give it a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while segments(&sim) >= full_segments && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(
            segments(&sim) < full_segments,
            "{consistency}: consuming freed no segment ({full_segments} before)"
        );
    }
}
