//! The workloads, written once against `&dyn LogStore`.
//!
//! Every timed phase runs N worker threads that call the store in a loop
//! until the duration elapses (or, for reads, until everything written has
//! been read). Each store call is timed on its own; payload generation and
//! verification happen outside that timer but inside the wall-clock window,
//! identically for every store.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use walrus_wal::{Entry, LogStore};

/// Longest a read case's populate may take before it stops short.
pub const POPULATE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

pub use crate::config::TopicMode;
use crate::error::BenchError;
use crate::format::round;
use crate::metrics::{process_cpu_time, LatencyRecorder, LatencySummary};
use crate::payload::{PayloadGen, TopicVerifier};
use crate::progress::Progress;

/// Bytes per `batch_read` when reading everything back for verification.
pub(crate) const VERIFY_READ_BYTES: usize = 4 << 20;
/// How often the coordinator wakes to check the clock and redraw progress.
const TICK: Duration = Duration::from_millis(200);

/// A write phase.
#[derive(Clone, Debug)]
pub struct WriteSpec {
    pub threads: usize,
    pub entry_size: usize,
    /// 1: `append`; more: `batch_append` of this many entries.
    pub batch_size: usize,
    pub topics: TopicMode,
    pub duration: Duration,
    /// Uncounted writes to separate topics before the timed phase.
    pub warmup: Duration,
    /// Open loop: store calls per second over all threads, each thread
    /// issuing its share on a fixed schedule from its first call. Latency is
    /// then measured from each call's intended start, not its actual one,
    /// so a stall also counts against every call it delayed (the
    /// coordinated-omission correction). `None`: closed loop.
    pub rate: Option<f64>,
    /// Stop each thread after this many entries (the phase then ends when
    /// every thread has, or at `duration`, whichever is first): a read
    /// case's populate writes the same amount to every store.
    pub count: Option<u64>,
}

/// How the read phase calls the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// `read_next(topic, true)`, one entry per call.
    Single,
    /// `batch_read(topic, max_bytes, true)`.
    Batch { max_bytes: usize },
}

impl fmt::Display for ReadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadMode::Single => "single",
            ReadMode::Batch { .. } => "batch",
        })
    }
}

/// A read phase: reader i consumes the topic writer i filled.
#[derive(Clone, Debug)]
pub struct ReadSpec {
    pub threads: usize,
    pub mode: ReadMode,
    pub duration: Duration,
}

/// What one timed phase measured.
#[derive(Clone, Debug, Default)]
pub struct PhaseStats {
    /// Entries appended or read (a batch counts its entries).
    pub entries: u64,
    /// Store calls made; latency is per call.
    pub calls: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub latency: LatencySummary,
    /// CPU time of the whole process over wall time, in percent of one core.
    pub cpu_usage_pct: f64,
}

