//! Benchmark settings: the guide's environment variables and the equivalent
//! command-line flags, resolved by one pure function.
//!
//! [`Settings::resolve`] takes the parsed flags and a *map* of environment
//! variables rather than reading the process environment, so every rule
//! (precedence, defaults per command, what is malformed) is unit-tested
//! without touching global state. A malformed value is reported as one line
//! that names the variable or flag it came from, before any work starts.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use walrus_wal::{FsyncSchedule, ReadConsistency, MAX_BATCH_ENTRIES};

use crate::stores::StoreKind;

/// The smallest entry the harness writes: its verification header (magic,
/// writer, seq), which `crate::payload` lays out in exactly these bytes.
pub const PAYLOAD_HEADER_BYTES: usize = 16;

/// Largest entry the harness generates. Bounds the per-writer payload
/// pattern and the memory one batch takes.
pub const MAX_ENTRY_SIZE_BYTES: usize = 64 << 20;
/// Largest batch, in bytes, one writer builds at a time: 4 GiB, about
/// Walrus's limit for one atomic batch, so the guide's `ENTRY_SIZE=1048576
/// BATCH=2000` (2 GB per writer) runs. Each writer holds its batch's buffer.
const MAX_BATCH_BYTES: usize = 4 << 30;
const MAX_THREADS: usize = 1024;
/// What a bare `walrus` means without `BACKEND`: the engine's own default
/// (`walrus_wal::Backend::from_env`). Resolved here so every report names
/// the backend that actually ran.
const ENGINE_DEFAULT_BACKEND: &str = "fd";
const MAX_ROUNDS: usize = 100;

/// The benchmark a run performs. Defaults depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Write,
    Read,
    Scaling,
    Batch,
    Compare,
    Scenarios,
    /// `LONGRUN_BYTES` written per store while consumers consume it.
    Longrun,
    /// Open-loop write cells at each offered load of `RATES`.
    Latency,
}

impl Command {
    /// Stem of the CSV file the command writes into the output directory.
    pub fn csv_stem(self) -> &'static str {
        match self {
            Command::Write => "write_benchmark",
            Command::Read => "read_benchmark",
            Command::Scaling => "scaling_benchmark",
            Command::Batch => "batch_benchmark",
            Command::Compare => "compare",
            Command::Scenarios => "scenarios",
            Command::Longrun => "longrun",
            Command::Latency => "latency_benchmark",
        }
    }
}

/// How writers map to topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicMode {
    /// Writer i appends to its own topic: no contention between topics.
    PerThread,
    /// All writers append to one topic: contention on a single log.
    Shared,
}

impl fmt::Display for TopicMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicMode::PerThread => "per-thread",
            TopicMode::Shared => "shared",
        })
    }
}

