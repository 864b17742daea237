//! The single-purpose benchmarks of the guide: write, batch, read, scaling,
//! and the three real-world scenarios. Each sweeps its cells, keeps going
//! past a failed cell (reporting it), writes one CSV and returns a table.

use std::path::{Path, PathBuf};
use std::time::Duration;

use walrus_wal::{FsyncSchedule, LogStore, ReadConsistency, StoreConfig};

use crate::config::{Command, Settings};
use crate::error::BenchError;
use crate::progress::Progress;
use crate::report::{self, group_digits, Rates, ReadRow, ScalingRow, WriteRow};
use crate::runner::{run_cell, CellOutcome, RunEnv, Workload};
use crate::stores::{backend_label, StoreKind};
use crate::workload::{ReadMode, ReadSpec, TopicMode, WriteSpec};

/// Opens a store of any kind: the adapters in production, doubles in tests.
pub type OpenKind<'a> =
    dyn Fn(StoreKind, &Path, StoreConfig) -> walrus_wal::Result<Box<dyn LogStore>> + 'a;

/// What a benchmark command produced.
#[derive(Debug, Default)]
pub struct CommandOutput {
    /// Files written (CSV, Markdown).
    pub files: Vec<PathBuf>,
    /// Tables and notes for the terminal.
    pub text: String,
    /// One line per cell that failed; non-empty means the run failed.
    pub failures: Vec<String>,
}

/// Runs the benchmark `settings.command` names (not `compare`).
pub fn run(settings: &Settings, open: &OpenKind<'_>) -> Result<CommandOutput, BenchError> {
    match settings.command {
        Command::Write | Command::Batch => run_writes(settings, open),
        Command::Scaling => run_scaling(settings, open),
        Command::Read => run_reads(settings, open),
        Command::Scenarios => run_scenarios(settings, open),
        Command::Compare => crate::compare::run(settings, open),
    }
}

pub(crate) fn run_env(settings: &Settings) -> RunEnv {
    RunEnv {
        data_dir: settings.data_dir.clone(),
        keep_data: settings.keep_data,
        progress: Progress::new(settings.quiet),
    }
}

/// One cell to run: which store, under which settings, doing what.
pub(crate) struct CellRequest<'a> {
    pub kind: StoreKind,
    pub config: StoreConfig,
    pub workload: &'a Workload,
    /// (this cell, cells in the run), for the progress line.
    pub position: (usize, usize),
    pub what: &'a str,
}

/// Runs one cell, announcing it; a failure becomes a line in `failures`
/// instead of ending the command, so one broken store costs one cell.
pub(crate) fn announce_and_run(
    open: &OpenKind<'_>,
    req: CellRequest<'_>,
    env: &RunEnv,
    failures: &mut Vec<String>,
) -> Option<CellOutcome> {
    let CellRequest {
        kind,
        config,
        workload,
        position,
        what,
    } = req;
    env.progress
        .cell(position.0, position.1, format!("{kind} {what}"));
    let opener = |dir: &Path, cfg: StoreConfig| open(kind, dir, cfg);
    let result = match workload {
        // Walrus runs natively on the async front end, not through `open`.
        Workload::AsyncWrite(spec) => crate::async_workload::run_cell(
            crate::async_workload::AsyncOpen::Kind(kind),
            &kind.to_string(),
            config,
            spec,
            env,
        ),
        _ => run_cell(&opener, &kind.to_string(), config, workload, env),
    };
    env.progress.cell_done();
    match result {
        Ok(outcome) => Some(outcome),
        Err(e) => {
            env.progress.line(format!("  FAILED: {e}"));
            failures.push(format!("{kind} {what}: {e}"));
            None
        }
    }
}

