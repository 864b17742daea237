//! Failpoint sweep: EIO and ENOSPC injected at every write, sync, directory
//! sync, rename, remove, open and read of a workload, one site at a time,
//! under every fsync schedule × consistency mode; and at every operation of
//! the recovery that reopens a crashed log.
//!
//! After each fault the workload goes on (errors are counted, not fatal),
//! the process "crashes", and two images of the storage are reopened and
//! checked against what the workload was told:
//!
//! * a process crash (the page cache survives) keeps every acknowledged
//!   entry, whatever the schedule;
//! * a power loss keeps every acknowledged entry under `SyncEach`, and under
//!   `Milliseconds` and `NoFsync` every entry acknowledged before a `sync()`
//!   that returned `Ok` (the `Milliseconds` timer is not counted on);
//!
//! and in both: entries come back in append order, exact, nothing invented,
//! a batch whole or not at all, and what survives of the acknowledged
//! entries is a prefix of them. The cursor keeps the promise of its mode:
//! under `StrictlyAtOnce` nothing a consuming read returned comes back,
//! under `AtLeastOnce { persist_every: n }` fewer than n of the last entries
//! consumed do, and under both nothing is skipped, except entries that a
//! consuming read which *failed* may have passed (its cursor record can
//! reach the page cache although its sync failed).
//!
//! Recovery: a crashed log (process, power-loss and torn images of a clean
//! workload) is reopened with a fault armed at the n-th operation of each
//! kind the reopen performs. The open must fail with an error (a panic is a
//! failure) or succeed with nothing promised lost; then a reopen without
//! faults, of what the failed recovery left (and of a power loss right
//! after it), must still find every promised entry.
//!
//! `PROPTEST_CASES` sets the number of extra random cases (a fault in the
//! workload, a random torn or partial power loss, a second fault in the
//! recovery; default 32).

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use walrus_wal::testing::{Crash, Fault, FaultKind, SimStorage};
use walrus_wal::{Error, FsyncSchedule, ReadConsistency, Walrus};

const TOPICS: [&str; 2] = ["x", "y"];
/// The `Milliseconds` schedule's interval: short, so that its background
/// sync rounds run (and meet faults) during the workload.
const TICK_MS: u64 = 2;
const PERSIST_EVERY: u32 = 3;
/// Payload budget of the workload's consuming reads.
const READ_BUDGET: usize = 2000;
const ERRNOS: [i32; 2] = [libc::EIO, libc::ENOSPC];

#[derive(Clone, Copy, Debug)]
struct Mode {
    fsync: FsyncSchedule,
    consistency: ReadConsistency,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.fsync, self.consistency)
    }
}

const FSYNCS: [FsyncSchedule; 3] = [
    FsyncSchedule::SyncEach,
    FsyncSchedule::Milliseconds(TICK_MS),
    FsyncSchedule::NoFsync,
];
const CONSISTENCIES: [ReadConsistency; 2] = [
    ReadConsistency::StrictlyAtOnce,
    ReadConsistency::AtLeastOnce {
        persist_every: PERSIST_EVERY,
    },
];

fn all_modes() -> Vec<Mode> {
    FSYNCS
        .into_iter()
        .flat_map(|fsync| {
            CONSISTENCIES
                .into_iter()
                .map(move |consistency| Mode { fsync, consistency })
        })
        .collect()
}

fn open(sim: &SimStorage, mode: Mode) -> walrus_wal::Result<Walrus> {
    Walrus::builder()
        .data_dir(Path::new("/sim"))
        .storage(Arc::new(sim.clone()))
        .quiet(true)
        .segment_bytes(32 * 1024)
        .extent_bytes(8 * 1024)
        // A recovery checkpoint now and then, so that recovery reads one.
        .recovery_snapshot_every_bytes(16 * 1024)
        .consistency(mode.consistency)
        .fsync(mode.fsync)
        .open()
}

/// One entry the workload tried to append.
#[derive(Clone)]
struct Appended {
    payload: Vec<u8>,
    /// The append (or batch) returned `Ok`.
    acked: bool,
    /// A power loss may not take it: acknowledged under `SyncEach`, or
    /// acknowledged before a `sync()` that returned `Ok`.
    durable: bool,
    /// The batch it belongs to: (index of its first entry, entry count).
    batch: Option<(usize, usize)>,
}

