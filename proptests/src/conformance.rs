//! The `LogStore` conformance suite: what every store must do, checked the
//! same way for each, so that a comparison compares stores that keep the same
//! contract (see the contract in `walrus_wal::store`).
//!
//! Every check takes a [`Factory`] that opens the store under test on a
//! directory with a [`StoreConfig`]; it opens, drops and reopens as it needs.
//! [`conformance_tests!`](crate::conformance_tests) turns the checks into one
//! `#[test]` each, so a failure names the property that broke.
//!
//! Crashes are not simulated here (a drop is a clean close); the crash
//! suites check durability. Reopen checks here prove only that what a clean
//! close keeps is read back correctly.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use walrus_wal::{
    Entry, Error, FsyncSchedule, LogStore, ReadConsistency, Result, StoreConfig, MAX_BATCH_ENTRIES,
    MAX_TOPIC_LEN,
};

/// Opens the store under test in a directory with the given settings.
pub type Factory<'a> = &'a dyn Fn(&Path, StoreConfig) -> Result<Box<dyn LogStore>>;

/// Settings for checks that do not care about durability: no fsync of data,
/// and a cursor persisted every few reads, so the checks stay fast.
pub const FAST: StoreConfig = StoreConfig {
    consistency: ReadConsistency::AtLeastOnce { persist_every: 16 },
    fsync: FsyncSchedule::NoFsync,
};

/// `FAST` data durability with a cursor persisted on every consuming read.
pub const STRICT: StoreConfig = StoreConfig {
    consistency: ReadConsistency::StrictlyAtOnce,
    fsync: FsyncSchedule::NoFsync,
};

fn open(factory: Factory, dir: &Path, config: StoreConfig) -> Box<dyn LogStore> {
    factory(dir, config).unwrap_or_else(|e| panic!("opening the store with {config:?}: {e}"))
}

/// Deterministic bytes that differ per `tag`, so a misordered, truncated or
/// corrupted entry is caught by comparing data, not only lengths.
pub fn payload(tag: u64, len: usize) -> Vec<u8> {
    let mut state = tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn expect_entry(got: Option<Entry>, seq: u64, data: &[u8], what: &str) {
    let entry = got.unwrap_or_else(|| panic!("{what}: expected seq {seq}, got nothing"));
    assert_eq!(entry.seq, seq, "{what}: wrong seq");
    assert!(
        entry.data == data,
        "{what}: seq {seq} has the wrong data ({} bytes, expected {})",
        entry.data.len(),
        data.len()
    );
}

/// Entries of one topic appear in append order with seqs 0, 1, 2, ... even
/// when appends to several topics interleave, and again after a reopen.
pub fn per_topic_order_with_interleaved_topics(factory: Factory) {
    let tmp = tempfile::tempdir().unwrap();
    let topics = ["orders", "payments", "a/b/../c", "ünïcödé topic", "x"];
    let per_topic = 60u64;
    let tag = |t: usize, i: u64| (t as u64) << 32 | i;
    {
        let store = open(factory, tmp.path(), FAST);
        assert!(!store.name().is_empty());
        for i in 0..per_topic {
            for (t, topic) in topics.iter().enumerate() {
                store
                    .append(topic, &payload(tag(t, i), (i % 50) as usize))
                    .unwrap();
            }
        }
        // Read the first half interleaved across topics.
        for i in 0..per_topic / 2 {
            for (t, topic) in topics.iter().enumerate().rev() {
                let got = store.read_next(topic, true).unwrap();
                expect_entry(got, i, &payload(tag(t, i), (i % 50) as usize), topic);
            }
        }
    }
    let store = open(factory, tmp.path(), FAST);
    for (t, topic) in topics.iter().enumerate() {
        for i in per_topic / 2..per_topic {
            let got = store.read_next(topic, true).unwrap();
            expect_entry(got, i, &payload(tag(t, i), (i % 50) as usize), topic);
        }
        assert_eq!(
            store.read_next(topic, true).unwrap(),
            None,
            "{topic}: past the end"
        );
    }
}

/// A batch lands whole and in order between the appends around it; bad batch
/// sizes are refused with a typed error and write nothing; a batch is never
/// visible in part to a concurrent reader.
pub fn batch_append_is_atomic_and_ordered(factory: Factory) {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(factory, tmp.path(), FAST);
    let batch: Vec<Vec<u8>> = (0..10).map(|i| payload(100 + i, 20)).collect();
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    store.append("t", b"before").unwrap();
    store.batch_append("t", &refs).unwrap();
    store.append("t", b"after").unwrap();

    // An empty batch is a no-op (walrus-rust's behaviour); it still checks
    // the topic name.
    store.batch_append("t", &[]).unwrap();
    assert!(matches!(
        store.batch_append("bad\0topic", &[]),
        Err(Error::InvalidTopic { .. })
    ));
    let too_many = vec![&b"x"[..]; MAX_BATCH_ENTRIES + 1];
    assert!(matches!(
        store.batch_append("t", &too_many),
        Err(Error::InvalidBatch { .. })
    ));

    expect_entry(
        store.read_next("t", true).unwrap(),
        0,
        b"before",
        "before the batch",
    );
    for (i, data) in batch.iter().enumerate() {
        expect_entry(
            store.read_next("t", true).unwrap(),
            1 + i as u64,
            data,
            "batch entry",
        );
    }
    expect_entry(
        store.read_next("t", true).unwrap(),
        11,
        b"after",
        "after the batch",
    );
    assert_eq!(
        store.read_next("t", true).unwrap(),
        None,
        "refused batches wrote nothing"
    );

    // The largest allowed batch is accepted.
    let full = vec![&b"m"[..]; MAX_BATCH_ENTRIES];
    store.batch_append("full", &full).unwrap();
    let mut read = 0;
    loop {
        let entries = store.batch_read("full", 64 * 1024, true).unwrap();
        if entries.is_empty() {
            break;
        }
        for entry in entries {
            assert_eq!(entry.seq, read);
            read += 1;
        }
    }
    assert_eq!(read, MAX_BATCH_ENTRIES as u64);

    // A batch read returns at most MAX_BATCH_ENTRIES entries, however large
    // its byte budget, and the next read goes on where it stopped.
    store.batch_append("capped", &full).unwrap();
    store.batch_append("capped", &full).unwrap();
    let first = store.batch_read("capped", usize::MAX, true).unwrap();
    assert_eq!(first.len(), MAX_BATCH_ENTRIES, "one batch read's entries");
    let second = store.batch_read("capped", usize::MAX, true).unwrap();
    assert_eq!(
        second.len(),
        MAX_BATCH_ENTRIES,
        "the second batch read's entries"
    );
    assert_eq!(second[0].seq, MAX_BATCH_ENTRIES as u64);
    assert!(store
        .batch_read("capped", usize::MAX, true)
        .unwrap()
        .is_empty());

    // Visibility: once a reader sees one entry of a batch it must see the
    // rest of it without waiting.
    let store: Arc<dyn LogStore> = Arc::from(store);
    const BATCH: u64 = 25;
    const BATCHES: u64 = 40;
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for b in 0..BATCHES {
                let batch: Vec<Vec<u8>> = (0..BATCH).map(|i| payload(b * BATCH + i, 8)).collect();
                let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                store.batch_append("visible", &refs).unwrap();
            }
        })
    };
    let mut next = 0u64;
    while next < BATCH * BATCHES {
        match store.read_next("visible", true).unwrap() {
            Some(entry) => {
                assert_eq!(entry.seq, next);
                assert_eq!(entry.data, payload(next, 8));
                next += 1;
            }
            None => assert_eq!(
                next % BATCH,
                0,
                "entry {next} is missing although an earlier entry of its batch was read"
            ),
        }
    }
    writer.join().unwrap();
}

