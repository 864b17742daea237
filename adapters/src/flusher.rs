//! The background thread behind `FsyncSchedule::Milliseconds(n)` for the
//! stores that have no timer of their own (raw files, RocksDB).
//!
//! The schedule promises that an append is durable within n ms plus one
//! fsync, so the thread runs the store's sync every n ms, and once more when
//! it is stopped so that a clean shutdown leaves nothing unsynced.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// Owns the thread; dropping it stops the thread after a final sync.
pub(crate) struct Flusher {
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Runs `sync` every `interval` on a thread named `name`, and once more
    /// when the `Flusher` is dropped. `sync` reports its own errors (they
    /// cannot be returned to an append that has already been acknowledged).
    pub(crate) fn spawn(
        name: &str,
        interval: Duration,
        sync: impl Fn() + Send + 'static,
    ) -> std::io::Result<Flusher> {
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || loop {
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => sync(),
                    // Stop requested (or the owner vanished): one last sync so
                    // a clean drop keeps every acknowledged append.
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                        sync();
                        return;
                    }
                }
            })?;
        Ok(Flusher {
            stop: Some(stop),
            handle: Some(handle),
        })
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                tracing::error!("background flusher thread panicked");
            }
        }
    }
}
