//! io_uring submission for the fd backend: several reads go to the kernel in
//! one `io_uring_enter`, instead of one syscall each. One ring per storage
//! instance, never one per call.
//!
//! The kernel writes into a read's buffer until it posts that read's
//! completion, so no call returns while a read it submitted is in flight:
//! whatever goes wrong (a signal interrupts the wait, a read fails, the
//! submission queue refuses an entry), every entry that reached the kernel
//! is reaped first. That also leaves the completion queue empty between
//! calls, so no call is credited with another's completions.

use io_uring::{opcode, squeue, types, IoUring};
use parking_lot::Mutex;
use std::io;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const RING_ENTRIES: u32 = 64;

/// How long to wait before entering the ring again after the kernel was
/// short of resources (EAGAIN, EBUSY), and between looks at the completion
/// queue of a broken ring.
const RETRY_PAUSE: Duration = Duration::from_millis(1);

pub struct Ring {
    ring: Mutex<IoUring>,
    /// Set when entering the ring failed other than transiently. Entries the
    /// kernel had not taken may then still sit in the submission queue,
    /// pointing at buffers since freed; they never run because the ring is
    /// never entered again.
    broken: AtomicBool,
}

impl Ring {
    pub fn new() -> io::Result<Ring> {
        Ok(Ring {
            ring: Mutex::new(IoUring::new(RING_ENTRIES)?),
            broken: AtomicBool::new(false),
        })
    }

    /// Whether reads may still go through the ring (see `Ring::broken`);
    /// once not, the caller reads with plain syscalls.
    pub fn is_usable(&self) -> bool {
        !self.broken.load(Ordering::Acquire)
    }

    /// Reads every `(offset, buf)` of `fd` in full. Returns how many bytes of
    /// each range the kernel delivered, so the caller can finish short reads
    /// with plain `pread`. On error nothing is in flight any more, but the
    /// buffers hold whatever the reads that did complete wrote.
    pub fn read_ranges(
        &self,
        fd: RawFd,
        ranges: &mut [(u64, &mut [u8])],
    ) -> io::Result<Vec<usize>> {
        let mut ring = self.ring.lock();
        if !self.is_usable() {
            return Err(io::Error::other(
                "io_uring ring unusable after an earlier failure",
            ));
        }
        match read_ranges_on(&mut *ring, fd, ranges) {
            Ok(done) => Ok(done),
            Err(Failure::Read(e)) => Err(e),
            Err(Failure::Ring(e)) => {
                self.broken.store(true, Ordering::Release);
                tracing::error!("io_uring_enter failed ({e}); FD backend falls back to pread");
                Err(e)
            }
        }
    }
}

/// What the read logic needs of a ring: the real one, or the unit tests'
/// fake, which injects interrupted waits and failed completions.
trait Queue {
    /// Queues `entry` without submitting it; false if the queue is full.
    ///
    /// # Safety
    ///
    /// As for `io_uring::SubmissionQueue::push`: the buffer and descriptor
    /// the entry names must stay valid until its completion is reaped, or
    /// until it is certain the kernel never takes the entry.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> bool;
    /// `io_uring_enter`: submits what is queued and waits for `want`
    /// completions.
    fn submit_and_wait(&mut self, want: usize) -> io::Result<usize>;
    /// The oldest completion not yet reaped: its user data and result.
    fn pop(&mut self) -> Option<(u64, i32)>;
    /// How many queued entries the kernel has not taken yet.
    fn unsubmitted(&mut self) -> usize;
}

impl Queue for IoUring {
    unsafe fn push(&mut self, entry: &squeue::Entry) -> bool {
        // SAFETY: the caller keeps the contract of `SubmissionQueue::push`,
        // which this method's own contract restates.
        unsafe { self.submission().push(entry) }.is_ok()
    }

    fn submit_and_wait(&mut self, want: usize) -> io::Result<usize> {
        IoUring::submit_and_wait(self, want)
    }

    fn pop(&mut self) -> Option<(u64, i32)> {
        self.completion()
            .next()
            .map(|cqe| (cqe.user_data(), cqe.result()))
    }

    fn unsubmitted(&mut self) -> usize {
        self.submission().len()
    }
}

/// Why a read through the ring failed.
#[derive(Debug)]
enum Failure {
    /// A read failed (or the input was refused); the ring is fine.
    Read(io::Error),
    /// The ring could not be entered; it must not be used again.
    Ring(io::Error),
}