#[derive(Default, Clone)]
struct TopicOutcome {
    appended: Vec<Appended>,
    /// Index of each payload in `appended` (payloads are unique).
    index: HashMap<Vec<u8>, usize>,
    /// Indices of the entries consuming reads returned, in order.
    consumed: Vec<usize>,
    /// Entries a failed consuming read may have passed.
    may_skip: HashSet<usize>,
}

#[derive(Default, Clone)]
struct Outcome {
    topics: [TopicOutcome; 2],
    /// Calls that returned an error.
    errors: usize,
}

impl Outcome {
    fn push(&mut self, t: usize, payload: Vec<u8>, acked: bool, batch: Option<(usize, usize)>) {
        let topic = &mut self.topics[t];
        let i = topic.appended.len();
        assert!(
            topic.index.insert(payload.clone(), i).is_none(),
            "workload payloads must be unique"
        );
        topic.appended.push(Appended {
            payload,
            acked,
            durable: false,
            batch,
        });
    }

    /// Everything acknowledged so far is durable (a `sync()` returned `Ok`,
    /// or `SyncEach` acknowledged it).
    fn all_acked_durable(&mut self) {
        for topic in &mut self.topics {
            for e in &mut topic.appended {
                e.durable |= e.acked;
            }
        }
    }

    fn consumed(&mut self, t: usize, got: Vec<walrus_wal::Entry>, label: &str) {
        let topic = &mut self.topics[t];
        for e in got {
            let i = *topic
                .index
                .get(&e.data[..])
                .unwrap_or_else(|| panic!("{label}: the live log returned an invented entry"));
            assert!(
                topic.consumed.last().is_none_or(|&last| i > last),
                "{label}: the live log returned entry {i} out of order"
            );
            topic.consumed.push(i);
        }
    }

    /// A consuming read failed: the entries it would have returned (within
    /// its budget, at least one) may have been passed by a cursor record
    /// that reached the page cache before the failure.
    fn read_failed(&mut self, t: usize) {
        let topic = &mut self.topics[t];
        let from = topic.consumed.last().map_or(0, |&last| last + 1);
        let (mut n, mut bytes) = (0, 0);
        for i in from..topic.appended.len() {
            let len = topic.appended[i].payload.len();
            if n > 0 && bytes + len > READ_BUDGET {
                break;
            }
            bytes += len;
            n += 1;
            topic.may_skip.insert(i);
        }
    }
}

/// The workload after open: appends (some batched, crossing extents and
/// segments), consuming reads and syncs. Errors are counted, not fatal.
fn workload(wal: &Walrus, mode: Mode, out: &mut Outcome) {
    for i in 0..60usize {
        let t = i % 2;
        let topic = TOPICS[t];
        if i % 7 == 3 {
            let batch: Vec<Vec<u8>> = (0..3)
                .map(|k| format!("{topic}-{i}-{k}").repeat(40).into_bytes())
                .collect();
            let refs: Vec<&[u8]> = batch.iter().map(|b| b.as_slice()).collect();
            let ok = wal.batch_append_for_topic(topic, &refs).is_ok();
            out.errors += usize::from(!ok);
            let start = out.topics[t].appended.len();
            for b in batch {
                out.push(t, b, ok, Some((start, 3)));
            }
        } else {
            let p = format!("{topic}-{i}").repeat(60).into_bytes();
            let ok = wal.append_for_topic(topic, &p).is_ok();
            out.errors += usize::from(!ok);
            out.push(t, p, ok, None);
        }
        if mode.fsync == FsyncSchedule::SyncEach {
            out.all_acked_durable();
        }
        if i % 5 == 4 {
            match wal.batch_read_for_topic(topic, READ_BUDGET, true) {
                Ok(got) => out.consumed(t, got, "workload"),
                Err(_) => {
                    out.errors += 1;
                    out.read_failed(t);
                }
            }
        }
        if i % 11 == 10 {
            match wal.sync() {
                Ok(()) => out.all_acked_durable(),
                Err(_) => out.errors += 1,
            }
        }
    }
}

/// What survives which crash.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Loss {
    /// The page cache survived: every acknowledged entry must be there.
    Process,
    /// Power loss (possibly torn): only durable entries must be there.
    Power,
}

