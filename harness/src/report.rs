//! Result rows, their CSV files and terminal tables.
//!
//! Field order of each row struct *is* the CSV column order; the first
//! columns are exactly those the benchmarking guide documents, extra ones
//! follow. A test pins the headers.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::BenchError;
use crate::metrics::LatencySummary;
use crate::workload::PhaseStats;

/// One row of `write_benchmark_*.csv` and `batch_benchmark_*.csv`.
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

/// The duration a `Duration` prints as in notes ("2s", "1.5s").
pub(crate) fn secs(d: std::time::Duration) -> String {
    format!("{}s", round(d.as_secs_f64(), 2))
}

pub(crate) fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// Writes `rows` to `<out_dir>/<stem>_<timestamp>.csv`, never overwriting.
pub fn write_csv<T: Serialize>(
    out_dir: &Path,
    stem: &str,
    rows: &[T],
) -> Result<PathBuf, BenchError> {
    let path = fresh_path(out_dir, stem, "csv")?;
    let io_err = |e: csv::Error| BenchError::Other(format!("writing {}: {e}", path.display()));
    let mut w = csv::Writer::from_path(&path).map_err(io_err)?;
    for row in rows {
        w.serialize(row).map_err(io_err)?;
    }
    w.flush()
        .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
    Ok(path)
}

/// The workspace's lock file as it was when the harness was built: the
/// exact library versions the stores were compiled from.
const CARGO_LOCK: &str = include_str!("../../Cargo.lock");

/// `version` of package `name` in `Cargo.lock`, if it is there.
pub fn locked_version(name: &str) -> Option<String> {
    let want = format!("name = \"{name}\"");
    let mut lines = CARGO_LOCK.lines();
    while let Some(line) = lines.next() {
        if line.trim() == want {
            let v = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(v.trim_end_matches('"').to_string());
        }
    }
    None
}

/// `git rev-parse HEAD` of the working directory, `+dirty` if the tree has
/// changes; `unknown` outside a checkout.
pub fn git_commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(head) => match run(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{head}+dirty"),
            _ => head,
        },
        None => "unknown".into(),
    }
}

