//! The synchronization primitives of the engine's lock-free protocols (the
//! group commit and extent accounting in `segment`, an extent's marks in
//! `topic`).
//!
//! A normal build re-exports std's atomics and parking_lot's locks: the very
//! types those modules used before, with no wrapper in between. Under
//! `--cfg loom` (`make loom`) they are loom's models instead, so that the
//! `loom_tests` modules explore every interleaving of those protocols. The
//! loom locks are wrapped to offer the parking_lot API the code uses: `lock`
//! returns the guard itself, a condition variable waits on `&mut guard`.
//!
//! Loom has no clock: a timed wait (`Condvar::wait_until`, used only by the
//! group commit's gather step, a performance heuristic) reports a timeout at
//! once, so the gather becomes one untimed check of what is pending. A
//! timed wait may always time out, so this removes no behaviour the protocol
//! relies on; it only leaves the early wake-up unexplored.

#[cfg(not(loom))]
pub use parking_lot::{Condvar, Mutex};
#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

#[cfg(loom)]
pub use self::model::{Condvar, Mutex};
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// A load of an atomic that only the calling thread stores (an extent's
/// writer checking its own marks): exactly `load(order)`. Under loom it is
/// an `unsync_load` instead, which loom checks too (it fails if another
/// thread stores concurrently) and which, unlike a load, does not hide from
/// loom's partial-order reduction the race between another thread's earlier
/// load and this thread's next store: with a load there, loom never runs
/// the reader's load after the writer's store (tokio-rs/loom#166, #392).
pub trait LoadOwn {
    type Value;
    fn load_own(&self, order: Ordering) -> Self::Value;
}

macro_rules! load_own {
    ($($atomic:ty => $value:ty),*) => {$(
        impl LoadOwn for $atomic {
            type Value = $value;

            #[cfg(not(loom))]
            #[inline(always)]
            fn load_own(&self, order: Ordering) -> $value {
                self.load(order)
            }

            #[cfg(loom)]
            fn load_own(&self, _order: Ordering) -> $value {
                // SAFETY: loom checks that no store is concurrent with it.
                unsafe { self.unsync_load() }
            }
        }
    )*};
}

load_own!(AtomicBool => bool, AtomicU64 => u64);

#[cfg(loom)]
mod model {
    use std::ops::{Deref, DerefMut};
    use std::time::Instant;

    /// loom's mutex with parking_lot's `lock`.
    #[derive(Debug, Default)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);

    /// The guard lives in an `Option` so that [`Condvar::wait`] can hand it
    /// to loom's by-value `wait` through a `&mut`.
    pub struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> Mutex<T> {
        pub fn new(value: T) -> Mutex<T> {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().expect("loom mutexes do not poison")))
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_ref().expect("held outside a wait")
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_mut().expect("held outside a wait")
        }
    }

    /// loom's condition variable with parking_lot's `wait(&mut guard)`.
    #[derive(Debug, Default)]
    pub struct Condvar(loom::sync::Condvar);

    /// parking_lot's result of a timed wait.
    pub struct WaitTimeoutResult(bool);

    impl WaitTimeoutResult {
        pub fn timed_out(&self) -> bool {
            self.0
        }
    }

    impl Condvar {
        pub fn new() -> Condvar {
            Condvar(loom::sync::Condvar::new())
        }

        pub fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let held = guard.0.take().expect("held outside a wait");
            guard.0 = Some(self.0.wait(held).expect("loom mutexes do not poison"));
        }

        /// Loom has no clock: the wait times out at once, without releasing
        /// the lock (see the module's documentation).
        pub fn wait_until<T>(
            &self,
            _guard: &mut MutexGuard<'_, T>,
            _deadline: Instant,
        ) -> WaitTimeoutResult {
            WaitTimeoutResult(true)
        }

        pub fn notify_one(&self) {
            self.0.notify_one();
        }

        pub fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}