fn write_spec(settings: &Settings, threads: usize, batch_size: usize) -> WriteSpec {
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

fn store_config(fsync: FsyncSchedule, consistency: ReadConsistency) -> StoreConfig {
    StoreConfig { consistency, fsync }
}

/// Runs one write cell per store × fsync mode × batch size × thread count,
/// in that order, and returns a row per cell that ran (failures go to
/// `out`). `what` names a cell in the progress line.
fn run_write_cells(
    settings: &Settings,
    open: &OpenKind<'_>,
    out: &mut CommandOutput,
    what: impl Fn(&WriteSpec, FsyncSchedule) -> String,
) -> Vec<WriteRow> {
    let env = run_env(settings);
    let mut rows = Vec::new();
    let total = settings.stores.len()
        * settings.fsync.len()
        * settings.batch_sizes.len()
        * settings.threads.len();
    let mut n = 0;
    for &kind in &settings.stores {
        for &fsync in &settings.fsync {
            for &batch in &settings.batch_sizes {
                for &threads in &settings.threads {
                    n += 1;
                    let spec = write_spec(settings, threads, batch);
                    let config = store_config(fsync, settings.consistency[0]);
                    let Some(o) = announce_and_run(
                        open,
                        CellRequest {
                            kind,
                            config,
                            workload: &Workload::Write(spec.clone()),
                            position: (n, total),
                            what: &what(&spec, fsync),
                        },
                        &env,
                        &mut out.failures,
                    ) else {
                        continue;
                    };
                    rows.push(write_row(kind, fsync, &spec, &o));
                }
            }
        }
    }
    rows
}

fn run_writes(settings: &Settings, open: &OpenKind<'_>) -> Result<CommandOutput, BenchError> {
    let mut out = CommandOutput::default();
    let rows = run_write_cells(settings, open, &mut out, |spec, fsync| {
        format!(
            "write threads={} fsync={fsync} entry={}B batch={} topics={}",
            spec.threads, spec.entry_size, spec.batch_size, spec.topics
        )
    });
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.store.clone(),
                r.threads.to_string(),
                r.fsync_mode.clone(),
                r.batch_size.to_string(),
                group_digits(r.ops_per_sec),
                format!("{:.1}", r.mb_per_sec),
                format!("{:.2}", r.avg_latency_us),
                format!("{:.2}", r.p99_us),
                format!("{:.2}", r.p999_us),
                format!("{:.0}", r.cpu_usage),
                format!("{:.2}", r.space_amp),
            ]
        })
        .collect();
    out.text = report::text_table(
        &[
            "store",
            "threads",
            "fsync",
            "batch",
            "ops/s",
            "MiB/s",
            "avg_us",
            "p99_us",
            "p999_us",
            "cpu%",
            "space_amp",
        ],
        &table_rows,
    );
    push_csv(&mut out, settings, &rows)?;
    Ok(out)
}

fn write_row(kind: StoreKind, fsync: FsyncSchedule, spec: &WriteSpec, o: &CellOutcome) -> WriteRow {
    let r = Rates::of(&o.write);
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
        entries: o.write.entries,
        verified_entries: o.verified_entries,
        elapsed_s: r.elapsed_s,
        disk_bytes: o.disk_bytes,
        space_amp: report::round(o.space_amp, 3),
    }
}

fn run_scaling(settings: &Settings, open: &OpenKind<'_>) -> Result<CommandOutput, BenchError> {
    let mut out = CommandOutput::default();
    let rows: Vec<ScalingRow> = run_write_cells(settings, open, &mut out, |spec, fsync| {
        format!(
            "scaling threads={} fsync={fsync} batch={}",
            spec.threads, spec.batch_size
        )
    })
    .into_iter()
    .map(|w| ScalingRow {
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
    })
    .collect();
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.store.clone(),
                r.fsync_mode.clone(),
                r.threads.to_string(),
                group_digits(r.ops_per_sec),
                format!("{:.1}", r.mb_per_sec),
                format!("{:.0}", r.cpu_usage),
                format!("{:.2}", r.avg_latency_us),
                format!("{:.2}", r.p99_us),
            ]
        })
        .collect();
    out.text = report::text_table(
        &[
            "store", "fsync", "threads", "ops/s", "MiB/s", "cpu%", "avg_us", "p99_us",
        ],
        &table_rows,
    );
    push_csv(&mut out, settings, &rows)?;
    Ok(out)
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

