//! The single-purpose benchmarks of the guide: write, batch, read, scaling,
//! and the three real-world scenarios. Each builds its cases, runs them
//! through [`crate::rounds`] (every store, `WALRUS_ROUNDS` alternated
//! rounds, a failed cell reported and the others still run), writes one
//! CSV (every round, then each median round whole) and returns a table of
//! the medians.

use walrus_wal::{FsyncSchedule, ReadConsistency, StoreConfig};

use crate::config::{Command, Settings};
use crate::error::BenchError;
use crate::longrun::{long_run, LongRunOutcome, LongRunSpec, Slice};
use crate::report::{self, group_digits, Rates, ReadRow, ScalingRow, WriteRow};
use crate::rounds::{
    round_rows, run_env, run_rounds, CommandOutput, OpenKind, RoundCase, RoundColumns,
};
use crate::runner::{quiesce_disk, CellOutcome, FreshDir, RunEnv, Workload};
use crate::stores::{backend_label, StoreKind};
use crate::workload::{PhaseStats, ReadMode, ReadSpec, TopicMode, WriteSpec};

/// Runs the benchmark `settings.command` names.
pub fn run(settings: &Settings, open: &OpenKind<'_>) -> Result<CommandOutput, BenchError> {
    match settings.command {
        Command::Write | Command::Batch | Command::Latency => run_writes(settings, open),
        Command::Scaling => run_scaling(settings, open),
        Command::Read => run_reads(settings, open),
        Command::Scenarios => run_scenarios(settings, open),
        Command::Compare => crate::compare::run(settings, open),
        Command::Longrun => run_longrun(settings, open),
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

/// A row's figures when its round failed: zeros (its status says why).
fn empty_stats() -> &'static PhaseStats {
    static EMPTY: std::sync::OnceLock<PhaseStats> = std::sync::OnceLock::new();
    EMPTY.get_or_init(PhaseStats::default)
}

/// Whether a row goes into the terminal table: the medians, and a round
/// that failed (its case has no median).
fn shown(round: &str, status: &str) -> bool {
    round == "median" || status != "ok"
}

/// The figure of a shown row: its ops/s, or why it failed.
fn ops_cell(ops: u64, status: &str) -> String {
    if status == "ok" {
        group_digits(ops)
    } else {
        format!("FAILED ({status})")
    }
}

fn spread_cell(round: &str, min: u64, max: u64) -> String {
    if round == "median" {
        format!("{}-{}", group_digits(min), group_digits(max))
    } else {
        "-".into()
    }
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

fn run_writes(settings: &Settings, open: &OpenKind<'_>) -> Result<CommandOutput, BenchError> {
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
    out.text = report::text_table(&header, &table_rows);
    out.text += &rounds_note(settings);
    if open_loop {
        out.text += "(open loop: calls issued on a fixed schedule at the offered rate; latency \
                     from each call's intended start, so it includes queueing behind a slow \
                     store)\n";
    }
    push_csv(&mut out, settings, &rows)?;
    Ok(out)
}

/// The line under every table: what a row is.
fn rounds_note(settings: &Settings) -> String {
    format!(
        "(each row: the median of {} alternated round(s) by ops/s, whole, with the min-max \
         over the rounds; every round is in the CSV)\n",
        settings.rounds
    )
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
        space_amp: o.map_or(0.0, |o| report::round(o.space_amp, 3)),
        round,
        status,
        median_of_round,
        ops_min,
        ops_max,
        offered_rate: spec.rate,
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
        round: w.round,
        status: w.status,
        median_of_round: w.median_of_round,
        ops_min: w.ops_min,
        ops_max: w.ops_max,
    })
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
    out.text = report::text_table(
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

fn run_reads(settings: &Settings, open: &OpenKind<'_>) -> Result<CommandOutput, BenchError> {
    let env = run_env(settings);
    let mut out = CommandOutput::default();
    let mut cases = Vec::new();
    for &fsync in &settings.fsync {
        for &consistency in &settings.consistency {
            for &(mode, batch) in &read_modes(settings) {
                for &threads in &settings.threads {
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
    out.text = report::text_table(
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
    pub round: String,
    pub status: String,
    pub median_of_round: String,
    pub ops_min: u64,
    pub ops_max: u64,
}

fn scenario_row(
    sc: &Scenario,
    kind: StoreKind,
    o: Option<&CellOutcome>,
    cols: RoundColumns,
) -> ScenarioRow {
    let w = Rates::of(o.map_or(empty_stats(), |o| &o.write));
    let r = o.and_then(|o| o.read.as_ref()).map(Rates::of);
    ScenarioRow {
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
        meets_requirement: o.is_some() && w.ops_per_sec >= sc.required_ops_per_sec,
        round: cols.round,
        status: cols.status,
        median_of_round: cols.median_of_round,
        ops_min: cols.ops_min,
        ops_max: cols.ops_max,
    }
}

fn run_scenarios(settings: &Settings, open: &OpenKind<'_>) -> Result<CommandOutput, BenchError> {
    let env = run_env(settings);
    let mut out = CommandOutput::default();
    let workloads: Vec<Workload> = SCENARIOS
        .iter()
        .map(|sc| Workload::Read {
            write: WriteSpec {
                threads: sc.threads,
                entry_size: sc.entry_size,
                batch_size: 1,
                topics: TopicMode::PerThread,
                duration: settings.write_duration,
                warmup: settings.warmup,
                rate: settings.rate,
                count: None,
            },
            read: ReadSpec {
                threads: sc.threads,
                mode: ReadMode::Single,
                duration: settings.read_duration,
            },
            cold: false,
        })
        .collect();
    let round_cases: Vec<RoundCase<'_>> = SCENARIOS
        .iter()
        .zip(&workloads)
        .map(|(sc, workload)| RoundCase {
            what: format!(
                "scenario {}: fsync={} consistency={} threads={} entry={}B",
                sc.name, sc.fsync, sc.consistency, sc.threads, sc.entry_size
            ),
            config: store_config(sc.fsync, sc.consistency),
            workload,
        })
        .collect();
    let results = run_rounds(settings, open, &round_cases, &env, &mut out.failures);
    let mut rows = Vec::new();
    for (sc, per_store) in SCENARIOS.iter().zip(&results) {
        for (&kind, rounds) in settings.stores.iter().zip(per_store) {
            // The requirement is on the writes, so the median is theirs.
            for (cols, o) in round_rows(rounds, |o| &o.write) {
                rows.push(scenario_row(sc, kind, o, cols));
            }
        }
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .filter(|r| shown(&r.round, &r.status))
        .map(|r| {
            vec![
                r.scenario.clone(),
                r.store.clone(),
                r.fsync_mode.clone(),
                r.consistency.clone(),
                r.threads.to_string(),
                r.entry_size.to_string(),
                ops_cell(r.write_ops_per_sec, &r.status),
                spread_cell(&r.round, r.ops_min, r.ops_max),
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
            "min-max write ops/s",
            "MiB/s",
            "p99_us",
            "read ops/s",
            "needs ops/s",
            "meets",
        ],
        &table_rows,
    );
    out.text += &rounds_note(settings);
    out.text +=
        "(scenarios fix fsync, consistency, threads and entry size to the guide's values)\n";
    push_csv(&mut out, settings, &rows)?;
    Ok(out)
}

/// Writes the command's CSV (every round, failed ones with their reason,
/// and the medians) and its sidecar, unless there were no cells at all.
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

/// One row of `longrun_*.csv`: a tenth of the bytes (`slice` = `10%` ..
/// `100%`; a run so short that the writes crossed several tenths between
/// two looks has fewer rows), the drain after the last write (`drain`), or the whole run
/// (`total`, with the peak and final disk use and the verified counts).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LongRunRow {
    pub store: String,
    pub backend: String,
    pub fsync_mode: String,
    pub consistency: String,
    pub threads: usize,
    pub entry_size: usize,
    pub slice: String,
    pub written_bytes: u64,
    pub consumed_bytes: u64,
    /// Written but not yet consumed when the slice ended.
    pub backlog_bytes: u64,
    pub at_s: f64,
    pub length_s: f64,
    pub write_mb_per_sec: f64,
    pub read_mb_per_sec: f64,
    pub disk_bytes: u64,
    pub peak_disk_bytes: u64,
    pub entries_written: u64,
    pub entries_consumed: u64,
    /// `ok`, or `failed: <why>`.
    pub status: String,
}

/// One long-run cell: a fresh directory, the store, the run, and any ERROR
/// the store logged meanwhile (which fails the cell).
fn longrun_cell(
    open: &OpenKind<'_>,
    kind: StoreKind,
    config: StoreConfig,
    spec: &LongRunSpec,
    env: &RunEnv,
) -> Result<LongRunOutcome, String> {
    quiesce_disk();
    let mark = crate::logs::mark();
    let result = (|| {
        let dir = FreshDir::create(&env.data_dir, &kind.to_string(), env.keep_data)?;
        let store = open(kind, dir.path(), config).map_err(|source| BenchError::Store {
            store: kind.to_string(),
            source,
        })?;
        let outcome = long_run(store.as_ref(), dir.path(), spec, &env.progress);
        drop(store);
        outcome
    })();
    let logged = crate::logs::claim_since(mark);
    match (result, logged.first()) {
        (Err(e), _) => Err(e.to_string()),
        (Ok(_), Some(first)) => Err(format!(
            "the store logged {} error(s) during the cell, the first: {first}",
            logged.len()
        )),
        (Ok(o), None) => Ok(o),
    }
}

/// `make bench-longrun`: every store once per fsync mode and thread count
/// (a long run is its own steady state; it is not repeated in rounds).
fn run_longrun(settings: &Settings, open: &OpenKind<'_>) -> Result<CommandOutput, BenchError> {
    let env = run_env(settings);
    let mut out = CommandOutput::default();
    let mut rows = Vec::new();
    let consistency = settings.consistency[0];
    let total = settings.fsync.len() * settings.threads.len() * settings.stores.len();
    let mut n = 0;
    for &fsync in &settings.fsync {
        for &threads in &settings.threads {
            let spec = LongRunSpec {
                threads,
                entry_size: settings.entry_size,
                total_bytes: settings.longrun_bytes,
            };
            for &kind in &settings.stores {
                n += 1;
                let what = format!(
                    "long run: {} MiB, {threads} producer(s) + {threads} consumer(s), {fsync}, \
                     {consistency}",
                    settings.longrun_bytes >> 20
                );
                env.progress.cell(n, total, format!("{kind} {what}"));
                let result =
                    longrun_cell(open, kind, store_config(fsync, consistency), &spec, &env);
                env.progress.cell_done();
                let row = |slice: String, s: &Slice, status: String| LongRunRow {
                    store: kind.to_string(),
                    backend: backend_label(kind),
                    fsync_mode: fsync.to_string(),
                    consistency: consistency.to_string(),
                    threads,
                    entry_size: settings.entry_size,
                    slice,
                    written_bytes: s.written_bytes,
                    consumed_bytes: s.consumed_bytes,
                    backlog_bytes: s.written_bytes.saturating_sub(s.consumed_bytes),
                    at_s: s.at_s,
                    length_s: s.length_s,
                    write_mb_per_sec: s.write_mb_per_sec,
                    read_mb_per_sec: s.read_mb_per_sec,
                    disk_bytes: s.disk_bytes,
                    peak_disk_bytes: 0,
                    entries_written: 0,
                    entries_consumed: 0,
                    status,
                };
                match result {
                    Ok(o) => {
                        for s in &o.slices {
                            rows.push(row(s.label.clone(), s, "ok".into()));
                        }
                        rows.push(LongRunRow {
                            peak_disk_bytes: o.peak_disk_bytes,
                            entries_written: o.entries_written,
                            entries_consumed: o.entries_consumed,
                            ..row("total".into(), &o.total, "ok".into())
                        });
                    }
                    Err(e) => {
                        env.progress.line(format!("  FAILED: {e}"));
                        out.failures.push(format!("{kind} {what}: {e}"));
                        rows.push(row(
                            "total".into(),
                            &Slice::default(),
                            format!("failed: {e}"),
                        ));
                    }
                }
            }
        }
    }
    let mib = |b: u64| format!("{:.0}", b as f64 / (1u64 << 20) as f64);
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let ok = r.status == "ok";
            vec![
                r.store.clone(),
                r.fsync_mode.clone(),
                r.threads.to_string(),
                r.slice.clone(),
                if ok {
                    mib(r.written_bytes)
                } else {
                    format!("FAILED ({})", r.status)
                },
                format!("{:.1}", r.write_mb_per_sec),
                format!("{:.1}", r.read_mb_per_sec),
                mib(r.backlog_bytes),
                mib(r.disk_bytes),
                if r.slice == "total" {
                    mib(r.peak_disk_bytes)
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    out.text = report::text_table(
        &[
            "store",
            "fsync",
            "threads",
            "slice",
            "written MiB",
            "write MiB/s",
            "read MiB/s",
            "backlog MiB",
            "disk MiB",
            "peak disk MiB",
        ],
        &table_rows,
    );
    out.text += "(each slice: a tenth of the bytes; drain: consuming what was left after the \
                 last write; total: the whole run, every entry consumed and verified, disk after \
                 a final sync)\n";
    push_csv(&mut out, settings, &rows)?;
    Ok(out)
}
