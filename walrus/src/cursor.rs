//! Durable consumer cursors: a snapshot file replaced atomically, plus an
//! append-only log of cursor updates since that snapshot.
//!
//! Persisting one cursor is one small append and (when asked) one fdatasync,
//! so `StrictlyAtOnce` costs one sync per consuming read rather than the
//! three of a write-temp-and-rename. Consumers of different topics persisting
//! at once share that fdatasync (the segments' group commit, `GroupSync`).
//! The log is folded into a new snapshot (write temp, fsync, rename, fsync
//! directory) when it grows past a bound, at every open, and after any
//! failed write to it.
//!
//! A failed fdatasync of the log leaves its records in the page cache, and
//! perhaps on the disk: the next open would replay them, and a cursor whose
//! read returned an error would skip the entries that read never delivered.
//! So after one, the store undoes the records no successful sync covered: it
//! appends a record of each such topic's last accepted position (replay keeps
//! a topic's last record, so these win over the failed ones), syncs, and then
//! folds the accepted positions into a snapshot of a new generation, which
//! retires the failed log whatever of it reached the disk. The outcome of
//! that repair is not certain either, so the store then refuses to persist
//! any cursor ([`Error::Failed`]) until it is reopened. A compaction whose
//! snapshot was renamed into place before the directory sync failed is
//! undone the same way.
//!
//! The files' layouts are in `crate::format::cursor`.

use crate::format::cursor::{self as layout, LOG_BYTES};
use crate::group_commit::GroupSync;
use crate::recovery::{move_to_lost_found, Dropped};
use crate::storage::{FileKind, OpenMode, Storage, StorageFile};
use crate::store::{Error, Result, MAX_TOPIC_LEN};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod files;
use files::*;

const LOG_HEADER_LEN: u64 = layout::LOG_HEADER_LEN as u64;
const SNAP_NAME: &str = "cursors.snap";
const SNAP_TMP_NAME: &str = "cursors.snap.tmp";
/// The log is folded into a snapshot once it is this long; past it, it is
/// still appended to while a compaction cannot find the space for its files.
const LOG_COMPACT_BYTES: u64 = LOG_BYTES * 3 / 4;

pub struct CursorStore {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    /// Held shared by a persist from its log write until its sync has
    /// finished, and exclusively by a compaction: the snapshot of a
    /// compaction must hold every cursor whose record it retires with the
    /// old log, so it waits for the persists in flight.
    rotation: RwLock<()>,
    inner: Mutex<Inner>,
}

struct Inner {
    generation: u64,
    /// `None` until the first compaction, and again after a failed write to
    /// the log: its tail may then hold a partial record, so nothing may be
    /// appended after it until a compaction starts a new log. `None` for
    /// good once `failed` is set.
    log: Option<Log>,
    log_len: u64,
    /// Cursors whose persist has succeeded (the only ones a snapshot takes).
    /// A persist without sync succeeds once written: its position was
    /// delivered, which `AtLeastOnce` may make durable at any time.
    values: HashMap<String, u64>,
    /// Records of the current generation's log that no successful sync has
    /// covered yet, oldest first: the log's group-commit ticket and topic.
    /// They are what a failed sync has to undo.
    unsynced: VecDeque<(u64, String)>,
    /// Set once a sync of the log failed: why. Nothing is persisted after.
    failed: Option<String>,
    /// Where the valid records of the log found at open end; that log can
    /// be appended to if the compaction at open finds no space.
    replayed_end: Option<u64>,
}

/// The current log and the group commit of its syncs.
#[derive(Clone)]
struct Log {
    file: Arc<dyn StorageFile>,
    sync: Arc<GroupSync>,
}

/// What `CursorStore::open` found wrong with the cursor files.
#[derive(Debug, Default)]
pub struct CursorDamage {
    /// Every damaged stretch, for the recovery report.
    pub found: Vec<Dropped>,
    /// Damage beyond a torn last record: positions that were made durable
    /// may be lost, so a cursor may be older than what was consumed. (A torn
    /// last record is what an interrupted persist leaves, and that persist
    /// never returned: the positions before it are the durable ones.)
    pub positions_lost: bool,
}

