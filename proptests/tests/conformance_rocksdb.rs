//! The `LogStore` conformance suite against the rocksdb store.
#![cfg(feature = "rocksdb")]

use std::path::Path;

use walrus_adapters::{open_store, StoreKind};
use walrus_wal::{LogStore, Result, StoreConfig};

fn open(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
    open_store(StoreKind::RocksDb, dir, config)
}

// RocksDB's info log (`LOG`, rotated to `LOG.old.<time>`) is text for
// people, written without fsync and never read back: the sync checks do not
// require its pages on the disk.
walrus_proptests::conformance_tests!(open, diagnostic_files = ["LOG", "LOG.old.*"]);
