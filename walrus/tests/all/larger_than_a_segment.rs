//! Entries and atomic batches larger than a whole segment (the test
//! segments are 256 KiB): each gets a segment of its own, reads back whole
//! and in order between the small appends of several topics, survives a
//! reopen and a crash, and is reclaimed once consumed. The full-size case
//! (a 1 GiB entry, 2,000 × 1 MiB batches, peak RSS measured) is
//! `make large-entries`.

use crate::common::*;
use std::sync::Arc;
use walrus_wal::{Backend, FsyncSchedule, Walrus};

const SEGMENT: usize = 256 * 1024;

fn big(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// What each topic should hold, in order.
struct Expected(Vec<(String, Vec<Vec<u8>>)>);

impl Expected {
    fn push(&mut self, topic: &str, entries: impl IntoIterator<Item = Vec<u8>>) {
        match self.0.iter_mut().find(|(t, _)| t == topic) {
            Some((_, v)) => v.extend(entries),
            None => self
                .0
                .push((topic.to_owned(), entries.into_iter().collect())),
        }
    }

    fn check(&self, wal: &Walrus) {
        for (topic, entries) in &self.0 {
            let got = drain(wal, topic);
            assert_eq!(got.len(), entries.len(), "entries of {topic}");
            for (i, (g, e)) in got.iter().zip(entries).enumerate() {
                assert!(
                    g == e,
                    "{topic} entry {i}: {} bytes, expected {}",
                    g.len(),
                    e.len()
                );
            }
        }
    }
}

fn write_mix(wal: &Walrus, expected: &mut Expected) {
    let one_mib = big(1, 1 << 20);
    let small: Vec<Vec<u8>> = (0..3).map(|i| payload("s", i)).collect();
    for (i, p) in small.iter().enumerate() {
        wal.append_for_topic(if i % 2 == 0 { "a" } else { "b" }, p)
            .unwrap();
        expected.push(if i % 2 == 0 { "a" } else { "b" }, [p.clone()]);
    }
    // One entry four segments long.
    wal.append_for_topic("a", &one_mib).unwrap();
    expected.push("a", [one_mib.clone()]);
    wal.append_for_topic("b", b"between").unwrap();
    expected.push("b", [b"between".to_vec()]);
    // A batch of 2,000 entries, 2.2 MB in all: eight segments' worth.
    let batch: Vec<Vec<u8>> = (0..2000u64)
        .map(|i| big(i + 7, 1000 + i as usize % 300))
        .collect();
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    wal.batch_append_for_topic("b", &refs).unwrap();
    expected.push("b", batch.clone());
    // A batch of a few entries each larger than a segment.
    let wide: Vec<Vec<u8>> = (0..3)
        .map(|i| big(100 + i, SEGMENT + 4096 * i as usize))
        .collect();
    let refs: Vec<&[u8]> = wide.iter().map(Vec::as_slice).collect();
    wal.batch_append_for_topic("a", &refs).unwrap();
    expected.push("a", wide.clone());
    wal.append_for_topic("a", b"after").unwrap();
    expected.push("a", [b"after".to_vec()]);
}

#[test]
fn entries_and_batches_larger_than_a_segment_round_trip() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Expected(Vec::new());
        let wal = open(dir.path(), backend);
        write_mix(&wal, &mut expected);
        // Read back in the same run, peeking, then consume after a reopen
        // on the other backend.
        let peek = wal.read_next("a", false).unwrap().unwrap();
        assert_eq!(peek.seq, 0);
        drop(wal);
        let other = if backend == Backend::Mmap {
            Backend::Fd
        } else {
            Backend::Mmap
        };
        let wal = open(dir.path(), other);
        assert!(
            wal.recovery_report().dropped.is_empty(),
            "{:?}",
            wal.recovery_report()
        );
        expected.check(&wal);
        drop(wal);
        // Consumed, every oversized segment is reclaimed.
        let wal = open(dir.path(), backend);
        drop(wal);
        let left = segments(&dir.path().join("default"));
        assert!(
            left.len() <= 2,
            "segments left after consuming everything: {left:?}"
        );
    }
}