fn run_reads(settings: &Settings, open: &OpenKind<'_>) -> Result<CommandOutput, BenchError> {
    let env = run_env(settings);
    let mut out = CommandOutput::default();
    let mut rows = Vec::new();
    let modes = read_modes(settings);
    let total = settings.stores.len()
        * settings.fsync.len()
        * settings.consistency.len()
        * modes.len()
        * settings.threads.len();
    let mut n = 0;
    for &kind in &settings.stores {
        for &fsync in &settings.fsync {
            for &consistency in &settings.consistency {
                for &(mode, batch) in &modes {
                    for &threads in &settings.threads {
                        n += 1;
                        let write = WriteSpec {
                            duration: settings.write_duration,
                            topics: TopicMode::PerThread,
                            ..write_spec(settings, threads, 1)
                        };
                        let read = ReadSpec {
                            threads,
                            mode,
                            duration: settings.read_duration,
                        };
                        let what = format!(
                            "read threads={threads} fsync={fsync} consistency={consistency} \
                             mode={mode} batch={batch}"
                        );
                        let Some(o) = announce_and_run(
                            open,
                            CellRequest {
                                kind,
                                config: store_config(fsync, consistency),
                                workload: &Workload::Read {
                                    write,
                                    read,
                                    cold: settings.cold_reads,
                                },
                                position: (n, total),
                                what: &what,
                            },
                            &env,
                            &mut out.failures,
                        ) else {
                            continue;
                        };
                        let row = |phase: &str, stats| {
                            let r = Rates::of(stats);
                            ReadRow {
                                phase: phase.into(),
                                threads,
                                ops_per_sec: r.ops_per_sec,
                                mb_per_sec: r.mb_per_sec,
                                avg_latency_us: r.latency.avg_us,
                                p50_us: r.latency.p50_us,
                                p99_us: r.latency.p99_us,
                                p999_us: r.latency.p999_us,
                                max_us: r.latency.max_us,
                                store: kind.to_string(),
                                backend: backend_label(kind),
                                fsync_mode: fsync.to_string(),
                                read_mode: mode.to_string(),
                                consistency: consistency.to_string(),
                                entry_size: settings.entry_size,
                                batch_size: batch,
                                cpu_usage: r.cpu_usage,
                                entries: stats.entries,
                                elapsed_s: r.elapsed_s,
                            }
                        };
                        rows.push(row("write", &o.write));
                        if let Some(read) = &o.read {
                            rows.push(row("read", read));
                        }
                    }
                }
            }
        }
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.phase.clone(),
                r.store.clone(),
                r.threads.to_string(),
                r.consistency.clone(),
                format!("{}/{}", r.read_mode, r.batch_size),
                group_digits(r.ops_per_sec),
                format!("{:.1}", r.mb_per_sec),
                format!("{:.2}", r.avg_latency_us),
                format!("{:.2}", r.p99_us),
                r.entries.to_string(),
            ]
        })
        .collect();
    out.text = report::text_table(
        &[
            "phase",
            "store",
            "threads",
            "consistency",
            "mode",
            "ops/s",
            "MiB/s",
            "avg_us",
            "p99_us",
            "entries",
        ],
        &table_rows,
    );
    push_csv(&mut out, settings, &rows)?;
    Ok(out)
}

/// One of the guide's real-world scenarios.
struct Scenario {
    name: &'static str,
    fsync: FsyncSchedule,
    consistency: ReadConsistency,
    threads: usize,
    entry_size: usize,
    /// The workload's stated requirement, in appends per second.
    required_ops_per_sec: u64,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "analytics",
        fsync: FsyncSchedule::Milliseconds(5_000),
        consistency: ReadConsistency::AtLeastOnce {
            persist_every: 10_000,
        },
        threads: 16,
        entry_size: 1024,
        required_ops_per_sec: 1_000_000,
    },
    Scenario {
        name: "financial",
        fsync: FsyncSchedule::SyncEach,
        consistency: ReadConsistency::StrictlyAtOnce,
        threads: 4,
        entry_size: 512,
        required_ops_per_sec: 10_000,
    },
    Scenario {
        name: "message-queue",
        fsync: FsyncSchedule::Milliseconds(1_000),
        consistency: ReadConsistency::AtLeastOnce {
            persist_every: 1_000,
        },
        threads: 8,
        entry_size: 10 * 1024,
        required_ops_per_sec: 100_000,
    },
];

/// One row of `scenarios_*.csv`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScenarioRow {
    pub scenario: String,
    pub store: String,
    pub backend: String,
    pub fsync_mode: String,
    pub consistency: String,
    pub threads: usize,
    pub entry_size: usize,
    pub write_ops_per_sec: u64,
    pub write_mb_per_sec: f64,
    pub write_p99_us: f64,
    pub read_ops_per_sec: u64,
    pub read_mb_per_sec: f64,
    pub read_p99_us: f64,
    pub required_ops_per_sec: u64,
    pub meets_requirement: bool,
}

