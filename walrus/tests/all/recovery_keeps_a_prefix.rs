//! Recovery keeps a prefix of every topic: an extent that survived while an
//! earlier one of its topic was lost is cut out and reported, unless every
//! entry in between was consumed (then the topic resumes at its cursor).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use walrus_wal::testing::{Crash, SimStorage, Storage};
use walrus_wal::{FsyncSchedule, ReadConsistency, Walrus};

fn open(sim: &SimStorage) -> Walrus {
    Walrus::builder()
        .data_dir(Path::new("/sim"))
        .storage(Arc::new(sim.clone()))
        .quiet(true)
        // One extent per segment: each topic's extent lands in its own file.
        .segment_bytes(16 * 1024)
        .extent_bytes(8 * 1024)
        .recovery_snapshot_every_bytes(0)
        .consistency(ReadConsistency::StrictlyAtOnce)
        .fsync(FsyncSchedule::SyncEach)
        .open()
        .expect("open")
}

fn segments(sim: &SimStorage) -> Vec<PathBuf> {
    sim.files()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect()
}

/// Appends `n` entries of 1 KiB to "t": about 7 per extent, so they span
/// several segments.
fn fill(wal: &Walrus, n: u32) {
    for i in 0..n {
        wal.append_for_topic("t", &[i as u8; 1024]).unwrap();
    }
}

#[test]
fn a_later_extent_whose_predecessor_was_lost_is_dropped_and_reported() {
    let sim = SimStorage::new();
    let wal = open(&sim);
    fill(&wal, 20);
    wal.simulate_crash();
    let image = sim.crash(Crash::Process);
    let first = segments(&image).into_iter().next().expect("a segment");
    image.remove(&first).unwrap();
    let wal = open(&image);
    let info = wal.topic_info("t");
    let readable = wal.batch_read_for_topic("t", usize::MAX, false).unwrap();
    assert!(
        readable.is_empty(),
        "entries after a hole were kept: {} from seq {:?}",
        readable.len(),
        readable.first().map(|e| e.seq)
    );
    assert!(
        info.is_none_or(|i| i.next_to_read == 0),
        "the cursor did not move: {info:?}"
    );
    let dropped = &wal.recovery_report().dropped;
    assert!(
        dropped.iter().any(|d| d.topic.as_deref() == Some("t")),
        "the cut-out extents are reported: {dropped:?}"
    );
}

#[test]
fn a_gap_of_consumed_entries_resumes_at_the_cursor() {
    let sim = SimStorage::new();
    let wal = open(&sim);
    fill(&wal, 20);
    for _ in 0..10 {
        wal.read_next("t", true).unwrap().expect("an entry");
    }
    wal.simulate_crash();
    let image = sim.crash(Crash::Process);
    // The first segment holds only consumed entries (about 7 of them). The
    // background thread may have reclaimed it already, which is the same
    // case; then there is nothing to remove.
    let first = Path::new("/sim/default").join(format!("seg-{:020}.wal", 1));
    if segments(&image).contains(&first) {
        image.remove(&first).unwrap();
    }
    let wal = open(&image);
    let rest = wal.batch_read_for_topic("t", usize::MAX, true).unwrap();
    let seqs: Vec<u64> = rest.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (10..20).collect::<Vec<u64>>());
}