impl PhaseStats {
    pub fn ops_per_sec(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Sets the phase's time, latency summary and CPU share once its workers
    /// are done: the phase ran from `start` until the last worker finished.
    pub(crate) fn close_phase(
        &mut self,
        start: Instant,
        last_finish: Instant,
        cpu_start: Duration,
        latencies: &LatencyRecorder,
    ) {
        let cpu = process_cpu_time().saturating_sub(cpu_start);
        self.elapsed = last_finish
            .duration_since(start)
            .max(Duration::from_micros(1));
        self.latency = latencies.summary();
        self.cpu_usage_pct = cpu.as_secs_f64() / self.elapsed.as_secs_f64() * 100.0;
    }

    /// MiB (2^20 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / (1u64 << 20) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Throughput and latency columns shared by every row type, rounded for
/// humans (the CSVs are read by people as much as by scripts).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rates {
    pub ops_per_sec: u64,
    pub mb_per_sec: f64,
    pub latency: LatencySummary,
    pub cpu_usage: f64,
    pub elapsed_s: f64,
}

impl Rates {
    pub fn of(stats: &PhaseStats) -> Rates {
        let l = stats.latency;
        Rates {
            ops_per_sec: stats.ops_per_sec().round() as u64,
            mb_per_sec: round(stats.mb_per_sec(), 1),
            latency: LatencySummary {
                avg_us: round(l.avg_us, 2),
                p50_us: round(l.p50_us, 2),
                p99_us: round(l.p99_us, 2),
                p999_us: round(l.p999_us, 2),
                max_us: round(l.max_us, 2),
            },
            cpu_usage: round(stats.cpu_usage_pct, 1),
            elapsed_s: round(stats.elapsed.as_secs_f64(), 3),
        }
    }
}

/// The outcome of a write phase.
#[derive(Clone, Debug)]
pub struct Written {
    pub stats: PhaseStats,
    /// Acknowledged entries per writer in the timed phase.
    pub acked: Vec<u64>,
    /// Payload bytes written including warm-up: the denominator of space
    /// amplification.
    pub logical_bytes: u64,
}

pub(crate) const BENCH_PREFIX: &str = "bench";
pub(crate) const WARMUP_PREFIX: &str = "warmup";

pub(crate) fn topic_name(prefix: &str, mode: TopicMode, writer: usize) -> String {
    match mode {
        TopicMode::PerThread => format!("{prefix}-t{writer}"),
        TopicMode::Shared => format!("{prefix}-shared"),
    }
}

/// Runs the warm-up (if any) and the timed write phase of `spec`.
pub fn write_phase(
    store: &dyn LogStore,
    spec: &WriteSpec,
    progress: &Progress,
) -> Result<Written, BenchError> {
    let mut logical_bytes = 0;
    if !spec.warmup.is_zero() {
        let warm = WriteSpec {
            duration: spec.warmup,
            ..spec.clone()
        };
        let (stats, _) = timed_writes(store, &warm, WARMUP_PREFIX, "warmup", progress)?;
        logical_bytes += stats.bytes;
    }
    let (stats, acked) = timed_writes(store, spec, BENCH_PREFIX, "write", progress)?;
    logical_bytes += stats.bytes;
    Ok(Written {
        stats,
        acked,
        logical_bytes,
    })
}

fn timed_writes(
    store: &dyn LogStore,
    spec: &WriteSpec,
    prefix: &str,
    label: &str,
    progress: &Progress,
) -> Result<(PhaseStats, Vec<u64>), BenchError> {
    let make_writer = |i: usize| {
        let gen = PayloadGen::new(i as u32, spec.entry_size);
        let topic = topic_name(prefix, spec.topics, i);
        let mut buf = vec![0u8; spec.entry_size * spec.batch_size];
        let mut seq = 0u64;
        let mut schedule = spec
            .rate
            .map(|rate| OpenLoop::new(rate / spec.threads as f64));
        move || -> Result<Option<Op>, BenchError> {
            if spec.count.is_some_and(|n| seq >= n) {
                return Ok(None);
            }
            for (k, slot) in buf.chunks_mut(spec.entry_size).enumerate() {
                gen.fill(seq + k as u64, slot);
            }
            let intended = schedule.as_mut().map(OpenLoop::wait_for_next);
            let started;
            let result = if spec.batch_size == 1 {
                started = Instant::now();
                store.append(&topic, &buf)
            } else {
                let parts: Vec<&[u8]> = buf.chunks(spec.entry_size).collect();
                started = Instant::now();
                store.batch_append(&topic, &parts)
            };
            let latency = intended.unwrap_or(started).elapsed();
            result.map_err(|e| BenchError::store(store, e))?;
            let n = spec.batch_size as u64;
            seq += n;
            Ok(Some(Op {
                entries: n,
                bytes: n * spec.entry_size as u64,
                latency,
            }))
        }
    };
    run_timed(spec.threads, spec.duration, label, progress, make_writer)
}

/// One writer's fixed schedule: call `k` is due at `first + k / rate`.
struct OpenLoop {
    interval: Duration,
    first: Option<Instant>,
    issued: u32,
}

impl OpenLoop {
    fn new(per_thread_rate: f64) -> OpenLoop {
        OpenLoop {
            interval: Duration::from_secs_f64(1.0 / per_thread_rate.max(1e-6)),
            first: None,
            issued: 0,
        }
    }