/// Command-line flags. Every flag has an environment twin (named in its
/// help); a flag wins over its variable. Values are kept as strings here so
/// that flags and variables go through the same parser and error messages.
#[derive(Args, Clone, Debug, Default)]
pub struct BenchArgs {
    /// Stores to run: walrus, walrus-mmap, walrus-fd, rocksdb, sled, raw, or a
    /// comma list [env: STORE / STORES]
    #[arg(long, value_name = "LIST")]
    pub store: Option<String>,
    /// Fsync schedule(s): sync-each, no-fsync, async (=1000ms), <n>ms, or a
    /// comma list [env: FSYNC / WALRUS_FSYNC]
    #[arg(long, value_name = "LIST")]
    pub fsync: Option<String>,
    /// Thread count, range or list: 8, 1-16, 1,2,4 [env: THREADS / WALRUS_THREADS]
    #[arg(long, value_name = "N|A-B|LIST")]
    pub threads: Option<String>,
    /// Measured duration of each run: 30s, 2m, 1h, 500ms [env: WALRUS_DURATION]
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Write phase of the read benchmark [env: WALRUS_WRITE_DURATION]
    #[arg(long, value_name = "DURATION")]
    pub write_duration: Option<String>,
    /// Read phase of the read benchmark [env: WALRUS_READ_DURATION]
    #[arg(long, value_name = "DURATION")]
    pub read_duration: Option<String>,
    /// Uncounted warm-up before each run; 0s disables [env: WALRUS_WARMUP]
    #[arg(long, value_name = "DURATION")]
    pub warmup: Option<String>,
    /// Open loop: appends per second per cell, issued on a fixed schedule;
    /// latency counts from each append's intended start [env: RATE / WALRUS_RATE]
    #[arg(long, value_name = "OPS_PER_SEC")]
    pub rate: Option<String>,
    /// latency only: the offered loads to sweep, appends per second per
    /// cell, comma-separated (default 1000,5000,20000) [env: RATES]
    #[arg(long, value_name = "LIST")]
    pub rates: Option<String>,
    /// Entries per batch (batch writes, batch reads), or a comma list
    /// [env: WALRUS_BATCH_SIZE / BATCH]
    #[arg(long, value_name = "N|LIST")]
    pub batch_size: Option<String>,
    /// Entry size in bytes (suffixes k/KiB, m/MiB accepted) [env: ENTRY_SIZE]
    #[arg(long, value_name = "BYTES")]
    pub entry_size: Option<String>,
    /// Read consistency: strict or at-least-once:<n>, or a comma list
    /// [env: CONSISTENCY]
    #[arg(long, value_name = "LIST")]
    pub consistency: Option<String>,
    /// Walrus storage backend that `walrus` means: mmap or fd
    /// [env: BACKEND / WALRUS_BACKEND]
    #[arg(long, value_name = "mmap|fd")]
    pub backend: Option<String>,
    /// Topic layout of write workloads: per-thread or shared [env: WALRUS_TOPICS]
    #[arg(long, value_name = "per-thread|shared")]
    pub topics: Option<String>,
    /// Alternated rounds of every store per case, for every command; each
    /// table row is the median round [env: WALRUS_ROUNDS]
    #[arg(long, value_name = "N")]
    pub rounds: Option<String>,
    /// Parent of the fresh per-run data directories [env: WALRUS_DATA_DIR]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Where CSV and Markdown results go [env: WALRUS_OUT_DIR]
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<String>,
    /// Suppress progress and engine logs: 1 or 0 [env: WALRUS_QUIET]
    #[arg(long, value_name = "0|1", num_args = 0..=1, default_missing_value = "1")]
    pub quiet: Option<String>,
    /// Keep each run's data directory instead of deleting it: 1 or 0
    /// [env: WALRUS_KEEP_DATA]
    #[arg(long, value_name = "0|1", num_args = 0..=1, default_missing_value = "1")]
    pub keep_data: Option<String>,
    /// compare only: add an async write case beside every write case (N
    /// tasks on one tokio-uring thread, awaiting each append): 1 or 0
    /// [env: ASYNC]
    #[arg(long = "async", value_name = "0|1", num_args = 0..=1, default_missing_value = "1")]
    pub async_writes: Option<String>,
    /// Read cases read cold: close, drop the page cache, reopen, read; 1 or 0
    /// [env: COLD / WALRUS_COLD_READS]
    #[arg(long = "cold", value_name = "0|1", num_args = 0..=1, default_missing_value = "1")]
    pub cold_reads: Option<String>,
    /// longrun only: payload bytes written to each store (suffixes KiB,
    /// MiB, GiB) [env: LONGRUN_BYTES]
    #[arg(long, value_name = "BYTES")]
    pub longrun_bytes: Option<String>,
}

/// Fully resolved settings of one invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub command: Command,
    pub stores: Vec<StoreKind>,
    pub fsync: Vec<FsyncSchedule>,
    pub threads: Vec<usize>,
    pub duration: Duration,
    pub write_duration: Duration,
    /// The read benchmark's populate: `READ_ENTRIES` entries in every store
    /// unless `WALRUS_WRITE_DURATION` (or `--write-duration`) asks for the
    /// guide's timed write phase.
    pub populate_for_duration: bool,
    pub read_duration: Duration,
    pub warmup: Duration,
    /// Open-loop target rate (appends per second per cell, split evenly
    /// over the threads); `None`: closed loop, as fast as the store answers.
    pub rate: Option<f64>,
    /// The offered loads `latency` sweeps (`RATES`); empty for the other
    /// commands.
    pub rates: Vec<f64>,
    pub batch_sizes: Vec<usize>,
    pub entry_size: usize,
    pub consistency: Vec<ReadConsistency>,
    pub topics: TopicMode,
    pub rounds: usize,
    pub data_dir: PathBuf,
    pub out_dir: PathBuf,
    pub quiet: bool,
    pub keep_data: bool,
    /// Async write cases beside the sync ones (`compare` only).
    pub async_writes: bool,
    /// Read cases close, drop the page cache and reopen before reading.
    pub cold_reads: bool,
    /// Entries a `compare` read case populates in every store, over all
    /// its threads (`READ_ENTRIES`, default 200,000).
    pub read_entries: u64,
    /// Payload bytes the long run writes to each store (`LONGRUN_BYTES`,
    /// default 4 GiB).
    pub longrun_bytes: u64,
}

/// A malformed or contradictory setting; `Display` is one line naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// `THREADS=0` or `--threads 0`: where the bad value came from.
    pub origin: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.origin, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// One setting's raw value and where it came from.
struct Raw<'a> {
    origin: String,
    value: &'a str,
}