/// `checkpoint = false` returns the entry at the cursor without moving it,
/// for `read_next` and `batch_read`, and a peek is not persisted.
pub fn peek_does_not_consume(factory: Factory) {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open(factory, tmp.path(), STRICT);
        for i in 0..4 {
            store.append("t", &payload(i, 10)).unwrap();
        }
        expect_entry(
            store.read_next("t", false).unwrap(),
            0,
            &payload(0, 10),
            "peek",
        );
        expect_entry(
            store.read_next("t", false).unwrap(),
            0,
            &payload(0, 10),
            "second peek",
        );
        let peeked = store.batch_read("t", 1 << 20, false).unwrap();
        assert_eq!(
            peeked.first().map(|e| e.seq),
            Some(0),
            "batch peek starts at the cursor"
        );
        expect_entry(
            store.read_next("t", true).unwrap(),
            0,
            &payload(0, 10),
            "consume",
        );
        expect_entry(
            store.read_next("t", false).unwrap(),
            1,
            &payload(1, 10),
            "peek after consume",
        );
        let peeked = store.batch_read("t", 1 << 20, false).unwrap();
        assert_eq!(peeked.first().map(|e| e.seq), Some(1));
        assert_eq!(
            peeked.len(),
            3,
            "a budget larger than everything returns everything left"
        );
        expect_entry(
            store.read_next("t", false).unwrap(),
            1,
            &payload(1, 10),
            "after batch peek",
        );
    }
    let store = open(factory, tmp.path(), STRICT);
    expect_entry(
        store.read_next("t", false).unwrap(),
        1,
        &payload(1, 10),
        "peeks were not persisted",
    );
}

fn check_budget(entries: &[Entry], max_bytes: usize, from_seq: u64, what: &str) {
    assert!(
        !entries.is_empty(),
        "{what}: no entry although one is available"
    );
    let total: usize = entries.iter().map(|e| e.data.len()).sum();
    assert!(
        total <= max_bytes || entries.len() == 1,
        "{what}: {} entries of {total} bytes exceed the budget of {max_bytes}",
        entries.len()
    );
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(
            entry.seq,
            from_seq + i as u64,
            "{what}: entries are not contiguous"
        );
    }
}

/// `batch_read` returns contiguous entries from the cursor whose payloads fit
/// in `max_bytes`, except for a single entry larger than the budget, and at
/// least one entry whenever one is available, including for `max_bytes = 0`.
pub fn batch_read_respects_the_byte_budget(factory: Factory) {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(factory, tmp.path(), FAST);
    assert!(store
        .batch_read("never-written", 100, true)
        .unwrap()
        .is_empty());
    assert_eq!(store.read_next("never-written", false).unwrap(), None);

    let sizes = [10usize, 20, 30, 5, 100, 0, 0, 7, 64, 1, 300, 2];
    for (i, size) in sizes.iter().enumerate() {
        store.append("t", &payload(i as u64, *size)).unwrap();
    }
    for budget in [0usize, 1, 9, 10, 29, 30, 31, 60, 65, 200, 1000] {
        let entries = store.batch_read("t", budget, false).unwrap();
        check_budget(&entries, budget, 0, &format!("peek with budget {budget}"));
    }
    for budget in [0usize, 7, 50] {
        let mut next = 0u64;
        let dir = tempfile::tempdir().unwrap();
        let scratch = open(factory, dir.path(), FAST);
        for (i, size) in sizes.iter().enumerate() {
            scratch.append("t", &payload(i as u64, *size)).unwrap();
        }
        loop {
            let entries = scratch.batch_read("t", budget, true).unwrap();
            if entries.is_empty() {
                break;
            }
            check_budget(
                &entries,
                budget,
                next,
                &format!("consume with budget {budget}"),
            );
            for entry in &entries {
                assert_eq!(entry.data, payload(entry.seq, sizes[entry.seq as usize]));
            }
            next += entries.len() as u64;
        }
        assert_eq!(
            next,
            sizes.len() as u64,
            "budget {budget}: every entry read once"
        );
    }
    // An entry larger than the budget is still readable, alone.
    let entries = store.batch_read("t", 3, true).unwrap();
    check_budget(&entries, 3, 0, "oversized first entry");
    assert_eq!(entries.len(), 1);
}

/// Under `StrictlyAtOnce` the cursor is persisted on every consuming read:
/// after a reopen nothing consumed is returned again and nothing is skipped.
pub fn strict_cursor_survives_reopen(factory: Factory) {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open(factory, tmp.path(), STRICT);
        for i in 0..10 {
            store.append("t", &payload(i, 16)).unwrap();
        }
        store.read_next("t", true).unwrap();
        let two = store.batch_read("t", 32, true).unwrap();
        assert_eq!(two.len(), 2);
        store.read_next("t", true).unwrap();
        store.read_next("t", false).unwrap();
    }
    for _ in 0..2 {
        let store = open(factory, tmp.path(), STRICT);
        expect_entry(
            store.read_next("t", false).unwrap(),
            4,
            &payload(4, 16),
            "after reopen",
        );
    }
    let store = open(factory, tmp.path(), STRICT);
    for i in 4..10 {
        expect_entry(
            store.read_next("t", true).unwrap(),
            i,
            &payload(i, 16),
            "rest",
        );
    }
    assert_eq!(store.read_next("t", true).unwrap(), None);
}

