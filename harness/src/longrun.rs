//! The long run (`make bench-longrun`): `LONGRUN_BYTES` of payload written
//! to each store while consumers read and consume it as it arrives, so the
//! costs a two-second cell never reaches show: RocksDB's flushes and
//! compactions (and its deletion of consumed ranges), sled's GC, Walrus's
//! segment reclamation, raw's file reclamation.
//!
//! `threads` producers each append their share to their own topic; beside
//! each a consumer reads that topic with `batch_read(.., consume = true)`,
//! checking every entry as it comes. Progress is cut into [`SLICES`] equal
//! shares of the bytes: for each, the write and read rates over it, the
//! backlog (written, not yet consumed) and the bytes on disk when it ended.
//! After the last write the consumers drain what is left; then every
//! topic's consumed count must equal its acknowledged count.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use walrus_wal::LogStore;

use crate::error::BenchError;
use crate::metrics::disk_usage_bytes;
use crate::payload::{PayloadGen, TopicVerifier};
use crate::progress::Progress;

/// Slices the bytes are cut into for the throughput-over-time rows.
pub const SLICES: usize = 10;
/// Bytes per consuming `batch_read`.
const READ_BYTES: usize = 256 << 10;
/// How often the coordinator looks at the counters.
const TICK: Duration = Duration::from_millis(50);
/// How often it measures the directory for the peak.
const DISK_EVERY: Duration = Duration::from_secs(1);

/// A long run's shape.
#[derive(Clone, Debug)]
pub struct LongRunSpec {
    pub threads: usize,
    pub entry_size: usize,
    /// Payload bytes to write over all producers.
    pub total_bytes: u64,
}

/// One slice of the run (or the drain after the writes, or the total).
#[derive(Clone, Debug, Default)]
pub struct Slice {
    /// `10%` ... `100%`: the share of the bytes written when it ended (a
    /// slice that crossed several tenths between two looks is one row, named
    /// after the last); `drain`; or `total`.
    pub label: String,
    /// Payload bytes written and consumed when it ended.
    pub written_bytes: u64,
    pub consumed_bytes: u64,
    /// Seconds since the start when it ended, and its own length.
    pub at_s: f64,
    pub length_s: f64,
    /// MiB/s written and consumed over the slice.
    pub write_mb_per_sec: f64,
    pub read_mb_per_sec: f64,
    /// Allocated bytes in the data directory when it ended.
    pub disk_bytes: u64,
}

/// What a long run measured.
#[derive(Clone, Debug, Default)]
pub struct LongRunOutcome {
    /// Up to [`SLICES`] slices of the writes, then the drain.
    pub slices: Vec<Slice>,
    /// The whole run, from the first write to the last entry consumed.
    pub total: Slice,
    pub peak_disk_bytes: u64,
    /// Entries acknowledged and entries consumed (and verified).
    pub entries_written: u64,
    pub entries_consumed: u64,
}

struct Counters {
    written: AtomicU64,
    consumed: AtomicU64,
}

