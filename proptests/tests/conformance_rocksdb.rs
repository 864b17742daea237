//! The `LogStore` conformance suite against the rocksdb store.
#![cfg(feature = "rocksdb")]

use std::path::Path;

use walrus_adapters::{open_store, StoreKind};
use walrus_wal::{LogStore, Result, StoreConfig};

fn open(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
    open_store(StoreKind::RocksDb, dir, config)
}

walrus_proptests::conformance_tests!(open);
