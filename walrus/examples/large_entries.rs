//! Full-size large appends (`make large-entries`): a 1 GiB entry and an
//! atomic batch of 2,000 × 1 MiB entries (2 GB, the benchmarking guide's
//! `ENTRY_SIZE=1048576 BATCH=2000`) on 64 MiB segments, then read back and
//! verified byte for byte after a reopen. Each phase runs in a process of
//! its own so its peak RSS is its own:
//!
//! ```text
//! large_entries <fd|mmap> <dir> write   # append both, then close
//! large_entries <fd|mmap> <dir> crash   # append both, then crash (no close)
//! large_entries <fd|mmap> <dir> read    # reopen, read everything, verify
//! ```
//!
//! Every line it prints is `step backend seconds peak_rss_mib file_rss_mib`:
//! the peak RSS of that step alone (VmHWM, reset before each step) and the
//! file-backed part of the RSS at its end (mapped segment pages on mmap).
//!
//! The batch's entries are overlapping windows of one 2 MiB buffer, so that
//! every entry differs (a reordering shows) while the caller holds 2 MiB,
//! not 2 GB: the peak RSS is then the engine's own, plus the 1 GiB entry
//! the caller appends or gets back.

use std::time::Instant;
use walrus_wal::{Backend, FsyncSchedule, ReadConsistency, Walrus};

const BIG_ENTRY: usize = 1 << 30;
const BATCH: usize = 2000;
const BATCH_ENTRY: usize = 1 << 20;
/// Entry i of the batch starts this far into the shared buffer.
const STRIDE: usize = 512;
/// The read budget of each batch read.
const READ_BUDGET: usize = 16 << 20;

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A field of /proc/self/status, in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .map_or(f64::NAN, |kib: f64| kib / 1024.0)
}

/// Resets the peak RSS (VmHWM) so the next step's peak is its own.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Whether `data` is `pattern(len, seed)`, generated piece by piece (the
/// check holds no second copy).
fn matches_pattern(data: &[u8], seed: u64) -> bool {
    let mut x = seed | 1;
    data.iter().all(|&b| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b == x as u8
    })
}

fn open(backend: Backend, dir: &str) -> Walrus {
    Walrus::builder()
        .data_dir(dir)
        .backend(backend)
        .quiet(true)
        .consistency(ReadConsistency::StrictlyAtOnce)
        .fsync(FsyncSchedule::Milliseconds(200))
        .open()
        .expect("open")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, backend, dir, phase] = args.as_slice() else {
        eprintln!("usage: large_entries <fd|mmap> <dir> <write|crash|read>");
        std::process::exit(2);
    };
    let backend: Backend = backend.parse().expect("backend");
    let window = pattern(BATCH_ENTRY + BATCH * STRIDE, 2);
    let mut started = Instant::now();
    let mut step = |name: &str| {
        println!(
            "{name} {backend} {:.1}s {:.0} {:.0}",
            started.elapsed().as_secs_f64(),
            status_mib("VmHWM:"),
            status_mib("RssFile:")
        );
        reset_peak();
        started = Instant::now();
    };
    reset_peak();
    match phase.as_str() {
        "write" | "crash" => {
            let wal = open(backend, dir);
            let big = pattern(BIG_ENTRY, 1);
            wal.append_for_topic("big", &big).expect("1 GiB entry");
            drop(big);
            step(&format!("{phase}:append-1GiB-entry"));
            let batch: Vec<&[u8]> = (0..BATCH)
                .map(|i| &window[i * STRIDE..i * STRIDE + BATCH_ENTRY])
                .collect();
            wal.batch_append_for_topic("batch", &batch)
                .expect("2 GB batch");
            wal.append_for_topic("batch", b"after").expect("after");
            wal.sync().expect("sync");
            step(&format!("{phase}:append-2GB-batch"));
            if phase == "crash" {
                // Skip the close: no cursor flush, no checkpoint, as a kill.
                std::process::exit(0);
            }
            drop(wal);
            step("write:close");
        }
        "read" => {
            let wal = open(backend, dir);
            let dropped = &wal.recovery_report().dropped;
            assert!(dropped.is_empty(), "recovery dropped {dropped:?}");
            step("read:open");
            let big = wal
                .read_next("big", true)
                .expect("read")
                .expect("the 1 GiB entry");
            assert!(
                big.data.len() == BIG_ENTRY && matches_pattern(&big.data, 1),
                "the 1 GiB entry differs"
            );
            drop(big);
            step("read:1GiB-entry");
            let mut n = 0;
            loop {
                let entries = wal
                    .batch_read_for_topic("batch", READ_BUDGET, true)
                    .expect("batch read");
                if entries.is_empty() {
                    break;
                }
                for e in entries {
                    let want: &[u8] = if n < BATCH {
                        &window[n * STRIDE..n * STRIDE + BATCH_ENTRY]
                    } else {
                        b"after"
                    };
                    assert!(e.data == want, "batch entry {n} differs");
                    n += 1;
                }
            }
            assert_eq!(n, BATCH + 1, "entries read back");
            step("read:2GB-batch-16MiB-reads");
        }
        other => panic!("unknown phase {other}"),
    }
}
