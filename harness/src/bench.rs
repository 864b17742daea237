//! The single-purpose benchmarks of the guide: write, batch, read, scaling,
//! and the latency sweep. Each builds its cases, runs them
//! through [`crate::rounds`] (every store, `WALRUS_ROUNDS` alternated
//! rounds, a failed cell reported and the others still run), writes one
//! CSV (every round, then each median round whole) and returns a table of
//! the medians. `crate::report` writes them out.

use serde::Serialize;
use walrus_wal::{FsyncSchedule, ReadConsistency, StoreConfig};

use crate::config::{Command, Settings};
use crate::error::BenchError;
use crate::format::{self, text_table};
use crate::rounds::{
    empty_stats, ops_cell, round_rows, rounds_note, run_env, run_rounds, shown, spread_cell,
    CommandOutput, OpenKind, RoundCase, RoundColumns,
};
use crate::runner::{CellOutcome, Workload};
use crate::stores::{backend_label, StoreKind};
use crate::workload::{
    PhaseStats, Rates, ReadMode, ReadSpec, TopicMode, WriteSpec, POPULATE_DEADLINE,
};

// Field order of each row struct *is* the CSV column order; the first
// columns are exactly those the benchmarking guide documents, extra ones
// follow. A test pins the headers.

/// One row of `write_benchmark_*.csv`, `batch_benchmark_*.csv` and
/// `latency_benchmark_*.csv`.
#[derive(Clone, Debug, Serialize)]
pub struct WriteRow {
    pub threads: usize,
    pub fsync_mode: String,
    pub ops_per_sec: u64,
    pub mb_per_sec: f64,
    pub avg_latency_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub store: String,
    pub backend: String,
    pub entry_size: usize,
    pub batch_size: usize,
    pub topics: String,
    pub cpu_usage: f64,
    pub entries: u64,
    pub verified_entries: u64,
    pub elapsed_s: f64,
    pub disk_bytes: u64,
    pub space_amp: f64,
    /// `1`, `2`, ... for a round, `median` for the median round (whole).
    pub round: String,
    /// `ok`, or `failed: <why>` (the figures are then zero).
    pub status: String,
    /// On a `median` row: which round (1-based) every figure is from.
    pub median_of_round: String,
    /// On a `median` row: the lowest and highest ops/s over the rounds.
    pub ops_min: u64,
    pub ops_max: u64,
    /// Open loop: the offered load (store calls per second per cell); empty
    /// for a closed loop.
    pub offered_rate: Option<f64>,
}

/// One row of `read_benchmark_*.csv`: a `write` row for the populate phase
/// and a `read` row for the phase that matters.
#[derive(Clone, Debug, Serialize)]
pub struct ReadRow {
    pub phase: String,
    pub threads: usize,
    pub ops_per_sec: u64,
    pub mb_per_sec: f64,
    pub avg_latency_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub store: String,
    pub backend: String,
    pub fsync_mode: String,
    pub read_mode: String,
    pub consistency: String,
    pub entry_size: usize,
    pub batch_size: usize,
    pub cpu_usage: f64,
    pub entries: u64,
    pub elapsed_s: f64,
    /// `1`, `2`, ... for a round, `median` for the median round (whole).
    pub round: String,
    /// `ok`, or `failed: <why>` (the figures are then zero).
    pub status: String,
    /// On a `median` row: which round (1-based) every figure is from.
    pub median_of_round: String,
    /// On a `median` row: the lowest and highest ops/s over the rounds.
    pub ops_min: u64,
    pub ops_max: u64,
}

/// One row of `scaling_benchmark_*.csv`.
#[derive(Clone, Debug, Serialize)]
pub struct ScalingRow {
    pub threads: usize,
    pub ops_per_sec: u64,
    pub mb_per_sec: f64,
    /// Percent of one core (200 = two cores busy).
    pub cpu_usage: f64,
    pub fsync_mode: String,
    pub avg_latency_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub store: String,
    pub backend: String,
    pub entry_size: usize,
    pub batch_size: usize,
    pub topics: String,
    pub disk_bytes: u64,
    pub space_amp: f64,
    /// `1`, `2`, ... for a round, `median` for the median round (whole).
    pub round: String,
    /// `ok`, or `failed: <why>` (the figures are then zero).
    pub status: String,
    /// On a `median` row: which round (1-based) every figure is from.
    pub median_of_round: String,
    /// On a `median` row: the lowest and highest ops/s over the rounds.
    pub ops_min: u64,
    pub ops_max: u64,
}

