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
//!
//! For concurrent tests: every change to a file or to a name happens under
//! the storage's one lock, so the storage changes one operation at a time.
//! An operation hook ([`SimStorage::set_op_hook`]) runs under that lock at
//! every open, read, write, sync, directory sync, rename and remove, before
//! the operation takes effect, and can take crash images there
//! ([`OpPoint::crash`]): each is the exact state between two operations, even
//! while many threads use the storage. A second callback
//! ([`SimStorage::set_before_op`]) runs before each operation with the
//! storage unlocked, to pause the calling thread and so widen the races a
//! test wants to hit, or to act on the storage at a chosen point.

use super::{FileKind, OpenMode, Storage, StorageFile};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which operations a fault can hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Opening or creating a file.
    Open,
    /// A read.
    Read,
    /// A write.
    Write,
    /// A file's fsync.
    Sync,
    /// A directory's fsync.
    SyncDir,
    /// A rename.
    Rename,
    /// A removal.
    Remove,
}

impl FaultKind {
    /// Every kind, for sweeps.
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
    /// The kind of operation that fails.
    pub kind: FaultKind,
    /// Which one of them (0-based).
    pub nth: u64,
    /// The OS error it fails with.
    pub errno: i32,
}

/// What survives of unsynced writes at a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Power loss: only synced data and names survive.
    LoseUnsynced,
    /// Power loss with a random subset of unsynced writes reaching the disk.
    KeepRandom {
        /// Seeds the choice of writes kept.
        seed: u64,
    },
    /// Power loss in the middle of writeback: every unsynced write but the
    /// last survives, and the last survives up to a random byte.
    TearLast {
        /// Seeds where the last write is torn.
        seed: u64,
    },
    /// The process died but the machine did not: everything survives.
    Process,
}

#[derive(Clone, Default)]
struct Image {
    /// The two images share their bytes, copy on write: a sync or a crash
    /// image costs a reference, not a copy of the file.
    durable: Arc<Vec<u8>>,
    volatile: Arc<Vec<u8>>,
    /// Writes since the last sync, in order.
    pending: Vec<(u64, Vec<u8>)>,
    /// The length a segment was created with (`set_len` on a real disk).
    /// Until a sync makes it durable, a power loss keeps that length (zeros,
    /// plus what survives of the writes) or loses it, and every unsynced
    /// write with it: the file comes back at its created length or as last
    /// synced, never in between.
    created_len: usize,
}

impl Image {
    /// The durable bytes, at least as long as the created length: what a
    /// power loss that kept the length starts from.
    fn durable_at_created_length(&self) -> Arc<Vec<u8>> {
        if self.length_unsynced() {
            let mut c = vec![0; self.created_len];
            c[..self.durable.len()].copy_from_slice(&self.durable);
            Arc::new(c)
        } else {
            self.durable.clone()
        }
    }

    fn length_unsynced(&self) -> bool {
        self.durable.len() < self.created_len
    }
}

/// Called at every operation, locked; see [`SimStorage::set_op_hook`].
type OpHook = Box<dyn FnMut(&OpPoint<'_>) + Send>;
/// Called before every operation, unlocked; see [`SimStorage::set_before_op`].
type BeforeOp = Arc<dyn Fn(FaultKind, &Path) + Send + Sync>;

#[derive(Default)]
struct State {
    names: BTreeMap<PathBuf, Arc<Mutex<Image>>>,
    durable_names: BTreeMap<PathBuf, Arc<Mutex<Image>>>,
    faults: Vec<Fault>,
    counts: HashMap<FaultKind, u64>,
    /// Operations of every kind so far.
    ops: u64,
    hook: Option<OpHook>,
    before: Option<BeforeOp>,
    /// No free block: creating a file, reserving space and writing past a
    /// file's end fail with ENOSPC; writes inside a file still succeed.
    full: bool,
}

/// One operation about to run, as an operation hook sees it: the storage is
/// locked, and nothing of this operation has taken effect yet.
pub struct OpPoint<'a> {
    /// Operations of every kind before this one.
    pub op: u64,
    pub kind: FaultKind,
    /// The file (as it was opened), the directory of a `sync_dir`, or the
    /// source of a rename.
    pub path: &'a Path,
    state: &'a State,
}

