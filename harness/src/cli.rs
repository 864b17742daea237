//! The command-line front ends: `walrus-bench <subcommand>` and the
//! single-purpose `write_benchmark`, `read_benchmark`, `scaling_benchmark`.
//! Thin: parse, resolve settings (failing fast on a malformed value), run,
//! print.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{BenchArgs, Command, Settings};
use crate::stores;

const ENV_HELP: &str = "\
Every flag has an environment twin (FSYNC, THREADS, WALRUS_DURATION, ENTRY_SIZE, ...);
a flag wins over its variable. Results go to benchmarks/<name>_<timestamp>.csv.";

#[derive(Parser)]
#[command(
    name = "walrus-bench",
    about = "Identical workloads against every LogStore: write, read, scaling, batch, compare",
    after_help = ENV_HELP
)]
struct MultiCli {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Subcommand)]
enum Sub {
    /// Append throughput and latency per thread count and fsync mode
    Write(BenchArgs),
    /// A write phase, then verified reads (read_next and batch_read)
    Read(BenchArgs),
    /// Write throughput and CPU over a thread range
    Scaling(BenchArgs),
    /// batch_append throughput per batch size
    Batch(BenchArgs),
    /// Every store, same matrix, medians of rounds, Markdown tables
    Compare(BenchArgs),
    /// The guide's analytics, financial and message-queue scenarios
    Scenarios(BenchArgs),
    /// LONGRUN_BYTES written per store while consumers consume as they go
    Longrun(BenchArgs),
    /// Open-loop write latency at each offered load of RATES, per store
    Latency(BenchArgs),
}

#[derive(Parser)]
struct SingleCli {
    #[command(flatten)]
    args: BenchArgs,
}

/// `walrus-bench <subcommand> [flags]`.
pub fn main_multi() -> ExitCode {
    let cli = MultiCli::parse();
    let (command, args) = match cli.command {
        Sub::Write(a) => (Command::Write, a),
        Sub::Read(a) => (Command::Read, a),
        Sub::Scaling(a) => (Command::Scaling, a),
        Sub::Batch(a) => (Command::Batch, a),
        Sub::Compare(a) => (Command::Compare, a),
        Sub::Scenarios(a) => (Command::Scenarios, a),
        Sub::Longrun(a) => (Command::Longrun, a),
        Sub::Latency(a) => (Command::Latency, a),
    };
    execute(command, &args)
}

/// A binary that runs one benchmark, e.g. `write_benchmark [flags]`.
pub fn main_single(command: Command, bin_name: &'static str, about: &'static str) -> ExitCode {
    let matches = SingleCli::command()
        .name(bin_name)
        .about(about)
        .after_help(ENV_HELP)
        .get_matches();
    let cli = SingleCli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    execute(command, &cli.args)
}

fn execute(command: Command, args: &BenchArgs) -> ExitCode {
    let env: HashMap<String, String> = std::env::vars().collect();
    let settings = match Settings::resolve(command, args, &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if settings.quiet && !env.contains_key("WALRUS_QUIET") {
        // The engine reads WALRUS_QUIET itself; --quiet must reach it too.
        // No other thread exists yet.
        std::env::set_var("WALRUS_QUIET", "1");
    }
    crate::logs::install(settings.quiet);
    if !settings.quiet {
        eprintln!("{}", describe(&settings));
    }
    let result = crate::run(&settings, &stores::open);
    // An ERROR a store logs during a cell fails that cell (it is in the
    // tables and `failures`); one logged outside every cell (between cells,
    // while probing the disk) fails the run.
    let stray_errors = crate::logs::unclaimed();
    if stray_errors > 0 {
        eprintln!(
            "error: {stray_errors} error(s) were logged outside any cell (see above); \
             the run's figures are not trustworthy"
        );
        if let Ok(out) = &result {
            print!("{}", out.text);
        }
        return ExitCode::FAILURE;
    }
    let json = env
        .get("FORMAT")
        .is_some_and(|f| f.trim().eq_ignore_ascii_case("json"));
    match result {
        Ok(out) => {
            if json {
                match crate::report::results_json(&out.files) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", out.text);
            }
            for f in &out.files {
                println!("wrote {}", f.display());
            }
            if out.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!("{} cell(s) failed:", out.failures.len());
                for f in &out.failures {
                    eprintln!("  {f}");
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn describe(s: &Settings) -> String {
    let list = |v: Vec<String>| v.join(",");
    format!(
        "{:?}: stores={} fsync={} threads={} entry_size={}B batch={} consistency={} \
         duration={} rounds={} data_dir={}",
        s.command,
        list(s.stores.iter().map(|k| k.to_string()).collect()),
        list(s.fsync.iter().map(|f| f.to_string()).collect()),
        list(s.threads.iter().map(|t| t.to_string()).collect()),
        s.entry_size,
        list(s.batch_sizes.iter().map(|b| b.to_string()).collect()),
        list(s.consistency.iter().map(|c| c.to_string()).collect()),
        crate::format::secs(s.duration),
        s.rounds,
        s.data_dir.display()
    )
}
