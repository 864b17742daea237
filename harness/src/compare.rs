//! `make compare`: the same workload matrix against every store.
//!
//! Stores alternate within each round (and the order rotates between
//! rounds), so a slow drift of the machine — page cache filling, thermal
//! throttling, a neighbour's I/O — spreads over all stores instead of
//! landing on whichever ran last. Each reported figure is the median over
//! the rounds. Before any store runs, the disk is probed so the numbers can
//! be read against what the hardware itself does.

use std::fmt::Write as _;
use std::time::Duration;

use walrus_wal::{FsyncSchedule, ReadConsistency, StoreConfig};

use crate::config::{Command, Settings};
use crate::error::BenchError;
use crate::format::{self, group_digits, round, secs};
use crate::host::{hardware_line, probe_disk};
use crate::rounds::{
    first_failure, median_round, run_env, run_rounds, CommandOutput, OpenKind, RoundCase,
};
use crate::runner::{CellOutcome, Workload};
use crate::stores::{backend_label, StoreKind};
use crate::workload::POPULATE_DEADLINE;
use crate::workload::{PhaseStats, Rates, ReadMode, ReadSpec, TopicMode, WriteSpec};

/// One workload of the matrix, run against every store.
struct Case {
    name: String,
    fsync: FsyncSchedule,
    consistency: ReadConsistency,
    threads: usize,
    batch_size: usize,
    workload: Workload,
}

impl Case {
    /// The stats that count: the read phase of a read case, else the writes.
    fn measured<'a>(&self, o: &'a CellOutcome) -> &'a PhaseStats {
        o.read.as_ref().unwrap_or(&o.write)
    }
}

/// The matrix: writes for every fsync mode and thread count, one batch
/// case (sync-each if listed: amortising fsyncs is what batching is for),
/// and one read case (first interval schedule, most threads).
fn cases(settings: &Settings) -> Vec<Case> {
    // WALRUS_DURATION is the measured time of every cell; warm-up comes on
    // top of it (WALRUS_WARMUP), unmeasured.
    let per_round = settings.duration;
    let warmup = settings.warmup;
    let max_threads = *settings
        .threads
        .iter()
        .max()
        .expect("at least one thread count");
    let consistency = settings.consistency[0];
    let spec = |threads, batch_size| WriteSpec {
        threads,
        entry_size: settings.entry_size,
        batch_size,
        topics: settings.topics,
        duration: per_round,
        warmup,
        rate: settings.rate,
        count: None,
    };
    let mut out = Vec::new();
    for &fsync in &settings.fsync {
        for &threads in &settings.threads {
            out.push(Case {
                name: format!("write, {threads} thread(s), {fsync}"),
                fsync,
                consistency,
                threads,
                batch_size: 1,
                workload: Workload::Write(spec(threads, 1)),
            });
            if settings.async_writes {
                out.push(Case {
                    name: format!("write (async), {threads} task(s), {fsync}"),
                    fsync,
                    consistency,
                    threads,
                    batch_size: 1,
                    workload: Workload::AsyncWrite(spec(threads, 1)),
                });
            }
        }
    }
    let pick = |want: fn(&FsyncSchedule) -> bool| {
        settings
            .fsync
            .iter()
            .copied()
            .find(want)
            .unwrap_or(settings.fsync[0])
    };
    let batch_fsync = pick(|f| *f == FsyncSchedule::SyncEach);
    let batch = settings.batch_sizes[0];
    out.push(Case {
        name: format!("batch of {batch}, {max_threads} thread(s), {batch_fsync}"),
        fsync: batch_fsync,
        consistency,
        threads: max_threads,
        batch_size: batch,
        workload: Workload::Write(spec(max_threads, batch)),
    });
    // The read case splits its time between populating and reading, so it
    // costs one cell like every other case.
    let read_fsync = pick(|f| matches!(f, FsyncSchedule::Milliseconds(_)));
    out.push(Case {
        name: format!(
            "read (read_next{}), {max_threads} thread(s), {read_fsync}, {consistency}",
            if settings.cold_reads { ", cold" } else { "" }
        ),
        fsync: read_fsync,
        consistency,
        threads: max_threads,
        batch_size: 1,
        workload: Workload::Read {
            // The same number of entries in every store (a time-based
            // populate would leave a slow writer a small, memtable-resident
            // set to read); the deadline only guards against a stuck store.
            write: WriteSpec {
                topics: TopicMode::PerThread,
                duration: POPULATE_DEADLINE,
                count: Some(settings.read_entries.div_ceil(max_threads as u64)),
                ..spec(max_threads, 1)
            },
            read: ReadSpec {
                threads: max_threads,
                mode: ReadMode::Single,
                duration: per_round / 2,
            },
            cold: settings.cold_reads,
        },
    });
    out
}