pub(crate) fn write_spec(settings: &Settings, threads: usize, batch_size: usize) -> WriteSpec {
    WriteSpec {
        threads,
        entry_size: settings.entry_size,
        batch_size,
        topics: settings.topics,
        duration: settings.duration,
        warmup: settings.warmup,
        rate: settings.rate,
        count: None,
    }
}

pub(crate) fn store_config(fsync: FsyncSchedule, consistency: ReadConsistency) -> StoreConfig {
    StoreConfig { consistency, fsync }
}

/// One write case: a fsync mode and a write spec (whose `rate` is the
/// offered load of an open loop).
struct WriteCase {
    fsync: FsyncSchedule,
    spec: WriteSpec,
    workload: Workload,
}

/// Runs the write cases (fsync mode × batch size × thread count, and for
/// `latency` × offered load) on every store for every round, and returns
/// their rows: per case and store, one per round and the median. `what`
/// names a case in the progress line.
fn run_write_cells(
    settings: &Settings,
    open: &OpenKind<'_>,
    out: &mut CommandOutput,
    what: impl Fn(&WriteSpec, FsyncSchedule) -> String,
) -> Vec<WriteRow> {
    let env = run_env(settings);
    let rates: Vec<Option<f64>> = match settings.command {
        Command::Latency => settings.rates.iter().copied().map(Some).collect(),
        _ => vec![settings.rate],
    };
    let mut cases = Vec::new();
    for &fsync in &settings.fsync {
        for &batch in &settings.batch_sizes {
            for &threads in &settings.threads {
                for &rate in &rates {
                    let spec = WriteSpec {
                        rate,
                        ..write_spec(settings, threads, batch)
                    };
                    cases.push(WriteCase {
                        fsync,
                        workload: Workload::Write(spec.clone()),
                        spec,
                    });
                }
            }
        }
    }
    let round_cases: Vec<RoundCase<'_>> = cases
        .iter()
        .map(|c| RoundCase {
            what: what(&c.spec, c.fsync),
            config: store_config(c.fsync, settings.consistency[0]),
            workload: &c.workload,
        })
        .collect();
    let results = run_rounds(settings, open, &round_cases, &env, &mut out.failures);
    let mut rows = Vec::new();
    for (case, per_store) in cases.iter().zip(&results) {
        for (&kind, rounds) in settings.stores.iter().zip(per_store) {
            for (cols, o) in round_rows(rounds, |o| &o.write) {
                rows.push(write_row(kind, case.fsync, &case.spec, o, cols));
            }
        }
    }
    rows
}

pub(crate) fn run_writes(
    settings: &Settings,
    open: &OpenKind<'_>,
) -> Result<CommandOutput, BenchError> {
    let mut out = CommandOutput::default();
    let rows = run_write_cells(settings, open, &mut out, |spec, fsync| {
        let rate = spec.rate.map_or(String::new(), |r| format!(" rate={r}/s"));
        format!(
            "write threads={} fsync={fsync} entry={}B batch={} topics={}{rate}",
            spec.threads, spec.entry_size, spec.batch_size, spec.topics
        )
    });
    let open_loop = rows.iter().any(|r| r.offered_rate.is_some());
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .filter(|r| shown(&r.round, &r.status))
        .map(|r| {
            let mut row = vec![
                r.store.clone(),
                r.threads.to_string(),
                r.fsync_mode.clone(),
                r.batch_size.to_string(),
            ];
            if open_loop {
                row.push(r.offered_rate.map_or("-".into(), |x| format!("{x}")));
            }
            row.extend([
                ops_cell(r.ops_per_sec, &r.status),
                spread_cell(&r.round, r.ops_min, r.ops_max),
                format!("{:.1}", r.mb_per_sec),
                format!("{:.2}", r.avg_latency_us),
                format!("{:.2}", r.p50_us),
                format!("{:.2}", r.p99_us),
                format!("{:.2}", r.p999_us),
                format!("{:.0}", r.cpu_usage),
                format!("{:.2}", r.space_amp),
            ]);
            row
        })
        .collect();
    let mut header = vec!["store", "threads", "fsync", "batch"];
    if open_loop {
        header.push("offered/s");
    }
    header.extend([
        "ops/s",
        "min-max ops/s",
        "MiB/s",
        "avg_us",
        "p50_us",
        "p99_us",
        "p999_us",
        "cpu%",
        "space_amp",
    ]);
    out.text = text_table(&header, &table_rows);
    out.text += &rounds_note(settings);
    if open_loop {
        out.text += "(open loop: calls issued on a fixed schedule at the offered rate; latency \
                     from each call's intended start, so it includes queueing behind a slow \
                     store)\n";
    }
    out.set_rows(&rows)?;
    Ok(out)
}

