//! StrictlyAtOnce consumers of different topics persist their cursors at
//! the same time and share the cursor log's fdatasync (group commit). A
//! power-loss image taken at any moment must hold, for every topic, a
//! cursor past every entry a read had returned by then (nothing returned is
//! ever returned again), and at most one entry further (a read in flight,
//! which persisted its cursor but had not returned yet).

use parking_lot::Mutex;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use walrus_wal::testing::{Crash, SimStorage};
use walrus_wal::{FsyncSchedule, ReadConsistency, Walrus};

const TOPICS: usize = 6;
const PER_TOPIC: u64 = 300;
const IMAGES: usize = 25;

fn open(sim: &SimStorage) -> Walrus {
    Walrus::builder()
        .data_dir(Path::new("/sim"))
        .storage(Arc::new(sim.clone()))
        .quiet(true)
        .fsync(FsyncSchedule::NoFsync)
        .consistency(ReadConsistency::StrictlyAtOnce)
        .open()
        .expect("open")
}

fn topic(t: usize) -> String {
    format!("topic-{t}")
}

#[test]
fn power_loss_images_never_move_a_strict_cursor_back() {
    let sim = SimStorage::new();
    let wal = open(&sim);
    for t in 0..TOPICS {
        for i in 0..PER_TOPIC {
            wal.append_for_topic(&topic(t), &i.to_le_bytes()).unwrap();
        }
    }
    wal.sync().unwrap();

    // returned[t]: entries of topic t whose read has returned.
    let returned = Mutex::new(vec![0u64; TOPICS]);
    let mut images = Vec::new();
    std::thread::scope(|s| {
        for t in 0..TOPICS {
            let (wal, returned) = (&wal, &returned);
            s.spawn(move || {
                for i in 0..PER_TOPIC {
                    let e = wal.read_next(&topic(t), true).unwrap().expect("an entry");
                    assert_eq!(e.seq, i);
                    returned.lock()[t] = i + 1;
                }
            });
        }
        for k in 0..IMAGES {
            std::thread::sleep(Duration::from_micros(300 + 150 * k as u64));
            // Under the lock no read can record its return: every read
            // counted in `seen` returned before the image was taken.
            let seen = returned.lock();
            images.push((sim.crash(Crash::LoseUnsynced), seen.clone()));
        }
    });
    images.push((sim.crash(Crash::LoseUnsynced), returned.lock().clone()));

    for (n, (image, seen)) in images.into_iter().enumerate() {
        let wal = open(&image);
        for (t, &returned) in seen.iter().enumerate() {
            let cursor = wal
                .read_next(&topic(t), false)
                .unwrap()
                .map_or(PER_TOPIC, |e| e.seq);
            assert!(
                cursor >= returned,
                "image {n}: {} would return entry {cursor} again (returned {returned})",
                topic(t)
            );
            assert!(
                cursor <= returned + 1,
                "image {n}: {} cursor {cursor} is past a read in flight (returned {returned})",
                topic(t)
            );
        }
    }
}