/// What a store promises in a mode, as the durability table in
/// `docs/guarantees.md` states it. Shown next to each figure because a
/// number without its guarantee compares nothing.
pub fn guarantee(kind: StoreKind, fsync: FsyncSchedule) -> String {
    kind.guarantee(fsync)
}

fn cursor_guarantee(consistency: ReadConsistency) -> String {
    match consistency {
        ReadConsistency::StrictlyAtOnce => "cursor durable per read".into(),
        ReadConsistency::AtLeastOnce { persist_every } => {
            format!("≤{persist_every} re-reads after crash")
        }
    }
}

/// One row of `compare_*.csv`: every round, then the medians (`round` =
/// `median`), one per case and store.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CompareRow {
    pub round: String,
    pub workload: String,
    pub store: String,
    pub backend: String,
    pub threads: usize,
    pub fsync_mode: String,
    pub consistency: String,
    pub entry_size: usize,
    pub batch_size: usize,
    pub ops_per_sec: u64,
    pub mb_per_sec: f64,
    pub avg_latency_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub cpu_usage: f64,
    pub disk_bytes: u64,
    pub space_amp: f64,
    pub guarantee: String,
    /// `ok`, or why the cell failed.
    pub status: String,
    /// On a `median` row: which round (1-based) every figure of it is from.
    pub median_of_round: String,
    /// On a `median` row: the lowest and highest ops/s over the rounds.
    pub ops_min: u64,
    pub ops_max: u64,
}

/// Runs the comparison and writes `compare_<ts>.csv` and `compare_<ts>.md`.
pub fn run(settings: &Settings, open: &OpenKind<'_>) -> Result<CommandOutput, BenchError> {
    assert_eq!(settings.command, Command::Compare);
    let env = run_env(settings);
    let cases = cases(settings);
    let stores = &settings.stores;

    env.progress.line("probing the disk...");
    let disk = probe_disk(&settings.data_dir)?;
    // Only now: the probe creates the data directory whose disk this names.
    let hardware = hardware_line(&settings.data_dir);
    env.progress.line(format!("host: {hardware}"));
    let probe = disk.describe();
    env.progress.line(format!("disk: {probe}"));

    let mut out = CommandOutput::default();
    let round_cases: Vec<RoundCase<'_>> = cases
        .iter()
        .map(|case| RoundCase {
            what: case.name.clone(),
            config: StoreConfig {
                consistency: case.consistency,
                fsync: case.fsync,
            },
            workload: &case.workload,
        })
        .collect();
    // results[case][store] = one entry per round
    let results = run_rounds(settings, open, &round_cases, &env, &mut out.failures);

    let mut rows = Vec::new();
    let mut md = String::new();
    let _ = writeln!(md, "# Store comparison ({})\n", format::timestamp());
    let _ = writeln!(md, "- Host: {hardware}");
    let _ = writeln!(md, "- Disk probe: {probe}");
    let _ = writeln!(
        md,
        "- Settings: {} B entries, {} measured per cell after {} of warm-up, {} rounds \
         alternating the stores; each row is the whole median round (by ops/s) with the \
         min-max over the rounds; topics {}",
        settings.entry_size,
        secs(settings.duration),
        secs(settings.warmup),
        settings.rounds,
        settings.topics,
    );
    if let Some(rate) = settings.rate {
        let _ = writeln!(
            md,
            "- Open loop: {rate} store calls/s per cell on a fixed schedule; latencies count \
             from each call's intended start (coordinated omission corrected)"
        );
    }
    let _ = writeln!(
        md,
        "- Every cell ran in a fresh directory and read back and verified what it wrote; \
         latencies are per store call (a batch is one call). Guarantees: docs/guarantees.md.\n"
    );
    for (ci, case) in cases.iter().enumerate() {
        let medians: Vec<Option<Median>> = results[ci]
            .iter()
            .map(|rounds| Median::of(case, rounds))
            .collect();
        for (si, rounds) in results[ci].iter().enumerate() {
            for (r, res) in rounds.iter().enumerate() {
                rows.push(csv_row(
                    settings,
                    case,
                    stores[si],
                    &(r + 1).to_string(),
                    res,
                ));
            }
            if let Some(m) = &medians[si] {
                rows.push(m.csv_row(settings, case, stores[si]));
            }
        }
        md += &case_table(case, stores, &results[ci], &medians);
    }
    md += &replication_table(&cases, stores, &results);
    out.set_rows(&rows)?;
    out.text = md.clone();
    out.markdown = Some(md);
    out.host = Some(hardware);
    out.disk = Some(disk);
    Ok(out)
}

