//! The `LogStore` conformance suite against the Walrus engine, on both
//! storage backends.

mod mmap {
    use std::path::Path;

    use walrus_adapters::{open_store, StoreKind};
    use walrus_wal::{Backend, LogStore, Result, StoreConfig};

    fn open(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
        open_store(StoreKind::Walrus(Backend::Mmap), dir, config)
    }

    walrus_proptests::conformance_tests!(open);
}

mod fd {
    use std::path::Path;

    use walrus_adapters::{open_store, StoreKind};
    use walrus_wal::{Backend, LogStore, Result, StoreConfig};

    fn open(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
        open_store(StoreKind::Walrus(Backend::Fd), dir, config)
    }

    walrus_proptests::conformance_tests!(open);
}
