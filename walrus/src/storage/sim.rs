//! Simulated storage for crash and fault tests.
//!
//! Every file keeps two images: what is durable (as of its last sync) and
//! what the process sees (the page cache), plus the writes made since the
//! last sync, in order. The directory keeps two namespaces the same way: file
//! creations, renames and removals become durable at `sync_dir`. A crash
//! builds a new storage from the durable state plus a chosen part of what was
//! not synced: nothing, a random subset, everything but a torn last write, or
//! everything (a process crash, where the page cache survives).
//!
//! Faults fail the n-th operation of a kind with an errno (EIO, ENOSPC, ...).

use super::{FileKind, OpenMode, Storage, StorageFile};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which operations a fault can hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    Open,
    Read,
    Write,
    Sync,
    SyncDir,
    Rename,
    Remove,
}

impl FaultKind {
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Open,
        FaultKind::Read,
        FaultKind::Write,
        FaultKind::Sync,
        FaultKind::SyncDir,
        FaultKind::Rename,
        FaultKind::Remove,
    ];
}

/// Fails the `nth` (0-based, counted from injection) operation of `kind`
/// with OS error `errno`, once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub nth: u64,
    pub errno: i32,
}

/// What survives of unsynced writes at a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Power loss: only synced data and names survive.
    LoseUnsynced,
    /// Power loss with a random subset of unsynced writes reaching the disk.
    KeepRandom { seed: u64 },
    /// Power loss in the middle of writeback: every unsynced write but the
    /// last survives, and the last survives up to a random byte.
    TearLast { seed: u64 },
    /// The process died but the machine did not: everything survives.
    Process,
}

#[derive(Clone, Default)]
struct Image {
    durable: Vec<u8>,
    volatile: Vec<u8>,
    /// Writes since the last sync, in order.
    pending: Vec<(u64, Vec<u8>)>,
}

#[derive(Default)]
struct State {
    names: BTreeMap<PathBuf, Arc<Mutex<Image>>>,
    durable_names: BTreeMap<PathBuf, Arc<Mutex<Image>>>,
    faults: Vec<Fault>,
    counts: HashMap<FaultKind, u64>,
    /// No free block: creating a file, reserving space and writing past a
    /// file's end fail with ENOSPC; writes inside a file still succeed.
    full: bool,
}

fn no_space() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

impl State {
    /// Counts an operation and fails it if a fault says so.
    fn op(&mut self, kind: FaultKind) -> io::Result<()> {
        let n = self.counts.entry(kind).or_insert(0);
        let this = *n;
        *n += 1;
        if let Some(i) = self
            .faults
            .iter()
            .position(|f| f.kind == kind && f.nth == this)
        {
            let fault = self.faults.remove(i);
            return Err(io::Error::from_raw_os_error(fault.errno));
        }
        Ok(())
    }
}

/// An in-memory storage with crash and fault injection. Cloning shares it.
#[derive(Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

impl SimStorage {
    pub fn new() -> SimStorage {
        SimStorage::default()
    }

    /// Arms a fault; its `nth` counts operations of its kind from now on.
    pub fn inject(&self, mut fault: Fault) {
        let mut state = self.state.lock();
        fault.nth += state.counts.get(&fault.kind).copied().unwrap_or(0);
        state.faults.push(fault);
    }

    /// Fills the disk (or frees it again); see `State::full`.
    pub fn set_full(&self, full: bool) {
        self.state.lock().full = full;
    }

    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Operations of `kind` performed so far.
    pub fn count(&self, kind: FaultKind) -> u64 {
        self.state.lock().counts.get(&kind).copied().unwrap_or(0)
    }

    /// The storage as a reboot (or, for `Crash::Process`, a restarted
    /// process) would find it. The old storage must no longer be used.
    pub fn crash(&self, how: Crash) -> SimStorage {
        let state = self.state.lock();
        let mut rng = Rng(match how {
            Crash::KeepRandom { seed } | Crash::TearLast { seed } => seed | 1,
            _ => 1,
        });
        let names = if how == Crash::Process {
            &state.names
        } else {
            &state.durable_names
        };
        let mut out = State::default();
        for (path, image) in names {
            let image = image.lock();
            let content = match how {
                Crash::Process => image.volatile.clone(),
                Crash::LoseUnsynced => image.durable.clone(),
                Crash::KeepRandom { .. } => {
                    let mut c = image.durable.clone();
                    for (off, bytes) in &image.pending {
                        if rng.next().is_multiple_of(2) {
                            apply(&mut c, *off, bytes);
                        }
                    }
                    c
                }
                Crash::TearLast { .. } => {
                    let mut c = image.durable.clone();
                    if let Some(((last_off, last), rest)) = image.pending.split_last() {
                        for (off, bytes) in rest {
                            apply(&mut c, *off, bytes);
                        }
                        let keep = (rng.next() % (last.len() as u64 + 1)) as usize;
                        apply(&mut c, *last_off, &last[..keep]);
                    }
                    c
                }
            };
            let fresh = Image {
                durable: content.clone(),
                volatile: content,
                pending: Vec::new(),
            };
            let fresh = Arc::new(Mutex::new(fresh));
            out.names.insert(path.clone(), fresh.clone());
            out.durable_names.insert(path.clone(), fresh);
        }
        SimStorage {
            state: Arc::new(Mutex::new(out)),
        }
    }