/// The median round of one case and store, whole ([`median_round`]): every
/// figure of the row (throughput, each latency percentile, CPU, disk) comes
/// from the one round whose throughput is the median. `None` if any round
/// failed.
struct Median {
    /// Which round (0-based) the row is.
    round: usize,
    stats: Rates,
    disk_bytes: u64,
    space_amp: f64,
    min_ops: u64,
    max_ops: u64,
}

impl Median {
    fn of(case: &Case, rounds: &[Result<CellOutcome, String>]) -> Option<Median> {
        let m = median_round(rounds, |o| case.measured(o))?;
        let o = rounds[m.round].as_ref().ok()?;
        Some(Median {
            round: m.round,
            stats: Rates::of(case.measured(o)),
            disk_bytes: o.disk_bytes,
            space_amp: round(o.space_amp, 3),
            min_ops: m.min_ops,
            max_ops: m.max_ops,
        })
    }

    fn csv_row(&self, settings: &Settings, case: &Case, kind: StoreKind) -> CompareRow {
        let mut row = base_row(settings, case, kind, "median");
        fill_row(&mut row, &self.stats, self.disk_bytes, self.space_amp);
        row.median_of_round = (self.round + 1).to_string();
        row.ops_min = self.min_ops;
        row.ops_max = self.max_ops;
        row
    }
}

fn base_row(settings: &Settings, case: &Case, kind: StoreKind, round: &str) -> CompareRow {
    CompareRow {
        round: round.into(),
        workload: case.name.clone(),
        store: kind.to_string(),
        backend: backend_label(kind),
        threads: case.threads,
        fsync_mode: case.fsync.to_string(),
        consistency: case.consistency.to_string(),
        entry_size: settings.entry_size,
        batch_size: case.batch_size,
        ops_per_sec: 0,
        mb_per_sec: 0.0,
        avg_latency_us: 0.0,
        p50_us: 0.0,
        p99_us: 0.0,
        p999_us: 0.0,
        max_us: 0.0,
        cpu_usage: 0.0,
        disk_bytes: 0,
        space_amp: 0.0,
        guarantee: guarantee(kind, case.fsync),
        status: "ok".into(),
        median_of_round: String::new(),
        ops_min: 0,
        ops_max: 0,
    }
}

fn fill_row(row: &mut CompareRow, r: &Rates, disk_bytes: u64, space_amp: f64) {
    row.ops_per_sec = r.ops_per_sec;
    row.mb_per_sec = r.mb_per_sec;
    row.avg_latency_us = round(r.latency.avg_us, 2);
    row.p50_us = round(r.latency.p50_us, 2);
    row.p99_us = round(r.latency.p99_us, 2);
    row.p999_us = round(r.latency.p999_us, 2);
    row.max_us = round(r.latency.max_us, 2);
    row.cpu_usage = r.cpu_usage;
    row.disk_bytes = disk_bytes;
    row.space_amp = space_amp;
}

fn csv_row(
    settings: &Settings,
    case: &Case,
    kind: StoreKind,
    round: &str,
    res: &Result<CellOutcome, String>,
) -> CompareRow {
    let mut row = base_row(settings, case, kind, round);
    match res {
        Ok(o) => fill_row(
            &mut row,
            &Rates::of(case.measured(o)),
            o.disk_bytes,
            format::round(o.space_amp, 3),
        ),
        Err(e) => row.status = format!("failed: {e}"),
    }
    row
}

