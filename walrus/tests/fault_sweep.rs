//! Failpoint sweep: EIO and ENOSPC injected at every write, sync, directory
//! sync, rename, remove, open and read of a workload, one site at a time.
//! After each fault the failed call returned an error, and after a power loss
//! and reopen every acknowledged entry is intact, nothing is invented, and no
//! consumed entry comes back (SyncEach + StrictlyAtOnce promise all three).

use std::path::Path;
use std::sync::Arc;
use walrus_wal::testing::{Crash, Fault, FaultKind, SimStorage};
use walrus_wal::{FsyncSchedule, ReadConsistency, Walrus};

fn open(sim: &SimStorage) -> walrus_wal::Result<Walrus> {
    Walrus::builder()
        .data_dir(Path::new("/sim"))
        .storage(Arc::new(sim.clone()))
        .quiet(true)
        .segment_bytes(32 * 1024)
        .block_bytes(8 * 1024)
        .consistency(ReadConsistency::StrictlyAtOnce)
        .fsync(FsyncSchedule::SyncEach)
        .open()
}

#[derive(Default)]
struct Outcome {
    /// Per topic: (payload, acknowledged?) in append order.
    appended: [Vec<(Vec<u8>, bool)>; 2],
    /// Per topic: payloads returned by consuming reads.
    consumed: [Vec<Vec<u8>>; 2],
    errors: usize,
}

/// The workload after setup: appends (some batched, crossing extents and
/// segments), consuming reads and syncs. Errors are counted, not fatal.
fn workload(wal: &Walrus, out: &mut Outcome) {
    for i in 0..60usize {
        let t = i % 2;
        let topic = ["x", "y"][t];
        if i % 7 == 3 {
            let batch: Vec<Vec<u8>> = (0..3)
                .map(|k| format!("{topic}-{i}-{k}").repeat(40).into_bytes())
                .collect();
            let refs: Vec<&[u8]> = batch.iter().map(|b| b.as_slice()).collect();
            let ok = wal.batch_append_for_topic(topic, &refs).is_ok();
            out.errors += usize::from(!ok);
            out.appended[t].extend(batch.into_iter().map(|b| (b, ok)));
        } else {
            let p = format!("{topic}-{i}").repeat(60).into_bytes();
            let ok = wal.append_for_topic(topic, &p).is_ok();
            out.errors += usize::from(!ok);
            out.appended[t].push((p, ok));
        }
        if i % 5 == 4 {
            match wal.batch_read_for_topic(topic, 2000, true) {
                Ok(got) => out.consumed[t].extend(got.into_iter().map(|e| e.data.to_vec())),
                Err(_) => out.errors += 1,
            }
        }
        if i % 11 == 10 {
            out.errors += usize::from(wal.sync().is_err());
        }
    }
}

fn check_after_power_loss(sim: &SimStorage, out: &Outcome, label: &str) {
    let sim = sim.crash(Crash::LoseUnsynced);
    let wal = open(&sim).unwrap_or_else(|e| panic!("{label}: reopen failed: {e}"));
    for (t, topic) in ["x", "y"].into_iter().enumerate() {
        let mut got = Vec::new();
        loop {
            let batch = wal.batch_read_for_topic(topic, 1 << 20, true).unwrap();
            if batch.is_empty() {
                break;
            }
            got.extend(batch.into_iter().map(|e| e.data.to_vec()));
        }
        // StrictlyAtOnce: nothing consumed comes back.
        for g in &got {
            assert!(
                !out.consumed[t].contains(g),
                "{label}: {topic} redelivers a consumed entry"
            );
        }
        // Every acknowledged, unconsumed entry is there, in append order; the
        // only extras are entries whose append reported an error.
        let mut it = got.iter().peekable();
        for (i, (payload, acked)) in out.appended[t].iter().enumerate() {
            if out.consumed[t].contains(payload) {
                continue;
            }
            let found = it.peek() == Some(&payload);
            if found {
                it.next();
            }
            assert!(
                found || !acked,
                "{label}: acknowledged append {i} of {topic} lost; recovery: {:?}",
                wal.recovery_report()
            );
        }
        assert!(
            it.next().is_none(),
            "{label}: {topic} holds entries nobody appended"
        );
    }
}

#[test]
fn every_io_site_failing_loses_nothing_acknowledged() {
    // Count the operations the workload performs, per kind.
    let sim = SimStorage::new();
    let wal = open(&sim).unwrap();
    let before: Vec<u64> = FaultKind::ALL.iter().map(|k| sim.count(*k)).collect();
    let mut clean = Outcome::default();
    workload(&wal, &mut clean);
    assert_eq!(clean.errors, 0);
    let sites: Vec<u64> = FaultKind::ALL
        .iter()
        .zip(before)
        .map(|(k, b)| sim.count(*k) - b)
        .collect();
    drop(wal);

    let mut swept = 0;
    for (kind, count) in FaultKind::ALL.into_iter().zip(sites) {
        for nth in 0..count {
            for errno in [libc::EIO, libc::ENOSPC] {
                let sim = SimStorage::new();
                let wal = open(&sim).unwrap();
                sim.inject(Fault { kind, nth, errno });
                let mut out = Outcome::default();
                workload(&wal, &mut out);
                wal.simulate_crash();
                sim.clear_faults();
                check_after_power_loss(&sim, &out, &format!("{kind:?} #{nth} errno {errno}"));
                swept += 1;
            }
        }
    }
    assert!(swept > 100, "only {swept} fault sites swept");
    eprintln!(
        "fault sweep: {swept} injected faults across {} kinds",
        FaultKind::ALL.len()
    );
}
