//! Rounds: every case of a command on every store, `WALRUS_ROUNDS` times,
//! the stores alternated, and the one round a table row shows.
//!
//! Every command (`compare`, the write, batch, read and scaling benchmarks,
//! the scenarios) runs its cells through [`run_rounds`] and picks its rows
//! with [`round_rows`], so they share one methodology:
//!
//! - inside a round each case runs on every store, in an order rotated by
//!   round and case, so no store always runs first or after the same
//!   neighbour, and a slow drift of the machine (page cache filling, thermal
//!   throttling, a neighbour's I/O) spreads over all stores;
//! - a `median` row is one whole round, the one whose throughput is the
//!   median (the lower middle for an even count), so a row never pairs one
//!   round's throughput with another's p99; the min-max throughput over the
//!   rounds stands beside it.

use std::path::{Path, PathBuf};

use walrus_wal::{LogStore, StoreConfig};

use crate::config::Settings;
use crate::error::BenchError;
use crate::host::DiskProbe;
use crate::progress::Progress;
use crate::runner::{run_cell, CellOutcome, RunEnv, Workload};
use crate::stores::StoreKind;
use crate::workload::PhaseStats;

/// Opens a store of any kind: the adapters in production, doubles in tests.
pub type OpenKind<'a> =
    dyn Fn(StoreKind, &Path, StoreConfig) -> walrus_wal::Result<Box<dyn LogStore>> + 'a;

/// What a benchmark command produced; `crate::report` writes it out.
#[derive(Debug, Default)]
pub struct CommandOutput {
    /// Files written (CSV, Markdown, host figures, sidecar), once the
    /// report is written.
    pub files: Vec<PathBuf>,
    /// Tables and notes for the terminal.
    pub text: String,
    /// One line per cell that failed; non-empty means the run failed.
    pub failures: Vec<String>,
    /// Every row, as CSV text with its header; `None` when no cell ran.
    pub csv: Option<String>,
    /// `compare`'s Markdown report.
    pub markdown: Option<String>,
    /// The host description, when the command made one (else the report
    /// describes the host of the data directory).
    pub host: Option<String>,
    /// `compare`'s disk probe.
    pub disk: Option<DiskProbe>,
}

impl CommandOutput {
    /// Keeps `rows` as the command's CSV (nothing when there are none: an
    /// empty file would only look like a result).
    pub(crate) fn set_rows<T: serde::Serialize>(&mut self, rows: &[T]) -> Result<(), BenchError> {
        if !rows.is_empty() {
            let text = crate::format::csv_text(rows)
                .map_err(|e| BenchError::Other(format!("encoding the CSV: {e}")))?;
            self.csv = Some(text);
        }
        Ok(())
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

/// Runs one cell, announcing it. A failure (a store call's error, wrong
/// data read back, or an ERROR the store logged while the cell ran) is
/// returned as its one-line reason instead of ending the command, so one
/// broken store costs one cell.
pub(crate) fn announce_and_run(
    open: &OpenKind<'_>,
    req: CellRequest<'_>,
    env: &RunEnv,
) -> Result<CellOutcome, String> {
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
    let mark = crate::logs::mark();
    let result = match workload {
        // Walrus runs natively on the async front end, not through `open`.
        Workload::AsyncWrite(spec) => crate::runner::run_async_cell(
            crate::runner::AsyncOpen::Kind(kind),
            &kind.to_string(),
            config,
            spec,
            env,
        ),
        _ => run_cell(&opener, &kind.to_string(), config, workload, env),
    };
    let logged = crate::logs::claim_since(mark);
    env.progress.cell_done();
    let result = match (result, logged.first()) {
        (Err(e), _) => Err(e.to_string()),
        (Ok(_), Some(first)) => Err(format!(
            "the store logged {} error(s) during the cell, the first: {first}",
            logged.len()
        )),
        (Ok(o), None) => Ok(o),
    };
    if let Err(e) = &result {
        env.progress.line(format!("  FAILED: {e}"));
    }
    result
}

/// One case of a command: the same workload under the same settings, run
/// once on every store in every round.
pub(crate) struct RoundCase<'a> {
    /// Names the case in the progress line.
    pub what: String,
    pub config: StoreConfig,
    pub workload: &'a Workload,
}

/// Every round's outcome of one case on one store, in round order; a
/// failed round holds its one-line reason.
pub(crate) type Rounds = Vec<Result<CellOutcome, String>>;

/// The store's position in round `round` of case `case`: the order rotates
/// by round and by case.
fn store_at(position: usize, round: usize, case: usize, stores: usize) -> usize {
    (position + round + case) % stores
}

/// Runs `settings.rounds` rounds of every case on every store of
/// `settings.stores`, alternated. Returns `results[case][store]`, one
/// outcome per round; each failure is also a line of `failures`.
pub(crate) fn run_rounds(
    settings: &Settings,
    open: &OpenKind<'_>,
    cases: &[RoundCase<'_>],
    env: &RunEnv,
    failures: &mut Vec<String>,
) -> Vec<Vec<Rounds>> {
    let stores = &settings.stores;
    let mut results: Vec<Vec<Rounds>> = vec![vec![Vec::new(); stores.len()]; cases.len()];
    let total = settings.rounds * cases.len() * stores.len();
    let mut n = 0;
    for round in 0..settings.rounds {
        for (ci, case) in cases.iter().enumerate() {
            for k in 0..stores.len() {
                let si = store_at(k, round, ci, stores.len());
                n += 1;
                let what = format!("round {}/{}: {}", round + 1, settings.rounds, case.what);
                let outcome = announce_and_run(
                    open,
                    CellRequest {
                        kind: stores[si],
                        config: case.config,
                        workload: case.workload,
                        position: (n, total),
                        what: &what,
                    },
                    env,
                );
                if let Err(e) = &outcome {
                    failures.push(format!("{} {what}: {e}", stores[si]));
                }
                results[ci][si].push(outcome);
            }
        }
    }
    results
}

/// Which round a median row is, and the spread beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MedianRound {
    /// 0-based.
    pub round: usize,
    pub min_ops: u64,
    pub max_ops: u64,
}

/// The index of the median of `xs` (the lower middle for an even count).
fn median_index(xs: &[f64]) -> Option<usize> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    order.get((xs.len().max(1) - 1) / 2).copied()
}