/// The command line that produced a result: the `WALRUS_*` and shorthand
/// variables that were set, then the program and its arguments, so pasting
/// it reruns the run.
pub fn command_line() -> String {
    const SHORTHANDS: [&str; 20] = [
        "STORE",
        "STORES",
        "FSYNC",
        "THREADS",
        "DURATION",
        "ROUNDS",
        "WARMUP",
        "ENTRY_SIZE",
        "BATCH",
        "CONSISTENCY",
        "BACKEND",
        "TOPICS",
        "RUST_LOG",
        "RATE",
        "COLD",
        "FORMAT",
        "ASYNC",
        "READ_ENTRIES",
        "LONGRUN_BYTES",
        "RATES",
    ];
    let mut vars: Vec<String> = std::env::vars()
        .filter(|(k, _)| {
            // WALRUS_BUILD_* are cargo's build-script variables, which
            // `cargo run` passes on; they are not settings.
            (k.starts_with("WALRUS_") && !k.starts_with("WALRUS_BUILD_"))
                || SHORTHANDS.contains(&k.as_str())
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vars.sort();
    vars.extend(std::env::args());
    vars.join(" ")
}

/// What a result needs to be reproduced, written beside every CSV as
/// `<csv minus .csv>.json`.
#[derive(Serialize)]
pub struct Sidecar<'a> {
    pub csv: String,
    pub command_line: String,
    pub git_commit: String,
    /// The commit the binary was built from.
    pub build_commit: &'static str,
    pub rustc: &'static str,
    pub profile: &'static str,
    pub host: &'a str,
    pub disk_probe: Option<&'a crate::host::DiskProbe>,
    /// Store name -> the versions of the crates its library comes from
    /// (`walrus` for the engine and the baselines built in this tree).
    pub versions: std::collections::BTreeMap<String, String>,
    pub settings: SidecarSettings,
}

/// Every setting of the run, spelled as the command line takes them.
#[derive(Serialize)]
pub struct SidecarSettings {
    pub command: String,
    pub stores: Vec<String>,
    pub fsync: Vec<String>,
    pub threads: Vec<usize>,
    pub duration_s: f64,
    pub write_duration_s: f64,
    pub read_duration_s: f64,
    pub warmup_s: f64,
    /// Open-loop target rate (appends/s per cell); null: closed loop.
    pub rate: Option<f64>,
    /// `latency`'s offered loads.
    pub rates: Vec<f64>,
    pub rounds: usize,
    pub batch_sizes: Vec<usize>,
    pub entry_size: usize,
    pub consistency: Vec<String>,
    pub topics: String,
    pub data_dir: String,
    pub async_writes: bool,
    pub cold_reads: bool,
    pub read_entries: u64,
    pub longrun_bytes: u64,
    pub debug: String,
}

impl SidecarSettings {
    pub fn of(s: &crate::Settings) -> SidecarSettings {
        SidecarSettings {
            command: format!("{:?}", s.command).to_ascii_lowercase(),
            stores: s.stores.iter().map(|k| k.to_string()).collect(),
            fsync: s.fsync.iter().map(|f| f.to_string()).collect(),
            threads: s.threads.clone(),
            duration_s: s.duration.as_secs_f64(),
            write_duration_s: s.write_duration.as_secs_f64(),
            read_duration_s: s.read_duration.as_secs_f64(),
            warmup_s: s.warmup.as_secs_f64(),
            rate: s.rate,
            rates: s.rates.clone(),
            rounds: s.rounds,
            batch_sizes: s.batch_sizes.clone(),
            entry_size: s.entry_size,
            consistency: s.consistency.iter().map(|c| c.to_string()).collect(),
            topics: s.topics.to_string(),
            data_dir: s.data_dir.display().to_string(),
            async_writes: s.async_writes,
            cold_reads: s.cold_reads,
            read_entries: s.read_entries,
            longrun_bytes: s.longrun_bytes,
            debug: format!("{s:?}"),
        }
    }
}

/// The library versions of each store in `stores`, from its registry entry's
/// crates as `Cargo.lock` pins them.
pub fn store_versions(stores: &[crate::StoreKind]) -> std::collections::BTreeMap<String, String> {
    let walrus = locked_version("walrus-wal").unwrap_or_else(|| "unknown".into());
    stores
        .iter()
        .map(|kind| {
            let crates = kind.info().crates;
            let v = if crates.is_empty() {
                format!("walrus-wal {walrus} (this tree)")
            } else {
                crates
                    .iter()
                    .map(|c| {
                        format!(
                            "{c} {}",
                            locked_version(c).unwrap_or_else(|| "unknown".into())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            (kind.to_string(), v)
        })
        .collect()
}

/// Writes the sidecar of `csv_path` and returns its path.
pub fn write_sidecar(
    csv_path: &Path,
    settings: &crate::Settings,
    host: &str,
    disk: Option<&crate::host::DiskProbe>,
) -> Result<PathBuf, BenchError> {
    let path = csv_path.with_extension("json");
    let sidecar = Sidecar {
        csv: csv_path.display().to_string(),
        command_line: command_line(),
        git_commit: git_commit(),
        build_commit: env!("WALRUS_BUILD_COMMIT"),
        rustc: env!("WALRUS_BUILD_RUSTC"),
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        host,
        disk_probe: disk,
        versions: store_versions(&settings.stores),
        settings: SidecarSettings::of(settings),
    };
    let json = serde_json::to_string_pretty(&sidecar)
        .map_err(|e| BenchError::Other(format!("encoding {}: {e}", path.display())))?;
    fs::write(&path, json + "\n")
        .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
    Ok(path)
}

/// `FORMAT=json`: the run's results as one JSON object, `{"sidecar": ...,
/// "rows": [...]}`, from the CSV and sidecar it wrote (`files`); numbers
/// are JSON numbers, everything else strings.
pub fn results_json(files: &[PathBuf]) -> Result<String, BenchError> {
    let Some(csv_path) = files
        .iter()
        .find(|f| f.extension().is_some_and(|e| e == "csv"))
    else {
        return Ok("{\"sidecar\": null, \"rows\": []}".into());
    };
    let bad = |e: csv::Error| BenchError::Other(format!("reading {}: {e}", csv_path.display()));
    let mut reader = csv::Reader::from_path(csv_path).map_err(bad)?;
    let header = reader.headers().map_err(bad)?.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(bad)?;
        let row: serde_json::Map<String, serde_json::Value> = header
            .iter()
            .zip(record.iter())
            .map(|(k, v)| {
                let value = v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(
                        || serde_json::Value::String(v.into()),
                        serde_json::Value::Number,
                    );
                (k.to_string(), value)
            })
            .collect();
        rows.push(serde_json::Value::Object(row));
    }
    let sidecar = fs::read_to_string(csv_path.with_extension("json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    serde_json::to_string_pretty(&serde_json::json!({ "sidecar": sidecar, "rows": rows }))
        .map_err(|e| BenchError::Other(format!("encoding JSON: {e}")))
}

/// The closing lines of every Markdown report: how to rerun it.
pub fn command_footer(settings: &crate::Settings) -> String {
    let _ = settings;
    format!(
        "\nProduced by `{}` at commit {}.\n",
        command_line(),
        git_commit()
    )
}

/// `<out_dir>/<stem>_<YYYYmmdd_HHMMSS>[_n].<ext>`, creating `out_dir`.
pub fn fresh_path(out_dir: &Path, stem: &str, ext: &str) -> Result<PathBuf, BenchError> {
    fs::create_dir_all(out_dir)
        .map_err(|e| BenchError::io(format!("creating {}", out_dir.display()), e))?;
    let ts = timestamp();
    let mut path = out_dir.join(format!("{stem}_{ts}.{ext}"));
    let mut n = 2;
    while path.exists() {
        path = out_dir.join(format!("{stem}_{ts}_{n}.{ext}"));
        n += 1;
    }
    Ok(path)
}

/// Local time as `YYYYmmdd_HHMMSS`, sortable in file listings.
pub fn timestamp() -> String {
    // SAFETY: time(NULL) has no preconditions; localtime_r writes only into
    // the zeroed tm we own and reads the time_t we pass.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    format!(
        "{:04}{:02}{:02}_{:02}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// A plain aligned text table, for the terminal.
pub fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(&format!("{cell:>w$}"));
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

/// A Markdown table.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out += &format!("|{}\n", "---|".repeat(header.len()));
    for row in rows {
        out += &format!("| {} |\n", row.join(" | "));
    }
    out
}

/// Thousands separators for ops/s, so tables read at a glance.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of<T: Serialize>(row: T) -> String {
        let mut w = csv::Writer::from_writer(vec![]);
        w.serialize(row).unwrap();
        let bytes = w.into_inner().unwrap();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string()
    }

    fn stats() -> PhaseStats {
        PhaseStats {
            entries: 10,
            calls: 10,
            bytes: 10_240,
            elapsed: std::time::Duration::from_secs(1),
            ..PhaseStats::default()
        }
    }

    #[test]
    fn csv_headers_start_with_the_guides_columns() {
        let r = Rates::of(&stats());
        let l = r.latency;
        let write = WriteRow {
            threads: 1,
            fsync_mode: "no-fsync".into(),
            ops_per_sec: r.ops_per_sec,
            mb_per_sec: r.mb_per_sec,
            avg_latency_us: l.avg_us,
            p50_us: l.p50_us,
            p99_us: l.p99_us,
            p999_us: l.p999_us,
            max_us: l.max_us,
            store: "walrus-fd".into(),
            backend: "fd".into(),
            entry_size: 1024,
            batch_size: 1,
            topics: "per-thread".into(),
            cpu_usage: 0.0,
            entries: 10,
            verified_entries: 10,
            elapsed_s: 1.0,
            disk_bytes: 0,
            space_amp: 0.0,
            round: "median".into(),
            status: "ok".into(),
            median_of_round: "1".into(),
            ops_min: 0,
            ops_max: 0,
            offered_rate: None,
        };
        assert!(header_of(write)
            .starts_with("threads,fsync_mode,ops_per_sec,mb_per_sec,avg_latency_us,"));
        let read = ReadRow {
            phase: "read".into(),
            threads: 1,
            ops_per_sec: 1,
            mb_per_sec: 0.0,
            avg_latency_us: 0.0,
            p50_us: 0.0,
            p99_us: 0.0,
            p999_us: 0.0,
            max_us: 0.0,
            store: String::new(),
            backend: String::new(),
            fsync_mode: String::new(),
            read_mode: String::new(),
            consistency: String::new(),
            entry_size: 0,
            batch_size: 0,
            cpu_usage: 0.0,
            entries: 0,
            elapsed_s: 0.0,
            round: "median".into(),
            status: "ok".into(),
            median_of_round: "1".into(),
            ops_min: 0,
            ops_max: 0,
        };
        assert!(header_of(read).starts_with("phase,threads,ops_per_sec,mb_per_sec,avg_latency_us,"));
        let scaling = ScalingRow {
            threads: 1,
            ops_per_sec: 1,
            mb_per_sec: 0.0,
            cpu_usage: 0.0,
            fsync_mode: String::new(),
            avg_latency_us: 0.0,
            p50_us: 0.0,
            p99_us: 0.0,
            p999_us: 0.0,
            max_us: 0.0,
            store: String::new(),
            backend: String::new(),
            entry_size: 0,
            batch_size: 0,
            topics: String::new(),
            disk_bytes: 0,
            space_amp: 0.0,
            round: "median".into(),
            status: "ok".into(),
            median_of_round: "1".into(),
            ops_min: 0,
            ops_max: 0,
        };
        assert!(header_of(scaling).starts_with("threads,ops_per_sec,mb_per_sec,cpu_usage,"));
    }

    #[test]
    fn rates_round_for_humans() {
        let r = Rates::of(&stats());
        assert_eq!(r.ops_per_sec, 10);
        assert_eq!(r.mb_per_sec, 0.0);
        assert_eq!(group_digits(1_234_567), "1,234,567");
        assert_eq!(group_digits(999), "999");
    }

    #[test]
    fn fresh_paths_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_csv::<WriteRow>(dir.path(), "x", &[]).unwrap();
        let b = write_csv::<WriteRow>(dir.path(), "x", &[]).unwrap();
        assert_ne!(a, b);
        assert!(a.file_name().unwrap().to_str().unwrap().starts_with("x_2"));
    }
}
