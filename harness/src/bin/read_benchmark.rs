//! A write phase, then verified reads under each consistency mode.
use walrus_harness::{cli, Command};

fn main() -> std::process::ExitCode {
    cli::main_single(
        Command::Read,
        "read_benchmark",
        "A write phase, then verified reads (read_next and batch_read) per consistency mode",
    )
}