    /// Sleeps until the next call is due (not at all if it is overdue:
    /// a stalled store is then driven at once, as real clients would) and
    /// returns when it was due.
    fn wait_for_next(&mut self) -> Instant {
        let first = *self.first.get_or_insert_with(Instant::now);
        let due = first + self.interval * self.issued;
        self.issued = self.issued.saturating_add(1);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        due
    }
}

/// Reads back every entry of the timed write phase (untimed) and checks
/// count and content. Returns the number of entries verified.
pub fn verify_written(
    store: &dyn LogStore,
    spec: &WriteSpec,
    written: &Written,
) -> Result<u64, BenchError> {
    let gens: Vec<PayloadGen> = (0..spec.threads)
        .map(|i| PayloadGen::new(i as u32, spec.entry_size))
        .collect();
    let jobs: Vec<(String, Vec<PayloadGen>, Vec<u64>)> = match spec.topics {
        TopicMode::Shared => vec![(
            topic_name(BENCH_PREFIX, TopicMode::Shared, 0),
            gens,
            written.acked.clone(),
        )],
        TopicMode::PerThread => gens
            .into_iter()
            .enumerate()
            .map(|(i, g)| {
                (
                    topic_name(BENCH_PREFIX, TopicMode::PerThread, i),
                    vec![g],
                    vec![written.acked[i]],
                )
            })
            .collect(),
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(topic, gens, acked)| {
                s.spawn(move || drain_and_verify(store, &topic, gens, &acked))
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h
                .join()
                .map_err(|_| BenchError::Other("verification thread panicked".into()))??;
        }
        Ok(total)
    })
}

fn drain_and_verify(
    store: &dyn LogStore,
    topic: &str,
    gens: Vec<PayloadGen>,
    acked: &[u64],
) -> Result<u64, BenchError> {
    let expected: u64 = acked.iter().sum();
    let mut verifier = TopicVerifier::new(topic, gens);
    loop {
        let batch = store
            .batch_read(topic, VERIFY_READ_BYTES, true)
            .map_err(|e| BenchError::store(store, e))?;
        if batch.is_empty() {
            break;
        }
        for entry in &batch {
            verifier
                .check(entry)
                .map_err(|e| BenchError::verify(store, e))?;
        }
        if verifier.checked() > expected {
            break; // finish() reports the surplus
        }
    }
    verifier
        .finish(acked)
        .map_err(|e| BenchError::verify(store, e))?;
    Ok(verifier.checked())
}

/// The timed read phase: reader i consumes `bench-t{i}`, checking every
/// entry, until the duration ends or it has read all `acked[i]` entries.
/// A topic that ends early (an acknowledged entry is missing) is an error.
pub fn read_phase(
    store: &dyn LogStore,
    spec: &ReadSpec,
    entry_size: usize,
    acked: &[u64],
    progress: &Progress,
) -> Result<PhaseStats, BenchError> {
    assert_eq!(spec.threads, acked.len(), "one reader per written topic");
    let make_reader = |i: usize| {
        let topic = topic_name(BENCH_PREFIX, TopicMode::PerThread, i);
        let mut verifier =
            TopicVerifier::new(topic.clone(), vec![PayloadGen::new(i as u32, entry_size)]);
        let want = acked[i];
        move || -> Result<Option<Op>, BenchError> {
            if verifier.checked() >= want {
                return Ok(None);
            }
            let started = Instant::now();
            let entries: Vec<Entry> = match spec.mode {
                ReadMode::Single => store
                    .read_next(&topic, true)
                    .map(|e| e.into_iter().collect()),
                ReadMode::Batch { max_bytes } => store.batch_read(&topic, max_bytes, true),
            }
            .map_err(|e| BenchError::store(store, e))?;
            let latency = started.elapsed();
            if entries.is_empty() {
                verifier
                    .finish(&[want])
                    .map_err(|e| BenchError::verify(store, e))?;
            }
            let mut bytes = 0;
            for entry in &entries {
                verifier
                    .check(entry)
                    .map_err(|e| BenchError::verify(store, e))?;
                bytes += entry.data.len() as u64;
            }
            if verifier.checked() > want {
                verifier
                    .finish(&[want])
                    .map_err(|e| BenchError::verify(store, e))?;
            }
            Ok(Some(Op {
                entries: entries.len() as u64,
                bytes,
                latency,
            }))
        }
    };
    let (stats, _) = run_timed(spec.threads, spec.duration, "read", progress, make_reader)?;
    Ok(stats)
}

