//! The fd backend: pread/pwrite on plain file descriptors, fdatasync for
//! durability, and io_uring for multi-range reads on Linux.

use super::{os, FileKind, OpenMode, Storage, StorageFile};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

#[cfg(target_os = "linux")]
use super::uring::Ring;

pub struct FdStorage {
    #[cfg(target_os = "linux")]
    ring: Option<Arc<Ring>>,
}

impl FdStorage {
    /// Sets up io_uring when the kernel allows it; otherwise warns and keeps
    /// to plain syscalls.
    pub fn new() -> FdStorage {
        #[cfg(target_os = "linux")]
        {
            let ring = match Ring::new() {
                Ok(ring) => Some(Arc::new(ring)),
                Err(e) => {
                    tracing::warn!(
                        "io_uring unavailable ({e}); FD backend falls back to pread/pwrite"
                    );
                    None
                }
            };
            FdStorage { ring }
        }
        #[cfg(not(target_os = "linux"))]
        FdStorage {}
    }
}

impl FdStorage {
    /// Plain syscalls only; the mmap backend uses this for its small files.
    pub(super) fn plain() -> FdStorage {
        FdStorage {
            #[cfg(target_os = "linux")]
            ring: None,
        }
    }
}

impl Default for FdStorage {
    fn default() -> Self {
        FdStorage::new()
    }
}

impl Storage for FdStorage {
    fn describe(&self) -> String {
        #[cfg(target_os = "linux")]
        if self.ring.is_some() {
            return "FD backend (io_uring)".into();
        }
        "FD backend (pread/pwrite)".into()
    }

    fn open(
        &self,
        path: &Path,
        mode: OpenMode,
        kind: FileKind,
    ) -> io::Result<Arc<dyn StorageFile>> {
        let file = os::open_options(mode).open(path)?;
        if let (OpenMode::CreateNew, FileKind::Segment { size_bytes }) = (mode, kind) {
            file.set_len(size_bytes)?;
        }
        Ok(Arc::new(FdFile {
            file,
            #[cfg(target_os = "linux")]
            ring: self.ring.clone(),
        }))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        os::list(dir)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        os::sync_dir(dir)
    }

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
}

pub struct FdFile {
    file: File,
    #[cfg(target_os = "linux")]
    ring: Option<Arc<Ring>>,
}

impl StorageFile for FdFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        os::next_data(&self.file, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn reserve(&self, _offset: u64, _len: u64) -> io::Result<()> {
        // pwrite reports ENOSPC itself; nothing to prepare.
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.file.as_fd())
    }

    fn read_ranges(&self, ranges: &mut [(u64, &mut [u8])]) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(ring) = self
            .ring
            .as_ref()
            .filter(|r| ranges.len() > 1 && r.is_usable())
        {
            use std::os::unix::io::AsRawFd;
            match ring.read_ranges(self.file.as_raw_fd(), ranges) {
                Ok(done) => {
                    for ((offset, buf), got) in ranges.iter_mut().zip(done) {
                        if got < buf.len() {
                            self.file
                                .read_exact_at(&mut buf[got..], *offset + got as u64)?;
                        }
                    }
                    return Ok(());
                }
                // The ring could not be entered and is not used again (no
                // read of this call is in flight any more): plain reads.
                Err(_) if !ring.is_usable() => {}
                Err(e) => return Err(e),
            }
        }
        for (offset, buf) in ranges.iter_mut() {
            self.file.read_exact_at(buf, *offset)?;
        }
        Ok(())
    }
}
