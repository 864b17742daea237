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
//! Every line it prints is `phase backend seconds peak_rss_mib`.
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

fn peak_rss_mib() -> f64 {
    // SAFETY: getrusage writes only into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
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
    let started = Instant::now();
    match phase.as_str() {
        "write" | "crash" => {
            let wal = open(backend, dir);
            let big = pattern(BIG_ENTRY, 1);
            wal.append_for_topic("big", &big).expect("1 GiB entry");
            drop(big);
            let batch: Vec<&[u8]> = (0..BATCH)
                .map(|i| &window[i * STRIDE..i * STRIDE + BATCH_ENTRY])
                .collect();
            wal.batch_append_for_topic("batch", &batch)
                .expect("2 GB batch");
            wal.append_for_topic("batch", b"after").expect("after");
            wal.sync().expect("sync");
            if phase == "crash" {
                // Skip the close: no cursor flush, no checkpoint, as a kill.
                std::process::exit(report(phase, backend, started));
            }
        }
        "read" => {
            let wal = open(backend, dir);
            let dropped = &wal.recovery_report().dropped;
            assert!(dropped.is_empty(), "recovery dropped {dropped:?}");
            let big = wal
                .read_next("big", true)
                .expect("read")
                .expect("the 1 GiB entry");
            assert!(big.data == pattern(BIG_ENTRY, 1), "the 1 GiB entry differs");
            drop(big);
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
        }
        other => panic!("unknown phase {other}"),
    }
    std::process::exit(report(phase, backend, started));
}

fn report(phase: &str, backend: Backend, started: Instant) -> i32 {
    println!(
        "{phase} {backend} {:.1}s {:.0}",
        started.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    0
}
