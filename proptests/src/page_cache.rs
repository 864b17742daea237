//! What the kernel's page cache holds for a store's files: the evidence the
//! conformance suite uses to tell a `sync()` that reached the disk from one
//! that did nothing.
//!
//! A store on a real disk writes through the page cache: what it wrote but
//! did not sync is a *dirty* page, and a power loss would take it. Linux 6.5
//! added `cachestat(2)`, which reports a file's dirty and under-writeback
//! pages for any file descriptor; after a `sync()` that keeps the contract no
//! file of the store has a dirty page left. A store that keeps appends in its
//! own memory instead (sled's log buffers) leaves nothing in the page cache
//! to look at; for it a copy of the files taken while it is still open (what
//! a `kill -9` at that moment would leave) shows what `sync()` wrote.
//!
//! Only data pages are covered: file sizes and directory entries are
//! metadata, which `cachestat` does not report.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// Page counts of one file, as `cachestat(2)` reports them for the whole file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CacheStat {
    /// Pages of the file in the page cache.
    pub nr_cache: u64,
    /// Of those, pages written but not yet written back.
    pub nr_dirty: u64,
    /// Of those, pages being written back now.
    pub nr_writeback: u64,
    pub nr_evicted: u64,
    pub nr_recently_evicted: u64,
}

#[repr(C)]
struct CacheStatRange {
    off: u64,
    /// 0: to the end of the file.
    len: u64,
}

/// `cachestat(2)`'s number: 451 on every architecture Linux numbers from
/// the generic table (x86_64, aarch64, riscv64, loongarch64, ...).
#[cfg(target_os = "linux")]
const SYS_CACHESTAT: libc::c_long = 451;

/// The page-cache state of the whole file at `path`. Fails with
/// `ErrorKind::Unsupported` where the kernel has no `cachestat` (ENOSYS,
/// before Linux 6.5, or not Linux at all).
pub fn cachestat(path: &Path) -> io::Result<CacheStat> {
    let file = File::open(path)?;
    cachestat_file(&file, 0, 0)
}

/// Page size the data-page scan works in (the page cache's on x86_64 and
/// most aarch64 kernels; a larger page only makes the scan coarser).
const PAGE: usize = 4096;

/// As [`cachestat`], but counting only the pages that hold a non-zero byte.
/// A page of zeros that is dirty holds nothing a power loss could take: the
/// mmap backend faults in (and so dirties) zero pages ahead of the appender,
/// on a background thread that may run after a `sync()`, and a file's
/// unwritten or sparse ranges read back as zeros after a crash anyway.
pub fn cachestat_data(path: &Path) -> io::Result<CacheStat> {
    let file = File::open(path)?;
    let bytes = fs::read(path)?;
    let mut total = CacheStat::default();
    let mut page = 0;
    let pages = bytes.len().div_ceil(PAGE);
    while page < pages {
        let holds_data = |p: usize| {
            bytes[p * PAGE..((p + 1) * PAGE).min(bytes.len())]
                .iter()
                .any(|&b| b != 0)
        };
        if !holds_data(page) {
            page += 1;
            continue;
        }
        let start = page;
        while page < pages && holds_data(page) {
            page += 1;
        }
        let stat = cachestat_file(&file, (start * PAGE) as u64, ((page - start) * PAGE) as u64)?;
        total.nr_cache += stat.nr_cache;
        total.nr_dirty += stat.nr_dirty;
        total.nr_writeback += stat.nr_writeback;
    }
    Ok(total)
}

#[cfg(target_os = "linux")]
fn cachestat_file(file: &File, off: u64, len: u64) -> io::Result<CacheStat> {
    use std::os::fd::AsRawFd;
    let range = CacheStatRange { off, len };
    let mut stat = CacheStat::default();
    // SAFETY: both pointers are to live, properly laid out #[repr(C)]
    // structs that outlive the call; the kernel writes only into `stat`.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd() as libc::c_uint,
            &range as *const CacheStatRange,
            &mut stat as *mut CacheStat,
            0 as libc::c_uint,
        )
    };
    if rc == 0 {
        return Ok(stat);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOSYS) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "cachestat(2) is not available (ENOSYS; it needs Linux 6.5 or later)",
        ));
    }
    Err(err)
}