fn log_name(generation: u64) -> String {
    format!("cursors-{generation:020}.log")
}

impl CursorStore {
    /// Loads the cursors of `dir`, and what damage it found in their files.
    /// A cursor file of a newer format version is an error. A damaged one
    /// is not: it is moved to `lost+found` (the log resumes after a damaged
    /// record), and what it cost is returned, so the open can report it:
    /// refusing would leave the consumer no way on, and silently losing
    /// cursors would redeliver consumed entries unannounced.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
    ) -> Result<(CursorStore, HashMap<String, u64>, CursorDamage)> {
        let names = storage
            .list(dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let mut damage = Vec::new();
        let mut tail_only = true;
        let (generation, mut values) = if names.iter().any(|n| n == SNAP_NAME) {
            let path = dir.join(SNAP_NAME);
            match read_snapshot(&*storage, &path) {
                Ok(found) => found,
                Err(e @ Error::UnsupportedVersion { .. }) => return Err(e),
                // A failed read says nothing about the file: the open fails,
                // and a later one reads it again. Taking it for damage moved
                // an intact snapshot aside and redelivered consumed entries
                // (fault_sweep::random_faults_and_torn_power_losses).
                Err(e @ Error::Io { .. }) => return Err(e),
                Err(e) => {
                    // The newest log continues the lost snapshot: its
                    // records are the positions that moved since.
                    let generation = names
                        .iter()
                        .filter_map(|n| n.strip_prefix("cursors-")?.strip_suffix(".log"))
                        .filter_map(|g| g.parse::<u64>().ok())
                        .max()
                        .unwrap_or(0);
                    let to = move_to_lost_found(&*storage, dir, &path)?;
                    damage.push(Dropped {
                        file: path,
                        offset: 0,
                        topic: None,
                        reason: format!(
                            "{e}: every cursor it held is lost (only positions recorded in \
                             the log after it survive; the rest restart at the oldest \
                             retained entry); moved to {}",
                            to.display()
                        ),
                    });
                    tail_only = false;
                    (generation, HashMap::new())
                }
            }
        } else {
            (0, HashMap::new())
        };
        let current_log = log_name(generation);
        let replayed_end = if names.contains(&current_log) {
            let path = dir.join(&current_log);
            match replay_log(&*storage, &path, generation, &mut values, &mut damage) {
                Ok((end, only_tail)) => {
                    tail_only &= only_tail;
                    Some(end)
                }
                Err(e @ Error::UnsupportedVersion { .. }) => return Err(e),
                Err(Error::Io { context, source }) => return Err(Error::Io { context, source }),
                Err(e) => {
                    let to = move_to_lost_found(&*storage, dir, &path)?;
                    damage.push(Dropped {
                        file: path,
                        offset: 0,
                        topic: None,
                        reason: format!(
                            "{e}: cursor positions recorded since the last snapshot are \
                             lost; moved to {}",
                            to.display()
                        ),
                    });
                    tail_only = false;
                    None
                }
            }
        } else {
            None
        };
        // Leftovers of an interrupted compaction.
        for name in &names {
            let stale_log =
                name.starts_with("cursors-") && name.ends_with(".log") && *name != current_log;
            if stale_log || name == SNAP_TMP_NAME {
                let path = dir.join(name);
                storage
                    .remove(&path)
                    .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
            }
        }
        // No log is open until the first compaction, which the engine runs
        // right after recovery (`reset`).
        let store = CursorStore {
            storage,
            dir: dir.to_owned(),
            rotation: RwLock::new(()),
            inner: Mutex::new(Inner {
                generation,
                log: None,
                log_len: LOG_HEADER_LEN,
                values: HashMap::new(),
                unsynced: VecDeque::new(),
                failed: None,
                replayed_end,
            }),
        };
        let damage = CursorDamage {
            positions_lost: !tail_only,
            found: damage,
        };
        Ok((store, values, damage))
    }

    /// Replaces every cursor at once and makes the result durable; used at
    /// open, after recovery has clamped cursors to the data that survived.
    pub fn reset(&self, values: HashMap<String, u64>) -> Result<()> {
        let _rotation = self.rotation.write();
        let mut inner = self.inner.lock();
        inner.values = values;
        match self.compact(&mut inner) {
            Err(e) if is_disk_full(&e) => self.resume_log(&mut inner).map_err(|_| e),
            result => result,
        }
    }

    /// Instead of a compaction at open on a full disk: goes on appending to
    /// the log found at open, recording every cursor after its valid records.
    fn resume_log(&self, inner: &mut Inner) -> Result<()> {
        let end = inner
            .replayed_end
            .ok_or_else(|| Error::Failed("no cursor log".into()))?;
        let path = self.dir.join(log_name(inner.generation));
        let file = self
            .storage
            .open(&path, OpenMode::Existing, FileKind::Small)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let mut records = Vec::new();
        for (topic, &next_seq) in &inner.values {
            records.extend(encode_record(topic, next_seq));
        }
        file.write_all_at(&records, end)
            .and_then(|()| file.sync())
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        inner.log = Some(Log {
            file,
            sync: Arc::new(GroupSync::new()),
        });
        inner.log_len = end + records.len() as u64;
        Ok(())
    }

    /// Records `topic`'s cursor; with `sync`, durably before returning.
    /// Callers persist one topic at a time (its reader lock); different
    /// topics may persist concurrently and then share the log's sync. On
    /// error the cursor is as before: nothing of this call survives a
    /// reopen.
    pub fn persist(&self, topic: &str, next_seq: u64, sync: bool) -> Result<()> {
        debug_assert!(topic.len() <= MAX_TOPIC_LEN);
        let record = encode_record(topic, next_seq);
        // Set when a compaction found the disk full: the record then goes
        // into the current log's preallocated tail if it fits.
        let mut disk_full = None;
        loop {
            let rotation = self.rotation.read();
            let (log, ticket) = {
                let mut inner = self.inner.lock();
                inner.check_usable()?;
                let fits = inner.log_len + record.len() as u64 <= LOG_BYTES;
                let log = match &inner.log {
                    Some(log) if inner.log_len < LOG_COMPACT_BYTES => log.clone(),
                    Some(log) if disk_full.is_some() && fits => log.clone(),
                    _ => {
                        if let Some(e) = disk_full {
                            return Err(e);
                        }
                        drop(inner);
                        drop(rotation);
                        match self.persist_by_compaction(topic, next_seq) {
                            Err(e) if is_disk_full(&e) => {
                                disk_full = Some(e);
                                continue;
                            }
                            result => return result,
                        }
                    }
                };
                if let Err(e) = log.file.write_all_at(&record, inner.log_len) {
                    inner.log = None;
                    return Err(Error::io("persisting a cursor", e));
                }
                inner.log_len += record.len() as u64;
                let ticket = log.sync.note_write();
                inner.unsynced.push_back((ticket, topic.to_owned()));
                (log, ticket)
            };
            if sync {
                if let Err(e) = log.sync.sync_append(ticket, &*log.file) {
                    return Err(self.sync_failed(rotation, &log, e));
                }
            }
            let mut inner = self.inner.lock();
            inner.values.insert(topic.to_owned(), next_seq);
            inner.forget_synced(&log);
            return Ok(());
        }
    }

    /// Persists through a compaction, when the log is full or unusable.
    /// The new value goes into the snapshot only if it is written: a failed
    /// persist must not move the cursor later on. If the snapshot was
    /// renamed into place but the directory sync failed, the next open may
    /// read it: the value is then undone as after a failed log sync.
    fn persist_by_compaction(&self, topic: &str, next_seq: u64) -> Result<()> {
        let _rotation = self.rotation.write();
        let mut inner = self.inner.lock();
        inner.check_usable()?;
        let old = inner.values.insert(topic.to_owned(), next_seq);
        let Err(failure) = self.try_compact(&mut inner) else {
            return Ok(());
        };
        match old {
            Some(old) => inner.values.insert(topic.to_owned(), old),
            None => inner.values.remove(topic),
        };
        if let Some(log) = failure.renamed {
            // The renamed snapshot's generation is the one to repair.
            inner.generation += 1;
            inner.log = Some(log);
            inner.log_len = LOG_HEADER_LEN;
            inner.unsynced.clear();
            inner.replayed_end = None;
            inner.fail(&failure.error);
            self.undo(&mut inner, vec![topic.to_owned()]);
        }
        Err(failure.error)
    }

    /// Makes every cursor recorded so far durable.
    pub fn sync(&self) -> Result<()> {
        let rotation = self.rotation.read();
        let log = {
            let inner = self.inner.lock();
            inner.check_usable()?;
            inner.log.clone()
        };
        let Some(log) = log else {
            drop(rotation);
            let _rotation = self.rotation.write();
            let mut inner = self.inner.lock();
            inner.check_usable()?;
            return self.compact(&mut inner);
        };
        match log.sync.sync_through(log.sync.current(), &*log.file) {
            Ok(()) => {
                self.inner.lock().forget_synced(&log);
                Ok(())
            }
            Err(e) => Err(self.sync_failed(rotation, &log, e)),
        }
    }

    /// A sync of `log` failed: marks the store failed (while the caller's
    /// `rotation` guard still keeps compactions out, so that none retires
    /// the log before its records are undone) and, if this is the first
    /// failure, undoes the records no successful sync covered.
    fn sync_failed(
        &self,
        rotation: RwLockReadGuard<'_, ()>,
        log: &Log,
        cause: std::io::Error,
    ) -> Error {
        let error = Error::io("syncing the cursor log", cause);
        let first = self.inner.lock().fail(&error);
        drop(rotation);
        if !first {
            return error;
        }
        // Waits for the persists in flight. They all fail too (a failed
        // sync is final for the log's group commit), except those whose
        // own sync had succeeded before; their records need no undoing.
        let _rotation = self.rotation.write();
        let mut inner = self.inner.lock();
        let topics: Vec<String> = std::mem::take(&mut inner.unsynced)
            .into_iter()
            .filter(|(ticket, _)| !log.sync.is_synced(*ticket))
            .map(|(_, topic)| topic)
            .collect();
        if !inner.is_current(log) {
            // A failed write retired the log: its tail may be torn, and
            // replay would stop there before any record appended after it.
            // Only the compaction of `undo` helps then.
            inner.log = None;
        }
        self.undo(&mut inner, topics);
        error
    }

    /// Makes the accepted positions of `topics` (whose later records may
    /// have reached the disk though their sync failed) the ones the next
    /// open finds. Best effort, once the store has failed: first a record
    /// per topic after the failed ones in the current log, synced (all that
    /// a process crash needs, as the page cache survives it), then a
    /// compaction into a new generation, which retires that log whatever
    /// part of it reached the disk.
    fn undo(&self, inner: &mut Inner, mut topics: Vec<String>) {
        debug_assert!(inner.failed.is_some());
        topics.sort();
        topics.dedup();
        if let Some(log) = inner.log.take() {
            let mut records = Vec::new();
            for topic in &topics {
                // A topic without an accepted position starts at 0, as
                // recovery starts a topic the cursor files do not name.
                let next_seq = inner.values.get(topic).copied().unwrap_or(0);
                records.extend(encode_record(topic, next_seq));
            }
            // Synced directly: the group commit refuses a file whose sync
            // failed, as a retried fdatasync can report success for pages
            // whose writeback failed. It does cover pages written since,
            // which is all these records need.
            let written = log
                .file
                .write_all_at(&records, inner.log_len)
                .and_then(|()| log.file.sync());
            if let Err(e) = written {
                tracing::error!("walrus: undoing cursor records of a failed sync: {e}");
            }
        }
        if let Err(e) = self.compact(inner) {
            tracing::error!("walrus: compacting the cursors after a failed sync: {e}");
        }
        // Nothing is appended once the store has failed.
        inner.log = None;
    }

    fn compact(&self, inner: &mut Inner) -> Result<()> {
        self.try_compact(inner).map_err(|f| f.error)
    }

    /// Writes a new snapshot of generation g+1 and an empty log g+1, then
    /// drops log g. A crash at any point leaves either the old snapshot with
    /// its log or the new snapshot with its (empty) log. If it fails before
    /// the rename, log g stays the current log; after it, no log is current
    /// until a compaction succeeds (log g may no longer be the one replayed),
    /// and the failure carries log g+1, which the next open may replay.
    fn try_compact(&self, inner: &mut Inner) -> Result<(), CompactFailure> {
        let next = inner.generation + 1;
        let storage = &*self.storage;
        let tmp = self.dir.join(SNAP_TMP_NAME);
        let snap = self.dir.join(SNAP_NAME);
        let io = |what: &str, path: &Path| format!("{what} {}", path.display());
        let failed = |error| CompactFailure {
            error,
            renamed: None,
        };
        let log = create_log(storage, &self.dir, next).map_err(failed)?;
        let _ = storage.remove(&tmp);
        let file = storage
            .open(&tmp, OpenMode::CreateNew, FileKind::Small)
            .map_err(|e| failed(Error::io(io("creating", &tmp), e)))?;
        let bytes = encode_snapshot(next, &inner.values);
        file.write_all_at(&bytes, 0)
            .map_err(|e| failed(Error::io(io("writing", &tmp), e)))?;
        file.sync()
            .map_err(|e| failed(Error::io(io("syncing", &tmp), e)))?;
        inner.log = None;
        storage
            .rename(&tmp, &snap)
            .map_err(|e| failed(Error::io(io("renaming", &tmp), e)))?;
        let log = Log {
            file: log,
            sync: Arc::new(GroupSync::new()),
        };
        if let Err(e) = storage.sync_dir(&self.dir) {
            return Err(CompactFailure {
                error: Error::io(io("syncing", &self.dir), e),
                renamed: Some(log),
            });
        }
        let old = self.dir.join(log_name(inner.generation));
        let _ = storage.remove(&old);
        inner.generation = next;
        inner.log = Some(log);
        inner.log_len = LOG_HEADER_LEN;
        inner.unsynced.clear();
        inner.replayed_end = None;
        Ok(())
    }
}

