//! The guide's three real-world scenarios (analytics, financial, message
//! queue): each fixes its fsync schedule, consistency, threads and entry
//! size, writes then reads, and says whether the store met the scenario's
//! stated append rate. Rounds and failures as in every command
//! (`crate::rounds`).

use walrus_wal::{FsyncSchedule, ReadConsistency};

use crate::bench::store_config;
use crate::config::Settings;
use crate::error::BenchError;
use crate::format::{self, text_table};
use crate::rounds::{
    empty_stats, ops_cell, round_rows, rounds_note, run_env, run_rounds, shown, spread_cell,
    CommandOutput, OpenKind, RoundCase, RoundColumns,
};
use crate::runner::{CellOutcome, Workload};
use crate::stores::{backend_label, StoreKind};
use crate::workload::{Rates, ReadMode, ReadSpec, TopicMode, WriteSpec};

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

pub(crate) fn run_scenarios(
    settings: &Settings,
    open: &OpenKind<'_>,
) -> Result<CommandOutput, BenchError> {
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
                format::group_digits(r.read_ops_per_sec),
                format::group_digits(r.required_ops_per_sec),
                if r.meets_requirement { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    out.text = text_table(
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
    out.set_rows(&rows)?;
    Ok(out)
}