/// Runs the long run against `store`, whose data lives in `dir`.
pub fn long_run(
    store: &dyn LogStore,
    dir: &Path,
    spec: &LongRunSpec,
    progress: &Progress,
) -> Result<LongRunOutcome, BenchError> {
    let per_thread = (spec.total_bytes / spec.entry_size as u64)
        .div_ceil(spec.threads as u64)
        .max(1);
    let total = per_thread * spec.threads as u64 * spec.entry_size as u64;
    let counters = Counters {
        written: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
    };
    let writers_done: Vec<AtomicBool> = (0..spec.threads).map(|_| AtomicBool::new(false)).collect();
    let failed = AtomicBool::new(false);
    let measure = |dir: &Path| {
        disk_usage_bytes(dir).map_err(|e| BenchError::io(format!("measuring {}", dir.display()), e))
    };
    std::thread::scope(|s| {
        let producers: Vec<_> = (0..spec.threads)
            .map(|i| {
                let (counters, done, failed) = (&counters, &writers_done[i], &failed);
                s.spawn(move || {
                    let r = produce(store, i, per_thread, spec.entry_size, counters, failed);
                    done.store(true, Ordering::Release);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        let consumers: Vec<_> = (0..spec.threads)
            .map(|i| {
                let (counters, done, failed) = (&counters, &writers_done[i], &failed);
                s.spawn(move || {
                    let r = consume(
                        store,
                        i,
                        spec.entry_size,
                        per_thread,
                        counters,
                        done,
                        failed,
                    );
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();

        let start = Instant::now();
        let mut out = LongRunOutcome::default();
        let mut last = Slice::default();
        let mut last_disk_at = start;
        // Tenths of the bytes written that slices have been cut for.
        let mut tenths = 0;
        let mut monitor = || -> Result<(), BenchError> {
            loop {
                std::thread::sleep(TICK);
                let written = counters.written.load(Ordering::Relaxed);
                let consumed = counters.consumed.load(Ordering::Relaxed);
                let writing = tenths < SLICES;
                let reached = if written >= total {
                    SLICES
                } else {
                    (written * SLICES as u64 / total) as usize
                };
                let drained = consumed >= total || failed.load(Ordering::Relaxed);
                let slice_ends = if writing { reached > tenths } else { drained };
                if slice_ends || last_disk_at.elapsed() >= DISK_EVERY {
                    let disk = measure(dir)?;
                    out.peak_disk_bytes = out.peak_disk_bytes.max(disk);
                    last_disk_at = Instant::now();
                    if slice_ends {
                        let mut slice = slice_from(&last, written, consumed, start.elapsed(), disk);
                        slice.label = if writing {
                            tenths = reached;
                            format!("{}%", reached * 100 / SLICES)
                        } else {
                            "drain".into()
                        };
                        progress.line(format!(
                            "  {:>5}: {:.0} MiB written ({:.1} MiB/s), {:.0} MiB consumed \
                             ({:.1} MiB/s), {:.0} MiB on disk",
                            slice.label,
                            mib(slice.written_bytes),
                            slice.write_mb_per_sec,
                            mib(slice.consumed_bytes),
                            slice.read_mb_per_sec,
                            mib(disk)
                        ));
                        out.slices.push(slice.clone());
                        last = slice;
                        if !writing {
                            return Ok(());
                        }
                    }
                }
                if failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
        };
        let monitored = monitor();
        if monitored.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        let mut first_error = monitored.err();
        let mut written_entries = 0;
        let mut consumed_entries = 0;
        for h in producers {
            match h.join() {
                Ok(Ok(n)) => written_entries += n,
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(BenchError::Other("a producer panicked".into()));
                }
            }
        }
        for h in consumers {
            match h.join() {
                Ok(Ok(n)) => consumed_entries += n,
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(BenchError::Other("a consumer panicked".into()));
                }
            }
        }
        progress.clear();
        if let Some(e) = first_error {
            return Err(e);
        }
        let elapsed = start.elapsed();
        store.sync().map_err(|e| BenchError::store(store, e))?;
        let disk = measure(dir)?;
        out.peak_disk_bytes = out.peak_disk_bytes.max(disk);
        let written = counters.written.load(Ordering::Relaxed);
        let consumed = counters.consumed.load(Ordering::Relaxed);
        out.total = slice_from(&Slice::default(), written, consumed, elapsed, disk);
        out.total.label = "total".into();
        out.entries_written = written_entries;
        out.entries_consumed = consumed_entries;
        Ok(out)
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// The slice from `last` to now.
fn slice_from(last: &Slice, written: u64, consumed: u64, at: Duration, disk: u64) -> Slice {
    let at_s = at.as_secs_f64();
    let length_s = (at_s - last.at_s).max(1e-9);
    let rate =
        |now: u64, before: u64| crate::format::round(mib(now.saturating_sub(before)) / length_s, 1);
    Slice {
        label: String::new(),
        written_bytes: written,
        consumed_bytes: consumed,
        at_s: crate::format::round(at_s, 3),
        length_s: crate::format::round(length_s, 3),
        write_mb_per_sec: rate(written, last.written_bytes),
        read_mb_per_sec: rate(consumed, last.consumed_bytes),
        disk_bytes: disk,
    }
}

fn topic(i: usize) -> String {
    format!("longrun-t{i}")
}

/// Producer `i`: appends `count` entries to its topic. Returns the count
/// acknowledged.
fn produce(
    store: &dyn LogStore,
    i: usize,
    count: u64,
    entry_size: usize,
    counters: &Counters,
    failed: &AtomicBool,
) -> Result<u64, BenchError> {
    let gen = PayloadGen::new(i as u32, entry_size);
    let topic = topic(i);
    let mut buf = vec![0u8; entry_size];
    for seq in 0..count {
        if failed.load(Ordering::Relaxed) {
            return Ok(seq);
        }
        gen.fill(seq, &mut buf);
        store
            .append(&topic, &buf)
            .map_err(|e| BenchError::store(store, e))?;
        counters
            .written
            .fetch_add(entry_size as u64, Ordering::Relaxed);
    }
    Ok(count)
}

/// Consumer `i`: reads and consumes producer `i`'s topic as it fills,
/// checking every entry, until the producer is done and all `expected`
/// entries are read. Returns the count consumed.
fn consume(
    store: &dyn LogStore,
    i: usize,
    entry_size: usize,
    expected: u64,
    counters: &Counters,
    writer_done: &AtomicBool,
    failed: &AtomicBool,
) -> Result<u64, BenchError> {
    let topic = topic(i);
    let mut verifier =
        TopicVerifier::new(topic.clone(), vec![PayloadGen::new(i as u32, entry_size)]);
    loop {
        if failed.load(Ordering::Relaxed) {
            return Ok(verifier.checked());
        }
        // Read the flag first: entries appended before it was set are then
        // visible to this read.
        let done = writer_done.load(Ordering::Acquire);
        let batch = store
            .batch_read(&topic, READ_BYTES, true)
            .map_err(|e| BenchError::store(store, e))?;
        if batch.is_empty() {
            if done {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let mut bytes = 0;
        for entry in &batch {
            verifier
                .check(entry)
                .map_err(|e| BenchError::verify(store, e))?;
            bytes += entry.data.len() as u64;
        }
        counters.consumed.fetch_add(bytes, Ordering::Relaxed);
        if verifier.checked() > expected {
            break; // finish() reports the surplus
        }
    }
    verifier
        .finish(&[expected])
        .map_err(|e| BenchError::verify(store, e))?;
    Ok(verifier.checked())
}
