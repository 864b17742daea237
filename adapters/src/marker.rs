//! The `LOGSTORE` marker, from the contract crate (`walrus_store::marker`).

pub(crate) use walrus_store::marker::{claim_dir, sync_dir};
