//! Walrus: a topic-based write-ahead log.
//!
//! Many named topics share a set of segment files; each topic has a consumer
//! cursor that survives restarts. Durability is chosen per instance with a
//! [`ReadConsistency`] and an [`FsyncSchedule`].

pub mod store;

pub use store::{
    Entry, Error, FsyncSchedule, LogStore, ReadConsistency, Result, StoreConfig, MAX_BATCH_ENTRIES,
    MAX_TOPIC_LEN,
};