/// Under `AtLeastOnce { persist_every: n }` a reopen neither skips an entry
/// nor returns more than n consumed entries again.
pub fn at_least_once_cursor_survives_reopen(factory: Factory) {
    let n = 3u32;
    let config = StoreConfig {
        consistency: ReadConsistency::AtLeastOnce { persist_every: n },
        fsync: FsyncSchedule::NoFsync,
    };
    for consumed in [0u64, 1, 2, 3, 7, 9, 20] {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = open(factory, tmp.path(), config);
            for i in 0..20 {
                store.append("t", &payload(i, 8)).unwrap();
            }
            for i in 0..consumed {
                expect_entry(
                    store.read_next("t", true).unwrap(),
                    i,
                    &payload(i, 8),
                    "first run",
                );
            }
        }
        let store = open(factory, tmp.path(), config);
        let resumed = match store.read_next("t", false).unwrap() {
            Some(entry) => entry.seq,
            None => 20,
        };
        assert!(
            resumed <= consumed,
            "consumed {consumed}, reopened at {resumed}: entries were skipped"
        );
        assert!(
            consumed - resumed <= u64::from(n),
            "consumed {consumed}, reopened at {resumed}: more than {n} returned again"
        );
        for i in resumed..20 {
            expect_entry(
                store.read_next("t", true).unwrap(),
                i,
                &payload(i, 8),
                "second run",
            );
        }
        assert_eq!(store.read_next("t", true).unwrap(), None);
    }
}

/// `sync()` succeeds under every fsync schedule (on an empty store too), and
/// what it covered is read back after a reopen. Then the barrier itself is
/// checked on the files, under every schedule (see
/// [`check_sync_is_a_barrier`]): `SyncEach` appends leave nothing dirty when
/// they return; under `NoFsync` and a `Milliseconds` schedule too long to
/// fire, appends do leave something a power loss would take, and `sync()`
/// leaves none of it.
pub fn sync_succeeds_under_every_schedule(factory: Factory) {
    sync_succeeds_under_every_schedule_but_diagnostics(factory, &[]);
}

/// [`sync_succeeds_under_every_schedule`] for a store that also writes
/// `diagnostic_files` (see [`check_sync_is_a_barrier`]).
pub fn sync_succeeds_under_every_schedule_but_diagnostics(
    factory: Factory,
    diagnostic_files: &[&str],
) {
    for fsync in [
        FsyncSchedule::SyncEach,
        FsyncSchedule::Milliseconds(20),
        FsyncSchedule::NoFsync,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            consistency: ReadConsistency::StrictlyAtOnce,
            fsync,
        };
        {
            let store = open(factory, tmp.path(), config);
            store.sync().unwrap();
            for i in 0..20 {
                store
                    .append(&format!("t{}", i % 3), &payload(i, 100))
                    .unwrap();
            }
            store.batch_append("t0", &[b"b1", b"b2"]).unwrap();
            store.sync().unwrap();
            store.sync().unwrap();
        }
        let store = open(factory, tmp.path(), config);
        let mut count = 0;
        for topic in ["t0", "t1", "t2"] {
            while let Some(entry) = store.read_next(topic, true).unwrap() {
                assert!(!entry.data.is_empty());
                count += 1;
            }
        }
        assert_eq!(count, 22, "{fsync}: every synced entry is back");
    }
    for fsync in [
        FsyncSchedule::SyncEach,
        FsyncSchedule::NoFsync,
        FsyncSchedule::Milliseconds(SYNC_CHECK_NEVER_MS),
    ] {
        match check_sync_is_a_barrier(factory, fsync, diagnostic_files) {
            Ok(evidence) => eprintln!("sync check, {fsync}: {evidence}"),
            Err(e) => panic!("sync check, {fsync}: {e}"),
        }
    }
}

/// A `Milliseconds` interval no test outlives: the store's own timer never
/// syncs during the check, so whatever is durable after `sync()` is its doing.
pub const SYNC_CHECK_NEVER_MS: u64 = 600_000;

/// Topics the sync check writes to.
const SYNC_TOPICS: [&str; 3] = ["sync/a", "sync/b", "sync/c"];
/// Payload size of the sync check's appends: small enough for every store
/// to keep inline (sled moves values above about 128 KiB, and tree nodes
/// that grow past that, to blob files it never syncs).
const SYNC_ENTRY_BYTES: usize = 2048;
/// Appends per round of the sync check (with one batch of 4): 512 KiB.
const SYNC_ROUND_APPENDS: u64 = 256;
/// Rounds the check writes, at most, looking for evidence that the store
/// left something unsynced (32 MiB in all).
const SYNC_MAX_ROUNDS: usize = 64;

/// Why [`check_sync_is_a_barrier`] failed.
#[derive(Debug)]
pub enum SyncCheckError {
    /// Something an acknowledged append wrote is not durable when it should
    /// be: a dirty page after `sync()` (or after a `SyncEach` append)
    /// returned, or an entry missing from the files after `sync()`.
    NotDurable(String),
    /// The check could not tell a working `sync()` from one that does
    /// nothing: before the sync nothing was dirty and the files already held
    /// every entry, so the sync had nothing to do that could be observed.
    Inconclusive(String),
    /// The store failed an operation of the check.
    Store(Error),
}

impl std::fmt::Display for SyncCheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncCheckError::NotDurable(why) => write!(f, "not durable: {why}"),
            SyncCheckError::Inconclusive(why) => write!(f, "inconclusive: {why}"),
            SyncCheckError::Store(e) => write!(f, "store error: {e}"),
        }
    }
}

impl From<Error> for SyncCheckError {
    fn from(e: Error) -> Self {
        SyncCheckError::Store(e)
    }
}

/// What [`check_sync_is_a_barrier`] observed.
#[derive(Debug, Default)]
pub struct SyncEvidence {
    /// Entries appended (and read back from the image after `sync()`).
    pub entries: usize,
    /// Payload bytes appended.
    pub bytes: usize,
    /// Regular files of the store after the sync.
    pub files: usize,
    /// Pages dirtied by the appends (over all the store's files, beyond
    /// those already dirty when the store had opened) just before `sync()`.
    pub dirty_pages_before_sync: u64,
    /// Entries a copy of the files taken just before `sync()` lacked (data
    /// the store held in its own memory), when it was taken.
    pub missing_before_sync: Option<usize>,
    /// Why the page-cache half of the check did not run, if it did not.
    pub page_cache_skipped: Option<String>,
}

