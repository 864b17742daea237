//! `batch_read` throughput of the RocksDB adapter with a fresh iterator per
//! call (`RocksDbStore::open_without_iterator_reuse`, the adapter as it read
//! before) against one iterator kept per topic reader (`RocksDbStore::open`),
//! alternated round by round in one run so both see the same machine state.
//!
//! Each round and variant gets a new store, populated with `ENTRIES` entries
//! of `ENTRY_BYTES` bytes in one topic, then consumed with
//! `batch_read(topic, BATCH_ENTRIES * ENTRY_BYTES, true)` until empty. The
//! cursor is persisted only at close (at-least-once with a persist interval
//! longer than the run, no-fsync), so the figure is the read path and not a
//! cursor fsync per call. Prints batch_read calls/s and entries/s per round
//! and the median.
//!
//! ```text
//! CARGO_TARGET_DIR=/root/.cache/walrus-target cargo run --release -p walrus-adapters \
//!     --features rocksdb --example rocksdb_batch_read
//! ```
//!
//! Settings (environment): `ENTRIES` (default 200000), `ENTRY_BYTES` (128),
//! `BATCH_ENTRIES` (16), `ROUNDS` (5).

use std::path::Path;
use std::time::Instant;

use walrus_adapters::RocksDbStore;
use walrus_store::{FsyncSchedule, LogStore, ReadConsistency, Result, StoreConfig};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const TOPIC: &str = "bench";

/// Populates a new store, then reads it all back; returns (calls, seconds).
fn round(
    dir: &Path,
    reuse: bool,
    entries: usize,
    entry_bytes: usize,
    batch: usize,
) -> Result<(u64, f64)> {
    let config = StoreConfig {
        consistency: ReadConsistency::AtLeastOnce {
            persist_every: u32::MAX,
        },
        fsync: FsyncSchedule::NoFsync,
    };
    let store = if reuse {
        RocksDbStore::open(dir, config)?
    } else {
        RocksDbStore::open_without_iterator_reuse(dir, config)?
    };
    let payload = vec![0xA5u8; entry_bytes];
    let chunk: Vec<&[u8]> = vec![&payload; 1000];
    for _ in 0..entries / chunk.len() {
        store.batch_append(TOPIC, &chunk)?;
    }
    let started = Instant::now();
    let (mut calls, mut read) = (0u64, 0usize);
    loop {
        let got = store.batch_read(TOPIC, batch * entry_bytes, true)?;
        if got.is_empty() {
            break;
        }
        calls += 1;
        read += got.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        read,
        entries / chunk.len() * chunk.len(),
        "every entry read back"
    );
    Ok((calls, seconds))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let entries = setting("ENTRIES", 200_000);
    let entry_bytes = setting("ENTRY_BYTES", 128);
    let batch = setting("BATCH_ENTRIES", 16);
    let rounds = setting("ROUNDS", 5);
    println!(
        "rocksdb batch_read: {entries} entries of {entry_bytes} B, {batch} entries per call, {rounds} rounds"
    );
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for r in 0..rounds {
        // Alternate which variant goes first, so neither always runs on a
        // warmer page cache.
        let order = if r % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for reuse in order {
            let tmp = tempfile::tempdir().map_err(|e| walrus_store::Error::io("tempdir", e))?;
            let (calls, seconds) = round(tmp.path(), reuse, entries, entry_bytes, batch)?;
            let rate = calls as f64 / seconds;
            let name = if reuse { "reused" } else { "fresh " };
            println!(
                "round {r} {name} iterator: {rate:>10.0} batch_read/s  {:>10.0} entries/s",
                rate * (entries as f64 / calls as f64)
            );
            rates[usize::from(reuse)].push(rate);
        }
    }
    let (fresh, reused) = (median(rates[0].clone()), median(rates[1].clone()));
    println!(
        "median: fresh {fresh:.0} batch_read/s, reused {reused:.0} batch_read/s, ratio {:.2}",
        reused / fresh
    );
    Ok(())
}
