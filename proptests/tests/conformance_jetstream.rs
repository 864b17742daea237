//! The `LogStore` conformance suite against `jetstream-r1` (one node) and
//! `jetstream-r3` (three nodes on loopback), plus the JetStream-specific
//! check that topic names differing only in subject syntax (`.`, `*`, `>`,
//! whitespace) never see each other's entries.
//!
//! Needs the nats-server that `make nats-server` installs; without it every
//! test fails with the one-line error naming that target.
#![cfg(feature = "jetstream")]

use std::path::Path;

use walrus_adapters::{open_store, StoreKind};
use walrus_proptests::conformance::{self, payload, Factory, SyncCheckError};
use walrus_wal::{FsyncSchedule, LogStore, ReadConsistency, Result, StoreConfig};

/// Topics that would share or overlap subjects if the adapter did not
/// escape `.`, `*`, `>` and whitespace.
const LOOKALIKES: [&str; 10] = [
    "a.b", "a*b", "a>b", "a b", "a\tb", "a=2Eb", "a", "a.>", "*", ">",
];

fn lookalike_topics_stay_apart(factory: Factory) {
    let tmp = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        consistency: ReadConsistency::StrictlyAtOnce,
        fsync: FsyncSchedule::NoFsync,
    };
    {
        let store = factory(tmp.path(), config).unwrap();
        for (i, topic) in LOOKALIKES.iter().enumerate() {
            store.append(topic, &payload(i as u64, 10)).unwrap();
            store
                .batch_append(topic, &[&payload(100 + i as u64, 3), b"x"])
                .unwrap();
        }
    }
    let store = factory(tmp.path(), config).unwrap();
    for (i, topic) in LOOKALIKES.iter().enumerate() {
        let got: Vec<Vec<u8>> = store
            .batch_read(topic, usize::MAX, true)
            .unwrap()
            .into_iter()
            .map(|e| e.data.to_vec())
            .collect();
        let want = vec![
            payload(i as u64, 10),
            payload(100 + i as u64, 3),
            b"x".to_vec(),
        ];
        assert_eq!(got, want, "topic {topic:?} sees exactly its own entries");
    }
}

/// The nodes' own log and config file are for people only.
const DIAGNOSTICS: [&str; 2] = ["nats.log", "nats.conf"];

mod r1 {
    use super::*;

    fn open(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
        open_store(StoreKind::JetStreamR1, dir, config)
    }

    walrus_proptests::conformance_tests!(open, diagnostic_files = ["nats.log", "nats.conf"]);

    #[test]
    fn lookalike_topic_names_stay_apart() {
        lookalike_topics_stay_apart(&open);
    }
}

mod r3 {
    use super::*;

    fn open(dir: &Path, config: StoreConfig) -> Result<Box<dyn LogStore>> {
        open_store(StoreKind::JetStreamR3, dir, config)
    }

    macro_rules! checks {
        ($($check:ident),* $(,)?) => {
            $(
                #[test]
                fn $check() {
                    conformance::$check(&open);
                }
            )*
        };
    }

    // Every check of `conformance_tests!`; the sync check is below.
    checks!(
        per_topic_order_with_interleaved_topics,
        batch_append_is_atomic_and_ordered,
        peek_does_not_consume,
        batch_read_respects_the_byte_budget,
        strict_cursor_survives_reopen,
        at_least_once_cursor_survives_reopen,
        empty_and_large_payloads,
        payloads_larger_than_a_segment,
        a_thousand_topics,
        topic_names_are_checked,
        reopen_continues_each_topic,
        concurrent_producers_and_consumers,
        random_ops_match_the_model,
    );

    #[test]
    fn the_sync_check_catches_a_store_whose_sync_does_nothing() {
        conformance::the_sync_check_catches_a_store_whose_sync_does_nothing_but_diagnostics(
            &open,
            &DIAGNOSTICS,
        );
    }

    /// `sync()` is a barrier under no-fsync and a long interval, as for every
    /// store. Under sync-each R3 differs (docs/guarantees.md): an ack means
    /// the entry is fsynced in the Raft log of a quorum, while the stream's
    /// block files (and the `index.db` files, rebuilt from them) are written
    /// behind and may still be dirty. The check asserts exactly that: after
    /// acknowledged sync-each appends the only dirty files are stream block
    /// files and `index.db` files, never a Raft log.
    #[test]
    fn sync_is_a_barrier_and_sync_each_acks_are_in_the_raft_log() {
        for fsync in [
            FsyncSchedule::NoFsync,
            FsyncSchedule::Milliseconds(conformance::SYNC_CHECK_NEVER_MS),
        ] {
            match conformance::check_sync_is_a_barrier(&open, fsync, &DIAGNOSTICS) {
                Ok(evidence) => eprintln!("sync check, {fsync}: {evidence}"),
                Err(e) => panic!("sync check, {fsync}: {e}"),
            }
        }
        match conformance::check_sync_is_a_barrier(&open, FsyncSchedule::SyncEach, &DIAGNOSTICS) {
            Ok(evidence) => eprintln!("sync check, sync-each: {evidence}"),
            Err(SyncCheckError::NotDurable(why)) => {
                let list = why.split_once("take: ").map(|(_, l)| l).unwrap_or("");
                let files: Vec<&str> = list
                    .split("), ")
                    .filter_map(|f| f.split(" (").next())
                    .collect();
                assert!(!files.is_empty(), "{why}");
                for file in &files {
                    let derived = file.contains("/streams/") || file.ends_with("/index.db");
                    assert!(
                        derived,
                        "a Raft log file is dirty after sync-each acks: {file}\n{why}"
                    );
                }
                eprintln!("sync check, sync-each: only stream block/index files dirty: {files:?}");
            }
            Err(e) => panic!("sync check, sync-each: {e}"),
        }
    }

    #[test]
    fn lookalike_topic_names_stay_apart() {
        lookalike_topics_stay_apart(&open);
    }
}

/// One set of nodes per directory (adapters/src/jetstream/dir_lock.rs): a
/// second open while the store is open fails at once with `Locked`, as it
/// does for every other store; once the first is dropped (its nodes parked),
/// a reopen picks the nodes up and sees what was appended. The process-kill
/// suite covers the cross-process hand-over of parked nodes.
#[test]
fn a_second_open_of_an_open_store_is_locked_and_a_reopen_after_drop_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        consistency: ReadConsistency::StrictlyAtOnce,
        fsync: FsyncSchedule::SyncEach,
    };
    let first = open_store(StoreKind::JetStreamR1, tmp.path(), config).unwrap();
    first.append("t", b"kept").unwrap();
    let started = std::time::Instant::now();
    match open_store(StoreKind::JetStreamR1, tmp.path(), config) {
        Err(walrus_wal::Error::Locked(_)) => {}
        Err(e) => panic!("a second open failed with {e}, not Locked"),
        Ok(_) => panic!("a second open of an open store succeeded"),
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "Locked comes at once, not after the take-over timeout"
    );
    drop(first);
    let again = open_store(StoreKind::JetStreamR1, tmp.path(), config).unwrap();
    let got = again.read_next("t", true).unwrap().expect("the entry");
    assert_eq!(&got.data[..], b"kept");
}
