//! The mmap backend: segments are mapped shared and written with memcpy;
//! msync makes them durable. Small files (cursors) use plain descriptors.
//!
//! Under `SyncEach` appends go through the descriptor (`pwrite`) instead,
//! fdatasync of that descriptor makes them durable, and reads still come
//! from the mapping (both use the same page cache).
//! Syncing a file after nearly every append cleans its pages, and the
//! kernel then write-protects their mappings: the next store into a mapped
//! page takes a fault, and every cleaning shoots down TLB entries on every
//! CPU. Measured: 8 threads under sync-each made 7.9k-10.1k appends/s
//! through the mapping against 21.1k-22.6k through `pwrite`.

use super::{FdStorage, FileKind, OpenMode, Storage, StorageFile};
use memmap2::{Advice, MmapRaw, UncheckedAdvice};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;

/// `write_through_fd`: appends use `pwrite` rather than the mapping (for
/// `SyncEach`; see the module documentation).
pub struct MmapStorage {
    pub write_through_fd: bool,
}

impl Storage for MmapStorage {
    fn describe(&self) -> String {
        if self.write_through_fd {
            "mmap backend (appends through pwrite: every append is synced)".into()
        } else {
            "mmap backend".into()
        }
    }

    fn open(
        &self,
        path: &Path,
        mode: OpenMode,
        kind: FileKind,
    ) -> io::Result<Arc<dyn StorageFile>> {
        let FileKind::Segment { size_bytes } = kind else {
            return FdStorage::plain().open(path, mode, kind);
        };
        let file = super::os::open_options(mode).open(path)?;
        if mode == OpenMode::CreateNew {
            file.set_len(size_bytes)?;
        }
        if file.metadata()?.len() == 0 {
            // A zero-length mapping is an error; the engine treats the file as empty.
            return FdStorage::plain().open(path, OpenMode::Existing, FileKind::Small);
        }
        let map = MmapRaw::map_raw(&file)?;
        Ok(Arc::new(MmapFile {
            map,
            file,
            write_through_fd: self.write_through_fd,
        }))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        super::os::list(dir)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        super::os::sync_dir(dir)
    }

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
}

struct MmapFile {
    map: MmapRaw,
    file: File,
    write_through_fd: bool,
}

impl MmapFile {
    fn check(&self, offset: u64, len: usize) -> io::Result<usize> {
        let end = offset.checked_add(len as u64);
        match end {
            Some(end) if end <= self.map.len() as u64 => Ok(offset as usize),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "range {offset}+{len} outside mapping of {} bytes",
                    self.map.len()
                ),
            )),
        }
    }
}

impl StorageFile for MmapFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.map.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let at = self.check(offset, buf.len())?;
        // SAFETY: `check` keeps the range inside the mapping, which lives as
        // long as `self`. The engine never reads a range while it is being
        // written: readers only see bytes below a block's published commit
        // offset (an Acquire load paired with the writer's Release store), and
        // recovery runs before any writer starts. Raw copies avoid forming a
        // reference to memory that other threads write elsewhere.
        unsafe {
            std::ptr::copy_nonoverlapping(self.map.as_ptr().add(at), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }

    /// Through the descriptor: a read of a sparse range through the mapping
    /// would allocate a page (tmpfs), or fault with SIGBUS where none can be
    /// had (a full filesystem); `pread` of a hole just returns zeros.
    fn pread_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.check(offset, buf.len())?;
        self.file.read_exact_at(buf, offset)
    }

    fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        super::os::next_data(&self.file, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.write_through_fd {
            use std::os::unix::fs::FileExt;
            self.check(offset, buf.len())?;
            return self.file.write_all_at(buf, offset);
        }
        let at = self.check(offset, buf.len())?;
        // SAFETY: in bounds as above. Concurrent writers never overlap: each
        // extent belongs to one topic, whose writer holds the topic's mutex,
        // and extents are handed out once by the allocator. The range was
        // reserved (fallocate) so the store cannot fault with SIGBUS for lack
        // of space.
        unsafe {
            std::ptr::copy_nonoverlapping(buf.as_ptr(), self.map.as_mut_ptr().add(at), buf.len())
        };
        Ok(())
    }

    fn reserve(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check(offset, len as usize)?;
        let (off, len) = (offset as libc::off_t, len as libc::off_t);
        // SAFETY: plain syscall on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::posix_fallocate(self.file.as_raw_fd(), off, len) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if self.write_through_fd {
            return Ok(()); // appends do not store through the mapping
        }
        // Fault the extent's pages in with one call rather than one page
        // fault per 4 KiB on the append path. Kernels before 5.14 do not
        // know the advice (EINVAL), and appends then fault pages in as they
        // go. Any other failure means a later store into these pages could
        // fault fatally (SIGBUS) instead of returning an error, so it is
        // reported here.
        #[cfg(target_os = "linux")]
        if let Err(e) = self
            .map
            .advise_range(Advice::PopulateWrite, offset as usize, len as usize)
        {
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
        Ok(())
    }

    fn reserve_is_costly(&self) -> bool {
        !self.write_through_fd
    }

    fn sync(&self) -> io::Result<()> {
        if self.write_through_fd {
            // The appends went through the descriptor: sync that.
            return self.file.sync_data();
        }
        self.map.flush()
    }

    /// fdatasync of this descriptor is what `sync` does: on Linux,
    /// msync(MS_SYNC) of a shared file mapping is `vfs_fsync_range(file, ..,
    /// datasync = 1)` over the range (mm/msync.c), and stores through a
    /// MAP_SHARED mapping dirty the file's page-cache pages themselves (the
    /// write fault marks them dirty), so fdatasync of the file writes them
    /// back just as msync does.
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.file.as_fd())
    }

    fn evict(&self, offset: u64, len: u64) {
        let Ok(at) = self.check(offset, len as usize) else {
            return;
        };
        // SAFETY: the mapping is MAP_SHARED and file-backed, so MADV_DONTNEED
        // only drops this process's page-table entries: dirty pages pass to
        // the page cache and are written back as usual, and later accesses
        // fault the same file contents back in. No reference into the range
        // is held (all access goes through raw copies), and the range is
        // inside the mapping.
        let result = unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, at, len as usize)
        };
        if let Err(e) = result {
            tracing::debug!("madvise(DONTNEED) failed: {e}");
        }
    }
}
