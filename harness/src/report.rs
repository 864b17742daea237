//! The reports: what a command produced ([`CommandOutput`]) written to
//! the output directory (the CSV, its sidecar JSON with everything needed
//! to reproduce it, compare's Markdown and host figures), the command line
//! and commit under every table, and `FORMAT=json`.
//!
//! The last layer of the harness: it reads the commands' results and
//! nothing imports it but the front ends.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Settings;
use crate::error::BenchError;
use crate::host::{write_host_json, DiskProbe};
use crate::rounds::CommandOutput;
use crate::stores::StoreKind;

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
    pub disk_probe: Option<&'a DiskProbe>,
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
    pub fn of(s: &Settings) -> SidecarSettings {
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
pub fn store_versions(stores: &[StoreKind]) -> std::collections::BTreeMap<String, String> {
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
    settings: &Settings,
    host: &str,
    disk: Option<&DiskProbe>,
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
pub fn command_footer(settings: &Settings) -> String {
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
    let ts = crate::format::timestamp();
    let mut path = out_dir.join(format!("{stem}_{ts}.{ext}"));
    let mut n = 2;
    while path.exists() {
        path = out_dir.join(format!("{stem}_{ts}_{n}.{ext}"));
        n += 1;
    }
    Ok(path)
}

/// Writes what `out` holds to `settings.out_dir`: the CSV as
/// `<stem>_<timestamp>.csv` (never overwriting), compare's Markdown beside
/// it and its host figures as `.host.json`, and the sidecar `.json`; then
/// ends the Markdown and the terminal text with the command and commit.
/// The paths go to `out.files`: CSV, Markdown, host figures, sidecar.
pub fn write(settings: &Settings, out: &mut CommandOutput) -> Result<(), BenchError> {
    let footer = command_footer(settings);
    if let Some(csv) = &out.csv {
        let stem = settings.command.csv_stem();
        let csv_path = fresh_path(&settings.out_dir, stem, "csv")?;
        fs::write(&csv_path, csv)
            .map_err(|e| BenchError::io(format!("writing {}", csv_path.display()), e))?;
        out.files.push(csv_path.clone());
        let host = out
            .host
            .clone()
            .unwrap_or_else(|| crate::host::hardware_line(&settings.data_dir));
        if let Some(md) = &out.markdown {
            let md_path = csv_path.with_extension("md");
            fs::write(&md_path, format!("{md}{footer}"))
                .map_err(|e| BenchError::io(format!("writing {}", md_path.display()), e))?;
            out.files.push(md_path);
        }
        if let Some(disk) = &out.disk {
            out.files.push(write_host_json(&csv_path, &host, disk)?);
        }
        out.files.push(write_sidecar(
            &csv_path,
            settings,
            &host,
            out.disk.as_ref(),
        )?);
    }
    out.text += &footer;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_paths_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let a = fresh_path(dir.path(), "x", "csv").unwrap();
        std::fs::write(&a, "").unwrap();
        let b = fresh_path(dir.path(), "x", "csv").unwrap();
        assert_ne!(a, b);
        assert!(a.file_name().unwrap().to_str().unwrap().starts_with("x_2"));
    }
}
