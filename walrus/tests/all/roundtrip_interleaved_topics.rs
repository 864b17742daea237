//! Entries of interleaved topics come back per topic, in order, byte-exact,
//! across extent and segment boundaries and across a reopen, on both backends.

use crate::common::*;

#[test]
fn interleaved_topics_round_trip_and_survive_reopen() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let topics = ["alpha", "beta", "gamma/with/slashes", "δ"];
        {
            let wal = open(dir.path(), backend);
            for i in 0..400u64 {
                let t = topics[(i % 4) as usize];
                wal.append_for_topic(t, &payload(t, i / 4)).unwrap();
            }
            // Consume half of alpha before the reopen.
            for i in 0..50 {
                let e = wal.read_next("alpha", true).unwrap().unwrap();
                assert_eq!((e.seq, e.data.to_vec()), (i, payload("alpha", i)));
            }
        }
        let wal = open(dir.path(), backend);
        assert!(
            wal.recovery_report().dropped.is_empty(),
            "{:?}",
            wal.recovery_report()
        );
        for t in topics {
            let start = if t == "alpha" { 50 } else { 0 };
            let expect: Vec<_> = (start..100).map(|i| payload(t, i)).collect();
            assert_eq!(drain(&wal, t), expect, "{backend} {t}");
        }
        assert_eq!(wal.read_next("never-written", true).unwrap(), None);
    }
}

#[test]
fn peek_does_not_move_the_cursor() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal = open(dir.path(), backend);
        wal.append_for_topic("t", b"one").unwrap();
        wal.append_for_topic("t", b"two").unwrap();
        assert_eq!(
            wal.read_next("t", false).unwrap().unwrap().data,
            &b"one"[..]
        );
        assert_eq!(
            wal.read_next("t", false).unwrap().unwrap().data,
            &b"one"[..]
        );
        assert_eq!(wal.read_next("t", true).unwrap().unwrap().data, &b"one"[..]);
        assert_eq!(wal.read_next("t", true).unwrap().unwrap().data, &b"two"[..]);
        assert_eq!(wal.read_next("t", true).unwrap(), None);
        wal.append_for_topic("t", b"three").unwrap();
        assert_eq!(
            wal.read_next("t", true).unwrap().unwrap().data,
            &b"three"[..]
        );
    }
}
