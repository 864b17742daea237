//! Cold-read mode: the store is closed after the writes, the page cache
//! dropped, the store reopened, and the reads (verified) come after. Where
//! the cache cannot be dropped, the cell is a typed skip, never a hot read
//! labelled cold.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use walrus_harness::{
    run_cell, BenchError, Progress, ReadMode, ReadSpec, RunEnv, StoreKind, TopicMode, Workload,
    WriteSpec,
};
use walrus_wal::{FsyncSchedule, ReadConsistency, StoreConfig};

#[test]
fn cold_reads_reopen_the_store_or_skip_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let env = RunEnv {
        data_dir: dir.path().to_path_buf(),
        keep_data: false,
        progress: Progress::silent(),
    };
    let write = WriteSpec {
        threads: 2,
        entry_size: 256,
        batch_size: 1,
        topics: TopicMode::PerThread,
        duration: Duration::from_millis(150),
        warmup: Duration::ZERO,
        rate: None,
        count: None,
    };
    let workload = Workload::Read {
        write,
        read: ReadSpec {
            threads: 2,
            mode: ReadMode::Single,
            duration: Duration::from_millis(150),
        },
        cold: true,
    };
    let opens = AtomicUsize::new(0);
    let open = |d: &Path, c: StoreConfig| {
        opens.fetch_add(1, Ordering::Relaxed);
        walrus_adapters::open_store(StoreKind::Raw, d, c)
    };
    let config = StoreConfig {
        fsync: FsyncSchedule::Milliseconds(100),
        consistency: ReadConsistency::AtLeastOnce { persist_every: 100 },
    };
    match run_cell(&open, "raw", config, &workload, &env) {
        Ok(o) => {
            assert_eq!(opens.load(Ordering::Relaxed), 2, "closed and reopened");
            let r = o.read.expect("a read phase");
            assert!(r.entries > 0 && r.entries <= o.write.entries);
            assert_eq!(o.verified_entries, r.entries);
        }
        Err(BenchError::ColdReadUnavailable(why)) => {
            assert!(why.contains("drop_caches"), "{why}");
            assert_eq!(opens.load(Ordering::Relaxed), 1, "never read hot");
        }
        Err(e) => panic!("{e}"),
    }
}
