//! Progress on the terminal for long runs. `WALRUS_QUIET=1` silences it;
//! the live ticker only draws when stderr is a terminal, so logs stay clean.

use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Where progress goes. Cheap to copy into workers' coordinator.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    quiet: bool,
    live: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            live: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// Silent, for tests.
    pub fn silent() -> Progress {
        Progress {
            quiet: true,
            live: false,
        }
    }

    /// One line per unit of work (a benchmark cell).
    pub fn line(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// Redraws the in-place ticker of a running phase.
    pub fn tick(&self, label: &str, elapsed: Duration, total: Duration, ops: u64) {
        if !self.live {
            return;
        }
        let secs = elapsed.as_secs_f64().max(1e-9);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r  {label:<6} {:>6.1}s / {:.1}s  {:>12.0} ops/s   ",
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
            ops as f64 / secs
        );
        let _ = err.flush();
    }

    /// Clears the ticker line once a phase ends.
    pub fn clear(&self) {
        if self.live {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{:70}\r", "");
            let _ = err.flush();
        }
    }
}
