//! Which stores a run uses and how they are opened: the one place that
//! knows about the adapters crate. Workloads only ever see `&dyn LogStore`.

use std::path::Path;

use walrus_wal::{LogStore, Result, StoreConfig};

pub use walrus_adapters::StoreKind;

/// Opens `kind` in `dir` with `config`.
pub fn open(kind: StoreKind, dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
    walrus_adapters::open_store(kind, dir, config)
}

/// The backend column of the reports: `mmap`/`fd` for Walrus, `-` otherwise.
pub fn backend_label(kind: StoreKind) -> String {
    match kind {
        StoreKind::Walrus(backend) => backend.to_string(),
        _ => "-".into(),
    }
}