/// `Ring::read_ranges` on any queue; `q` is the caller's alone for the call
/// (the ring's lock).
fn read_ranges_on(
    q: &mut impl Queue,
    fd: RawFd,
    ranges: &mut [(u64, &mut [u8])],
) -> Result<Vec<usize>, Failure> {
    // Checked before anything is queued, so that a refusal leaves nothing
    // behind.
    if ranges
        .iter()
        .any(|(_, buf)| u32::try_from(buf.len()).is_err())
    {
        return Err(Failure::Read(io::Error::new(
            io::ErrorKind::InvalidInput,
            "read range over 4 GiB",
        )));
    }
    let mut done = vec![0usize; ranges.len()];
    let mut first_error = None;
    for (chunk_start, chunk) in ranges
        .chunks_mut(RING_ENTRIES as usize)
        .enumerate()
        .map(|(i, c)| (i * RING_ENTRIES as usize, c))
    {
        let mut pushed = 0;
        for (i, (offset, buf)) in chunk.iter_mut().enumerate() {
            let entry = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), buf.len() as u32)
                .offset(*offset)
                .build()
                .user_data((chunk_start + i) as u64);
            // SAFETY: `buf` is borrowed from `ranges` for this whole call, and
            // the caller keeps `fd` open for it. Neither is released before
            // the entry is done with: `reap` below returns only once every
            // pushed entry the kernel took has completed, and an entry it
            // did not take stays in the queue of a ring that is then broken
            // and never entered again. No other call pushes or reaps
            // meanwhile (`q` is ours alone), so the completions reaped are
            // exactly these entries'.
            if !unsafe { q.push(&entry) } {
                first_error
                    .get_or_insert_with(|| io::Error::other("io_uring submission queue full"));
                break;
            }
            pushed += 1;
        }
        reap(q, pushed, |user_data, result| {
            let slot = done.get_mut(user_data as usize);
            debug_assert!(slot.is_some(), "completion of another call: {user_data}");
            match (slot, usize::try_from(result)) {
                (Some(slot), Ok(n)) => *slot = n,
                (_, Err(_)) => {
                    first_error.get_or_insert(io::Error::from_raw_os_error(-result));
                }
                (None, Ok(_)) => {}
            }
        })
        .map_err(Failure::Ring)?;
        if first_error.is_some() {
            break;
        }
    }
    match first_error {
        Some(e) => Err(Failure::Read(e)),
        None => Ok(done),
    }
}

