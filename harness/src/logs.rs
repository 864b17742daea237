//! Logs of the engine and the stores, on stderr.
//!
//! The bench binaries install one `tracing` subscriber: `RUST_LOG` picks the
//! levels when set; otherwise `info` (so the engine's "FD backend
//! (io_uring)" line or its fallback warning shows), or `warn` under
//! `WALRUS_QUIET=1`/`--quiet`. Every ERROR event, such as a failed RocksDB
//! background WAL sync, is also counted: a run during which a store logged
//! an error exits with a failure instead of publishing its figures.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

static ERRORS: AtomicU64 = AtomicU64::new(0);

/// Counts ERROR events.
struct CountErrors;

impl<S: Subscriber> Layer<S> for CountErrors {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == Level::ERROR {
            ERRORS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Installs the subscriber (once; later calls do nothing).
pub fn install(quiet: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(if quiet { "warn" } else { "info" }));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false)
                .with_filter(filter),
        )
        .with(CountErrors)
        .try_init();
}

/// ERROR events logged since the process started.
pub fn errors() -> u64 {
    ERRORS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_whatever_the_filter() {
        install(true);
        let before = errors();
        tracing::warn!("not an error");
        tracing::error!("a store's background sync failed");
        assert_eq!(errors(), before + 1);
    }
}
