//! Every store compiled into this build runs a short write cell and a short
//! read cell end to end through the adapters, and what it hands back
//! verifies: the harness and the stores agree on the `LogStore` contract.

use std::path::Path;
use std::time::Duration;

use walrus_harness::{
    run_cell, Progress, ReadMode, ReadSpec, RunEnv, StoreKind, TopicMode, Workload, WriteSpec,
};
use walrus_wal::{FsyncSchedule, ReadConsistency, StoreConfig};

fn write(topics: TopicMode, batch_size: usize) -> WriteSpec {
    WriteSpec {
        threads: 2,
        entry_size: 256,
        batch_size,
        topics,
        duration: Duration::from_millis(150),
        warmup: Duration::from_millis(30),
        rate: None,
        count: None,
    }
}

#[test]
fn every_available_store_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let env = RunEnv {
        data_dir: dir.path().to_path_buf(),
        keep_data: false,
        progress: Progress::silent(),
    };
    let config = StoreConfig {
        consistency: ReadConsistency::AtLeastOnce { persist_every: 100 },
        fsync: FsyncSchedule::Milliseconds(100),
    };
    let workloads = [
        Workload::Write(write(TopicMode::PerThread, 1)),
        Workload::Write(write(TopicMode::Shared, 8)),
        Workload::Read {
            write: write(TopicMode::PerThread, 1),
            read: ReadSpec {
                threads: 2,
                mode: ReadMode::Batch { max_bytes: 4096 },
                duration: Duration::from_millis(150),
            },
            cold: false,
        },
    ];
    for kind in StoreKind::all_available() {
        let open = |d: &Path, c: StoreConfig| walrus_adapters::open_store(kind, d, c);
        for w in &workloads {
            let o = run_cell(&open, &kind.to_string(), config, w, &env)
                .unwrap_or_else(|e| panic!("{kind} {w:?}: {e}"));
            assert!(
                o.write.entries > 0 && o.verified_entries > 0,
                "{kind} {w:?}"
            );
            assert!(o.disk_bytes > 0, "{kind} wrote nothing to disk");
        }
    }
}