impl Inner {
    /// Refuses cursor persistence once a sync of the log has failed.
    fn check_usable(&self) -> Result<()> {
        match &self.failed {
            Some(reason) => Err(Error::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Records the first failed sync; true if this is it (its caller then
    /// undoes the unsynced records).
    fn fail(&mut self, error: &Error) -> bool {
        if self.failed.is_some() {
            return false;
        }
        tracing::error!("walrus: refusing to persist cursors: {error}");
        self.failed = Some(format!("{error}; cursors are no longer persisted"));
        true
    }

    fn is_current(&self, log: &Log) -> bool {
        self.log
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(&l.sync, &log.sync))
    }

    /// Drops the unsynced records that a successful sync of `log` covered.
    fn forget_synced(&mut self, log: &Log) {
        if !self.is_current(log) {
            return;
        }
        while self
            .unsynced
            .front()
            .is_some_and(|(ticket, _)| log.sync.is_synced(*ticket))
        {
            self.unsynced.pop_front();
        }
    }
}

/// A compaction that failed, and how far it got.
struct CompactFailure {
    error: Error,
    /// Set when only the directory sync failed: the new snapshot was renamed
    /// into place, so the next open may read it and replay this log.
    renamed: Option<Log>,
}

/// Whether an error is a full disk (ENOSPC).
fn is_disk_full(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull)
}

#[cfg(test)]
mod tests;