impl std::fmt::Display for SyncEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} entries ({} KiB) in {} files; before sync() {} dirty pages",
            self.entries,
            self.bytes / 1024,
            self.files,
            self.dirty_pages_before_sync
        )?;
        if let Some(missing) = self.missing_before_sync {
            write!(f, " and a copy of the files lacked {missing} entries")?;
        }
        match &self.page_cache_skipped {
            None => write!(
                f,
                "; after it no dirty page and a copy of the files held every entry"
            ),
            Some(why) => write!(
                f,
                "; after it a copy of the files held every entry (page-cache half SKIPPED: {why})"
            ),
        }
    }
}

/// Whether the page-cache half of the sync check can run on `dir`: `None`
/// when it can, else the reason, printed as a skip.
fn page_cache_unavailable(dir: &Path) -> Option<String> {
    if let Some(why) = crate::page_cache::no_disk_behind(dir) {
        return Some(why);
    }
    let probe = dir.join(".cachestat-probe");
    std::fs::write(&probe, b"probe").ok()?;
    let result = crate::page_cache::cachestat(&probe);
    let _ = std::fs::remove_file(&probe);
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Some(e.to_string()),
        _ => None,
    }
}

/// Whether `path` is one of the `diagnostic_files` (a file name, or a
/// prefix of one ending in `*`).
fn is_diagnostic(path: &Path, diagnostic_files: &[&str]) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    diagnostic_files
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *pattern,
        })
}

/// `stat` of every regular file under `dir` but the diagnostic ones.
fn store_pages(
    dir: &Path,
    diagnostic_files: &[&str],
    stat: fn(&Path) -> std::io::Result<crate::page_cache::CacheStat>,
) -> Vec<(std::path::PathBuf, crate::page_cache::CacheStat)> {
    crate::page_cache::stat_tree(dir, stat)
        .unwrap_or_else(|e| panic!("cachestat of the files under {}: {e}", dir.display()))
        .into_iter()
        .filter(|(path, _)| !is_diagnostic(path, diagnostic_files))
        .collect()
}

/// Dirty and under-writeback pages holding data (a non-zero byte) per file
/// of `dir` that has any. Zero pages are left out: the mmap backend faults
/// in zero pages ahead of its appender, which dirties them without putting
/// anything there a power loss could take.
fn unclean_files(
    dir: &Path,
    diagnostic_files: &[&str],
) -> Vec<(std::path::PathBuf, crate::page_cache::CacheStat)> {
    store_pages(dir, diagnostic_files, crate::page_cache::cachestat_data)
        .into_iter()
        .filter(|(_, s)| s.nr_dirty > 0 || s.nr_writeback > 0)
        .collect()
}

