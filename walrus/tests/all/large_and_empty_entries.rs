//! Empty payloads and entries larger than an extent round-trip; entries over
//! the maximum (4 GiB - 12 KiB) are refused with a typed error and change
//! nothing. Entries larger than a segment: tests/larger_than_a_segment.rs.

use crate::common::*;
use walrus_wal::Error;

#[test]
fn empty_and_larger_than_extent_entries_round_trip() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect(); // > 16 KiB extent
        {
            let wal = open(dir.path(), backend);
            wal.append_for_topic("t", b"").unwrap();
            wal.append_for_topic("t", &big).unwrap();
            wal.append_for_topic("t", b"").unwrap();
            wal.batch_append_for_topic("t", &[b"", &big, b"z"]).unwrap();
        }
        let wal = open(dir.path(), backend);
        let got = drain(&wal, "t");
        let expect: Vec<Vec<u8>> = vec![
            vec![],
            big.clone(),
            vec![],
            vec![],
            big.clone(),
            b"z".to_vec(),
        ];
        assert_eq!(got, expect);
    }
}

#[test]
fn an_entry_over_the_limit_is_a_typed_error() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal = open(dir.path(), backend);
        wal.append_for_topic("t", b"kept").unwrap();
        // Zeroed by the allocator and never touched: no 4 GiB is resident.
        let huge = vec![0u8; 4 << 30]; // over the 4 GiB - 12 KiB frame limit
        match wal.append_for_topic("t", &huge) {
            Err(Error::EntryTooLarge { size, max }) => assert!(size > max),
            other => panic!("expected EntryTooLarge, got {other:?}"),
        }
        assert_eq!(drain(&wal, "t"), vec![b"kept".to_vec()]);
    }
}

#[test]
fn batch_read_respects_the_byte_budget_but_returns_at_least_one() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal = open(dir.path(), backend);
        for len in [100usize, 100, 100, 5000, 10] {
            wal.append_for_topic("t", &vec![7u8; len]).unwrap();
        }
        let sizes =
            |v: Vec<walrus_wal::Entry>| v.into_iter().map(|e| e.data.len()).collect::<Vec<_>>();
        assert_eq!(
            sizes(wal.batch_read_for_topic("t", 250, false).unwrap()),
            vec![100, 100]
        );
        assert_eq!(
            sizes(wal.batch_read_for_topic("t", 0, true).unwrap()),
            vec![100]
        );
        assert_eq!(
            sizes(wal.batch_read_for_topic("t", 300, true).unwrap()),
            vec![100, 100]
        );
        assert_eq!(
            sizes(wal.batch_read_for_topic("t", 10, true).unwrap()),
            vec![5000]
        );
        assert_eq!(
            sizes(wal.batch_read_for_topic("t", 10, true).unwrap()),
            vec![10]
        );
        assert!(wal.batch_read_for_topic("t", 10, true).unwrap().is_empty());
    }
}