fn run_scenarios(settings: &Settings, open: &OpenKind<'_>) -> Result<CommandOutput, BenchError> {
    let env = run_env(settings);
    let mut out = CommandOutput::default();
    let mut rows = Vec::new();
    let total = settings.stores.len() * SCENARIOS.len();
    let mut n = 0;
    for &kind in &settings.stores {
        for sc in &SCENARIOS {
            n += 1;
            let write = WriteSpec {
                threads: sc.threads,
                entry_size: sc.entry_size,
                batch_size: 1,
                topics: TopicMode::PerThread,
                duration: settings.write_duration,
                warmup: settings.warmup,
                rate: settings.rate,
                count: None,
            };
            let read = ReadSpec {
                threads: sc.threads,
                mode: ReadMode::Single,
                duration: settings.read_duration,
            };
            let what = format!(
                "scenario {}: fsync={} consistency={} threads={} entry={}B",
                sc.name, sc.fsync, sc.consistency, sc.threads, sc.entry_size
            );
            let Some(o) = announce_and_run(
                open,
                CellRequest {
                    kind,
                    config: store_config(sc.fsync, sc.consistency),
                    workload: &Workload::Read {
                        write,
                        read,
                        cold: false,
                    },
                    position: (n, total),
                    what: &what,
                },
                &env,
                &mut out.failures,
            ) else {
                continue;
            };
            let w = Rates::of(&o.write);
            let r = o.read.as_ref().map(Rates::of);
            rows.push(ScenarioRow {
                scenario: sc.name.into(),
                store: kind.to_string(),
                backend: backend_label(kind),
                fsync_mode: sc.fsync.to_string(),
                consistency: sc.consistency.to_string(),
                threads: sc.threads,
                entry_size: sc.entry_size,
                write_ops_per_sec: w.ops_per_sec,
                write_mb_per_sec: w.mb_per_sec,
                write_p99_us: w.latency.p99_us,
                read_ops_per_sec: r.map_or(0, |r| r.ops_per_sec),
                read_mb_per_sec: r.map_or(0.0, |r| r.mb_per_sec),
                read_p99_us: r.map_or(0.0, |r| r.latency.p99_us),
                required_ops_per_sec: sc.required_ops_per_sec,
                meets_requirement: w.ops_per_sec >= sc.required_ops_per_sec,
            });
        }
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.scenario.clone(),
                r.store.clone(),
                r.fsync_mode.clone(),
                r.consistency.clone(),
                r.threads.to_string(),
                r.entry_size.to_string(),
                group_digits(r.write_ops_per_sec),
                format!("{:.1}", r.write_mb_per_sec),
                format!("{:.2}", r.write_p99_us),
                group_digits(r.read_ops_per_sec),
                group_digits(r.required_ops_per_sec),
                if r.meets_requirement { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    out.text = report::text_table(
        &[
            "scenario",
            "store",
            "fsync",
            "consistency",
            "threads",
            "entry",
            "write ops/s",
            "MiB/s",
            "p99_us",
            "read ops/s",
            "needs ops/s",
            "meets",
        ],
        &table_rows,
    );
    out.text +=
        "(scenarios fix fsync, consistency, threads and entry size to the guide's values)\n";
    push_csv(&mut out, settings, &rows)?;
    Ok(out)
}

/// Writes the command's CSV, unless every cell failed (an empty file would
/// only look like a result).
fn push_csv<T: serde::Serialize>(
    out: &mut CommandOutput,
    settings: &Settings,
    rows: &[T],
) -> Result<(), BenchError> {
    if !rows.is_empty() {
        let stem = settings.command.csv_stem();
        let csv = report::write_csv(&settings.out_dir, stem, rows)?;
        let host = crate::host::hardware_line(&settings.data_dir);
        let sidecar = report::write_sidecar(&csv, settings, &host, None)?;
        out.files.push(csv);
        out.files.push(sidecar);
    }
    out.text += &report::command_footer(settings);
    Ok(())
}

/// The duration a `Duration` prints as in notes ("2s", "1.5s").
pub(crate) fn secs(d: Duration) -> String {
    format!("{}s", report::round(d.as_secs_f64(), 2))
}