/// Looks a setting up: the flag first, then each environment name. Empty
/// values count as unset (make passes empty variables through), and two
/// environment spellings that disagree are an error rather than a silent pick.
fn lookup<'a>(
    flag: (&'static str, Option<&'a str>),
    env: &'a HashMap<String, String>,
    names: &[&'static str],
) -> Result<Option<Raw<'a>>, ConfigError> {
    if let Some(value) = flag.1 {
        return Ok(Some(Raw {
            origin: format!("--{} {value}", flag.0),
            value,
        }));
    }
    let mut found: Option<Raw<'a>> = None;
    for name in names {
        let Some(value) = env.get(*name).map(String::as_str) else {
            continue;
        };
        if value.trim().is_empty() {
            continue;
        }
        if let Some(first) = &found {
            if first.value.trim() != value.trim() {
                return Err(ConfigError {
                    origin: format!("{name}={value}"),
                    reason: format!("conflicts with {}", first.origin),
                });
            }
            continue;
        }
        found = Some(Raw {
            origin: format!("{name}={value}"),
            value,
        });
    }
    Ok(found)
}

/// Per-command defaults, chosen so that a bare `make bench-*` finishes in a
/// few minutes and still shows what the guide says the benchmark tests.
struct Defaults {
    threads: &'static str,
    fsync: &'static str,
    duration: Duration,
    batch: &'static str,
    consistency: &'static str,
}

impl Defaults {
    fn of(command: Command) -> Defaults {
        let secs = Duration::from_secs;
        let (threads, fsync, duration, batch, consistency) = match command {
            Command::Write => (
                "1,2,4,8",
                "no-fsync,1000ms,sync-each",
                secs(10),
                "1",
                "strict",
            ),
            Command::Read => (
                "1,4",
                "1000ms",
                secs(10),
                "100",
                "strict,at-least-once:1000",
            ),
            Command::Scaling => ("1-8", "1000ms", secs(10), "1", "strict"),
            Command::Batch => (
                "1,4",
                "no-fsync,1000ms,sync-each",
                secs(10),
                "100,1000",
                "strict",
            ),
            // For compare, the duration is the measured time of each cell:
            // 6 stores x 8 cases x 3 rounds x (2 s + 1 s warm-up + about
            // 0.7 s to open, verify and remove) is about 9-10 minutes.
            Command::Compare => (
                "1,4",
                "no-fsync,1000ms,sync-each",
                secs(2),
                "100",
                "at-least-once:1000",
            ),
            // Scenarios fix their own threads, fsync, entry size and consistency.
            Command::Scenarios => ("8", "1000ms", secs(10), "1", "strict"),
            // The long run is sized in bytes (LONGRUN_BYTES), not time:
            // 2 producers and 2 consumers fill the reference VM's 2 cores.
            Command::Longrun => ("2", "1000ms", secs(10), "1", "at-least-once:1000"),
            // 3 loads x 7 stores x 3 rounds x (3 s + 1 s warm-up + teardown)
            // is about 5 minutes.
            Command::Latency => ("1", "1000ms", secs(3), "1", "strict"),
        };
        Defaults {
            threads,
            fsync,
            duration,
            batch,
            consistency,
        }
    }
}

