//! The `LogStore` contract and the types every store shares: the
//! `walrus-store` crate, re-exported whole so that `walrus_wal::store::...`
//! paths name the same items as `walrus_store::...`. See that crate's docs
//! for the contract.

pub use walrus_store::*;