/// Waits until the `in_flight` entries last pushed to `q` have completed,
/// handing each completion to `on_completion`. A wait that a signal
/// interrupted, or that the kernel refused for lack of resources, is
/// retried. Any other failure to enter the ring is returned, but only after
/// the entries the kernel had already taken have completed (watched for
/// without entering the ring again); the ones it had not taken stay queued,
/// and the caller must never enter the ring again.
fn reap(
    q: &mut impl Queue,
    mut in_flight: usize,
    mut on_completion: impl FnMut(u64, i32),
) -> io::Result<()> {
    while in_flight > 0 {
        if let Some((user_data, result)) = q.pop() {
            in_flight -= 1;
            on_completion(user_data, result);
            continue;
        }
        let error = match q.submit_and_wait(in_flight) {
            Ok(_) => continue,
            Err(e) => e,
        };
        match error.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN | libc::EBUSY) => std::thread::sleep(RETRY_PAUSE),
            _ => {
                let mut taken = in_flight - q.unsubmitted().min(in_flight);
                while taken > 0 {
                    match q.pop() {
                        Some((user_data, result)) => {
                            taken -= 1;
                            on_completion(user_data, result);
                        }
                        None => std::thread::sleep(RETRY_PAUSE),
                    }
                }
                return Err(error);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, VecDeque};

    /// What the fake's next `submit_and_wait` does.
    #[derive(Clone, Copy)]
    enum Enter {
        /// Submits everything queued and completes one submitted read.
        Wait,
        /// Submits everything queued, then a signal ends the wait before
        /// any read completes (the kernel then reports the submission).
        SubmitThenSignal,
        /// Fails with this errno, taking nothing.
        Fail(i32),
    }

    /// A ring in memory: reads complete one per wait (or, once entering has
    /// failed, on their own, as the kernel finishes them), with the result
    /// `results` gives their user data (default 7 bytes).
    #[derive(Default)]
    struct FakeRing {
        queued: VecDeque<u64>,
        running: VecDeque<u64>,
        posted: VecDeque<(u64, i32)>,
        /// Outcomes of the next waits, in order; then `Enter::Wait`.
        script: VecDeque<Enter>,
        results: HashMap<u64, i32>,
        /// Pushes accepted before the queue reports itself full.
        room: Option<usize>,
        enter_failed: bool,
        enters: usize,
    }

    impl FakeRing {
        fn complete_one(&mut self) {
            if let Some(user_data) = self.running.pop_front() {
                let result = self.results.get(&user_data).copied().unwrap_or(7);
                self.posted.push_back((user_data, result));
            }
        }

        fn assert_idle(&self) {
            assert!(self.running.is_empty(), "reads left in flight");
            assert!(self.posted.is_empty(), "completions left for the next call");
        }
    }

    impl Queue for FakeRing {
        unsafe fn push(&mut self, entry: &squeue::Entry) -> bool {
            if self.room == Some(0) {
                return false;
            }
            self.room = self.room.map(|r| r - 1);
            self.queued.push_back(entry.get_user_data());
            true
        }

        fn submit_and_wait(&mut self, _want: usize) -> io::Result<usize> {
            self.enters += 1;
            let n = self.queued.len();
            match self.script.pop_front().unwrap_or(Enter::Wait) {
                Enter::Fail(errno) => {
                    self.enter_failed = true;
                    return Err(io::Error::from_raw_os_error(errno));
                }
                Enter::SubmitThenSignal => self.running.extend(self.queued.drain(..)),
                Enter::Wait => {
                    self.running.extend(self.queued.drain(..));
                    self.complete_one();
                }
            }
            Ok(n)
        }

        fn pop(&mut self) -> Option<(u64, i32)> {
            if self.posted.is_empty() && self.enter_failed {
                self.complete_one();
            }
            self.posted.pop_front()
        }

        fn unsubmitted(&mut self) -> usize {
            self.queued.len()
        }
    }

    fn read(q: &mut FakeRing, n: usize) -> Result<Vec<usize>, Failure> {
        let mut bufs = vec![[0u8; 16]; n];
        let mut ranges: Vec<(u64, &mut [u8])> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| (i as u64 * 16, &mut b[..]))
            .collect();
        read_ranges_on(q, -1, &mut ranges)
    }

    #[test]
    fn interrupted_waits_and_a_failed_read_leave_nothing_in_flight() {
        let mut q = FakeRing {
            script: [
                Enter::Fail(libc::EINTR),
                Enter::SubmitThenSignal,
                Enter::Fail(libc::EINTR),
                Enter::Wait,
                Enter::Fail(libc::EAGAIN),
            ]
            .into(),
            // The second read fails while three more are still running.
            results: [(1, -libc::EIO)].into(),
            ..FakeRing::default()
        };
        let err = match read(&mut q, 5) {
            Err(Failure::Read(e)) => e,
            other => panic!("expected the read's EIO, got {other:?}"),
        };
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        q.assert_idle();
        // The next call is credited with its own completions only.
        q.results.clear();
        assert_eq!(read(&mut q, 3).unwrap(), vec![7, 7, 7]);
        q.assert_idle();
    }

    #[test]
    fn a_full_submission_queue_still_reaps_what_it_took() {
        let mut q = FakeRing {
            room: Some(2),
            ..FakeRing::default()
        };
        assert!(matches!(read(&mut q, 5), Err(Failure::Read(_))));
        assert!(q.queued.is_empty(), "pushed entries were never submitted");
        q.assert_idle();
    }

    #[test]
    fn chunks_past_the_ring_size_are_each_reaped_in_full() {
        let mut q = FakeRing {
            script: [Enter::SubmitThenSignal, Enter::Fail(libc::EINTR)].into(),
            ..FakeRing::default()
        };
        let n = RING_ENTRIES as usize * 2 + 3;
        assert_eq!(read(&mut q, n).unwrap(), vec![7; n]);
        q.assert_idle();
    }

    #[test]
    fn a_failed_enter_waits_for_the_reads_the_kernel_took() {
        // The first wait submits all four and completes one; the second
        // enter fails for good, with three still running.
        let mut q = FakeRing {
            script: [Enter::Wait, Enter::Fail(libc::EINVAL)].into(),
            ..FakeRing::default()
        };
        assert!(matches!(read(&mut q, 4), Err(Failure::Ring(_))));
        q.assert_idle();
        // Failing before the kernel took anything: nothing to wait for, and
        // the entries stay queued (the ring is never entered again).
        let mut q = FakeRing {
            script: [Enter::Fail(libc::EINVAL)].into(),
            ..FakeRing::default()
        };
        assert!(matches!(read(&mut q, 4), Err(Failure::Ring(_))));
        assert_eq!((q.queued.len(), q.enters), (4, 1));
        q.assert_idle();
    }

    /// A real ring, or `None` (with a note) where the kernel refuses one.
    fn real_ring() -> Option<Ring> {
        match Ring::new() {
            Ok(ring) => Some(ring),
            Err(e) => {
                eprintln!("skipped: io_uring refused ({e})");
                None
            }
        }
    }

    #[test]
    fn a_real_ring_reads_every_range() {
        use std::os::unix::io::AsRawFd;
        let Some(ring) = real_ring() else { return };
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..200 * 1024u32).map(|i| (i % 251) as u8).collect();
        std::io::Write::write_all(&mut file, &data).unwrap();
        // More ranges than the ring holds, one of them past the end.
        let mut bufs: Vec<Vec<u8>> = (0..150).map(|i| vec![0u8; 100 + i]).collect();
        let offsets: Vec<u64> = (0..150u64).map(|i| i * 1300).collect();
        let mut ranges: Vec<(u64, &mut [u8])> = offsets
            .iter()
            .zip(bufs.iter_mut())
            .map(|(&o, b)| (o, &mut b[..]))
            .collect();
        ranges[149].0 = data.len() as u64 - 10;
        let done = ring.read_ranges(file.as_raw_fd(), &mut ranges).unwrap();
        assert_eq!(done[149], 10, "a range past the end is short");
        for (i, (offset, buf)) in ranges.iter().enumerate().take(149) {
            assert_eq!(done[i], buf.len());
            assert_eq!(**buf, data[*offset as usize..*offset as usize + buf.len()]);
        }
    }

    extern "C" fn ignore_signal(_: libc::c_int) {}

    /// Reads from a pipe block in the kernel until it is written, so a
    /// signal sent meanwhile interrupts the wait in `io_uring_enter`. The
    /// call must go on waiting, and must not return while the first read is
    /// in flight just because the second one failed.
    #[test]
    fn a_signal_during_the_wait_neither_ends_the_call_nor_leaks_a_read() {
        use std::os::unix::io::AsRawFd;
        use std::sync::Arc;
        let Some(ring) = real_ring() else { return };
        // SAFETY: installs a handler that does nothing, without SA_RESTART,
        // for a signal nothing else in the test binary uses.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore_signal as *const () as usize;
            assert_eq!(
                libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
                0
            );
        }
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: pipe(2) just returned these descriptors; each is owned once.
        let (rx, tx) = unsafe {
            use std::os::fd::FromRawFd;
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        };
        // SAFETY: pthread_self has no preconditions.
        let reader = unsafe { libc::pthread_self() };
        let stop = Arc::new(AtomicBool::new(false));
        let signaller = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                // Signals for a while (the reader blocks in the wait by
                // then), then the data that lets the reads complete.
                for _ in 0..40 {
                    // SAFETY: the reader thread outlives this loop: it
                    // joins this thread only after setting `stop`, and
                    // the loop checks `stop` before every signal.
                    if stop.load(Ordering::Acquire)
                        // SAFETY: as above: `reader` is a live thread.
                        || unsafe { libc::pthread_kill(reader, libc::SIGUSR1) } != 0
                    {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                let mut tx = tx;
                std::io::Write::write_all(&mut tx, b"abcdefgh").unwrap();
                // Keeps the pipe open until the reads are done.
                while !stop.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        // The second range's offset is refused on a pipe (ESPIPE) at once;
        // the first waits for the data.
        let (mut a, mut b) = ([0u8; 4], [0u8; 4]);
        let mut ranges: Vec<(u64, &mut [u8])> = vec![(0, &mut a), (7, &mut b)];
        let result = ring.read_ranges(rx.as_raw_fd(), &mut ranges);
        stop.store(true, Ordering::Release);
        signaller.join().unwrap();
        match result {
            // Every read completed before the call returned: the first one
            // holds the data.
            Err(e) if e.raw_os_error() == Some(libc::ESPIPE) => assert_eq!(&a, b"abcd"),
            // Kernels that ignore the offset: each read gets half the data.
            Ok(done) => assert_eq!(done, vec![4, 4]),
            Err(e) => panic!("the call ended early: {e}"),
        }
        // Nothing was left over for the next call.
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, b"0123456789").unwrap();
        let (mut c, mut d) = ([0u8; 3], [0u8; 3]);
        let mut ranges: Vec<(u64, &mut [u8])> = vec![(1, &mut c), (6, &mut d)];
        assert_eq!(
            ring.read_ranges(file.as_raw_fd(), &mut ranges).unwrap(),
            vec![3, 3]
        );
        assert_eq!((&c, &d), (b"123", b"678"));
    }
}
