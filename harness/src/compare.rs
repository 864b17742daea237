//! `make compare`: the same workload matrix against every store.
//!
//! Stores alternate within each round (and the order rotates between
//! rounds), so a slow drift of the machine — page cache filling, thermal
//! throttling, a neighbour's I/O — spreads over all stores instead of
//! landing on whichever ran last. Each reported figure is the median over
//! the rounds. Before any store runs, the disk is probed so the numbers can
//! be read against what the hardware itself does.

use std::fmt::Write as _;
use std::fs;
use std::time::Duration;

use walrus_wal::{FsyncSchedule, ReadConsistency, StoreConfig};

use crate::bench::{announce_and_run, run_env, secs, CellRequest, CommandOutput, OpenKind};
use crate::config::{Command, Settings};
use crate::error::BenchError;
use crate::host::{hardware_line, probe_disk, write_host_json};
use crate::report::{self, group_digits, Rates};
use crate::runner::{CellOutcome, Workload};
use crate::stores::{backend_label, StoreKind};
use crate::workload::{PhaseStats, ReadMode, ReadSpec, TopicMode, WriteSpec};

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
    let per_round = settings.duration / settings.rounds as u32;
    let warmup = settings.warmup.min(per_round / 10);
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
        name: format!("read (read_next), {max_threads} thread(s), {read_fsync}, {consistency}"),
        fsync: read_fsync,
        consistency,
        threads: max_threads,
        batch_size: 1,
        workload: Workload::Read {
            write: WriteSpec {
                topics: TopicMode::PerThread,
                duration: per_round / 2,
                ..spec(max_threads, 1)
            },
            read: ReadSpec {
                threads: max_threads,
                mode: ReadMode::Single,
                duration: per_round / 2,
            },
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
    // results[case][store] = one entry per round
    let mut results: Vec<Vec<Vec<Result<CellOutcome, String>>>> =
        vec![vec![Vec::new(); stores.len()]; cases.len()];
    let total = settings.rounds * cases.len() * stores.len();
    let mut n = 0;
    for round in 0..settings.rounds {
        for (ci, case) in cases.iter().enumerate() {
            for k in 0..stores.len() {
                let si = (k + round + ci) % stores.len();
                n += 1;
                let what = format!("round {}/{}: {}", round + 1, settings.rounds, case.name);
                let mut failures = Vec::new();
                let outcome = announce_and_run(
                    open,
                    CellRequest {
                        kind: stores[si],
                        config: StoreConfig {
                            consistency: case.consistency,
                            fsync: case.fsync,
                        },
                        workload: &case.workload,
                        position: (n, total),
                        what: &what,
                    },
                    &env,
                    &mut failures,
                );
                out.failures.extend(failures.iter().cloned());
                results[ci][si].push(outcome.ok_or_else(|| failures.join("; ")));
            }
        }
    }

    let mut rows = Vec::new();
    let mut md = String::new();
    let _ = writeln!(md, "# Store comparison ({})\n", report::timestamp());
    let _ = writeln!(md, "- Host: {hardware}");
    let _ = writeln!(md, "- Disk probe: {probe}");
    let _ = writeln!(
        md,
        "- Settings: {} B entries, {} per store and workload split over {} rounds \
         (figures are medians), topics {}, warm-up {} per cell",
        settings.entry_size,
        secs(settings.duration),
        settings.rounds,
        settings.topics,
        secs(
            settings
                .warmup
                .min(settings.duration / settings.rounds as u32 / 10)
        ),
    );
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
    fs::create_dir_all(&settings.out_dir)
        .map_err(|e| BenchError::io(format!("creating {}", settings.out_dir.display()), e))?;
    let csv_path = report::write_csv(&settings.out_dir, settings.command.csv_stem(), &rows)?;
    let md_path = csv_path.with_extension("md");
    fs::write(&md_path, &md)
        .map_err(|e| BenchError::io(format!("writing {}", md_path.display()), e))?;
    let host_path = write_host_json(&csv_path, &hardware, &disk)?;
    out.files = vec![csv_path, md_path, host_path];
    out.text = md;
    Ok(out)
}

/// Medians over the rounds of one case and store; `None` if any round failed.
struct Median {
    stats: Rates,
    cpu_usage: f64,
    disk_bytes: u64,
    space_amp: f64,
}

impl Median {
    fn of(case: &Case, rounds: &[Result<CellOutcome, String>]) -> Option<Median> {
        let ok: Vec<&CellOutcome> = rounds
            .iter()
            .map(|r| r.as_ref().ok())
            .collect::<Option<_>>()?;
        if ok.is_empty() {
            return None;
        }
        let rates: Vec<Rates> = ok.iter().map(|o| Rates::of(case.measured(o))).collect();
        let med = |f: &dyn Fn(&Rates) -> f64| median(rates.iter().map(f).collect());
        Some(Median {
            stats: Rates {
                ops_per_sec: med(&|r| r.ops_per_sec as f64).round() as u64,
                mb_per_sec: report::round(med(&|r| r.mb_per_sec), 1),
                latency: crate::metrics::LatencySummary {
                    avg_us: med(&|r| r.latency.avg_us),
                    p50_us: med(&|r| r.latency.p50_us),
                    p99_us: med(&|r| r.latency.p99_us),
                    p999_us: med(&|r| r.latency.p999_us),
                    max_us: med(&|r| r.latency.max_us),
                },
                cpu_usage: med(&|r| r.cpu_usage),
                elapsed_s: med(&|r| r.elapsed_s),
            },
            cpu_usage: med(&|r| r.cpu_usage),
            disk_bytes: median(ok.iter().map(|o| o.disk_bytes as f64).collect()) as u64,
            space_amp: report::round(median(ok.iter().map(|o| o.space_amp).collect()), 3),
        })
    }

    fn csv_row(&self, settings: &Settings, case: &Case, kind: StoreKind) -> CompareRow {
        let mut row = base_row(settings, case, kind, "median");
        fill_row(&mut row, &self.stats, self.disk_bytes, self.space_amp);
        row.cpu_usage = self.cpu_usage;
        row
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
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
    }
}

fn fill_row(row: &mut CompareRow, r: &Rates, disk_bytes: u64, space_amp: f64) {
    row.ops_per_sec = r.ops_per_sec;
    row.mb_per_sec = r.mb_per_sec;
    row.avg_latency_us = report::round(r.latency.avg_us, 2);
    row.p50_us = report::round(r.latency.p50_us, 2);
    row.p99_us = report::round(r.latency.p99_us, 2);
    row.p999_us = report::round(r.latency.p999_us, 2);
    row.max_us = report::round(r.latency.max_us, 2);
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
            report::round(o.space_amp, 3),
        ),
        Err(e) => row.status = format!("failed: {e}"),
    }
    row
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
                let why = results[si]
                    .iter()
                    .find_map(|r| r.as_ref().err())
                    .map_or("no result", String::as_str);
                let mut row = vec![kind.to_string(), format!("FAILED: {why}")];
                row.extend(std::iter::repeat_n("-".to_string(), 6));
                row.push(g);
                rows.push(row);
            }
        }
    }
    format!(
        "## {}\n\n{}\n",
        case.name,
        report::markdown_table(&header, &rows)
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
