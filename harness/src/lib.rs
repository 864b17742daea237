//! The benchmark harness: workloads written once against
//! [`walrus_wal::LogStore`], their configuration from the benchmarking
//! guide's environment variables or CLI flags, verification of everything
//! read back, and the CSV/Markdown reports.
//!
//! Every store runs the same code path: a number for one store and a
//! number for another differ only by the store. A workload that reads back
//! wrong data fails instead of reporting a throughput.

mod async_workload;
mod bench;
pub mod cli;
mod compare;
mod config;
mod error;
mod host;
pub mod logs;
mod longrun;
mod metrics;
mod payload;
mod progress;
mod report;
mod rounds;
mod runner;
mod stores;
mod workload;

pub use bench::run;
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