impl Loss {
    fn required(self, e: &Appended) -> bool {
        match self {
            Loss::Process => e.acked,
            Loss::Power => e.durable,
        }
    }
}

/// Checks what a recovered instance holds against the outcome; `Err` says
/// what is wrong. The instance is only peeked at.
fn verify(wal: &Walrus, out: &Outcome, mode: Mode, loss: Loss) -> Result<(), String> {
    for (t, topic) in TOPICS.into_iter().enumerate() {
        let o = &out.topics[t];
        let got = wal
            .batch_read_for_topic(topic, usize::MAX, false)
            .map_err(|e| format!("{topic}: reading after recovery failed: {e}"))?;
        let mut idx = Vec::with_capacity(got.len());
        for (k, e) in got.iter().enumerate() {
            if e.seq != got[0].seq + k as u64 {
                return Err(format!(
                    "{topic}: seq gap at {} after {}",
                    e.seq, got[0].seq
                ));
            }
            match o.index.get(&e.data[..]) {
                Some(&i) => idx.push(i),
                None => return Err(format!("{topic}: holds an entry nobody appended")),
            }
        }
        if idx.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("{topic}: entries out of append order: {idx:?}"));
        }
        // Entries consumed before the crash may come back only first, and
        // only as the mode allows.
        let consumed: HashSet<usize> = o.consumed.iter().copied().collect();
        let again = idx.iter().take_while(|i| consumed.contains(i)).count();
        if idx[again..].iter().any(|i| consumed.contains(i)) {
            return Err(format!(
                "{topic}: a consumed entry comes back after unconsumed ones"
            ));
        }
        match mode.consistency {
            ReadConsistency::StrictlyAtOnce if again > 0 => {
                return Err(format!(
                    "{topic}: {again} consumed entries are returned again"
                ));
            }
            ReadConsistency::AtLeastOnce { persist_every } => {
                if again >= persist_every as usize {
                    return Err(format!(
                        "{topic}: {again} consumed entries are returned again (persist_every \
                         {persist_every})"
                    ));
                }
                if idx[..again] != o.consumed[o.consumed.len() - again..] {
                    return Err(format!(
                        "{topic}: the entries returned again are not the last ones consumed"
                    ));
                }
            }
            _ => {}
        }
        // Nothing promised is lost or skipped; what survives of the
        // acknowledged entries is a prefix of them; batches are whole.
        let present: HashSet<usize> = idx.iter().copied().collect();
        let mut missing_acked = None;
        for (i, e) in o.appended.iter().enumerate() {
            if consumed.contains(&i) || o.may_skip.contains(&i) {
                continue;
            }
            let here = present.contains(&i);
            if !here && loss.required(e) {
                return Err(format!(
                    "{topic}: entry {i} (acknowledged{}) is lost or skipped; recovery: {:?}",
                    if e.durable { ", durable" } else { "" },
                    wal.recovery_report()
                ));
            }
            if e.acked {
                match (here, missing_acked) {
                    (false, None) => missing_acked = Some(i),
                    (true, Some(m)) => {
                        return Err(format!(
                            "{topic}: acknowledged entry {i} survived but the earlier {m} did \
                             not: not a prefix"
                        ))
                    }
                    _ => {}
                }
            }
            if let Some((start, len)) = e.batch {
                if i == start {
                    let members = start..start + len;
                    let untouched = members
                        .clone()
                        .all(|m| !consumed.contains(&m) && !o.may_skip.contains(&m));
                    let n = members.filter(|m| present.contains(m)).count();
                    if untouched && n != 0 && n != len {
                        return Err(format!(
                            "{topic}: {n} of the {len} entries of the batch at {start} survived"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reopens `image` without faults and verifies it; panics with `label`.
fn reopen_and_verify(image: &SimStorage, out: &Outcome, mode: Mode, loss: Loss, label: &str) {
    let wal = match catch_unwind(AssertUnwindSafe(|| open(image, mode))) {
        Ok(Ok(wal)) => wal,
        Ok(Err(e)) => panic!("{label}: reopen failed: {e}"),
        Err(_) => panic!("{label}: reopen panicked"),
    };
    if let Err(why) = verify(&wal, out, mode, loss) {
        panic!("{label} ({loss:?}): {why}");
    }
    wal.simulate_crash();
}

/// Runs the workload on a fresh storage with `fault` armed (if any) and
/// crashes the instance; returns the storage and what the workload saw.
fn faulted_run(mode: Mode, fault: Option<Fault>) -> (SimStorage, Outcome) {
    let sim = SimStorage::new();
    let wal = open(&sim, mode).unwrap();
    if let Some(fault) = fault {
        sim.inject(fault);
    }
    let mut out = Outcome::default();
    workload(&wal, mode, &mut out);
    wal.simulate_crash();
    sim.clear_faults();
    (sim, out)
}

fn op_counts(sim: &SimStorage) -> Vec<u64> {
    FaultKind::ALL.iter().map(|k| sim.count(*k)).collect()
}

/// The workload's operations per kind, on a clean run.
fn workload_sites(mode: Mode) -> Vec<u64> {
    let sim = SimStorage::new();
    let wal = open(&sim, mode).unwrap();
    let before = op_counts(&sim);
    let mut clean = Outcome::default();
    workload(&wal, mode, &mut clean);
    assert_eq!(clean.errors, 0, "{mode}: the clean workload failed");
    let after = op_counts(&sim);
    wal.simulate_crash();
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

/// Every workload site × errno, for one mode. Returns (faults, errors seen).
fn sweep_workload(mode: Mode) -> (usize, usize) {
    let sites = workload_sites(mode);
    let (mut swept, mut errors) = (0, 0);
    for (kind, count) in FaultKind::ALL.into_iter().zip(sites) {
        for nth in 0..count {
            for errno in ERRNOS {
                let (sim, out) = faulted_run(mode, Some(Fault { kind, nth, errno }));
                let label = format!("{mode}: {kind:?} #{nth} errno {errno}");
                reopen_and_verify(
                    &sim.crash(Crash::Process),
                    &out,
                    mode,
                    Loss::Process,
                    &label,
                );
                reopen_and_verify(
                    &sim.crash(Crash::LoseUnsynced),
                    &out,
                    mode,
                    Loss::Power,
                    &label,
                );
                swept += 1;
                errors += usize::from(out.errors > 0);
            }
        }
    }
    (swept, errors)
}

/// How one faulted recovery went.
#[derive(Default)]
struct RecoveryTally {
    faults: usize,
    failed_opens: usize,
    /// Failed opens whose error is not `Error::Io` carrying the injected
    /// errno, by variant.
    other_errors: HashMap<String, usize>,
}

/// Opens `image` with `fault` armed: a typed error or a verified instance;
/// then what it left must reopen without faults with nothing promised lost,
/// also after a power loss right after the failed recovery.
fn faulted_recovery(
    image: &SimStorage,
    fault: Fault,
    out: &Outcome,
    mode: Mode,
    loss: Loss,
    label: &str,
    tally: &mut RecoveryTally,
) {
    let storage = image.crash(Crash::Process); // a private copy
    storage.inject(fault);
    match catch_unwind(AssertUnwindSafe(|| open(&storage, mode))) {
        Err(_) => panic!("{label}: recovery with a fault panicked"),
        Ok(Err(e)) => {
            tally.failed_opens += 1;
            let io_errno = match &e {
                Error::Io { source, .. } => source.raw_os_error(),
                _ => None,
            };
            if io_errno != Some(fault.errno) {
                let variant = format!("{e:?}");
                let variant = variant
                    .split([' ', '(', '{'])
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                *tally.other_errors.entry(variant).or_default() += 1;
            }
        }
        Ok(Ok(wal)) => {
            storage.clear_faults();
            if let Err(why) = verify(&wal, out, mode, loss) {
                panic!("{label}: recovery with a fault succeeded but: {why}");
            }
            wal.simulate_crash();
        }
    }
    storage.clear_faults();
    tally.faults += 1;
    let after = format!("{label}, then a clean reopen");
    reopen_and_verify(&storage.crash(Crash::Process), out, mode, loss, &after);
    reopen_and_verify(
        &storage.crash(Crash::LoseUnsynced),
        out,
        mode,
        loss,
        &format!("{after} after a power loss"),
    );
}

/// Faults at every operation of the recovery of crashed images of a clean
/// workload, for one mode.
fn sweep_recovery(mode: Mode) -> RecoveryTally {
    let (sim, out) = faulted_run(mode, None);
    assert_eq!(out.errors, 0);
    let mut tally = RecoveryTally::default();
    let images = [
        ("process crash", sim.crash(Crash::Process), Loss::Process),
        ("power loss", sim.crash(Crash::LoseUnsynced), Loss::Power),
        (
            "torn power loss",
            sim.crash(Crash::TearLast { seed: 7 }),
            Loss::Power,
        ),
    ];
    for (name, image, loss) in images {
        let probe = image.crash(Crash::Process);
        let before = op_counts(&probe);
        let wal = open(&probe, mode).unwrap_or_else(|e| panic!("{mode} {name}: reopen: {e}"));
        let sites: Vec<u64> = op_counts(&probe)
            .iter()
            .zip(before)
            .map(|(a, b)| a - b)
            .collect();
        if let Err(why) = verify(&wal, &out, mode, loss) {
            panic!("{mode} {name}: {why}");
        }
        wal.simulate_crash();
        for (kind, count) in FaultKind::ALL.into_iter().zip(sites) {
            for nth in 0..count {
                for errno in ERRNOS {
                    let label = format!("{mode} {name}: recovery {kind:?} #{nth} errno {errno}");
                    let fault = Fault { kind, nth, errno };
                    faulted_recovery(&image, fault, &out, mode, loss, &label, &mut tally);
                }
            }
        }
    }
    tally
}

fn sweep(mode: Mode) {
    let started = std::time::Instant::now();
    let (swept, surfaced) = sweep_workload(mode);
    let tally = sweep_recovery(mode);
    assert!(swept > 100, "{mode}: only {swept} workload faults swept");
    assert!(
        tally.faults > 20,
        "{mode}: only {} recovery faults",
        tally.faults
    );
    eprintln!(
        "fault sweep, {mode}: {swept} workload faults ({surfaced} surfaced as an error), {} \
         recovery faults ({} failed the open{}), {:.1} s",
        tally.faults,
        tally.failed_opens,
        if tally.other_errors.is_empty() {
            String::new()
        } else {
            format!(
                "; errors other than Io with the injected errno: {:?}",
                tally.other_errors
            )
        },
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn sync_each_strict() {
    sweep(all_modes()[0]);
}

#[test]
fn sync_each_at_least_once() {
    sweep(all_modes()[1]);
}

#[test]
fn milliseconds_strict() {
    sweep(all_modes()[2]);
}

#[test]
fn milliseconds_at_least_once() {
    sweep(all_modes()[3]);
}

#[test]
fn no_fsync_strict() {
    sweep(all_modes()[4]);
}

#[test]
fn no_fsync_at_least_once() {
    sweep(all_modes()[5]);
}

/// A fault in the workload, a random power loss (a random subset of the
/// unsynced writes, or all but a torn last one) and a second fault in the
/// recovery, in a random mode. `PROPTEST_CASES` cases (default 32).
#[test]
fn random_faults_and_torn_power_losses() {
    let mut config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 32;
    }
    let cases = config.cases;
    let modes = all_modes();
    let kind = || (0..FaultKind::ALL.len()).prop_map(|k| FaultKind::ALL[k]);
    let strategy = (
        0..modes.len(),
        (kind(), 0..200u64, 0..ERRNOS.len()),
        (any::<bool>(), any::<u64>()),
        (kind(), 0..40u64, 0..ERRNOS.len()),
    );
    let mut runner = TestRunner::new(config);
    let result = runner.run(
        &strategy,
        |(m, (kind, nth, errno), (tear, seed), (rkind, rnth, rerrno))| {
            let mode = modes[m];
            let fault = Fault {
                kind,
                nth,
                errno: ERRNOS[errno],
            };
            let (sim, out) = faulted_run(mode, Some(fault));
            let crash = if tear {
                Crash::TearLast { seed }
            } else {
                Crash::KeepRandom { seed }
            };
            let image = sim.crash(crash);
            let label = format!("{mode}: {fault:?}, {crash:?}");
            reopen_and_verify(&image, &out, mode, Loss::Power, &label);
            let rfault = Fault {
                kind: rkind,
                nth: rnth,
                errno: ERRNOS[rerrno],
            };
            faulted_recovery(
                &image,
                rfault,
                &out,
                mode,
                Loss::Power,
                &format!("{label}, recovery {rfault:?}"),
                &mut RecoveryTally::default(),
            );
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("fault sweep: {cases} random cases with torn power losses held");
}
