//! The benchmark harness: workloads written once against
//! [`walrus_wal::LogStore`], their configuration from the benchmarking
//! guide's environment variables or CLI flags, verification of everything
//! read back, and the CSV/Markdown reports.
//!
//! Every store runs the same code path: a number for one store and a
//! number for another differ only by the store. A workload that reads back
//! wrong data fails instead of reporting a throughput.
//!
//! # Layers
//!
//! The modules read top-down, each importing only modules of its own layer
//! listed before it or of the layers above ([`LAYERS`]; a test checks it):
//!
//! 1. **Settings**: `format` (text helpers), `stores` (which stores, how
//!    they open), `config` (the guide's variables and flags), `logs`,
//!    `progress`.
//! 2. **Workloads**: `payload` (what entries contain, how they are
//!    checked), `metrics`, `error`, `host` (the disk probe), `workload`
//!    (timed writes and reads), `async_workload`, `longrun`.
//! 3. **The cell runner**: `runner` (one cell: fresh directory, open,
//!    workload, verification, disk use), `rounds` (every case on every
//!    store, alternated rounds, median rows).
//! 4. **The commands**: `bench` (write, batch, read, scaling, latency),
//!    `scenarios`, `bench_longrun`, `compare`, then `commands` (dispatch).
//! 5. **The reports**: `report` (CSV, sidecar JSON, Markdown, `FORMAT=json`).
//!
//! Then the front ends: [`run`] below and `cli`.

// 1. Settings (order within a layer: `LAYERS`).
mod config;
mod format;
pub mod logs;
mod progress;
mod stores;

// 2. Workloads.
mod async_workload;
mod error;
mod host;
mod longrun;
mod metrics;
mod payload;
mod workload;

// 3. The cell runner.
mod rounds;
mod runner;

// 4. The commands.
mod bench;
mod bench_longrun;
mod commands;
mod compare;
mod scenarios;

// 5. The reports.
mod report;

// The front ends: `run` below, and the binaries' command line.
pub mod cli;

pub use compare::{cell_count, guarantee};
pub use config::{parse_duration, BenchArgs, Command, ConfigError, Settings};
pub use error::BenchError;
pub use host::{hardware_line, probe_disk, DiskProbe};
pub use metrics::LatencySummary;
pub use payload::{PayloadGen, TopicVerifier, VerifyError, PAYLOAD_HEADER_BYTES};
pub use progress::Progress;
pub use report::results_json;
pub use rounds::{CommandOutput, OpenKind};
pub use runner::{run_cell, CellOutcome, Opener, RunEnv, Workload};
pub use stores::StoreKind;
pub use workload::{write_phase, PhaseStats, ReadMode, ReadSpec, TopicMode, WriteSpec, Written};

/// The harness's modules in import order, by layer: a module may import
/// (`crate::<module>`) only modules before it in this list.
pub const LAYERS: [(&str, &[&str]); 5] = [
    (
        "settings",
        &["format", "stores", "config", "logs", "progress"],
    ),
    (
        "workloads",
        &[
            "payload",
            "metrics",
            "error",
            "host",
            "workload",
            "async_workload",
            "longrun",
        ],
    ),
    ("cell runner", &["runner", "rounds"]),
    (
        "commands",
        &["bench", "scenarios", "bench_longrun", "compare", "commands"],
    ),
    ("reports", &["report"]),
];

/// Runs the benchmark `settings.command` names with stores from `open`
/// (the adapters in production, doubles in tests), then writes its report
/// (CSV, sidecar, compare's Markdown) and returns what it produced.
pub fn run(settings: &Settings, open: &OpenKind<'_>) -> Result<CommandOutput, BenchError> {
    let mut out = commands::run(settings, open)?;
    report::write(settings, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::LAYERS;

    /// Every module's source, by name.
    const SOURCES: [(&str, &str); 21] = [
        ("format", include_str!("format.rs")),
        ("stores", include_str!("stores.rs")),
        ("config", include_str!("config.rs")),
        ("logs", include_str!("logs.rs")),
        ("progress", include_str!("progress.rs")),
        ("payload", include_str!("payload.rs")),
        ("metrics", include_str!("metrics.rs")),
        ("error", include_str!("error.rs")),
        ("host", include_str!("host.rs")),
        ("workload", include_str!("workload.rs")),
        ("async_workload", include_str!("async_workload.rs")),
        ("longrun", include_str!("longrun.rs")),
        ("runner", include_str!("runner.rs")),
        ("rounds", include_str!("rounds.rs")),
        ("bench", include_str!("bench.rs")),
        ("scenarios", include_str!("scenarios.rs")),
        ("bench_longrun", include_str!("bench_longrun.rs")),
        ("compare", include_str!("compare.rs")),
        ("commands", include_str!("commands.rs")),
        ("report", include_str!("report.rs")),
        ("cli", include_str!("cli.rs")),
    ];

    /// The modules a source imports: every `crate::<name>` outside its
    /// tests and comments.
    fn imports(source: &str) -> Vec<String> {
        let code = source.split("#[cfg(test)]").next().unwrap();
        let mut out = Vec::new();
        for line in code.lines() {
            let line = line.split("//").next().unwrap();
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    }

    #[test]
    fn no_module_imports_one_below_it() {
        let order: Vec<&str> = LAYERS.iter().flat_map(|(_, m)| m.iter().copied()).collect();
        for (name, source) in SOURCES {
            // The front end comes after every layer.
            let mine = order.iter().position(|m| *m == name).unwrap_or(order.len());
            for import in imports(source) {
                if import == "run" && mine == order.len() {
                    continue; // a front end calling the one above it
                }
                let theirs = order
                    .iter()
                    .position(|m| *m == import)
                    .unwrap_or_else(|| panic!("{name} imports crate::{import}, in no layer"));
                assert!(
                    theirs < mine,
                    "{name} imports crate::{import}, which comes after it in LAYERS"
                );
            }
        }
        // Every module of the crate is checked.
        let listed = SOURCES.len();
        assert_eq!(
            listed,
            order.len() + 1,
            "a module is missing from SOURCES or LAYERS"
        );
    }

    #[test]
    fn the_check_sees_imports_and_skips_comments_and_tests() {
        let src = "use crate::config::Settings;\n// crate::report\nfn f() { crate::format::round(1.0, 1); }\n#[cfg(test)]\nuse crate::bench;";
        assert_eq!(imports(src), ["config", "format"]);
    }
}