impl Settings {
    /// Resolves the settings of `command` from flags and an environment map.
    /// Flags win over variables; unset values take the command's defaults.
    pub fn resolve(
        command: Command,
        args: &BenchArgs,
        env: &HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let d = Defaults::of(command);
        let setting = |flag: &'static str,
                       value: &Option<String>,
                       names: &[&'static str]|
         -> Result<Option<(String, String)>, ConfigError> {
            Ok(lookup((flag, value.as_deref()), env, names)?
                .map(|raw| (raw.origin, raw.value.to_string())))
        };

        let backend = match setting("backend", &args.backend, &["BACKEND", "WALRUS_BACKEND"])? {
            None => None,
            Some((origin, v)) => Some(parse_with(&origin, &v, parse_backend)?),
        };
        let stores = match setting("store", &args.store, &["STORE", "STORES"])? {
            Some((origin, v)) => parse_with(&origin, &v, |s| parse_stores(s, backend))?,
            None => default_stores(command, backend),
        };
        let fsync = list_setting(
            setting("fsync", &args.fsync, &["FSYNC", "WALRUS_FSYNC"])?,
            d.fsync,
            FsyncSchedule::from_str,
        )?;
        let threads = match setting("threads", &args.threads, &["THREADS", "WALRUS_THREADS"])? {
            Some((origin, v)) => parse_with(&origin, &v, parse_threads)?,
            None => parse_threads(d.threads).expect("default thread list parses"),
        };
        let duration = duration_setting(
            setting("duration", &args.duration, &["WALRUS_DURATION"])?,
            d.duration,
            false,
        )?;
        let write_duration_setting = setting(
            "write-duration",
            &args.write_duration,
            &["WALRUS_WRITE_DURATION"],
        )?;
        let populate_for_duration = write_duration_setting.is_some();
        let write_duration = duration_setting(write_duration_setting, duration, false)?;
        let read_duration = duration_setting(
            setting(
                "read-duration",
                &args.read_duration,
                &["WALRUS_READ_DURATION"],
            )?,
            duration,
            false,
        )?;
        // Long enough for RocksDB to fill and flush a memtable at no-fsync
        // speeds; unmeasured, on top of the measured duration.
        let default_warmup = Duration::from_secs(1);
        let warmup = duration_setting(
            setting("warmup", &args.warmup, &["WALRUS_WARMUP"])?,
            default_warmup,
            true,
        )?;
        let rate = match setting("rate", &args.rate, &["RATE", "WALRUS_RATE"])? {
            Some((origin, v)) => Some(parse_with(&origin, &v, parse_rate)?),
            None => None,
        };
        let rates_raw = setting("rates", &args.rates, &["RATES"])?;
        if let (Some((origin, _)), false) = (&rates_raw, command == Command::Latency) {
            return Err(ConfigError {
                origin: origin.clone(),
                reason: "a sweep of offered loads is `latency`'s; the other commands take one \
                         RATE"
                    .into(),
            });
        }
        let rates = match (command, rates_raw, rate) {
            (Command::Latency, Some(raw), _) => list_setting(Some(raw), "", parse_rate)?,
            (Command::Latency, None, Some(one)) => vec![one],
            (Command::Latency, None, None) => list_setting(None, "1000,5000,20000", parse_rate)?,
            _ => Vec::new(),
        };
        let entry_size_raw = setting("entry-size", &args.entry_size, &["ENTRY_SIZE"])?;
        let entry_size = match &entry_size_raw {
            Some((origin, v)) => parse_with(origin, v, parse_entry_size)?,
            None => 1024,
        };
        let batch_raw = setting(
            "batch-size",
            &args.batch_size,
            &["WALRUS_BATCH_SIZE", "BATCH"],
        )?;
        let batch_sizes = list_setting(batch_raw.clone(), d.batch, parse_batch_size)?;
        if let Some(too_big) = batch_sizes
            .iter()
            .find(|b| **b * entry_size > MAX_BATCH_BYTES)
        {
            let (origin, _) = batch_raw
                .or(entry_size_raw)
                .unwrap_or_else(|| ("WALRUS_BATCH_SIZE".into(), String::new()));
            return Err(ConfigError {
                origin,
                reason: format!(
                    "a batch of {too_big} entries of {entry_size} bytes exceeds the {} MiB limit",
                    MAX_BATCH_BYTES >> 20
                ),
            });
        }
        let consistency = list_setting(
            setting("consistency", &args.consistency, &["CONSISTENCY"])?,
            d.consistency,
            ReadConsistency::from_str,
        )?;
        let topics = match setting("topics", &args.topics, &["WALRUS_TOPICS"])? {
            Some((origin, v)) => parse_with(&origin, &v, parse_topics)?,
            None => TopicMode::PerThread,
        };
        let rounds = match setting("rounds", &args.rounds, &["WALRUS_ROUNDS"])? {
            Some((origin, v)) => parse_with(&origin, &v, |s| parse_count(s, 1, MAX_ROUNDS))?,
            None => 3,
        };
        let data_dir = setting("data-dir", &args.data_dir, &["WALRUS_DATA_DIR"])?
            .map_or_else(|| PathBuf::from("wal_files"), |(_, v)| PathBuf::from(v));
        let out_dir = setting("out-dir", &args.out_dir, &["WALRUS_OUT_DIR"])?
            .map_or_else(|| PathBuf::from("benchmarks"), |(_, v)| PathBuf::from(v));
        let quiet = bool_setting(setting("quiet", &args.quiet, &["WALRUS_QUIET"])?)?;
        let keep_data = bool_setting(setting(
            "keep-data",
            &args.keep_data,
            &["WALRUS_KEEP_DATA"],
        )?)?;

        let read_entries = match env.get("READ_ENTRIES").filter(|v| !v.trim().is_empty()) {
            Some(v) => v
                .trim()
                .replace('_', "")
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError {
                    origin: format!("READ_ENTRIES={v}"),
                    reason: "not a positive entry count".into(),
                })?,
            None => 200_000,
        };
        let longrun_bytes = match setting("longrun-bytes", &args.longrun_bytes, &["LONGRUN_BYTES"])?
        {
            Some((origin, v)) => parse_with(&origin, &v, parse_bytes)?,
            None => 4 << 30,
        };
        let cold_reads = bool_setting(setting(
            "cold",
            &args.cold_reads,
            &["COLD", "WALRUS_COLD_READS"],
        )?)?;
        let async_raw = setting("async", &args.async_writes, &["ASYNC"])?;
        let async_origin = async_raw.as_ref().map(|(origin, _)| origin.clone());
        let async_writes = bool_setting(async_raw)?;
        if async_writes && command != Command::Compare {
            return Err(ConfigError {
                origin: async_origin.unwrap_or_default(),
                reason: "async write cases are part of `compare` only".into(),
            });
        }

        Ok(Settings {
            command,
            stores,
            fsync,
            threads,
            duration,
            write_duration,
            populate_for_duration,
            read_duration,
            warmup,
            rate,
            rates,
            batch_sizes,
            entry_size,
            consistency,
            topics,
            rounds,
            data_dir,
            out_dir,
            quiet,
            keep_data,
            async_writes,
            cold_reads,
            read_entries,
            longrun_bytes,
        })
    }
}

