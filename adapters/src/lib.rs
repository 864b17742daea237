//! `LogStore` adapters: Walrus and the stores it is compared against, behind
//! the one trait, so that an application or the benchmark harness swaps stores by
//! changing a single [`StoreKind`].
//!
//! This crate owns the adapters (RocksDB and sled behind the cargo features of
//! the same names, the raw-file baseline always), the mapping of the shared
//! [`FsyncSchedule`](walrus_store::FsyncSchedule) / [`ReadConsistency`](walrus_store::ReadConsistency)
//! settings onto each store (see `docs/guarantees.md`), and opening a store by
//! name with [`open_store`], which marks the data directory with the store it
//! holds so that one store is never opened on another store's files.

#![forbid(unsafe_code)]

mod flusher;
#[cfg(feature = "jetstream")]
pub mod jetstream;
mod jetstream_info;
mod kind;
#[cfg(any(feature = "rocksdb", feature = "sled"))]
mod kv_common;
mod marker;
mod null;
mod raw;
#[cfg(feature = "rocksdb")]
mod rocksdb;
#[cfg(feature = "sled")]
mod sled;
mod walrus;

#[cfg(feature = "jetstream")]
pub use jetstream::JetStreamStore;
pub use kind::{open_store, open_walrus, standard_guarantee, StoreInfo, StoreKind, REGISTRY};
pub use null::NullStore;
pub use raw::RawStore;
#[cfg(feature = "rocksdb")]
pub use rocksdb::RocksDbStore;
#[cfg(feature = "sled")]
pub use sled::SledStore;
