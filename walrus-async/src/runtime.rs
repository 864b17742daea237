//! The io_uring runtime the front end runs on, and the typed error when the
//! kernel (or a seccomp policy, or a container runtime) refuses io_uring.

use std::cell::Cell;
use std::future::Future;
use std::io;

use walrus_wal::{Error, Result};

thread_local! {
    /// Set while this thread runs `Runtime::block_on`: the front end spawns
    /// its syncer task and issues io_uring operations only in there, because
    /// tokio-uring panics outside its runtime.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// A single-threaded tokio runtime with an io_uring driver (tokio-uring).
/// Tasks that share an [`AsyncWalrus`](crate::AsyncWalrus) run on it,
/// spawned with [`spawn`](crate::spawn).
pub struct Runtime {
    rt: tokio_uring::Runtime,
}

impl Runtime {
    /// Sets up io_uring and the runtime. Fails with [`Error::Io`] whose
    /// context says io_uring is unavailable when the kernel is older than
    /// 5.6, io_uring is disabled (`kernel.io_uring_disabled`), or a seccomp
    /// policy forbids it; the blocking [`walrus_wal::Walrus`] API works there.
    pub fn new() -> Result<Runtime> {
        tokio_uring::Runtime::new(&tokio_uring::builder())
            .map(|rt| Runtime { rt })
            .map_err(unavailable)
    }

    /// Runs `future` to completion on this thread, with the tasks it spawns.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        struct Leave(bool);
        impl Drop for Leave {
            fn drop(&mut self) {
                INSIDE.with(|i| i.set(self.0));
            }
        }
        let _leave = Leave(INSIDE.with(|i| i.replace(true)));
        self.rt.block_on(future)
    }
}

/// Starts a [`Runtime`] and runs `future` on it: `walrus_async::start(async
/// { .. })?` is the whole of an async application's `main`.
pub fn start<F: Future>(future: F) -> Result<F::Output> {
    Ok(Runtime::new()?.block_on(future))
}

/// Spawns a task on the current [`Runtime`]. Tasks are not `Send`: they all
/// run on the runtime's thread, which is what lets one fdatasync cover the
/// appends of every task.
pub fn spawn<F: Future + 'static>(future: F) -> tokio::task::JoinHandle<F::Output> {
    tokio_uring::spawn(future)
}

/// Errors unless the caller runs inside [`Runtime::block_on`].
pub(crate) fn ensure_inside(what: &str) -> Result<()> {
    if INSIDE.with(Cell::get) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{what} must run inside walrus_async::Runtime::block_on (or walrus_async::start)"
        )))
    }
}

pub(crate) fn unavailable(source: io::Error) -> Error {
    Error::io(
        "setting up io_uring for the async front end (io_uring is unavailable: the kernel \
         is older than 5.6, kernel.io_uring_disabled is set, or a seccomp policy forbids it)",
        source,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_io_uring_is_a_typed_error_naming_the_cause() {
        let err = unavailable(io::Error::from_raw_os_error(libc_enosys()));
        match &err {
            Error::Io { context, source } => {
                assert!(context.contains("io_uring is unavailable"), "{context}");
                assert_eq!(source.raw_os_error(), Some(libc_enosys()));
            }
            other => panic!("not an I/O error: {other:?}"),
        }
    }

    /// ENOSYS, what io_uring_setup returns on a kernel without it.
    fn libc_enosys() -> i32 {
        38
    }

    #[test]
    fn the_front_end_refuses_to_start_outside_its_runtime() {
        assert!(matches!(
            ensure_inside("opening"),
            Err(Error::InvalidInput(_))
        ));
        let inside = start(async { ensure_inside("opening").is_ok() }).unwrap();
        assert!(inside);
        assert!(ensure_inside("opening").is_err(), "reset after block_on");
    }
}
