//! Many threads appending to their own and to a shared topic, with SyncEach
//! group commit and with the background flusher: nothing is lost, reordered
//! within a thread, or duplicated.

use crate::common::*;
use std::sync::Arc;
use walrus_wal::FsyncSchedule;

#[test]
fn concurrent_appenders_lose_nothing() {
    for backend in BACKENDS {
        for fsync in [FsyncSchedule::SyncEach, FsyncSchedule::Milliseconds(5)] {
            let dir = tempfile::tempdir().unwrap();
            let wal = Arc::new(builder(dir.path(), backend).fsync(fsync).open().unwrap());
            let threads: Vec<_> = (0..4u64)
                .map(|t| {
                    let wal = wal.clone();
                    std::thread::spawn(move || {
                        for i in 0..200u64 {
                            let own = format!("own-{t}");
                            wal.append_for_topic(&own, &payload(&own, i)).unwrap();
                            wal.append_for_topic("shared", format!("{t}:{i}").as_bytes())
                                .unwrap();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            drop(wal);
            let wal = open(dir.path(), backend);
            for t in 0..4 {
                let own = format!("own-{t}");
                let expect: Vec<_> = (0..200).map(|i| payload(&own, i)).collect();
                assert_eq!(drain(&wal, &own), expect, "{backend} {fsync}");
            }
            let shared = drain(&wal, "shared");
            assert_eq!(shared.len(), 800);
            let mut next = [0u64; 4];
            for e in shared {
                let s = String::from_utf8(e).unwrap();
                let (t, i) = s.split_once(':').unwrap();
                let (t, i): (usize, u64) = (t.parse().unwrap(), i.parse().unwrap());
                assert_eq!(i, next[t], "per-thread order in the shared topic");
                next[t] += 1;
            }
        }
    }
}
