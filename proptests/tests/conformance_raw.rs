//! The `LogStore` conformance suite against the raw store.

use std::path::Path;

use walrus_adapters::{open_store, StoreKind};
use walrus_wal::{LogStore, Result, StoreConfig};

fn open(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
    open_store(StoreKind::Raw, dir, config)
}

walrus_proptests::conformance_tests!(open);
