//! `walrus-bench <write|read|scaling|batch|compare|scenarios> [flags]`.
fn main() -> std::process::ExitCode {
    walrus_harness::cli::main_multi()
}
