//! Append throughput and latency; the binary the guide's profiling section runs.
use walrus_harness::{cli, Command};

fn main() -> std::process::ExitCode {
    cli::main_single(
        Command::Write,
        "write_benchmark",
        "Append throughput and latency per thread count and fsync mode",
    )
}