fn write_row(
    kind: StoreKind,
    fsync: FsyncSchedule,
    spec: &WriteSpec,
    o: Option<&CellOutcome>,
    cols: RoundColumns,
) -> WriteRow {
    let r = Rates::of(o.map_or(empty_stats(), |o| &o.write));
    let RoundColumns {
        round,
        status,
        median_of_round,
        ops_min,
        ops_max,
    } = cols;
    WriteRow {
        threads: spec.threads,
        fsync_mode: fsync.to_string(),
        ops_per_sec: r.ops_per_sec,
        mb_per_sec: r.mb_per_sec,
        avg_latency_us: r.latency.avg_us,
        p50_us: r.latency.p50_us,
        p99_us: r.latency.p99_us,
        p999_us: r.latency.p999_us,
        max_us: r.latency.max_us,
        store: kind.to_string(),
        backend: backend_label(kind),
        entry_size: spec.entry_size,
        batch_size: spec.batch_size,
        topics: spec.topics.to_string(),
        cpu_usage: r.cpu_usage,
        entries: o.map_or(0, |o| o.write.entries),
        verified_entries: o.map_or(0, |o| o.verified_entries),
        elapsed_s: r.elapsed_s,
        disk_bytes: o.map_or(0, |o| o.disk_bytes),
        space_amp: o.map_or(0.0, |o| format::round(o.space_amp, 3)),
        round,
        status,
        median_of_round,
        ops_min,
        ops_max,
        offered_rate: spec.rate,
    }
}

pub(crate) fn run_scaling(
    settings: &Settings,
    open: &OpenKind<'_>,
) -> Result<CommandOutput, BenchError> {
    let mut out = CommandOutput::default();
    let rows: Vec<ScalingRow> = run_write_cells(settings, open, &mut out, |spec, fsync| {
        format!(
            "scaling threads={} fsync={fsync} batch={}",
            spec.threads, spec.batch_size
        )
    })
    .into_iter()
    .map(ScalingRow::from)
    .collect();
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .filter(|r| shown(&r.round, &r.status))
        .map(|r| {
            vec![
                r.store.clone(),
                r.fsync_mode.clone(),
                r.threads.to_string(),
                ops_cell(r.ops_per_sec, &r.status),
                spread_cell(&r.round, r.ops_min, r.ops_max),
                format!("{:.1}", r.mb_per_sec),
                format!("{:.0}", r.cpu_usage),
                format!("{:.2}", r.avg_latency_us),
                format!("{:.2}", r.p99_us),
            ]
        })
        .collect();
    out.text = text_table(
        &[
            "store",
            "fsync",
            "threads",
            "ops/s",
            "min-max ops/s",
            "MiB/s",
            "cpu%",
            "avg_us",
            "p99_us",
        ],
        &table_rows,
    );
    out.text += &rounds_note(settings);
    out.set_rows(&rows)?;
    Ok(out)
}