fn parse_with<T>(
    origin: &str,
    value: &str,
    f: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    f(value.trim()).map_err(|reason| ConfigError {
        origin: origin.to_string(),
        reason,
    })
}

/// A comma list of values, without duplicates.
fn list_setting<T: PartialEq>(
    raw: Option<(String, String)>,
    default: &str,
    parse_one: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    let parse_list = |s: &str| -> Result<Vec<T>, String> {
        let mut out = Vec::new();
        for item in s.split(',').map(str::trim) {
            if item.is_empty() {
                return Err("empty item in list".into());
            }
            let v = parse_one(item)?;
            if out.contains(&v) {
                return Err(format!("`{item}` is listed twice"));
            }
            out.push(v);
        }
        Ok(out)
    };
    match raw {
        Some((origin, v)) => parse_with(&origin, &v, parse_list),
        None => Ok(parse_list(default).expect("default list parses")),
    }
}

fn duration_setting(
    raw: Option<(String, String)>,
    default: Duration,
    zero_ok: bool,
) -> Result<Duration, ConfigError> {
    match raw {
        None => Ok(default),
        Some((origin, v)) => parse_with(&origin, &v, |s| {
            let d = parse_duration(s)?;
            if d.is_zero() && !zero_ok {
                return Err("duration must be greater than zero".into());
            }
            Ok(d)
        }),
    }
}

fn bool_setting(raw: Option<(String, String)>) -> Result<bool, ConfigError> {
    match raw {
        None => Ok(false),
        Some((origin, v)) => parse_with(&origin, &v, |s| match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(format!("`{s}` is not a boolean; use 1 or 0")),
        }),
    }
}

/// `30s`, `2m`, `1h`, `500ms`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration; use e.g. 500ms, 30s, 2m, 1h");
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let per_unit_ms = match unit.trim() {
        "ms" => 1,
        "" | "s" | "sec" | "secs" => 1_000,
        "m" | "min" | "mins" => 60_000,
        "h" | "hr" | "hrs" => 3_600_000,
        _ => return Err(bad()),
    };
    let ms = n
        .checked_mul(per_unit_ms)
        .filter(|ms| *ms <= 7 * 24 * 3_600_000)
        .ok_or_else(|| format!("`{s}` is longer than a week"))?;
    Ok(Duration::from_millis(ms))
}

/// `8`, `1-16` (every count in between), or `1,2,4,8`.
fn parse_threads(s: &str) -> Result<Vec<usize>, String> {
    let one = |t: &str| parse_count(t, 1, MAX_THREADS);
    let mut out: Vec<usize> = Vec::new();
    for item in s.split(',').map(str::trim) {
        match item.split_once('-') {
            Some((lo, hi)) if !lo.trim().is_empty() => {
                let (lo, hi) = (one(lo)?, one(hi)?);
                if lo > hi {
                    return Err(format!("range `{item}` runs backwards"));
                }
                out.extend(lo..=hi);
            }
            _ => out.push(one(item)?),
        }
    }
    let mut sorted = out.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != out.len() {
        return Err("a thread count is listed twice".into());
    }
    Ok(out)
}

