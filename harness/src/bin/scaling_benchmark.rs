//! Write throughput and CPU usage over a thread range.
use walrus_harness::{cli, Command};

fn main() -> std::process::ExitCode {
    cli::main_single(
        Command::Scaling,
        "scaling_benchmark",
        "Write throughput and CPU usage swept over a thread range",
    )
}
