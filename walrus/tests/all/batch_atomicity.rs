//! A batch is one frame under one checksum: after a crash that tears it, none
//! of its entries come back, and entries before it are intact.

use crate::common::*;
use std::os::unix::fs::FileExt;
use walrus_wal::Error;

#[test]
fn batches_are_read_back_in_order() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal = builder(dir.path(), backend)
            .segment_bytes(1 << 20)
            .open()
            .unwrap();
        let owned: Vec<Vec<u8>> = (0..2000u64).map(|i| payload("b", i)).collect();
        let batch: Vec<&[u8]> = owned.iter().map(|p| p.as_slice()).collect();
        wal.batch_append_for_topic("b", &batch).unwrap();
        wal.append_for_topic("b", b"after").unwrap();
        let mut got = drain(&wal, "b");
        assert_eq!(got.pop().unwrap(), b"after");
        assert_eq!(got, owned);
    }
}

#[test]
fn oversized_batches_are_refused_and_change_nothing() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal = open(dir.path(), backend);
        wal.append_for_topic("b", b"kept").unwrap();
        let too_many = vec![&b"x"[..]; 2001];
        assert!(matches!(
            wal.batch_append_for_topic("b", &too_many),
            Err(Error::InvalidBatch { .. })
        ));
        // An empty batch is a no-op, as in walrus-rust.
        wal.batch_append_for_topic("b", &[]).unwrap();
        // 2,000 entries of 3 MiB: 6 GB, over the 4 GiB frame limit. (One
        // buffer referred to 2,000 times: nothing that large is allocated.)
        let big = vec![0u8; 3 << 20];
        let too_big = vec![big.as_slice(); 2000];
        assert!(matches!(
            wal.batch_append_for_topic("b", &too_big),
            Err(Error::InvalidBatch { .. })
        ));
        assert_eq!(drain(&wal, "b"), vec![b"kept".to_vec()]);
    }
}

#[test]
fn a_torn_batch_is_wholly_absent_after_recovery() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("default");
        let before: Vec<Vec<u8>> = (0..5).map(|i| payload("t", i)).collect();
        {
            let wal = open(dir.path(), backend);
            for p in &before {
                wal.append_for_topic("t", p).unwrap();
            }
            let batch: Vec<Vec<u8>> = (100..150).map(|i| payload("t", i)).collect();
            let refs: Vec<&[u8]> = batch.iter().map(|p| p.as_slice()).collect();
            wal.batch_append_for_topic("t", &refs).unwrap();
            wal.simulate_crash();
        }
        // Tear the batch: zero the second half of its frame, as if the crash
        // hit while its pages were being written back.
        let seg = segments(&wal_dir).pop().unwrap();
        let bytes = std::fs::read(&seg).unwrap();
        let end = bytes.iter().rposition(|&b| b != 0).unwrap() as u64;
        let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        file.write_all_at(&vec![0u8; 2000], end - 2000).unwrap();
        drop(file);

        let wal = open(dir.path(), backend);
        assert_eq!(drain(&wal, "t"), before, "{backend}");
        assert_eq!(
            wal.recovery_report().dropped.len(),
            1,
            "{:?}",
            wal.recovery_report()
        );
        // The topic goes on after the dropped batch.
        wal.append_for_topic("t", b"next").unwrap();
        assert_eq!(drain(&wal, "t"), vec![b"next".to_vec()]);
    }
}