/// One store call as a worker saw it.
struct Op {
    entries: u64,
    bytes: u64,
    latency: Duration,
}

/// A counter on its own cache line, so workers publishing progress never
/// contend with each other.
#[repr(align(128))]
#[derive(Default)]
struct PaddedCounter(AtomicU64);

struct WorkerTotals {
    recorder: LatencyRecorder,
    entries: u64,
    calls: u64,
    bytes: u64,
    finished: Instant,
}

/// Runs `threads` workers built by `make` until `duration` elapses, a worker
/// runs dry (`Ok(None)`) or fails. Returns the phase's stats and the entries
/// each worker completed.
fn run_timed<F, W>(
    threads: usize,
    duration: Duration,
    label: &str,
    progress: &Progress,
    make: F,
) -> Result<(PhaseStats, Vec<u64>), BenchError>
where
    F: Fn(usize) -> W + Sync,
    W: FnMut() -> Result<Option<Op>, BenchError>,
{
    let stop = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    let counters: Vec<PaddedCounter> = (0..threads).map(|_| PaddedCounter::default()).collect();
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (make, stop, done, counter, barrier) =
                    (&make, &stop, &done, &counters[i], &barrier);
                s.spawn(move || {
                    let mut work = make(i);
                    let mut totals = WorkerTotals {
                        recorder: LatencyRecorder::default(),
                        entries: 0,
                        calls: 0,
                        bytes: 0,
                        finished: Instant::now(),
                    };
                    barrier.wait();
                    let result = loop {
                        if stop.load(Ordering::Relaxed) {
                            break Ok(());
                        }
                        match work() {
                            Ok(Some(op)) => {
                                totals.recorder.record(op.latency);
                                totals.entries += op.entries;
                                totals.bytes += op.bytes;
                                totals.calls += 1;
                                counter.0.store(totals.entries, Ordering::Relaxed);
                            }
                            Ok(None) => break Ok(()),
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                break Err(e);
                            }
                        }
                    };
                    totals.finished = Instant::now();
                    done.fetch_add(1, Ordering::Relaxed);
                    result.map(|()| totals)
                })
            })
            .collect();

        barrier.wait();
        let start = Instant::now();
        let cpu_start = process_cpu_time();
        let deadline = start + duration;
        loop {
            let now = Instant::now();
            if now >= deadline
                || stop.load(Ordering::Relaxed)
                || done.load(Ordering::Relaxed) == threads
            {
                break;
            }
            std::thread::sleep((deadline - now).min(TICK));
            let ops = counters.iter().map(|c| c.0.load(Ordering::Relaxed)).sum();
            progress.tick(label, start.elapsed(), duration, ops);
        }
        stop.store(true, Ordering::Relaxed);

        let mut merged = LatencyRecorder::default();
        let mut stats = PhaseStats::default();
        let mut per_worker = Vec::with_capacity(threads);
        let mut first_error = None;
        let mut last_finish = start;
        for h in handles {
            match h.join() {
                Ok(Ok(t)) => {
                    merged.merge(&t.recorder);
                    stats.entries += t.entries;
                    stats.calls += t.calls;
                    stats.bytes += t.bytes;
                    per_worker.push(t.entries);
                    last_finish = last_finish.max(t.finished);
                }
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error
                        .get_or_insert(BenchError::Other(format!("{label} worker panicked")));
                }
            }
        }
        progress.clear();
        if let Some(e) = first_error {
            return Err(e);
        }
        stats.close_phase(start, last_finish, cpu_start, &merged);
        Ok((stats, per_worker))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_round_for_humans() {
        let stats = PhaseStats {
            entries: 10,
            calls: 10,
            bytes: 10_240,
            elapsed: Duration::from_secs(1),
            ..PhaseStats::default()
        };
        let r = Rates::of(&stats);
        assert_eq!(r.ops_per_sec, 10);
        assert_eq!(r.mb_per_sec, 0.0);
        assert_eq!(r.elapsed_s, 1.0);
    }
}
