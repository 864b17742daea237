//! Verification is what keeps a fast but wrong store from winning: each
//! kind of wrong data fails the cell instead of producing a number.

mod common;

use common::{env, Fault, MemStore, SHORT};
use walrus_harness::{run_cell, BenchError, ReadMode, ReadSpec, TopicMode, Workload, WriteSpec};
use walrus_wal::{LogStore, StoreConfig};

fn write(threads: usize, batch_size: usize, topics: TopicMode) -> Workload {
    Workload::Write(WriteSpec {
        threads,
        entry_size: 64,
        batch_size,
        topics,
        duration: SHORT,
        warmup: SHORT / 3,
        rate: None,
        count: None,
    })
}

fn read(threads: usize, mode: ReadMode) -> Workload {
    let Workload::Write(write) = write(threads, 1, TopicMode::PerThread) else {
        unreachable!()
    };
    Workload::Read {
        write,
        read: ReadSpec {
            threads,
            mode,
            duration: SHORT,
        },
        cold: false,
    }
}

fn run(fault: Fault, workload: &Workload) -> Result<walrus_harness::CellOutcome, BenchError> {
    let dir = tempfile::tempdir().unwrap();
    let open = |_: &std::path::Path, _: StoreConfig| -> walrus_wal::Result<Box<dyn LogStore>> {
        Ok(Box::new(MemStore::new("mem", fault)))
    };
    run_cell(
        &open,
        "mem",
        StoreConfig::default(),
        workload,
        &env(dir.path()),
    )
}

fn workloads() -> Vec<Workload> {
    vec![
        write(1, 1, TopicMode::PerThread),
        write(3, 1, TopicMode::PerThread),
        write(3, 1, TopicMode::Shared),
        write(2, 10, TopicMode::PerThread),
        read(2, ReadMode::Single),
        read(2, ReadMode::Batch { max_bytes: 640 }),
    ]
}

#[test]
fn a_correct_store_passes_every_workload() {
    for w in workloads() {
        let o = run(Fault::None, &w).unwrap_or_else(|e| panic!("{w:?}: {e}"));
        assert!(o.write.entries > 0, "{w:?} wrote nothing");
        match &w {
            Workload::Write(_) | Workload::AsyncWrite(_) => {
                assert_eq!(o.verified_entries, o.write.entries)
            }
            Workload::Read { .. } => {
                let r = o.read.as_ref().unwrap();
                assert!(r.entries > 0 && r.entries <= o.write.entries);
            }
        }
    }
}

#[test]
fn every_kind_of_wrong_data_fails_verification() {
    for fault in [
        Fault::DropAppend(97),
        Fault::FlipBitOnRead(89),
        Fault::RepeatOnRead(83),
    ] {
        for w in workloads() {
            match run(fault, &w) {
                Err(BenchError::Verify { store, source }) => {
                    assert_eq!(store, "mem");
                    assert!(!source.reason.is_empty());
                }
                Err(other) => panic!("{fault:?} {w:?}: unexpected error {other}"),
                Ok(o) => panic!(
                    "{fault:?} {w:?}: a wrong store passed with {} entries",
                    o.write.entries
                ),
            }
        }
    }
}