#[cfg(not(target_os = "linux"))]
fn cachestat_file(_file: &File, _off: u64, _len: u64) -> io::Result<CacheStat> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "cachestat(2) exists only on Linux",
    ))
}

/// Every regular file under `dir`, recursively, sorted. Symbolic links are
/// not followed; entries that vanish during the walk are left out.
pub fn regular_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `stat` ([`cachestat`] or [`cachestat_data`]) of every regular file under
/// `dir` (see [`regular_files`]); files that vanish meanwhile are left out.
pub fn stat_tree(
    dir: &Path,
    stat: fn(&Path) -> io::Result<CacheStat>,
) -> io::Result<Vec<(PathBuf, CacheStat)>> {
    let mut out = Vec::new();
    for path in regular_files(dir)? {
        match stat(&path) {
            Ok(stat) => out.push((path, stat)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Why the page cache of the file system holding `dir` says nothing about
/// durability, if it does not: tmpfs and ramfs live in memory (their pages
/// stay dirty for ever, and there is no disk to reach), and overlayfs keeps
/// its pages on the file system beneath, where `cachestat` of an overlay
/// file cannot see them. `None` for a file system with a disk behind its
/// page cache (ext4, xfs, btrfs, ...).
pub fn no_disk_behind(dir: &Path) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        const TMPFS_MAGIC: u64 = 0x0102_1994;
        const RAMFS_MAGIC: u64 = 0x8584_58f6;
        const OVERLAYFS_MAGIC: u64 = 0x794c_7630;
        let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: `statfs` is plain old data; the kernel fills it in.
        let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path and a live, writable `statfs`.
        if unsafe { libc::statfs(path.as_ptr(), &mut buf) } != 0 {
            return None;
        }
        let name = match buf.f_type as u64 & 0xffff_ffff {
            TMPFS_MAGIC => "tmpfs",
            RAMFS_MAGIC => "ramfs",
            OVERLAYFS_MAGIC => "overlayfs",
            _ => return None,
        };
        Some(format!(
            "{} is on {name}, whose page cache has no disk behind it that cachestat(2) can \
             observe; set TMPDIR to a directory on a disk to run this check",
            dir.display()
        ))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        Some("cachestat(2) exists only on Linux".into())
    }
}

/// Copies the tree under `from` to `to` (created), regular files and
/// directories only: the image of the files that a process crash at this
/// moment would leave behind, read through the page cache.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            match fs::copy(entry.path(), &target) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The syscall wrapper reports what the kernel does: a written file is
    /// dirty until `sync_all`, then clean.
    #[test]
    fn cachestat_sees_a_write_and_its_sync() {
        let tmp = tempfile::tempdir().unwrap();
        if let Some(why) = no_disk_behind(tmp.path()) {
            eprintln!("SKIPPED: {why}");
            return;
        }
        let path = tmp.path().join("f");
        let mut file = File::create(&path).unwrap();
        file.write_all(&vec![7u8; 1 << 20]).unwrap();
        let before = match cachestat(&path) {
            Ok(stat) => stat,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                eprintln!("SKIPPED: {e}");
                return;
            }
            Err(e) => panic!("cachestat: {e}"),
        };
        assert!(before.nr_cache > 0, "{before:?}");
        assert!(before.nr_dirty > 0, "a fresh write is dirty: {before:?}");
        file.sync_all().unwrap();
        let after = cachestat(&path).unwrap();
        assert_eq!((after.nr_dirty, after.nr_writeback), (0, 0), "{after:?}");
        let tree = stat_tree(tmp.path(), cachestat).unwrap();
        assert_eq!(tree.len(), 1);
    }
}