impl OpPoint<'_> {
    /// The storage as a crash right before this operation would leave it;
    /// see [`SimStorage::crash`].
    pub fn crash(&self, how: Crash) -> SimStorage {
        crash_image(self.state, how)
    }
}

fn no_space() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

impl State {
    /// Counts an operation, runs the hook, and fails the operation if a
    /// fault says so.
    fn op(&mut self, kind: FaultKind, path: &Path) -> io::Result<()> {
        let n = self.counts.entry(kind).or_insert(0);
        let this = *n;
        *n += 1;
        let op = self.ops;
        self.ops += 1;
        // Taken out while it runs, since it borrows the state it images.
        if let Some(mut hook) = self.hook.take() {
            hook(&OpPoint {
                op,
                kind,
                path,
                state: self,
            });
            self.hook = Some(hook);
        }
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

/// Runs the before-operation callback, if any, with the storage unlocked.
fn before_op(state: &Mutex<State>, kind: FaultKind, path: &Path) {
    let before = state.lock().before.clone();
    if let Some(before) = before {
        before(kind, path);
    }
}

/// An in-memory storage with crash and fault injection. Cloning shares it.
#[derive(Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

impl SimStorage {
    /// An empty storage: no files, no faults.
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

    /// Disarms every fault not yet fired.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Operations of `kind` performed so far.
    pub fn count(&self, kind: FaultKind) -> u64 {
        self.state.lock().counts.get(&kind).copied().unwrap_or(0)
    }

    /// Operations of every kind performed so far.
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    /// Calls `hook` at every operation from now on (open, read, write, sync,
    /// sync_dir, rename, remove), before the operation takes effect, with
    /// the storage locked: no other thread's operation can run meanwhile, so
    /// [`OpPoint::crash`] images the storage exactly between two operations.
    /// Replaces any earlier hook. The hook must not call into this storage
    /// (that would deadlock) and should be quick: every user of the storage
    /// waits for it.
    pub fn set_op_hook(&self, hook: impl FnMut(&OpPoint<'_>) + Send + 'static) {
        self.state.lock().hook = Some(Box::new(hook));
    }

    /// Removes the operation hook.
    pub fn clear_op_hook(&self) {
        let hook = self.state.lock().hook.take();
        // Dropped unlocked: whatever it owns may take locks of its own.
        drop(hook);
    }

    /// Calls `before` ahead of every operation from now on, with the
    /// operation's kind and path (as for [`OpPoint::path`]) and the storage
    /// unlocked. It may pause the calling thread, so that other threads'
    /// operations overtake this one (a test widens the window between an
    /// append's write and its sync, say), or use the storage itself: it
    /// runs again for the operations it makes. Replaces any earlier one.
    pub fn set_before_op(&self, before: impl Fn(FaultKind, &Path) + Send + Sync + 'static) {
        self.state.lock().before = Some(Arc::new(before));
    }

    /// Removes the before-operation callback (a callback that holds a clone
    /// of this storage keeps it alive until then).
    pub fn clear_before_op(&self) {
        let before = self.state.lock().before.take();
        drop(before);
    }

    /// The storage as a reboot (or, for `Crash::Process`, a restarted
    /// process) would find it. The old storage must no longer be used.
    pub fn crash(&self, how: Crash) -> SimStorage {
        crash_image(&self.state.lock(), how)
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
        Arc::make_mut(&mut image.durable)[b] ^= 1 << (bit % 8);
        Arc::make_mut(&mut image.volatile)[b] ^= 1 << (bit % 8);
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

/// A fresh storage holding what a crash of `how` leaves of `state`.
fn crash_image(state: &State, how: Crash) -> SimStorage {
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
            // The length lost, and every unsynced write with it.
            Crash::KeepRandom { .. } if image.length_unsynced() && rng.next().is_multiple_of(2) => {
                image.durable.clone()
            }
            Crash::KeepRandom { .. } => {
                let mut c = image.durable_at_created_length();
                for (off, bytes) in &image.pending {
                    if rng.next().is_multiple_of(2) {
                        apply(Arc::make_mut(&mut c), *off, bytes);
                    }
                }
                c
            }
            Crash::TearLast { .. } => {
                let mut c = image.durable_at_created_length();
                if let Some(((last_off, last), rest)) = image.pending.split_last() {
                    let c = Arc::make_mut(&mut c);
                    for (off, bytes) in rest {
                        apply(c, *off, bytes);
                    }
                    let keep = (rng.next() % (last.len() as u64 + 1)) as usize;
                    apply(c, *last_off, &last[..keep]);
                }
                c
            }
        };
        let fresh = Image {
            durable: content.clone(),
            volatile: content,
            pending: Vec::new(),
            created_len: 0,
        };
        let fresh = Arc::new(Mutex::new(fresh));
        out.names.insert(path.clone(), fresh.clone());
        out.durable_names.insert(path.clone(), fresh);
    }
    SimStorage {
        state: Arc::new(Mutex::new(out)),
    }
}

fn apply(content: &mut Vec<u8>, off: u64, bytes: &[u8]) {
    let off = off as usize;
    if content.len() < off {
        content.resize(off, 0);
    }
    // Overwrite what exists and append the rest: a byte-wise `resize` first
    // would be slow in unoptimised test builds (files of 256 KiB are common).
    let inside = bytes.len().min(content.len() - off);
    content[off..off + inside].copy_from_slice(&bytes[..inside]);
    content.extend_from_slice(&bytes[inside..]);
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
        before_op(&self.state, FaultKind::Open, path);
        let mut state = self.state.lock();
        state.op(FaultKind::Open, path)?;
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
                    image.volatile = Arc::new(vec![0; size_bytes as usize]);
                    image.created_len = size_bytes as usize;
                }
                let image = Arc::new(Mutex::new(image));
                state.names.insert(path.to_owned(), image.clone());
                image
            }
        };
        Ok(Arc::new(SimFile {
            image,
            storage: self.state.clone(),
            path: path.to_owned(),
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
        before_op(&self.state, FaultKind::Remove, path);
        let mut state = self.state.lock();
        state.op(FaultKind::Remove, path)?;
        state
            .names
            .remove(path)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        before_op(&self.state, FaultKind::Rename, from);
        let mut state = self.state.lock();
        state.op(FaultKind::Rename, from)?;
        let image = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_owned(), image);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        before_op(&self.state, FaultKind::SyncDir, dir);
        let mut state = self.state.lock();
        state.op(FaultKind::SyncDir, dir)?;
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
    /// The path it was opened by (what hooks are told).
    path: PathBuf,
}

impl StorageFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.image.lock().volatile.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        before_op(&self.storage, FaultKind::Read, &self.path);
        self.storage.lock().op(FaultKind::Read, &self.path)?;
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
        before_op(&self.storage, FaultKind::Write, &self.path);
        // The storage stays locked until the write is applied: an image
        // taken by another thread holds all of this write or none of it.
        let mut state = self.storage.lock();
        state.op(FaultKind::Write, &self.path)?;
        let mut image = self.image.lock();
        if state.full && offset + buf.len() as u64 > image.volatile.len() as u64 {
            return Err(no_space());
        }
        apply(Arc::make_mut(&mut image.volatile), offset, buf);
        image.pending.push((offset, buf.to_vec()));
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        before_op(&self.storage, FaultKind::Write, &self.path);
        let mut state = self.storage.lock();
        state.op(FaultKind::Write, &self.path)?;
        let mut image = self.image.lock();
        Arc::make_mut(&mut image.volatile).resize(len as usize, 0);
        // Durable at once: recovery syncs what it restored before use.
        image.durable = image.volatile.clone();
        image.pending.clear();
        Ok(())
    }

    fn reserve(&self, _offset: u64, _len: u64) -> io::Result<()> {
        if self.storage.lock().full {
            return Err(no_space());
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        before_op(&self.storage, FaultKind::Sync, &self.path);
        // Locked until the sync is applied, as for a write.
        let mut state = self.storage.lock();
        state.op(FaultKind::Sync, &self.path)?;
        let mut image = self.image.lock();
        image.durable = image.volatile.clone();
        image.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