#[test]
fn large_appends_survive_a_crash_of_the_process() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Expected(Vec::new());
        let wal = builder(dir.path(), backend)
            .fsync(FsyncSchedule::SyncEach)
            .open()
            .unwrap();
        write_mix(&wal, &mut expected);
        wal.simulate_crash();
        let wal = open(dir.path(), backend);
        assert!(
            wal.recovery_report().dropped.is_empty(),
            "{:?}",
            wal.recovery_report()
        );
        expected.check(&wal);
    }
}

#[test]
fn concurrent_large_and_small_appends_keep_every_topic_in_order() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(open(dir.path(), backend));
        let threads: Vec<_> = (0..3u64)
            .map(|t| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    let topic = format!("t{t}");
                    for i in 0..12u64 {
                        let len = if i % 4 == 3 {
                            SEGMENT * 2
                        } else {
                            100 + i as usize
                        };
                        wal.append_for_topic(&topic, &big(t * 100 + i, len))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let wal = Arc::into_inner(wal).unwrap();
        drop(wal);
        let wal = open(dir.path(), backend);
        for t in 0..3u64 {
            let got = drain(&wal, &format!("t{t}"));
            assert_eq!(got.len(), 12);
            for (i, g) in got.iter().enumerate() {
                let len = if i % 4 == 3 { SEGMENT * 2 } else { 100 + i };
                assert!(*g == big(t * 100 + i as u64, len), "t{t} entry {i}");
            }
        }
    }
}

/// A frame over 16 MiB is checked in 4 MiB pieces and its entries are read
/// one by one: a batch read inside it returns its budget's worth, and damage
/// anywhere in it is found by the read (behind a checkpoint) or by recovery.
#[test]
fn a_frame_too_large_to_hold_is_checked_in_pieces() {
    let four_mib = 4 << 20;
    let batch: Vec<Vec<u8>> = (0..5).map(|i| big(500 + i, four_mib)).collect();
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("default");
        {
            let wal = open(dir.path(), backend);
            wal.append_for_topic("t", b"first").unwrap();
            wal.batch_append_for_topic("t", &refs).unwrap();
        }
        {
            let wal = open(dir.path(), backend);
            assert!(wal.recovery_report().dropped.is_empty());
            assert_eq!(
                wal.read_next("t", true).unwrap().unwrap().data,
                &b"first"[..]
            );
            for (i, want) in batch.iter().enumerate() {
                let got = wal
                    .batch_read_for_topic("t", four_mib + 100, false)
                    .unwrap();
                assert_eq!(got.len(), 1, "a budget of one entry, entry {i}");
                assert!(got[0].data == want[..], "entry {i}");
                assert_eq!(wal.read_next("t", true).unwrap().unwrap().seq, 1 + i as u64);
            }
            assert!(wal.read_next("t", true).unwrap().is_none());
        }
        // Damage the fourth entry of a second copy of the batch.
        let seg = {
            let wal = open(dir.path(), backend);
            wal.batch_append_for_topic("t", &refs).unwrap();
            wal.dir().join(
                segments(wal.dir())
                    .into_iter()
                    .max_by_key(|p| std::fs::metadata(p).unwrap().len())
                    .unwrap(),
            )
        };
        let bytes = std::fs::read(&seg).unwrap();
        let at = bytes
            .windows(64)
            .position(|w| w == &batch[3][1000..1064])
            .expect("the fourth entry on disk");
        let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        std::os::unix::fs::FileExt::write_at(&file, &[bytes[at] ^ 0xff], at as u64).unwrap();
        drop(file);
        {
            // The clean close's checkpoint vouches for the frame: the read
            // that reaches it finds the damage.
            let wal = open(dir.path(), backend);
            assert!(matches!(
                wal.read_next("t", false),
                Err(walrus_wal::Error::Corruption { .. })
            ));
        }
        // Without the checkpoint, recovery checks the frame and reports it.
        let _ = std::fs::remove_file(wal_dir.join("recovery.ckpt"));
        let wal = open(dir.path(), backend);
        assert!(
            !wal.recovery_report().dropped.is_empty(),
            "the damaged frame is reported"
        );
        assert!(wal.read_next("t", true).unwrap().is_none());
    }
}