fn parse_count(s: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{}` is not a whole number", s.trim()))?;
    if n < min as i64 || n > max as i64 {
        return Err(format!("{n} is out of range; allowed {min}..={max}"));
    }
    Ok(n as usize)
}

/// Bytes, with optional `k`/`KiB`/`m`/`MiB` suffix. At least the payload
/// header, so every entry can be verified.
fn parse_entry_size(s: &str) -> Result<usize, String> {
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '-' || c == '+'))
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let scale = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(format!("`{s}` is not a size in bytes")),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size in bytes"))?;
    let bytes = n.saturating_mul(scale);
    if bytes < PAYLOAD_HEADER_BYTES as i64 || bytes > MAX_ENTRY_SIZE_BYTES as i64 {
        return Err(format!(
            "entry size must be {PAYLOAD_HEADER_BYTES}..={MAX_ENTRY_SIZE_BYTES} bytes \
             (the first {PAYLOAD_HEADER_BYTES} carry the verification header)"
        ));
    }
    Ok(bytes as usize)
}

/// Appends per second, above zero.
fn parse_rate(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
        .ok_or_else(|| format!("`{s}` is not a rate; use appends per second, e.g. 5000"))
}

/// A byte count: `4GiB`, `64MiB`, `512k`, `1048576`; at least one KiB.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let scale: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("`{s}` is not a size; use e.g. 4GiB, 64MiB")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|n| *n >= 1 << 10)
        .ok_or_else(|| format!("`{s}` is not a size of at least 1 KiB; use e.g. 4GiB, 64MiB"))
}

fn parse_batch_size(s: &str) -> Result<usize, String> {
    parse_count(s, 1, MAX_BATCH_ENTRIES)
}

fn parse_backend(s: &str) -> Result<&'static str, String> {
    match s.to_ascii_lowercase().as_str() {
        "mmap" => Ok("mmap"),
        "fd" => Ok("fd"),
        _ => Err(format!("`{s}` is not a backend; use mmap or fd")),
    }
}

fn parse_topics(s: &str) -> Result<TopicMode, String> {
    match s.to_ascii_lowercase().as_str() {
        "per-thread" | "own" => Ok(TopicMode::PerThread),
        "shared" => Ok(TopicMode::Shared),
        _ => Err(format!(
            "`{s}` is not a topic layout; use per-thread or shared"
        )),
    }
}

/// Store names; a bare `walrus` becomes the backend that `BACKEND` names.
fn parse_stores(s: &str, backend: Option<&'static str>) -> Result<Vec<StoreKind>, String> {
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim) {
        let name = match name.to_ascii_lowercase().as_str() {
            "walrus" => format!("walrus-{}", backend.unwrap_or(ENGINE_DEFAULT_BACKEND)),
            other => other.to_string(),
        };
        // The adapters' error lists every accepted name (from the registry).
        let kind = StoreKind::from_str(&name)?;
        // A named store that cannot run is a one-line error, never an empty row.
        kind.check_runnable()?;
        if out.contains(&kind) {
            return Err(format!("store {kind} is listed twice"));
        }
        out.push(kind);
    }
    Ok(out)
}

/// `compare` (and `longrun`, without `null`) runs every store that can run here (compiled in and ready,
/// e.g. a server it needs installed), the null store's ceiling row included,
/// both Walrus backends unless `BACKEND` picks one; every other command runs
/// Walrus.
fn default_stores(command: Command, backend: Option<&'static str>) -> Vec<StoreKind> {
    let walrus = |b: &str| StoreKind::from_str(&format!("walrus-{b}")).expect("walrus kinds parse");
    match command {
        // The long run writes gigabytes: the null store would hold them in
        // memory, so it is only run when named.
        Command::Longrun => default_stores(Command::Compare, backend)
            .into_iter()
            .filter(|k| *k != StoreKind::Null)
            .collect(),
        Command::Compare | Command::Latency => {
            let mut out = match backend {
                Some(b) => vec![walrus(b)],
                None => vec![walrus("mmap"), walrus("fd")],
            };
            out.extend(
                StoreKind::all()
                    .filter(|k| !matches!(k, StoreKind::Walrus(_)) && k.check_runnable().is_ok()),
            );
            out
        }
        _ => vec![walrus(backend.unwrap_or(ENGINE_DEFAULT_BACKEND))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn resolve(command: Command, pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::resolve(command, &BenchArgs::default(), &env(pairs))
    }

    fn error_line(command: Command, pairs: &[(&str, &str)]) -> String {
        resolve(command, pairs).unwrap_err().to_string()
    }

    #[test]
    fn defaults_per_command() {
        let w = resolve(Command::Write, &[]).unwrap();
        assert_eq!(w.threads, vec![1, 2, 4, 8]);
        assert_eq!(w.fsync.len(), 3);
        assert_eq!(w.batch_sizes, vec![1]);
        assert_eq!(w.entry_size, 1024);
        assert_eq!(w.duration, Duration::from_secs(10));
        assert_eq!(w.warmup, Duration::from_secs(1));
        assert_eq!(w.stores, vec!["walrus-fd".parse().unwrap()]);
        assert_eq!(w.data_dir, PathBuf::from("wal_files"));
        assert_eq!(w.out_dir, PathBuf::from("benchmarks"));
        assert!(!w.quiet);
        let c = resolve(Command::Compare, &[]).unwrap();
        let names: Vec<String> = c.stores.iter().map(|s| s.to_string()).collect();
        assert_eq!(&names[..2], ["walrus-mmap", "walrus-fd"]);
        assert!(names.contains(&"raw".to_string()));
        assert_eq!(c.rounds, 3);
    }

    #[test]
    fn latency_sweeps_the_offered_loads() {
        let l = resolve(Command::Latency, &[]).unwrap();
        assert_eq!(l.rates, vec![1000.0, 5000.0, 20000.0]);
        assert!(l.stores.contains(&StoreKind::Null));
        let r = resolve(Command::Latency, &[("RATES", "200, 400")]).unwrap();
        assert_eq!(r.rates, vec![200.0, 400.0]);
        let one = resolve(Command::Latency, &[("RATE", "300")]).unwrap();
        assert_eq!(one.rates, vec![300.0]);
        assert!(error_line(Command::Latency, &[("RATES", "1000,fast")]).contains("RATES=1000,fast"));
        let line = error_line(Command::Write, &[("RATES", "1000")]);
        assert!(
            line.contains("RATES=1000") && line.contains("latency"),
            "{line}"
        );
        assert!(resolve(Command::Write, &[]).unwrap().rates.is_empty());
    }

    #[test]
    fn the_long_run_is_sized_in_bytes() {
        let l = resolve(Command::Longrun, &[]).unwrap();
        assert_eq!(l.longrun_bytes, 4 << 30);
        assert!(!l.stores.contains(&StoreKind::Null));
        assert!(l.stores.iter().any(|k| k.to_string() == "raw"));
        let s = resolve(Command::Longrun, &[("LONGRUN_BYTES", "64MiB")]).unwrap();
        assert_eq!(s.longrun_bytes, 64 << 20);
        let line = error_line(Command::Longrun, &[("LONGRUN_BYTES", "lots")]);
        assert!(line.contains("invalid LONGRUN_BYTES=lots"), "{line}");
    }

    #[test]
    fn async_cases_are_a_compare_setting() {
        assert!(!resolve(Command::Compare, &[]).unwrap().async_writes);
        assert!(
            resolve(Command::Compare, &[("ASYNC", "1")])
                .unwrap()
                .async_writes
        );
        let args = BenchArgs {
            async_writes: Some("1".into()),
            ..BenchArgs::default()
        };
        let flagged = Settings::resolve(Command::Compare, &args, &HashMap::new()).unwrap();
        assert!(flagged.async_writes);
        let line = error_line(Command::Write, &[("ASYNC", "1")]);
        assert!(
            line.contains("ASYNC=1") && line.contains("compare"),
            "{line}"
        );
        assert!(error_line(Command::Compare, &[("ASYNC", "sometimes")]).contains("ASYNC"));
    }

    #[test]
    fn the_guides_spellings_parse() {
        let s = resolve(
            Command::Write,
            &[
                ("FSYNC", "async"),
                ("THREADS", "1-16"),
                ("WALRUS_DURATION", "2m"),
                ("WALRUS_WRITE_DURATION", "1m"),
                ("WALRUS_READ_DURATION", "30s"),
                ("BATCH", "200"),
                ("ENTRY_SIZE", "1048576"),
                ("WALRUS_DATA_DIR", "/mnt/nvme/wal"),
                ("WALRUS_QUIET", "1"),
                ("BACKEND", "mmap"),
                ("CONSISTENCY", "at-least-once:10000"),
            ],
        )
        .unwrap();
        assert_eq!(s.fsync, vec![FsyncSchedule::Milliseconds(1000)]);
        assert_eq!(s.threads, (1..=16).collect::<Vec<_>>());
        assert_eq!(s.duration, Duration::from_secs(120));
        assert_eq!(s.write_duration, Duration::from_secs(60));
        assert_eq!(s.read_duration, Duration::from_secs(30));
        assert_eq!(s.batch_sizes, vec![200]);
        assert_eq!(s.entry_size, 1 << 20);
        assert_eq!(s.data_dir, PathBuf::from("/mnt/nvme/wal"));
        assert!(s.quiet);
        assert_eq!(s.stores, vec!["walrus-mmap".parse().unwrap()]);
        assert_eq!(
            s.consistency,
            vec![ReadConsistency::AtLeastOnce {
                persist_every: 10_000
            }]
        );
        let d = resolve(
            Command::Write,
            &[("WALRUS_FSYNC", "500ms"), ("WALRUS_THREADS", "8")],
        )
        .unwrap();
        assert_eq!(d.fsync, vec![FsyncSchedule::Milliseconds(500)]);
        assert_eq!(d.threads, vec![8]);
        let h = resolve(Command::Write, &[("WALRUS_DURATION", "1h")]).unwrap();
        assert_eq!(h.duration, Duration::from_secs(3600));
    }

    #[test]
    fn read_phases_default_to_the_duration() {
        let s = resolve(Command::Read, &[("WALRUS_DURATION", "3s")]).unwrap();
        assert_eq!(s.write_duration, Duration::from_secs(3));
        assert_eq!(s.read_duration, Duration::from_secs(3));
        // Warm-up is its own setting, not a share of the duration.
        assert_eq!(s.warmup, Duration::from_secs(1));
        let w = resolve(Command::Read, &[("WALRUS_WARMUP", "250ms")]).unwrap();
        assert_eq!(w.warmup, Duration::from_millis(250));
    }

    #[test]
    fn malformed_values_name_the_variable_in_one_line() {
        for (pairs, needle) in [
            (vec![("THREADS", "0")], "invalid THREADS=0"),
            (vec![("THREADS", "eight")], "invalid THREADS=eight"),
            (vec![("THREADS", "16-1")], "runs backwards"),
            (vec![("FSYNC", "sometimes")], "invalid FSYNC=sometimes"),
            (vec![("ENTRY_SIZE", "-1")], "invalid ENTRY_SIZE=-1"),
            (vec![("ENTRY_SIZE", "4")], "invalid ENTRY_SIZE=4"),
            (
                vec![("WALRUS_DURATION", "soon")],
                "invalid WALRUS_DURATION=soon",
            ),
            (vec![("WALRUS_DURATION", "0s")], "greater than zero"),
            (vec![("BATCH", "0")], "invalid BATCH=0"),
            (
                vec![("WALRUS_BATCH_SIZE", "2001")],
                "invalid WALRUS_BATCH_SIZE=2001",
            ),
            (vec![("BACKEND", "spinning")], "invalid BACKEND=spinning"),
            (vec![("STORE", "mysql")], "invalid STORE=mysql"),
            (vec![("STORES", "raw,raw")], "listed twice"),
            (
                vec![("CONSISTENCY", "eventual")],
                "invalid CONSISTENCY=eventual",
            ),
            (
                vec![("WALRUS_QUIET", "maybe")],
                "invalid WALRUS_QUIET=maybe",
            ),
            (
                vec![("WALRUS_TOPICS", "some")],
                "invalid WALRUS_TOPICS=some",
            ),
            (vec![("WALRUS_ROUNDS", "0")], "invalid WALRUS_ROUNDS=0"),
        ] {
            let line = error_line(Command::Write, &pairs);
            assert!(line.contains(needle), "{line:?} should contain {needle:?}");
            assert!(!line.contains('\n'), "{line:?} is one line");
        }
    }

    #[test]
    fn an_unknown_store_lists_every_store_name() {
        let line = error_line(Command::Write, &[("STORE", "Walrus-Rocks")]);
        assert!(line.contains("`walrus-rocks` is not a store"), "{line}");
        assert!(line.contains("walrus (= walrus-fd)"), "{line}");
        for kind in StoreKind::all() {
            assert!(line.contains(&kind.to_string()), "{kind} missing: {line}");
        }
        assert!(!line.contains('\n'), "{line:?} is one line");
    }

    #[test]
    fn oversized_batches_are_refused() {
        let line = error_line(
            Command::Batch,
            &[("ENTRY_SIZE", "4MiB"), ("WALRUS_BATCH_SIZE", "2000")],
        );
        assert!(
            line.contains("WALRUS_BATCH_SIZE=2000") && line.contains("MiB limit"),
            "{line}"
        );
    }

    #[test]
    fn disagreeing_spellings_are_an_error_and_empty_means_unset() {
        let line = error_line(
            Command::Write,
            &[("FSYNC", "no-fsync"), ("WALRUS_FSYNC", "sync-each")],
        );
        assert!(line.contains("conflicts with"), "{line}");
        let same = resolve(Command::Write, &[("THREADS", "4"), ("WALRUS_THREADS", "4")]).unwrap();
        assert_eq!(same.threads, vec![4]);
        let empty = resolve(Command::Write, &[("THREADS", ""), ("FSYNC", " ")]).unwrap();
        assert_eq!(empty.threads, vec![1, 2, 4, 8]);
    }

    #[test]
    fn flags_win_over_variables_and_name_themselves() {
        let args = BenchArgs {
            threads: Some("3".into()),
            ..BenchArgs::default()
        };
        let s = Settings::resolve(Command::Write, &args, &env(&[("THREADS", "7")])).unwrap();
        assert_eq!(s.threads, vec![3]);
        let bad = BenchArgs {
            fsync: Some("weekly".into()),
            ..BenchArgs::default()
        };
        let e = Settings::resolve(Command::Write, &bad, &HashMap::new()).unwrap_err();
        assert!(e.to_string().starts_with("invalid --fsync weekly:"), "{e}");
    }

    #[test]
    fn lists_and_units() {
        let s = resolve(
            Command::Write,
            &[
                ("FSYNC", "no-fsync, 1000ms"),
                ("THREADS", "1,2,4"),
                ("ENTRY_SIZE", "4k"),
            ],
        )
        .unwrap();
        assert_eq!(
            s.fsync,
            vec![FsyncSchedule::NoFsync, FsyncSchedule::Milliseconds(1000)]
        );
        assert_eq!(s.threads, vec![1, 2, 4]);
        assert_eq!(s.entry_size, 4096);
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.5s").is_err());
    }

    #[test]
    fn bare_walrus_follows_backend() {
        let s = resolve(
            Command::Write,
            &[("STORE", "walrus,raw"), ("WALRUS_BACKEND", "mmap")],
        )
        .unwrap();
        let names: Vec<String> = s.stores.iter().map(|k| k.to_string()).collect();
        assert_eq!(names, ["walrus-mmap", "raw"]);
        let c = resolve(Command::Compare, &[("BACKEND", "fd")]).unwrap();
        assert_eq!(c.stores[0].to_string(), "walrus-fd");
        assert!(!c.stores.iter().any(|k| k.to_string() == "walrus-mmap"));
    }
}