    /// Flips one bit of a file, in both images (bit rot on the medium).
    pub fn flip_bit(&self, path: &Path, byte: u64, bit: u8) -> bool {
        let state = self.state.lock();
        let Some(image) = state.names.get(path) else {
            return false;
        };
        let mut image = image.lock();
        let b = byte as usize;
        if b >= image.durable.len() || b >= image.volatile.len() {
            return false;
        }
        image.durable[b] ^= 1 << (bit % 8);
        image.volatile[b] ^= 1 << (bit % 8);
        true
    }

    /// Paths and durable lengths of every file, sorted.
    pub fn files(&self) -> Vec<(PathBuf, u64)> {
        let state = self.state.lock();
        state
            .names
            .iter()
            .map(|(p, i)| (p.clone(), i.lock().durable.len() as u64))
            .collect()
    }
}

fn apply(content: &mut Vec<u8>, off: u64, bytes: &[u8]) {
    let end = off as usize + bytes.len();
    if content.len() < end {
        content.resize(end, 0);
    }
    content[off as usize..end].copy_from_slice(bytes);
}

/// xorshift64: deterministic, dependency-free choices for crash states.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

impl Storage for SimStorage {
    fn describe(&self) -> String {
        "simulated storage".into()
    }

    fn open(
        &self,
        path: &Path,
        mode: OpenMode,
        kind: FileKind,
    ) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.state.lock();
        state.op(FaultKind::Open)?;
        let image = match (mode, state.names.get(path)) {
            (OpenMode::Existing, Some(image)) => image.clone(),
            (OpenMode::Existing, None) => return Err(not_found(path)),
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    path.display().to_string(),
                ))
            }
            (OpenMode::CreateNew, None) if state.full => return Err(no_space()),
            (OpenMode::CreateNew, None) => {
                let mut image = Image::default();
                if let FileKind::Segment { size_bytes } = kind {
                    image.volatile = vec![0; size_bytes as usize];
                }
                let image = Arc::new(Mutex::new(image));
                state.names.insert(path.to_owned(), image.clone());
                image
            }
        };
        Ok(Arc::new(SimFile {
            image,
            storage: self.state.clone(),
        }))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state.lock();
        let names = state.names.keys().filter(|p| p.parent() == Some(dir));
        Ok(names
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.op(FaultKind::Remove)?;
        state
            .names
            .remove(path)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.op(FaultKind::Rename)?;
        let image = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_owned(), image);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.op(FaultKind::SyncDir)?;
        let State {
            names,
            durable_names,
            ..
        } = &mut *state;
        durable_names.retain(|p, _| p.parent() != Some(dir));
        for (p, image) in names.iter().filter(|(p, _)| p.parent() == Some(dir)) {
            durable_names.insert(p.clone(), image.clone());
        }
        Ok(())
    }
}

struct SimFile {
    image: Arc<Mutex<Image>>,
    storage: Arc<Mutex<State>>,
}

impl StorageFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.image.lock().volatile.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.storage.lock().op(FaultKind::Read)?;
        let image = self.image.lock();
        let end = offset as usize + buf.len();
        if end > image.volatile.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past end of file",
            ));
        }
        buf.copy_from_slice(&image.volatile[offset as usize..end]);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let full = {
            let mut state = self.storage.lock();
            state.op(FaultKind::Write)?;
            state.full
        };
        let mut image = self.image.lock();
        if full && offset + buf.len() as u64 > image.volatile.len() as u64 {
            return Err(no_space());
        }
        apply(&mut image.volatile, offset, buf);
        image.pending.push((offset, buf.to_vec()));
        Ok(())
    }

    fn reserve(&self, _offset: u64, _len: u64) -> io::Result<()> {
        if self.storage.lock().full {
            return Err(no_space());
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.storage.lock().op(FaultKind::Sync)?;
        let mut image = self.image.lock();
        image.durable = image.volatile.clone();
        image.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_synced_data_and_drops_the_rest() {
        let sim = SimStorage::new();
        let dir = Path::new("/d");
        let f = sim
            .open(&dir.join("a"), OpenMode::CreateNew, FileKind::Small)
            .unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.sync().unwrap();
        sim.sync_dir(dir).unwrap();
        f.write_all_at(b"world", 5).unwrap();
        let after = sim.crash(Crash::LoseUnsynced);
        let g = after
            .open(&dir.join("a"), OpenMode::Existing, FileKind::Small)
            .unwrap();
        assert_eq!(g.len().unwrap(), 5);
        let process = sim.crash(Crash::Process);
        let h = process
            .open(&dir.join("a"), OpenMode::Existing, FileKind::Small)
            .unwrap();
        assert_eq!(h.len().unwrap(), 10);
    }

    #[test]
    fn an_injected_fault_fails_once() {
        let sim = SimStorage::new();
        sim.inject(Fault {
            kind: FaultKind::Open,
            nth: 0,
            errno: libc::ENOSPC,
        });
        let p = Path::new("/d/a");
        let err = sim
            .open(p, OpenMode::CreateNew, FileKind::Small)
            .err()
            .unwrap();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert!(sim.open(p, OpenMode::CreateNew, FileKind::Small).is_ok());
    }
}