fn describe_unclean(
    dir: &Path,
    files: &[(std::path::PathBuf, crate::page_cache::CacheStat)],
) -> String {
    files
        .iter()
        .map(|(path, s)| {
            format!(
                "{} ({} dirty, {} under writeback, of {} cached pages)",
                path.strip_prefix(dir).unwrap_or(path).display(),
                s.nr_dirty,
                s.nr_writeback,
                s.nr_cache
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// No file under `dir` has a dirty page right now, and none stays under
/// writeback (a page being written back when the sync returned is waited
/// for, briefly: the fsync that should have waited for it did not).
fn check_clean(
    dir: &Path,
    diagnostic_files: &[&str],
    when: &str,
) -> std::result::Result<(), SyncCheckError> {
    let unclean = unclean_files(dir, diagnostic_files);
    if unclean.iter().any(|(_, s)| s.nr_dirty > 0) {
        return Err(SyncCheckError::NotDurable(format!(
            "{when}, files still hold dirty pages that a power loss would take: {}",
            describe_unclean(dir, &unclean)
        )));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut unclean = unclean;
    while !unclean.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
        unclean = unclean_files(dir, diagnostic_files);
    }
    if !unclean.is_empty() {
        return Err(SyncCheckError::NotDurable(format!(
            "{when}, pages were still not on the disk 2 s later: {}",
            describe_unclean(dir, &unclean)
        )));
    }
    Ok(())
}

/// Copies the store's files in `dir` (the store still open) to `image`,
/// opens the copy and reads every topic without consuming. Returns how many
/// of `model`'s entries the copy lacks; what it holds must be an exact
/// prefix of each topic.
fn image_missing(
    factory: Factory,
    config: StoreConfig,
    dir: &Path,
    image: &Path,
    model: &[Vec<Vec<u8>>],
    when: &str,
) -> std::result::Result<usize, SyncCheckError> {
    crate::page_cache::copy_tree(dir, image)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", dir.display(), image.display()));
    let mut missing = 0;
    {
        let copy = factory(image, config).map_err(|e| {
            SyncCheckError::NotDurable(format!(
                "{when}, a copy of the store's files does not open: {e}"
            ))
        })?;
        for (topic, expected) in SYNC_TOPICS.iter().zip(model) {
            let got = copy.batch_read(topic, usize::MAX, false)?;
            if got.len() > expected.len() {
                return Err(SyncCheckError::NotDurable(format!(
                    "{when}, a copy of the files holds {} entries of {topic}, {} were appended",
                    got.len(),
                    expected.len()
                )));
            }
            for (i, entry) in got.iter().enumerate() {
                if entry.seq != i as u64 || entry.data != expected[i] {
                    return Err(SyncCheckError::NotDurable(format!(
                        "{when}, a copy of the files holds a wrong entry {i} of {topic} \
                         (seq {}, {} bytes)",
                        entry.seq,
                        entry.data.len()
                    )));
                }
            }
            missing += expected.len() - got.len();
        }
    }
    let _ = std::fs::remove_dir_all(image);
    Ok(missing)
}

/// Checks that `sync()` is a barrier, on the files of a store opened with
/// `fsync`, in a fresh temporary directory (which must be on a disk for the
/// page-cache half; `TMPDIR` chooses it).
///
/// Under `NoFsync` and `Milliseconds` (use [`SYNC_CHECK_NEVER_MS`]) it
/// appends rounds of entries until there is evidence that the appends left
/// something a power loss would take: a dirty page in some file of the store
/// (`cachestat(2)`), or, for a store that buffers in its own memory, a copy
/// of its files that lacks entries. No evidence after 32 MiB is
/// [`SyncCheckError::Inconclusive`]: the check cannot fail a `sync()` that
/// does nothing, so it does not pass either. Then it calls `sync()` and
/// requires at once that no file of the store has a dirty page and that a
/// copy of the files (the store still open) holds every entry, byte-exact.
///
/// Under `SyncEach` one round is appended and no file may hold a dirty page
/// when the appends have returned; `sync()` must then keep it that way.
///
/// Where `cachestat` is unavailable (ENOSYS) or the directory is on tmpfs,
/// ramfs or overlayfs, the page-cache half is skipped and says so in
/// [`SyncEvidence::page_cache_skipped`]; the copy half still runs.
///
/// `diagnostic_files` names files the store writes for people only and
/// never reads back (RocksDB's info `LOG`): their pages are not required to
/// be synced. A name, or a prefix ending in `*`; empty for most stores.
pub fn check_sync_is_a_barrier(
    factory: Factory,
    fsync: FsyncSchedule,
    diagnostic_files: &[&str],
) -> std::result::Result<SyncEvidence, SyncCheckError> {
    let tmp = tempfile::tempdir().unwrap();
    let images = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = StoreConfig {
        consistency: ReadConsistency::AtLeastOnce { persist_every: 16 },
        fsync,
    };
    let skipped = page_cache_unavailable(dir);
    if let Some(why) = &skipped {
        eprintln!("SKIPPED (page-cache half of the sync check, {fsync}): {why}");
    }
    let store = factory(dir, config)?;
    // Pages already dirty once the store is open (a file the store wrote at
    // open and never syncs) are no evidence about the appends: only pages
    // dirtied after this count before the sync. After it, every dirty page
    // counts.
    let dirty_at_open: std::collections::HashMap<std::path::PathBuf, u64> = if skipped.is_none() {
        store_pages(dir, diagnostic_files, crate::page_cache::cachestat)
            .into_iter()
            .map(|(path, s)| (path, s.nr_dirty))
            .collect()
    } else {
        Default::default()
    };
    let mut model: Vec<Vec<Vec<u8>>> = vec![Vec::new(); SYNC_TOPICS.len()];
    let mut evidence = SyncEvidence {
        page_cache_skipped: skipped.clone(),
        ..SyncEvidence::default()
    };
    let mut tag = 1u64 << 40;
    let mut evident = false;
    for round in 0..SYNC_MAX_ROUNDS {
        for i in 0..SYNC_ROUND_APPENDS {
            let t = (i % SYNC_TOPICS.len() as u64) as usize;
            tag += 1;
            let data = payload(tag, SYNC_ENTRY_BYTES);
            store.append(SYNC_TOPICS[t], &data)?;
            evidence.bytes += data.len();
            model[t].push(data);
        }
        let batch: Vec<Vec<u8>> = (0..4)
            .map(|_| {
                tag += 1;
                payload(tag, SYNC_ENTRY_BYTES / 2)
            })
            .collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        store.batch_append(SYNC_TOPICS[round % SYNC_TOPICS.len()], &refs)?;
        evidence.bytes += batch.iter().map(Vec::len).sum::<usize>();
        model[round % SYNC_TOPICS.len()].extend(batch);

        if fsync == FsyncSchedule::SyncEach {
            if skipped.is_none() {
                check_clean(dir, diagnostic_files, "after SyncEach appends returned")?;
            }
            evident = true;
            break;
        }
        if skipped.is_none() {
            let dirty: u64 = store_pages(dir, diagnostic_files, crate::page_cache::cachestat)
                .iter()
                .map(|(path, s)| {
                    s.nr_dirty
                        .saturating_sub(dirty_at_open.get(path).copied().unwrap_or(0))
                })
                .sum();
            if dirty > 0 {
                evidence.dirty_pages_before_sync = dirty;
                evident = true;
                break;
            }
        }
        let image = images.path().join(format!("before-{round}"));
        let missing = image_missing(factory, config, dir, &image, &model, "before sync()")?;
        evidence.missing_before_sync = Some(missing);
        if missing > 0 {
            evident = true;
            break;
        }
    }
    evidence.entries = model.iter().map(Vec::len).sum();
    if !evident && skipped.is_none() {
        return Err(SyncCheckError::Inconclusive(format!(
            "after {} entries ({} KiB) no file under {} had a dirty page and a copy of the \
             files already held every entry: the kernel (or the store) wrote everything back \
             before sync() was called, so a sync() that does nothing would pass too",
            evidence.entries,
            evidence.bytes / 1024,
            dir.display()
        )));
    }
    store.sync()?;
    if skipped.is_none() {
        check_clean(dir, diagnostic_files, "after sync() returned")?;
    }
    let missing = image_missing(
        factory,
        config,
        dir,
        &images.path().join("after"),
        &model,
        "after sync() returned",
    )?;
    if missing > 0 {
        return Err(SyncCheckError::NotDurable(format!(
            "after sync() returned, a copy of the store's files lacks {missing} of the {} \
             entries acknowledged before it",
            evidence.entries
        )));
    }
    evidence.files = crate::page_cache::regular_files(dir)
        .map(|f| f.len())
        .unwrap_or(0);
    drop(store);
    Ok(evidence)
}

/// The store under test with a `sync()` that does nothing: what the sync
/// check must catch.
struct SyncDoesNothing(Box<dyn LogStore>);

impl LogStore for SyncDoesNothing {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.0.append(topic, payload)
    }
    fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        self.0.batch_append(topic, payloads)
    }
    fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        self.0.read_next(topic, checkpoint)
    }
    fn batch_read(&self, topic: &str, max_bytes: usize, checkpoint: bool) -> Result<Vec<Entry>> {
        self.0.batch_read(topic, max_bytes, checkpoint)
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

/// The negative control of [`check_sync_is_a_barrier`]: wrapped so that its
/// `sync()` does nothing, the store under test must fail the check, under
/// `NoFsync` and a long `Milliseconds` schedule. Only the page-cache half
/// can catch a store that writes through the page cache; where that half is
/// skipped (no `cachestat`, no disk) and the copy half passes, the control is
/// skipped too, and says so.
pub fn the_sync_check_catches_a_store_whose_sync_does_nothing(factory: Factory) {
    the_sync_check_catches_a_store_whose_sync_does_nothing_but_diagnostics(factory, &[]);
}

/// [`the_sync_check_catches_a_store_whose_sync_does_nothing`] for a store
/// that also writes `diagnostic_files` (see [`check_sync_is_a_barrier`]).
pub fn the_sync_check_catches_a_store_whose_sync_does_nothing_but_diagnostics(
    factory: Factory,
    diagnostic_files: &[&str],
) {
    let no_sync = |dir: &Path, config: StoreConfig| -> Result<Box<dyn LogStore>> {
        Ok(Box::new(SyncDoesNothing(factory(dir, config)?)))
    };
    for fsync in [
        FsyncSchedule::NoFsync,
        FsyncSchedule::Milliseconds(SYNC_CHECK_NEVER_MS),
    ] {
        // A kernel writeback between the last append and the check after the
        // (empty) sync would clean the pages; that takes microseconds to
        // happen by chance, so three tries make a miss a real failure.
        let mut caught = false;
        for attempt in 1..=3 {
            match check_sync_is_a_barrier(&no_sync, fsync, diagnostic_files) {
                Err(SyncCheckError::NotDurable(why)) => {
                    eprintln!("sync check, {fsync}, sync() doing nothing: caught ({why})");
                    caught = true;
                    break;
                }
                Err(e) => panic!("sync check, {fsync}, sync() doing nothing: {e}"),
                Ok(evidence) if evidence.page_cache_skipped.is_some() => {
                    eprintln!(
                        "SKIPPED (sync check's negative control, {fsync}): the store writes \
                         through the page cache and its page-cache half cannot run: {evidence}"
                    );
                    caught = true;
                    break;
                }
                Ok(evidence) => eprintln!(
                    "sync check, {fsync}, sync() doing nothing: attempt {attempt} not caught \
                     ({evidence})"
                ),
            }
        }
        assert!(
            caught,
            "{fsync}: the sync check passed a store whose sync() does nothing, three times"
        );
    }
}

/// Empty payloads and payloads of 1 MiB and 4 MiB round-trip, alone and in
/// batches, before and after a reopen.
pub fn empty_and_large_payloads(factory: Factory) {
    let tmp = tempfile::tempdir().unwrap();
    let mib = 1024 * 1024;
    let expected: Vec<Vec<u8>> = vec![
        Vec::new(),
        payload(1, mib),
        Vec::new(),
        payload(3, 4 * mib),
        Vec::new(),
        payload(5, 3),
    ];
    {
        let store = open(factory, tmp.path(), FAST);
        store.append("t", &expected[0]).unwrap();
        store
            .batch_append("t", &[&expected[1], &expected[2]])
            .unwrap();
        store.append("t", &expected[3]).unwrap();
        store
            .batch_append("t", &[&expected[4], &expected[5]])
            .unwrap();
        for (i, data) in expected.iter().enumerate().take(3) {
            expect_entry(store.read_next("t", false).unwrap(), i as u64, data, "peek");
            let got = store.batch_read("t", 0, true).unwrap();
            assert_eq!(got.len(), 1, "budget 0 returns exactly one entry");
            expect_entry(got.into_iter().next(), i as u64, data, "consume");
        }
    }
    let store = open(factory, tmp.path(), STRICT);
    let resumed = store.read_next("t", false).unwrap().map(|e| e.seq).unwrap();
    assert!(resumed <= 3, "reopened at {resumed} after consuming 3");
    let mut next = resumed;
    loop {
        let got = store.batch_read("t", mib, true).unwrap();
        if got.is_empty() {
            break;
        }
        check_budget(&got, mib, next, "after reopen");
        for entry in got {
            expect_entry(Some(entry), next, &expected[next as usize], "after reopen");
            next += 1;
        }
    }
    assert_eq!(next, expected.len() as u64);
}

/// An entry and an atomic batch each larger than Walrus's default 64 MiB
/// segment (walrus-rust documents entries up to about 1 GiB) round-trip,
/// between small entries and through a reopen; a batch read stays within
/// its byte budget inside the large batch.
pub fn payloads_larger_than_a_segment(factory: Factory) {
    let tmp = tempfile::tempdir().unwrap();
    let mib = 1024 * 1024;
    let big = payload(7, 65 * mib);
    let batch: Vec<Vec<u8>> = (0..17).map(|i| payload(100 + i, 4 * mib)).collect();
    {
        let store = open(factory, tmp.path(), FAST);
        store.append("t", b"before").unwrap();
        store.append("t", &big).unwrap();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        store.batch_append("t", &refs).unwrap();
        store.append("t", b"after").unwrap();
        store.sync().unwrap();
    }
    let store = open(factory, tmp.path(), STRICT);
    expect_entry(store.read_next("t", true).unwrap(), 0, b"before", "before");
    expect_entry(
        store.read_next("t", true).unwrap(),
        1,
        &big,
        "the 65 MiB entry",
    );
    let mut next = 2u64;
    while next < 2 + batch.len() as u64 {
        let got = store.batch_read("t", 9 * mib, true).unwrap();
        check_budget(&got, 9 * mib, next, "inside the large batch");
        for entry in got {
            let want: &[u8] = match batch.get((next - 2) as usize) {
                Some(p) => p,
                None => b"after",
            };
            expect_entry(Some(entry), next, want, "large batch entry");
            next += 1;
        }
    }
    if next == 2 + batch.len() as u64 {
        expect_entry(store.read_next("t", true).unwrap(), next, b"after", "after");
    }
    assert_eq!(store.read_next("t", true).unwrap(), None);
}

/// A thousand topics, each with its own order and cursor, before and after a
/// reopen.
pub fn a_thousand_topics(factory: Factory) {
    const TOPICS: u64 = 1_000;
    let tmp = tempfile::tempdir().unwrap();
    let name = |i: u64| format!("topic-{i:04}");
    {
        let store = open(factory, tmp.path(), FAST);
        for round in 0..2 {
            for i in 0..TOPICS {
                store.append(&name(i), &payload(i * 2 + round, 24)).unwrap();
            }
        }
        for i in 0..TOPICS {
            expect_entry(
                store.read_next(&name(i), true).unwrap(),
                0,
                &payload(i * 2, 24),
                "round 0",
            );
        }
    }
    let store = open(factory, tmp.path(), FAST);
    for i in 0..TOPICS {
        let topic = name(i);
        let mut entry = store.read_next(&topic, true).unwrap();
        // AtLeastOnce may hand back entry 0 again after the reopen.
        if entry.as_ref().is_some_and(|e| e.seq == 0) {
            entry = store.read_next(&topic, true).unwrap();
        }
        expect_entry(entry, 1, &payload(i * 2 + 1, 24), &topic);
        assert_eq!(store.read_next(&topic, true).unwrap(), None);
    }
}

/// Topic names the contract forbids are refused with `InvalidTopic` by every
/// operation; the longest allowed name and names that look like paths work
/// and never put a file outside the data directory.
pub fn topic_names_are_checked(factory: Factory) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("b").join("store");
    let store = open(factory, &dir, FAST);
    let too_long = "x".repeat(MAX_TOPIC_LEN + 1);
    for bad in ["", "nul\0inside", too_long.as_str()] {
        let shown = bad.escape_debug().to_string();
        let shown = &shown[..shown.len().min(20)];
        assert!(
            matches!(store.append(bad, b"x"), Err(Error::InvalidTopic { .. })),
            "append to {shown:?}"
        );
        assert!(
            matches!(
                store.batch_append(bad, &[b"x"]),
                Err(Error::InvalidTopic { .. })
            ),
            "batch_append to {shown:?}"
        );
        assert!(
            matches!(store.read_next(bad, true), Err(Error::InvalidTopic { .. })),
            "read_next of {shown:?}"
        );
        assert!(
            matches!(
                store.batch_read(bad, 10, false),
                Err(Error::InvalidTopic { .. })
            ),
            "batch_read of {shown:?}"
        );
    }
    let longest = "y".repeat(MAX_TOPIC_LEN);
    let escapes = [
        "../../../escape",
        "/etc/escape",
        "..",
        ".",
        "a/../../b",
        "CON",
        "LOGSTORE",
    ];
    for topic in std::iter::once(longest.as_str()).chain(escapes) {
        store.append(topic, topic.as_bytes()).unwrap();
    }
    for topic in std::iter::once(longest.as_str()).chain(escapes) {
        expect_entry(
            store.read_next(topic, true).unwrap(),
            0,
            topic.as_bytes(),
            topic,
        );
    }
    let outside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside,
        ["a"],
        "nothing was created outside the data directory"
    );
    let beside: Vec<_> = std::fs::read_dir(tmp.path().join("a").join("b"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        beside,
        ["store"],
        "nothing was created beside the data directory"
    );
}

/// A reopened store continues each topic's seqs where they ended.
pub fn reopen_continues_each_topic(factory: Factory) {
    let tmp = tempfile::tempdir().unwrap();
    for round in 0..3u64 {
        let store = open(factory, tmp.path(), FAST);
        for i in 0..5 {
            store.append("a", &payload(round * 5 + i, 4)).unwrap();
        }
        store.batch_append("b", &[b"1", b"2"]).unwrap();
    }
    let store = open(factory, tmp.path(), FAST);
    for i in 0..15 {
        expect_entry(store.read_next("a", true).unwrap(), i, &payload(i, 4), "a");
    }
    let b = store.batch_read("b", 1 << 20, true).unwrap();
    assert_eq!(
        b.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
}

/// Concurrent producers and consumers: every entry is delivered exactly once,
/// and each producer's entries keep their order in the topic.
pub fn concurrent_producers_and_consumers(factory: Factory) {
    const PRODUCERS: u64 = 4;
    const PER_PRODUCER: u64 = 250;
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn LogStore> = Arc::from(open(factory, tmp.path(), FAST));
    let done = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicUsize::new(0));
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (store, done, received) = (store.clone(), done.clone(), received.clone());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let batch = store.batch_read("shared", 256, true).unwrap();
                    if batch.is_empty() {
                        if done.load(Ordering::Acquire) {
                            return got;
                        }
                        std::thread::yield_now();
                        continue;
                    }
                    received.fetch_add(batch.len(), Ordering::Relaxed);
                    got.extend(batch);
                }
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    let data = [p.to_le_bytes(), i.to_le_bytes()].concat();
                    if i % 10 == 0 {
                        store.batch_append("shared", &[&data]).unwrap();
                    } else {
                        store.append("shared", &data).unwrap();
                    }
                    store.append(&format!("own-{p}"), &data).unwrap();
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let mut all: Vec<Entry> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(received.load(Ordering::Relaxed), all.len());
    // Drain anything a consumer raced past `done` on.
    all.extend(store.batch_read("shared", usize::MAX, true).unwrap());
    all.sort_by_key(|e| e.seq);
    let seqs: HashSet<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs.len(), all.len(), "an entry was delivered twice");
    assert_eq!(
        all.len() as u64,
        PRODUCERS * PER_PRODUCER,
        "every entry delivered"
    );
    let mut last = vec![None; PRODUCERS as usize];
    for entry in &all {
        let p = u64::from_le_bytes(entry.data[..8].try_into().unwrap()) as usize;
        let i = u64::from_le_bytes(entry.data[8..].try_into().unwrap());
        assert!(last[p] < Some(i), "producer {p}'s entries out of order");
        last[p] = Some(i);
    }
    for p in 0..PRODUCERS {
        let own = store
            .batch_read(&format!("own-{p}"), usize::MAX, true)
            .unwrap();
        let order: Vec<u64> = own
            .iter()
            .map(|e| u64::from_le_bytes(e.data[8..].try_into().unwrap()))
            .collect();
        assert_eq!(order, (0..PER_PRODUCER).collect::<Vec<_>>());
    }
}

