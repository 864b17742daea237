//! The storage seam: the narrow interface through which the engine touches
//! files. Production backends (`fd`, `mmap`) and the simulated storage of the
//! crash suites all implement it, so everything above this line is exercised
//! by the same tests whichever backend runs underneath.

mod fd;
mod mmap;
#[cfg(any(test, feature = "test-support"))]
pub mod sim;
#[cfg(target_os = "linux")]
mod uring;

pub use fd::FdStorage;
pub use mmap::MmapStorage;
pub(crate) use os::sync_dir;

use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::Arc;

/// What a file is for; the mmap backend maps segments and keeps small files
/// on plain descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A segment of the given size; created at that size.
    Segment {
        /// The segment's size in bytes.
        size_bytes: u64,
    },
    /// Cursor snapshots and logs: small, appended or rewritten whole.
    Small,
}

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Fail if the file exists.
    CreateNew,
    /// Fail if the file does not exist.
    Existing,
}

/// A directory of files. Paths handed in are always inside the instance
/// directory; the engine builds them, never the user.
pub trait Storage: Send + Sync + 'static {
    /// Human-readable name of the backend, logged at open.
    fn describe(&self) -> String;
    /// Opens (or creates, as `mode` says) the file at `path`.
    fn open(&self, path: &Path, mode: OpenMode, kind: FileKind)
        -> io::Result<Arc<dyn StorageFile>>;
    /// The names of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Deletes the file at `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates `dir` (and its parents) if it does not exist; recovery moves
    /// damaged files into such a directory. The simulated storage has no
    /// directories to create.
    fn create_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

/// One open file.
#[allow(clippy::len_without_is_empty)] // a file length, not a collection
pub trait StorageFile: Send + Sync {
    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`, or fails.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Reads as `read_exact_at` does, but never through a memory mapping:
    /// recovery reads with it, so that reading a never-written (sparse)
    /// range of a mapped segment cannot allocate a page, or on a full
    /// filesystem fault with SIGBUS. `pread` of a hole returns zeros.
    fn pread_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }
    /// The first offset at or after `offset` that may hold data (Linux
    /// `SEEK_DATA`): every byte between the two reads as zero. `None` when
    /// nothing but holes follows. Backends that cannot tell return `offset`.
    fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        Ok(Some(offset))
    }
    /// Sets the file's length (zero-filled when it grows). Recovery restores
    /// a truncated segment to the length its header names with it, on the
    /// plain descriptor it probes the header through.
    fn set_len(&self, _len: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this file cannot change length",
        ))
    }
    /// Writes all of `buf` at `offset`, or fails.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes `[offset, offset + len)` writable without a later failure from
    /// lack of space where the backend can promise that (mmap: fallocate, so
    /// a full disk is an error here and not a SIGBUS later).
    fn reserve(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Whether `reserve` does enough work that the engine should call it
    /// ahead of time from a background thread, so that the appender which
    /// later reserves the range finds it done (mmap: faulting fresh pages in
    /// means allocating and zeroing them).
    fn reserve_is_costly(&self) -> bool {
        false
    }
    /// Makes every completed write durable (fdatasync / msync).
    fn sync(&self) -> io::Result<()>;
    /// Hints that `[offset, offset + len)` will not be touched soon, so its
    /// pages need not count against this process (mmap: MADV_DONTNEED).
    /// The data stays in the file and in the page cache.
    fn evict(&self, _offset: u64, _len: u64) {}

    /// The file's descriptor, for a caller that syncs it by other means (the
    /// async front end issues an io_uring fdatasync on a duplicate of it).
    /// Only backends whose `sync` is equivalent to fdatasync of this
    /// descriptor return one; the others (the simulated storage) return None
    /// and are synced through [`StorageFile::sync`].
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// Reads several ranges; backends with io_uring submit them together.
    fn read_ranges(&self, ranges: &mut [(u64, &mut [u8])]) -> io::Result<()> {
        for (offset, buf) in ranges.iter_mut() {
            self.read_exact_at(buf, *offset)?;
        }
        Ok(())
    }
}

/// Which production backend to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Memory-mapped segments (memmap2).
    Mmap,
    /// pread/pwrite on file descriptors, with io_uring batching on Linux.
    Fd,
}

impl Backend {
    /// `WALRUS_BACKEND` or `BACKEND` (`mmap` | `fd`); fd when neither is set.
    pub fn from_env() -> Result<Backend, String> {
        match std::env::var("WALRUS_BACKEND").or_else(|_| std::env::var("BACKEND")) {
            Ok(v) => v.parse(),
            Err(_) => Ok(Backend::Fd),
        }
    }

    /// The backend's storage; `sync_each` tells the mmap backend to write
    /// appends through its descriptor (see `mmap.rs`).
    pub(crate) fn storage(self, sync_each: bool) -> Arc<dyn Storage> {
        match self {
            Backend::Mmap => Arc::new(MmapStorage {
                write_through_fd: sync_each,
            }),
            Backend::Fd => Arc::new(FdStorage::new()),
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Backend, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mmap" => Ok(Backend::Mmap),
            "fd" => Ok(Backend::Fd),
            other => Err(format!("`{other}` is not a backend; use mmap or fd")),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Mmap => "mmap",
            Backend::Fd => "fd",
        })
    }
}

/// Directory operations shared by the two OS-backed backends.
pub(crate) mod os {
    use std::fs::{self, File};
    use std::io;
    use std::path::Path;

    pub fn list(dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn sync_dir(dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    /// `lseek(SEEK_DATA)`: see [`super::StorageFile::next_data`].
    pub fn next_data(file: &File, offset: u64) -> io::Result<Option<u64>> {
        use std::os::unix::io::AsRawFd;
        let Ok(at) = libc::off_t::try_from(offset) else {
            return Ok(Some(offset));
        };
        // SAFETY: plain syscall on a descriptor the caller owns. The file
        // offset it moves is never used: every read and write is positioned.
        let rc = unsafe { libc::lseek(file.as_raw_fd(), at, libc::SEEK_DATA) };
        if rc >= 0 {
            return Ok(Some(rc as u64));
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::ENXIO) => Ok(None),
            // No SEEK_DATA on this filesystem: assume data everywhere.
            _ => Ok(Some(offset)),
        }
    }

    pub fn open_options(mode: super::OpenMode) -> fs::OpenOptions {
        let mut o = fs::OpenOptions::new();
        o.read(true).write(true);
        if mode == super::OpenMode::CreateNew {
            o.create_new(true);
        }
        o
    }
}
