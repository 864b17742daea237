//! What the store registry needs to know about the JetStream stores, built
//! whether or not the `jetstream` feature is on (the registry lists every
//! store): guarantees per fsync mode, the "server installed" check and the
//! openers.

use std::path::Path;

use walrus_wal::{FsyncSchedule, LogStore, Result, StoreConfig};

/// `jetstream-r1`: one node (docs/guarantees.md has the full rows).
pub fn r1_guarantee(fsync: FsyncSchedule) -> String {
    match fsync {
        FsyncSchedule::SyncEach => {
            "durable on return on its one node (sync_interval: always)".into()
        }
        FsyncSchedule::Milliseconds(ms) => {
            format!("durable within {ms} ms (sync_interval: {ms}ms)")
        }
        FsyncSchedule::NoFsync => "process crash only (server default: fsync every 2 min)".into(),
    }
}

/// `jetstream-r3`: three replicas, acked after a quorum of two stored it.
pub fn r3_guarantee(fsync: FsyncSchedule) -> String {
    match fsync {
        FsyncSchedule::SyncEach => "durable on 2 of 3 nodes on return; survives 1 node lost".into(),
        FsyncSchedule::Milliseconds(ms) => {
            format!("written on 2 of 3 nodes on return, fsynced within {ms} ms")
        }
        FsyncSchedule::NoFsync => {
            "survives 1 node killed; a power cut of all may lose acked data".into()
        }
    }
}

/// Whether the nats-server binary is installed (the error names the make
/// target that installs it).
pub fn ready() -> std::result::Result<(), String> {
    #[cfg(feature = "jetstream")]
    {
        crate::jetstream::check_server_installed()
            .map(drop)
            .map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "jetstream"))]
    {
        Ok(())
    }
}

#[cfg(feature = "jetstream")]
pub fn open_r1(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
    Ok(Box::new(crate::JetStreamStore::open(dir, 1, config)?))
}

#[cfg(feature = "jetstream")]
pub fn open_r3(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
    Ok(Box::new(crate::JetStreamStore::open(dir, 3, config)?))
}

#[cfg(not(feature = "jetstream"))]
pub fn open_r1(_: &Path, _: StoreConfig) -> Result<Box<dyn LogStore>> {
    Err(not_compiled())
}

#[cfg(not(feature = "jetstream"))]
pub fn open_r3(_: &Path, _: StoreConfig) -> Result<Box<dyn LogStore>> {
    Err(not_compiled())
}

#[cfg(not(feature = "jetstream"))]
fn not_compiled() -> walrus_wal::Error {
    walrus_wal::Error::InvalidInput("not compiled in: rebuild with `--features jetstream`".into())
}