// ---- model-based random op sequences --------------------------------------

const MODEL_TOPICS: [&str; 3] = ["alpha", "beta", "gamma/δ"];

/// One step of a random op sequence.
#[derive(Clone, Debug)]
pub enum Op {
    Append {
        topic: usize,
        len: usize,
    },
    Batch {
        topic: usize,
        lens: Vec<usize>,
    },
    ReadNext {
        topic: usize,
        consume: bool,
    },
    BatchRead {
        topic: usize,
        max_bytes: usize,
        consume: bool,
    },
    Sync,
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let topic = 0..MODEL_TOPICS.len();
    prop_oneof![
        4 => (topic.clone(), 0..48usize).prop_map(|(topic, len)| Op::Append { topic, len }),
        2 => (topic.clone(), prop::collection::vec(0..24usize, 1..8))
            .prop_map(|(topic, lens)| Op::Batch { topic, lens }),
        4 => (topic.clone(), any::<bool>())
            .prop_map(|(topic, consume)| Op::ReadNext { topic, consume }),
        3 => (topic, 0..120usize, any::<bool>()).prop_map(|(topic, max_bytes, consume)| {
            Op::BatchRead { topic, max_bytes, consume }
        }),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

fn config_strategy() -> impl Strategy<Value = StoreConfig> {
    let consistency = prop_oneof![
        Just(ReadConsistency::StrictlyAtOnce),
        (1..4u32).prop_map(|persist_every| ReadConsistency::AtLeastOnce { persist_every }),
    ];
    let fsync = prop_oneof![
        Just(FsyncSchedule::NoFsync),
        Just(FsyncSchedule::Milliseconds(10)),
    ];
    (consistency, fsync).prop_map(|(consistency, fsync)| StoreConfig { consistency, fsync })
}

/// What the store should hold: each topic's entries and its cursor.
#[derive(Default)]
struct Model {
    topics: Vec<Vec<Vec<u8>>>,
    cursors: Vec<u64>,
}

fn check(cond: bool, msg: impl FnOnce() -> String) -> std::result::Result<(), TestCaseError> {
    if cond {
        Ok(())
    } else {
        Err(TestCaseError::fail(msg()))
    }
}

fn run_model(
    factory: Factory,
    config: StoreConfig,
    ops: &[Op],
) -> std::result::Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let fail = |e: Error| TestCaseError::fail(format!("store error: {e}"));
    let mut store = factory(tmp.path(), config).map_err(fail)?;
    let mut model = Model {
        topics: vec![Vec::new(); MODEL_TOPICS.len()],
        cursors: vec![0; MODEL_TOPICS.len()],
    };
    let mut tag = 0u64;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Append { topic, len } => {
                tag += 1;
                let data = payload(tag, *len);
                store.append(MODEL_TOPICS[*topic], &data).map_err(fail)?;
                model.topics[*topic].push(data);
            }
            Op::Batch { topic, lens } => {
                let batch: Vec<Vec<u8>> = lens
                    .iter()
                    .map(|len| {
                        tag += 1;
                        payload(tag, *len)
                    })
                    .collect();
                let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                store
                    .batch_append(MODEL_TOPICS[*topic], &refs)
                    .map_err(fail)?;
                model.topics[*topic].extend(batch);
            }
            Op::ReadNext { topic, consume } => {
                let got = store
                    .read_next(MODEL_TOPICS[*topic], *consume)
                    .map_err(fail)?;
                let cursor = model.cursors[*topic];
                match model.topics[*topic].get(cursor as usize) {
                    None => check(got.is_none(), || format!("step {step}: read past the end"))?,
                    Some(data) => {
                        let ok = got
                            .as_ref()
                            .is_some_and(|e| e.seq == cursor && e.data == *data);
                        check(ok, || {
                            format!("step {step}: expected seq {cursor}, got {got:?}")
                        })?;
                        if *consume {
                            model.cursors[*topic] += 1;
                        }
                    }
                }
            }
            Op::BatchRead {
                topic,
                max_bytes,
                consume,
            } => {
                let got = store
                    .batch_read(MODEL_TOPICS[*topic], *max_bytes, *consume)
                    .map_err(fail)?;
                let cursor = model.cursors[*topic] as usize;
                let available = &model.topics[*topic][cursor.min(model.topics[*topic].len())..];
                check(got.is_empty() == available.is_empty(), || {
                    format!(
                        "step {step}: {} entries available, got {}",
                        available.len(),
                        got.len()
                    )
                })?;
                let total: usize = got.iter().map(|e| e.data.len()).sum();
                check(total <= *max_bytes || got.len() == 1, || {
                    format!("step {step}: {total} bytes over a budget of {max_bytes}")
                })?;
                for (i, entry) in got.iter().enumerate() {
                    let ok = entry.seq == (cursor + i) as u64 && entry.data == available[i];
                    check(ok, || format!("step {step}: entry {i} is {entry:?}"))?;
                }
                if *consume {
                    model.cursors[*topic] += got.len() as u64;
                }
            }
            Op::Sync => store.sync().map_err(fail)?,
            Op::Reopen => {
                drop(store);
                store = factory(tmp.path(), config).map_err(fail)?;
                for (t, name) in MODEL_TOPICS.iter().enumerate() {
                    let expected = model.cursors[t];
                    let resumed = match store.read_next(name, false).map_err(fail)? {
                        Some(entry) => {
                            let ok = model.topics[t]
                                .get(entry.seq as usize)
                                .map(|v| v.as_slice())
                                == Some(&entry.data[..]);
                            check(ok, || {
                                format!("step {step}: {name} reopened at bad {entry:?}")
                            })?;
                            entry.seq
                        }
                        None => model.topics[t].len() as u64,
                    };
                    let redelivered_max = match config.consistency {
                        ReadConsistency::StrictlyAtOnce => 0,
                        ReadConsistency::AtLeastOnce { persist_every } => u64::from(persist_every),
                    };
                    check(
                        resumed <= expected && expected - resumed <= redelivered_max,
                        || {
                            format!(
                            "step {step}: {name} reopened at {resumed}, consumed up to {expected} \
                             ({:?})",
                            config.consistency
                        )
                        },
                    )?;
                    model.cursors[t] = resumed;
                }
            }
        }
    }
    Ok(())
}

