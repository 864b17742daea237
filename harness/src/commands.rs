//! Which command runs: the dispatch over the command modules, the last
//! of the commands layer (every command module is above it).

use crate::config::{Command, Settings};
use crate::error::BenchError;
use crate::rounds::{CommandOutput, OpenKind};

/// Runs the command `settings.command` names and returns what it produced,
/// not yet written out (`crate::report::write` does that).
pub fn run(settings: &Settings, open: &OpenKind<'_>) -> Result<CommandOutput, BenchError> {
    match settings.command {
        Command::Write | Command::Batch | Command::Latency => {
            crate::bench::run_writes(settings, open)
        }
        Command::Scaling => crate::bench::run_scaling(settings, open),
        Command::Read => crate::bench::run_reads(settings, open),
        Command::Scenarios => crate::scenarios::run_scenarios(settings, open),
        Command::Compare => crate::compare::run(settings, open),
        Command::Longrun => crate::bench_longrun::run_longrun(settings, open),
    }
}