impl From<WriteRow> for ScalingRow {
    fn from(w: WriteRow) -> ScalingRow {
        ScalingRow {
            threads: w.threads,
            ops_per_sec: w.ops_per_sec,
            mb_per_sec: w.mb_per_sec,
            cpu_usage: w.cpu_usage,
            fsync_mode: w.fsync_mode,
            avg_latency_us: w.avg_latency_us,
            p50_us: w.p50_us,
            p99_us: w.p99_us,
            p999_us: w.p999_us,
            max_us: w.max_us,
            store: w.store,
            backend: w.backend,
            entry_size: w.entry_size,
            batch_size: w.batch_size,
            topics: w.topics,
            disk_bytes: w.disk_bytes,
            space_amp: w.space_amp,
            round: w.round,
            status: w.status,
            median_of_round: w.median_of_round,
            ops_min: w.ops_min,
            ops_max: w.ops_max,
        }
    }
}

/// Read modes of the read benchmark: `read_next`, then `batch_read` with a
/// byte budget of each batch size times the entry size.
fn read_modes(settings: &Settings) -> Vec<(ReadMode, usize)> {
    let mut modes = vec![(ReadMode::Single, 1)];
    for &b in &settings.batch_sizes {
        modes.push((
            ReadMode::Batch {
                max_bytes: b * settings.entry_size,
            },
            b,
        ));
    }
    modes
}

/// One read case: fsync mode, consistency, read mode and its batch size.
struct ReadCase {
    fsync: FsyncSchedule,
    consistency: ReadConsistency,
    mode: ReadMode,
    batch: usize,
    threads: usize,
    workload: Workload,
}

/// The stats a read cell's median is chosen by: its read phase.
fn read_measured(o: &CellOutcome) -> &PhaseStats {
    o.read.as_ref().unwrap_or(&o.write)
}

fn read_row(
    settings: &Settings,
    kind: StoreKind,
    case: &ReadCase,
    phase: &str,
    stats: &PhaseStats,
    cols: &RoundColumns,
) -> ReadRow {
    let r = Rates::of(stats);
    ReadRow {
        phase: phase.into(),
        threads: case.threads,
        ops_per_sec: r.ops_per_sec,
        mb_per_sec: r.mb_per_sec,
        avg_latency_us: r.latency.avg_us,
        p50_us: r.latency.p50_us,
        p99_us: r.latency.p99_us,
        p999_us: r.latency.p999_us,
        max_us: r.latency.max_us,
        store: kind.to_string(),
        backend: backend_label(kind),
        fsync_mode: case.fsync.to_string(),
        read_mode: case.mode.to_string(),
        consistency: case.consistency.to_string(),
        entry_size: settings.entry_size,
        batch_size: case.batch,
        cpu_usage: r.cpu_usage,
        entries: stats.entries,
        elapsed_s: r.elapsed_s,
        round: cols.round.clone(),
        status: cols.status.clone(),
        median_of_round: cols.median_of_round.clone(),
        ops_min: cols.ops_min,
        ops_max: cols.ops_max,
    }
}

