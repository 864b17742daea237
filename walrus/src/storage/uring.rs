//! io_uring submission for the fd backend: several reads go to the kernel in
//! one `io_uring_enter`, instead of one syscall each. One ring per storage
//! instance, never one per call.

use io_uring::{opcode, types, IoUring};
use parking_lot::Mutex;
use std::io;
use std::os::unix::io::RawFd;

const RING_ENTRIES: u32 = 64;

pub struct Ring {
    ring: Mutex<IoUring>,
}

impl Ring {
    pub fn new() -> io::Result<Ring> {
        Ok(Ring {
            ring: Mutex::new(IoUring::new(RING_ENTRIES)?),
        })
    }

    /// Reads every `(offset, buf)` of `fd` in full. Returns how many bytes of
    /// each range the kernel delivered, so the caller can finish short reads
    /// with plain `pread`.
    pub fn read_ranges(
        &self,
        fd: RawFd,
        ranges: &mut [(u64, &mut [u8])],
    ) -> io::Result<Vec<usize>> {
        let mut done = vec![0usize; ranges.len()];
        let mut ring = self.ring.lock();
        for (chunk_start, chunk) in ranges
            .chunks_mut(RING_ENTRIES as usize)
            .enumerate()
            .map(|(i, c)| (i * RING_ENTRIES as usize, c))
        {
            for (i, (offset, buf)) in chunk.iter_mut().enumerate() {
                let len = u32::try_from(buf.len()).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "read range over 4 GiB")
                })?;
                let entry = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), len)
                    .offset(*offset)
                    .build()
                    .user_data((chunk_start + i) as u64);
                // SAFETY: the buffer and fd stay valid until the completion is
                // reaped below: we wait for every submitted entry before this
                // function returns or touches `ranges` again, and the ring is
                // locked so no other caller reaps our completions.
                unsafe { ring.submission().push(&entry) }
                    .map_err(|_| io::Error::other("io_uring submission queue full"))?;
            }
            ring.submit_and_wait(chunk.len())?;
            let mut reaped = 0;
            while reaped < chunk.len() {
                let cqes: Vec<_> = ring.completion().collect();
                if cqes.is_empty() {
                    ring.submit_and_wait(chunk.len() - reaped)?;
                    continue;
                }
                for cqe in cqes {
                    reaped += 1;
                    let idx = cqe.user_data() as usize;
                    if cqe.result() < 0 {
                        return Err(io::Error::from_raw_os_error(-cqe.result()));
                    }
                    done[idx] = cqe.result() as usize;
                }
            }
        }
        Ok(done)
    }
}