/// What replication costs: for each fsync mode, the single-append write case
/// at the most threads, JetStream with three replicas against one, and one
/// replica against Walrus (fd). Shown only when both JetStream stores ran.
fn replication_table(
    cases: &[Case],
    stores: &[StoreKind],
    results: &[Vec<Vec<Result<CellOutcome, String>>>],
) -> String {
    let find = |name: &str| stores.iter().position(|s| s.to_string() == name);
    let (Some(r1), Some(r3)) = (find("jetstream-r1"), find("jetstream-r3")) else {
        return String::new();
    };
    let fd = find("walrus-fd");
    let max_threads = cases.iter().map(|c| c.threads).max().unwrap_or(1);
    let mut rows = Vec::new();
    for (ci, case) in cases.iter().enumerate() {
        let is_write = matches!(case.workload, Workload::Write(_) | Workload::AsyncWrite(_));
        if !is_write || case.batch_size != 1 || case.threads != max_threads {
            continue;
        }
        let m = |i: Option<usize>| i.and_then(|i| Median::of(case, &results[ci][i]));
        let (w, one, three) = (m(fd), m(Some(r1)), m(Some(r3)));
        let ops = |x: &Option<Median>| {
            x.as_ref()
                .map_or("-".to_string(), |m| group_digits(m.stats.ops_per_sec))
        };
        let p99 = |x: &Option<Median>| {
            x.as_ref().map_or("-".to_string(), |m| {
                format!("{:.1}", m.stats.latency.p99_us)
            })
        };
        let ratio = |a: &Option<Median>, b: &Option<Median>| match (a, b) {
            (Some(a), Some(b)) if b.stats.ops_per_sec > 0 => format!(
                "{:.2}x",
                a.stats.ops_per_sec as f64 / b.stats.ops_per_sec as f64
            ),
            _ => "-".into(),
        };
        rows.push(vec![
            case.fsync.to_string(),
            ops(&w),
            ops(&one),
            ops(&three),
            p99(&w),
            p99(&one),
            p99(&three),
            ratio(&three, &one),
            ratio(&one, &w),
        ]);
    }
    if rows.is_empty() {
        return String::new();
    }
    let header = [
        "fsync",
        "walrus-fd ops/s",
        "R1 ops/s",
        "R3 ops/s",
        "walrus-fd p99 us",
        "R1 p99 us",
        "R3 p99 us",
        "R3 vs R1",
        "R1 vs walrus-fd",
    ];
    format!(
        "## Replication cost ({max_threads} thread(s), single appends)\n\n\
         JetStream with three replicas on loopback against one; the medians of the tables \
         above. Guarantees differ by row: see each store's guarantee column.\n\n{}\n",
        format::markdown_table(&header, &rows)
    )
}

/// The walrus store ratios are taken against: the fd backend if present.
fn reference_walrus(stores: &[StoreKind]) -> Option<usize> {
    let names: Vec<String> = stores.iter().map(|s| s.to_string()).collect();
    names
        .iter()
        .position(|n| n == "walrus-fd")
        .or_else(|| names.iter().position(|n| n.starts_with("walrus")))
}

fn case_table(
    case: &Case,
    stores: &[StoreKind],
    results: &[Vec<Result<CellOutcome, String>>],
    medians: &[Option<Median>],
) -> String {
    let walrus = reference_walrus(stores);
    let raw = stores.iter().position(|s| s.to_string() == "raw");
    let ops_of = |i: Option<usize>| {
        i.and_then(|i| medians[i].as_ref())
            .map(|m| m.stats.ops_per_sec)
    };
    let ratio = |mine: u64, base: Option<u64>| match base {
        Some(b) if b > 0 => format!("{:.2}x", mine as f64 / b as f64),
        _ => "-".into(),
    };
    let walrus_name = walrus.map_or("walrus".into(), |i| stores[i].to_string());
    let vs_walrus = format!("vs {walrus_name}");
    let header = [
        "store",
        "ops/s",
        "min-max ops/s",
        "MiB/s",
        "p50 us",
        "p99 us",
        "p99.9 us",
        vs_walrus.as_str(),
        "vs raw",
        "guarantee",
    ];
    let mut rows = Vec::new();
    for (si, kind) in stores.iter().enumerate() {
        let mut g = guarantee(*kind, case.fsync);
        if matches!(case.workload, Workload::Read { .. }) {
            g = format!("{g}; {}", cursor_guarantee(case.consistency));
        }
        match &medians[si] {
            Some(m) => {
                let s = &m.stats;
                rows.push(vec![
                    kind.to_string(),
                    group_digits(s.ops_per_sec),
                    format!("{}-{}", group_digits(m.min_ops), group_digits(m.max_ops)),
                    format!("{:.1}", s.mb_per_sec),
                    format!("{:.1}", s.latency.p50_us),
                    format!("{:.1}", s.latency.p99_us),
                    format!("{:.1}", s.latency.p999_us),
                    ratio(s.ops_per_sec, ops_of(walrus)),
                    ratio(s.ops_per_sec, ops_of(raw)),
                    g,
                ]);
            }
            None => {
                let why = first_failure(&results[si]).unwrap_or("no result");
                let mut row = vec![kind.to_string(), format!("FAILED: {why}")];
                row.extend(std::iter::repeat_n("-".to_string(), 7));
                row.push(g);
                rows.push(row);
            }
        }
    }
    format!(
        "## {}\n\n{}\n",
        case.name,
        format::markdown_table(&header, &rows)
    )
}

/// The compare matrix's size: cells to run and their measured time in
/// total (each cell, read cells included, measures `duration / rounds`).
pub fn cell_count(settings: &Settings) -> (usize, Duration) {
    let cells = cases(settings).len() * settings.stores.len() * settings.rounds;
    (
        cells,
        settings.duration / settings.rounds as u32 * cells as u32,
    )
}
