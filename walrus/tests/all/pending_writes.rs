//! The two halves of an append (`append_pending`, then durability): under
//! SyncEach a pending write is not durable until a sync covers it, whether
//! that sync is the blocking group commit or one an external driver leads
//! (the async front end); a failed or abandoned external sync fails the
//! instance as a failed blocking sync does. Under the other schedules a
//! pending write is acknowledged at once.

use crate::common::*;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use walrus_wal::testing::{Crash, Fault, FaultKind, SimStorage};
use walrus_wal::{Error, FsyncSchedule, ReadConsistency, Walrus};

fn sim_wal(sim: &SimStorage, fsync: FsyncSchedule) -> Walrus {
    Walrus::builder()
        .data_dir(Path::new("/sim"))
        .storage(Arc::new(sim.clone()))
        .quiet(true)
        .consistency(ReadConsistency::StrictlyAtOnce)
        .fsync(fsync)
        .open()
        .unwrap()
}

fn read_all(sim: &SimStorage, topic: &str) -> Vec<Vec<u8>> {
    let wal = sim_wal(&sim.crash(Crash::LoseUnsynced), FsyncSchedule::SyncEach);
    let mut out = Vec::new();
    while let Some(e) = wal.read_next(topic, false).unwrap() {
        out.push(e.data.to_vec());
        wal.read_next(topic, true).unwrap();
    }
    out
}

#[test]
fn a_pending_write_is_durable_only_after_its_sync() {
    let sim = SimStorage::new();
    let wal = sim_wal(&sim, FsyncSchedule::SyncEach);
    let first = wal.append_pending("t", &[b"one"]).unwrap();
    assert!(!first.is_durable());
    assert!(
        read_all(&sim, "t").is_empty(),
        "a power loss now loses the unsynced write"
    );
    let second = wal.append_pending("t", &[b"two", b"three"]).unwrap();
    assert!(second.ticket() > first.ticket());
    second.wait().unwrap();
    assert!(
        first.is_durable(),
        "the later sync covers the earlier write"
    );
    assert_eq!(read_all(&sim, "t"), [&b"one"[..], b"two", b"three"]);
}

#[test]
fn other_schedules_acknowledge_at_once() {
    for fsync in [FsyncSchedule::NoFsync, FsyncSchedule::Milliseconds(10_000)] {
        let sim = SimStorage::new();
        let wal = sim_wal(&sim, fsync);
        let p = wal.append_pending("t", &[b"x"]).unwrap();
        assert!(p.is_durable() && p.segment().is_none(), "{fsync}");
        p.wait().unwrap();
    }
}

#[test]
fn an_external_sync_through_a_duplicated_fd_makes_writes_durable() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let wal = builder(dir.path(), backend)
            .fsync(FsyncSchedule::SyncEach)
            .open()
            .unwrap();
        let p = wal.append_pending("t", &[b"a"]).unwrap();
        let seg = p.segment().expect("SyncEach needs a sync").clone();
        let lead = seg.try_lead().unwrap().expect("no other syncer");
        assert!(lead.target() >= p.ticket());
        let fd = seg.fd().expect("OS backends have a descriptor");
        let dup = File::from(fd.try_clone_to_owned().unwrap());
        assert!(seg.try_lead().unwrap().is_none(), "one sync at a time");
        lead.finish(dup.sync_data()).unwrap();
        assert!(p.is_durable(), "{backend}");
        // A write after the lead was taken is not covered by it.
        let later = wal.append_pending("t", &[b"b"]).unwrap();
        assert!(!later.is_durable());
        later.wait().unwrap();
    }
}

#[test]
fn a_failed_external_sync_fails_every_waiter_and_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let wal = builder(dir.path(), walrus_wal::Backend::Fd)
        .fsync(FsyncSchedule::SyncEach)
        .open()
        .unwrap();
    let p = wal.append_pending("t", &[b"a"]).unwrap();
    let seg = p.segment().unwrap().clone();
    let lead = seg.try_lead().unwrap().unwrap();
    let err = lead
        .finish(Err(std::io::Error::from_raw_os_error(libc::EIO)))
        .unwrap_err();
    assert!(matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(libc::EIO)));
    assert!(!p.is_durable());
    assert!(p.wait().is_err(), "never acknowledged after a failed sync");
    assert!(matches!(
        wal.append_for_topic("t", b"b"),
        Err(Error::Failed(_))
    ));
}

#[test]
fn an_abandoned_lead_counts_as_a_failed_sync() {
    let sim = SimStorage::new();
    let wal = sim_wal(&sim, FsyncSchedule::SyncEach);
    let p = wal.append_pending("t", &[b"a"]).unwrap();
    let lead = p.segment().unwrap().try_lead().unwrap().unwrap();
    drop(lead);
    assert!(p.wait().is_err());
    assert!(matches!(
        wal.append_pending("t", &[b"b"]),
        Err(Error::Failed(_))
    ));
}

#[test]
fn a_failed_blocking_sync_fails_pending_writes_too() {
    let sim = SimStorage::new();
    let wal = sim_wal(&sim, FsyncSchedule::SyncEach);
    let p = wal.append_pending("t", &[b"a"]).unwrap();
    sim.inject(Fault {
        kind: FaultKind::Sync,
        nth: 0,
        errno: libc::EIO,
    });
    assert!(p.segment().unwrap().sync_through(p.ticket()).is_err());
    assert!(!p.is_durable());
    assert!(matches!(
        wal.append_for_topic("t", b"b"),
        Err(Error::Failed(_))
    ));
}
