//! Cursors survive reopen: StrictlyAtOnce never redelivers a consumed entry;
//! AtLeastOnce redelivers at most `persist_every` entries after a crash.

use crate::common::*;
use walrus_wal::ReadConsistency;

#[test]
fn strictly_at_once_never_redelivers_even_without_a_clean_close() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal = open(dir.path(), backend);
        for i in 0..20 {
            wal.append_for_topic("q", &payload("q", i)).unwrap();
        }
        for i in 0..7 {
            assert_eq!(wal.read_next("q", true).unwrap().unwrap().seq, i);
        }
        let got = wal.batch_read_for_topic("q", 3 * 300, true).unwrap();
        let consumed = 7 + got.len() as u64;
        wal.simulate_crash();
        let wal = open(dir.path(), backend);
        let next = wal.read_next("q", true).unwrap().unwrap();
        assert_eq!(next.seq, consumed, "{backend}");
    }
}

#[test]
fn at_least_once_redelivers_at_most_persist_every() {
    for backend in BACKENDS {
        for persist_every in [1u32, 4, 10] {
            let dir = tempfile::tempdir().unwrap();
            let b = builder(dir.path(), backend)
                .consistency(ReadConsistency::AtLeastOnce { persist_every });
            let wal = b.clone().open().unwrap();
            for i in 0..50 {
                wal.append_for_topic("q", &payload("q", i)).unwrap();
            }
            for _ in 0..23 {
                wal.read_next("q", true).unwrap().unwrap();
            }
            wal.simulate_crash();
            let wal = b.open().unwrap();
            let next = wal.read_next("q", true).unwrap().unwrap().seq;
            assert!(next <= 23, "skipped entries: resumed at {next}");
            assert!(
                23 - next < persist_every as u64,
                "{persist_every}: resumed at {next}"
            );
        }
    }
}

#[test]
fn a_clean_close_persists_at_least_once_cursors_exactly() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let b = builder(dir.path(), backend).consistency(ReadConsistency::AtLeastOnce {
            persist_every: 1000,
        });
        {
            let wal = b.clone().open().unwrap();
            for i in 0..10 {
                wal.append_for_topic("q", &payload("q", i)).unwrap();
            }
            for _ in 0..4 {
                wal.read_next("q", true).unwrap();
            }
        }
        let wal = b.open().unwrap();
        assert_eq!(wal.read_next("q", true).unwrap().unwrap().seq, 4);
    }
}
