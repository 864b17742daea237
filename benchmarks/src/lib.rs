//! Support for the criterion micro-benchmarks in `benches/`: a store that
//! is reopened in a fresh directory every so many appends, so a long
//! measurement never fills the disk.
//!
//! The harness's CSV and Markdown results are also written into this
//! directory (git-ignored); the crate itself holds no results.

use std::path::Path;

use walrus_adapters::StoreKind;
use walrus_wal::{FsyncSchedule, LogStore, ReadConsistency, StoreConfig};

/// Appends into a fresh store of one kind, replacing it (directory and all)
/// once it has taken `rotate_every` appends.
pub struct RotatingStore {
    kind: StoreKind,
    rotate_every: u64,
    appended: u64,
    // Field order matters: the store closes before its directory goes.
    store: Box<dyn LogStore>,
    _dir: tempfile::TempDir,
}

impl RotatingStore {
    pub fn new(kind: StoreKind, rotate_every: u64) -> RotatingStore {
        let (store, dir) = open(kind);
        RotatingStore {
            kind,
            rotate_every,
            appended: 0,
            store,
            _dir: dir,
        }
    }

    /// The store to append to; call [`RotatingStore::rotate_if_full`]
    /// outside the timed region.
    pub fn store(&self) -> &dyn LogStore {
        self.store.as_ref()
    }

    /// Counts `n` appends and swaps in a fresh store when the budget is spent.
    pub fn rotate_if_full(&mut self, n: u64) {
        self.appended += n;
        if self.appended >= self.rotate_every {
            *self = RotatingStore::new(self.kind, self.rotate_every);
        }
    }
}

fn open(kind: StoreKind) -> (Box<dyn LogStore>, tempfile::TempDir) {
    let dir = bench_dir();
    // No fsync: these benchmarks measure the CPU path of an append (encode,
    // checksum, copy, bookkeeping), which a disk flush would drown out. The
    // harness measures durable configurations.
    let config = StoreConfig {
        consistency: ReadConsistency::AtLeastOnce {
            persist_every: 1000,
        },
        fsync: FsyncSchedule::NoFsync,
    };
    let store = walrus_adapters::open_store(kind, &dir.path().join("store"), config)
        .unwrap_or_else(|e| panic!("opening {kind} for a benchmark: {e}"));
    (store, dir)
}

/// A temp dir under `WALRUS_DATA_DIR` if set (to bench a chosen disk), else
/// the system's.
fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("WALRUS_DATA_DIR") {
        Some(d) if !d.is_empty() => {
            std::fs::create_dir_all(&d).expect("creating WALRUS_DATA_DIR");
            tempfile::tempdir_in(Path::new(&d)).expect("temp dir in WALRUS_DATA_DIR")
        }
        _ => tempfile::tempdir().expect("temp dir"),
    }
}
