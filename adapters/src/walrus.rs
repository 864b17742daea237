//! The Walrus engine as a store: the engine implements `LogStore` itself, so
//! this only maps the shared settings onto its builder.

use std::path::Path;

use walrus_store::{Result, StoreConfig};
use walrus_wal::{Backend, Walrus};

/// Opens the engine on `backend` in `dir`. The engine logs which backend it
/// uses; `WALRUS_QUIET=1` (or `true`, `yes`, `on`, as the harness's settings
/// accept) silences that here as it does for the engine's own `from_env`, so
/// a benchmark's output stays clean. `WALRUS_ACTIVE_SEGMENTS` sets the
/// engine's active segment count.
pub(crate) fn open(dir: &Path, backend: Backend, config: StoreConfig) -> Result<Walrus> {
    let quiet = std::env::var("WALRUS_QUIET").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    });
    Walrus::builder()
        .quiet(quiet)
        .data_dir(dir)
        .backend(backend)
        .consistency(config.consistency)
        .fsync(config.fsync)
        // The engine's own knob, for sweeping it through the harness.
        .active_segments_from_env()?
        .open()
}