pub(crate) fn run_reads(
    settings: &Settings,
    open: &OpenKind<'_>,
) -> Result<CommandOutput, BenchError> {
    let env = run_env(settings);
    let mut out = CommandOutput::default();
    let mut cases = Vec::new();
    for &fsync in &settings.fsync {
        for &consistency in &settings.consistency {
            for &(mode, batch) in &read_modes(settings) {
                for &threads in &settings.threads {
                    // Every store reads back the same READ_ENTRIES entries
                    // (a timed populate leaves a slow writer a small,
                    // cache-resident set), unless a write duration was asked
                    // for, as the guide's read benchmark describes.
                    let write = if settings.populate_for_duration {
                        WriteSpec {
                            duration: settings.write_duration,
                            topics: TopicMode::PerThread,
                            ..write_spec(settings, threads, 1)
                        }
                    } else {
                        WriteSpec {
                            duration: POPULATE_DEADLINE,
                            count: Some(settings.read_entries.div_ceil(threads as u64)),
                            topics: TopicMode::PerThread,
                            ..write_spec(settings, threads, 1)
                        }
                    };
                    let read = ReadSpec {
                        threads,
                        mode,
                        duration: settings.read_duration,
                    };
                    cases.push(ReadCase {
                        fsync,
                        consistency,
                        mode,
                        batch,
                        threads,
                        workload: Workload::Read {
                            write,
                            read,
                            cold: settings.cold_reads,
                        },
                    });
                }
            }
        }
    }
    let round_cases: Vec<RoundCase<'_>> = cases
        .iter()
        .map(|c| RoundCase {
            what: format!(
                "read threads={} fsync={} consistency={} mode={} batch={}",
                c.threads, c.fsync, c.consistency, c.mode, c.batch
            ),
            config: store_config(c.fsync, c.consistency),
            workload: &c.workload,
        })
        .collect();
    let results = run_rounds(settings, open, &round_cases, &env, &mut out.failures);
    let mut rows = Vec::new();
    for (case, per_store) in cases.iter().zip(&results) {
        for (&kind, rounds) in settings.stores.iter().zip(per_store) {
            for (cols, o) in round_rows(rounds, read_measured) {
                let Some(o) = o else {
                    rows.push(read_row(settings, kind, case, "read", empty_stats(), &cols));
                    continue;
                };
                rows.push(read_row(settings, kind, case, "write", &o.write, &cols));
                if let Some(read) = &o.read {
                    rows.push(read_row(settings, kind, case, "read", read, &cols));
                }
            }
        }
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .filter(|r| shown(&r.round, &r.status))
        .map(|r| {
            vec![
                r.phase.clone(),
                r.store.clone(),
                r.threads.to_string(),
                r.consistency.clone(),
                format!("{}/{}", r.read_mode, r.batch_size),
                ops_cell(r.ops_per_sec, &r.status),
                spread_cell(&r.round, r.ops_min, r.ops_max),
                format!("{:.1}", r.mb_per_sec),
                format!("{:.2}", r.avg_latency_us),
                format!("{:.2}", r.p99_us),
                r.entries.to_string(),
            ]
        })
        .collect();
    out.text = text_table(
        &[
            "phase",
            "store",
            "threads",
            "consistency",
            "mode",
            "ops/s",
            "min-max read ops/s",
            "MiB/s",
            "avg_us",
            "p99_us",
            "entries",
        ],
        &table_rows,
    );
    out.text += &rounds_note(settings);
    out.text += "(a read row's median round is chosen by its read ops/s; the write row beside it \
                 is that round's populate)\n";
    out.set_rows(&rows)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of<T: Serialize>(row: T) -> String {
        format::csv_text(&[row])
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string()
    }

    fn cols() -> RoundColumns {
        RoundColumns {
            round: "median".into(),
            status: "ok".into(),
            median_of_round: "1".into(),
            ops_min: 0,
            ops_max: 0,
        }
    }

    #[test]
    fn csv_headers_start_with_the_guides_columns() {
        let kind: StoreKind = "walrus-fd".parse().unwrap();
        let spec = WriteSpec {
            threads: 1,
            entry_size: 1024,
            batch_size: 1,
            topics: TopicMode::PerThread,
            duration: std::time::Duration::from_secs(1),
            warmup: std::time::Duration::ZERO,
            rate: None,
            count: None,
        };
        let write = write_row(kind, FsyncSchedule::NoFsync, &spec, None, cols());
        assert!(header_of(write.clone())
            .starts_with("threads,fsync_mode,ops_per_sec,mb_per_sec,avg_latency_us,"));
        let case = ReadCase {
            fsync: FsyncSchedule::NoFsync,
            consistency: ReadConsistency::StrictlyAtOnce,
            mode: ReadMode::Single,
            batch: 1,
            threads: 1,
            workload: Workload::Write(spec.clone()),
        };
        let settings = Settings::resolve(
            Command::Read,
            &crate::config::BenchArgs::default(),
            &Default::default(),
        )
        .unwrap();
        let read = read_row(&settings, kind, &case, "read", empty_stats(), &cols());
        assert!(header_of(read).starts_with("phase,threads,ops_per_sec,mb_per_sec,avg_latency_us,"));
        let scaling = ScalingRow::from(write);
        assert!(header_of(scaling).starts_with("threads,ops_per_sec,mb_per_sec,cpu_usage,"));
    }
}
