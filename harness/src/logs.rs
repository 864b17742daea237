//! Logs of the engine and the stores, on stderr.
//!
//! The bench binaries install one `tracing` subscriber: `RUST_LOG` picks the
//! levels when set; otherwise `info` (so the engine's "FD backend
//! (io_uring)" line or its fallback warning shows), or `warn` under
//! `WALRUS_QUIET=1`/`--quiet`. Every ERROR event, such as a failed RocksDB
//! background WAL sync, is also kept: the cell that was running when a
//! store logged it fails with that message ([`mark`], [`claim_since`]),
//! and one logged outside any cell fails the run ([`unclaimed`]).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

static ERRORS: AtomicU64 = AtomicU64::new(0);
/// ERROR events a cell has taken as its failure.
static CLAIMED: AtomicU64 = AtomicU64::new(0);
/// The text of the ERROR events no one has claimed yet, with their
/// number (0-based, in logging order).
static MESSAGES: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
/// More unclaimed messages than this are counted, not kept.
const KEPT: usize = 1_000;

/// Counts and keeps ERROR events.
struct CountErrors;

/// An event's fields as one line: the message, then `name=value` pairs.
#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for CountErrors {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == Level::ERROR {
            let mut line = Line::default();
            event.record(&mut line);
            let mut kept = MESSAGES.lock().unwrap_or_else(|e| e.into_inner());
            let n = ERRORS.fetch_add(1, Ordering::Relaxed);
            if kept.len() < KEPT {
                kept.push((n, line.0));
            }
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

/// Where the log of ERROR events stands now: pass it to [`claim_since`].
#[derive(Clone, Copy, Debug)]
pub struct Mark(u64);

pub fn mark() -> Mark {
    Mark(errors())
}

/// The ERROR events logged since `mark` (the text of those kept), which
/// the caller takes as its failure: they no longer count as [`unclaimed`].
pub fn claim_since(mark: Mark) -> Vec<String> {
    let now = errors();
    let n = now.saturating_sub(mark.0);
    if n == 0 {
        return Vec::new();
    }
    CLAIMED.fetch_add(n, Ordering::Relaxed);
    let mut kept = MESSAGES.lock().unwrap_or_else(|e| e.into_inner());
    let mut out: Vec<String> = kept
        .iter()
        .filter(|(i, _)| (mark.0..now).contains(i))
        .map(|(_, m)| m.clone())
        .collect();
    // Older ones were logged outside any cell and stay counted as
    // unclaimed; their text is no longer needed.
    kept.retain(|(i, _)| *i >= now);
    out.resize(n as usize, "(message not kept)".into());
    out
}

/// ERROR events no cell claimed: logged between cells or outside them.
pub fn unclaimed() -> u64 {
    errors().saturating_sub(CLAIMED.load(Ordering::Relaxed))
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

    #[test]
    fn a_claimed_error_carries_its_message() {
        install(true);
        let mark = mark();
        tracing::error!(path = "x", "fsync failed");
        let claimed = claim_since(mark);
        // Other tests of this binary may log errors at the same time.
        assert!(
            claimed
                .iter()
                .any(|m| m.contains("fsync failed") && m.contains("path=\"x\"")),
            "{claimed:?}"
        );
    }
}