/// Random op sequences on three topics, checked step by step against a
/// `Vec`-per-topic model (including reopens). `PROPTEST_CASES` sets the
/// number of cases (and the other `PROPTEST_*` variables apply, as
/// `ProptestConfig::default()` reads them); without it, 24 cases keep the
/// suite fast. A shrunk failure is printed with its ops and should become a
/// named regression test.
pub fn random_ops_match_the_model(factory: Factory) {
    let mut config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 24;
    }
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let strategy = (
        config_strategy(),
        prop::collection::vec(op_strategy(), 1..48),
    );
    let result = runner.run(&strategy, |(config, ops)| run_model(factory, config, &ops));
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("random ops: {cases} cases matched the model");
}

/// Expands to one `#[test]` per conformance check, each calling the check
/// with `$factory`, a `fn(&Path, StoreConfig) -> Result<Box<dyn LogStore>>`.
///
/// `conformance_tests!(open, diagnostic_files = ["LOG", "LOG.old.*"])`
/// names files the store writes for diagnostics only, which the `sync()`
/// checks then do not require synced (see
/// [`check_sync_is_a_barrier`](crate::conformance::check_sync_is_a_barrier)).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!($factory, diagnostic_files = []);
    };
    ($factory:path, diagnostic_files = [$($file:expr),* $(,)?]) => {
        $crate::conformance_tests!(@tests $factory;
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
        fn sync_succeeds_under_every_schedule() {
            $crate::conformance::sync_succeeds_under_every_schedule_but_diagnostics(
                &$factory,
                &[$($file),*],
            );
        }

        #[test]
        fn the_sync_check_catches_a_store_whose_sync_does_nothing() {
            $crate::conformance::the_sync_check_catches_a_store_whose_sync_does_nothing_but_diagnostics(
                &$factory,
                &[$($file),*],
            );
        }
    };
    (@tests $factory:path; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::conformance::$check(&$factory);
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_file_patterns() {
        let spared = ["LOG", "LOG.old.*"];
        assert!(is_diagnostic(Path::new("/d/rocksdb/LOG"), &spared));
        assert!(is_diagnostic(
            Path::new("/d/rocksdb/LOG.old.1700000000"),
            &spared
        ));
        assert!(!is_diagnostic(Path::new("/d/rocksdb/000004.log"), &spared));
        assert!(!is_diagnostic(Path::new("/d/raw/LOGSTORE"), &spared));
        assert!(!is_diagnostic(Path::new("/d/LOG"), &[]));
    }
}