/// The median round of `rounds` by the ops/s of the phase `measured`
/// picks, whole; `None` if any round failed (a median of the rounds that
/// happened to succeed would hide the failure).
pub(crate) fn median_round(
    rounds: &[Result<CellOutcome, String>],
    measured: impl Fn(&CellOutcome) -> &PhaseStats,
) -> Option<MedianRound> {
    let ok: Vec<&CellOutcome> = rounds
        .iter()
        .map(|r| r.as_ref().ok())
        .collect::<Option<_>>()?;
    let ops: Vec<u64> = ok
        .iter()
        .map(|o| measured(o).ops_per_sec().round() as u64)
        .collect();
    let as_f64: Vec<f64> = ops.iter().map(|&x| x as f64).collect();
    Some(MedianRound {
        round: median_index(&as_f64)?,
        min_ops: ops.iter().copied().min().unwrap_or(0),
        max_ops: ops.iter().copied().max().unwrap_or(0),
    })
}

/// The trailing columns every command's CSV rows carry (after the guide's
/// columns and their own): which round a row is and how it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoundColumns {
    /// `1`, `2`, ... or `median`.
    pub round: String,
    /// `ok`, or `failed: <why>`.
    pub status: String,
    /// On a `median` row: which round (1-based) every figure is from.
    pub median_of_round: String,
    /// On a `median` row: the lowest and highest ops/s over the rounds.
    pub ops_min: u64,
    pub ops_max: u64,
}

/// The CSV rows of one case on one store: one per round (a failed one with
/// no outcome and its reason in `status`), then the median round's, whole,
/// when every round succeeded.
pub(crate) fn round_rows(
    rounds: &[Result<CellOutcome, String>],
    measured: impl Fn(&CellOutcome) -> &PhaseStats,
) -> Vec<(RoundColumns, Option<&CellOutcome>)> {
    let mut out: Vec<(RoundColumns, Option<&CellOutcome>)> = rounds
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let status = match r {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("failed: {e}"),
            };
            let cols = RoundColumns {
                round: (i + 1).to_string(),
                status,
                median_of_round: String::new(),
                ops_min: 0,
                ops_max: 0,
            };
            (cols, r.as_ref().ok())
        })
        .collect();
    if let Some(m) = median_round(rounds, measured) {
        let cols = RoundColumns {
            round: "median".into(),
            status: "ok".into(),
            median_of_round: (m.round + 1).to_string(),
            ops_min: m.min_ops,
            ops_max: m.max_ops,
        };
        out.push((cols, rounds[m.round].as_ref().ok()));
    }
    out
}

/// The first failure among `rounds`, for a table's `FAILED` cell.
pub(crate) fn first_failure(rounds: &[Result<CellOutcome, String>]) -> Option<&str> {
    rounds
        .iter()
        .find_map(|r| r.as_ref().err().map(String::as_str))
}

/// A row's figures when its round failed: zeros (its status says why).
pub(crate) fn empty_stats() -> &'static PhaseStats {
    static EMPTY: std::sync::OnceLock<PhaseStats> = std::sync::OnceLock::new();
    EMPTY.get_or_init(PhaseStats::default)
}

/// Whether a row goes into the terminal table: the medians, and a round
/// that failed (its case has no median).
pub(crate) fn shown(round: &str, status: &str) -> bool {
    round == "median" || status != "ok"
}

/// The figure of a shown row: its ops/s, or why it failed.
pub(crate) fn ops_cell(ops: u64, status: &str) -> String {
    if status == "ok" {
        crate::format::group_digits(ops)
    } else {
        format!("FAILED ({status})")
    }
}

pub(crate) fn spread_cell(round: &str, min: u64, max: u64) -> String {
    if round == "median" {
        format!(
            "{}-{}",
            crate::format::group_digits(min),
            crate::format::group_digits(max)
        )
    } else {
        "-".into()
    }
}

/// The line under every table: what a row is.
pub(crate) fn rounds_note(settings: &Settings) -> String {
    format!(
        "(each row: the median of {} alternated round(s) by ops/s, whole, with the min-max \
         over the rounds; every round is in the CSV)\n",
        settings.rounds
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_leads_a_different_round_of_a_case() {
        for stores in 1..6 {
            for case in 0..4 {
                let leaders: std::collections::BTreeSet<usize> = (0..stores)
                    .map(|round| store_at(0, round, case, stores))
                    .collect();
                assert_eq!(leaders.len(), stores);
            }
        }
    }

    #[test]
    fn the_median_is_the_lower_middle() {
        assert_eq!(median_index(&[3.0, 1.0, 2.0]), Some(2));
        assert_eq!(median_index(&[4.0, 1.0, 3.0, 2.0]), Some(3));
        assert_eq!(median_index(&[]), None);
    }
}
