//! The raw-file baseline: plain `pwrite` + `fdatasync` per topic, so the
//! comparison shows what each store costs over a log with no segments, no
//! space reclamation and no shared log. It checksums with the engine's own
//! CRC kernel and hands out entries as slices of the frame it read (no copy
//! per entry), so it pays no handicap Walrus does not.
//!
//! One file per topic, written with one `pwrite` per append or batch, no
//! group commit beyond what concurrent `fdatasync` calls on one file give for
//! free. Under sync-each one fdatasync therefore never covers several
//! topics, as Walrus's shared log does: with one topic per writer it is the
//! "no shared log" baseline, a lower bound for a single topic only.
//!
//! # On-disk format (version 1)
//!
//! The directory holds `LOCK` (an advisory `flock` held while open), and per
//! topic a data file `<id>.log` and, once something was consumed, a cursor
//! file `<id>.cur`. Ids are decimal counters, so a topic name never becomes
//! part of a path. All integers are little-endian; every crc is crc64 (CRC-64/XZ, computed
//! by the engine's own kernel, `walrus_store::crc64`).
//!
//! ```text
//! data file   = header frame*
//! header      = magic "WRAWTOPC" (8) | version u32 | name_len u16 | name | crc64 u64
//!               (crc over every header byte before it)
//! frame       = count u32 | first_seq u64 | body_len u64 | crc64 u64 | body
//!               (header: 28 bytes; crc over count, first_seq, body_len and body;
//!               1 <= count <= MAX_BATCH_ENTRIES; first_seq never below the
//!               previous frame's first_seq + count)
//! body        = count x ( len u32 | payload[len] )
//!
//! cursor file = slot[2], 64 bytes each; slot g % 2 holds generation g:
//! slot        = generation u64 | frame_off u64 | index u32 | reserved u32 | seq u64
//!               | crc64 u64 (over the 36 bytes before it) | zero padding
//! ```
//!
//! Every append, single or batch, is one frame written by one `pwrite`, so a
//! batch is atomic across a crash: recovery keeps the longest prefix of
//! frames whose lengths fit in the file and whose crc matches, and truncates
//! the rest (a frame torn by a crash, or one that a power loss left half on
//! disk, was never acknowledged as durable). The cursor `(frame_off, index,
//! seq)` names the next record to return. It is written into the slot the
//! current one is not in and then `fdatasync`ed, so a torn cursor write leaves
//! the previous generation intact; this needs one fsync per update where
//! write-temp + fsync + rename would need two (the rename's directory too).
//!
//! A record's seq is its frame's `first_seq` plus its index. Seqs are
//! normally dense; they jump only when a power loss took entries that a
//! (synced) cursor had already passed: the topic then resumes at the cursor's
//! seq, so a seq once handed out is never handed out again for other data.
//!
//! Assumed of the disk: `fdatasync` is honest. Nothing is assumed about
//! sector atomicity.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
// The engine's own CRC-64/XZ kernel (the value `crc64fast` computes, so the
// format is unchanged): the baseline pays no more for its checksum than
// Walrus does.
use walrus_store::crc64;
use walrus_store::le::{put_u16, put_u32, put_u64, u16_at, u32_at, u64_at};
use walrus_store::{
    lock_dir, validate_batch_len, validate_topic, Bytes, Entry, Error, FailureLatch, FsyncSchedule,
    LogStore, ReadConsistency, Result, StoreConfig, MAX_BATCH_ENTRIES,
};

use crate::flusher::Flusher;
use crate::marker::sync_dir;

const MAGIC: [u8; 8] = *b"WRAWTOPC";
const VERSION: u32 = 1;

// Data file header: magic | version u32 | name_len u16 | name | crc64.
const HEADER_VERSION_AT: usize = MAGIC.len();
const HEADER_NAME_LEN_AT: usize = HEADER_VERSION_AT + 4;
/// magic + version + name_len; the name and the crc follow.
const HEADER_FIXED_LEN: usize = HEADER_NAME_LEN_AT + 2;

// Frame header: count u32 | first_seq u64 | body_len u64 | crc64 u64.
const FRAME_COUNT_AT: usize = 0;
const FRAME_FIRST_SEQ_AT: usize = FRAME_COUNT_AT + 4;
const FRAME_BODY_LEN_AT: usize = FRAME_FIRST_SEQ_AT + 8;
/// The header bytes the frame crc covers (all but the crc).
const FRAME_CRC_COVERS: usize = FRAME_BODY_LEN_AT + 8;
const FRAME_CRC_AT: usize = FRAME_CRC_COVERS;
const FRAME_HEADER_LEN: usize = FRAME_CRC_AT + 8;
const _: () = assert!(FRAME_HEADER_LEN == 28);
const RECORD_LEN_LEN: usize = 4;

// Cursor slot: generation u64 | frame_off u64 | index u32 | reserved u32 |
// seq u64 | crc64 u64 | zero padding to SLOT_LEN.
const SLOT_LEN: usize = 64;
const SLOT_GENERATION_AT: usize = 0;
const SLOT_FRAME_OFF_AT: usize = SLOT_GENERATION_AT + 8;
const SLOT_INDEX_AT: usize = SLOT_FRAME_OFF_AT + 8;
const SLOT_SEQ_AT: usize = SLOT_INDEX_AT + 4 + 4;
/// generation + frame_off + index + reserved + seq: what the crc covers.
const SLOT_BODY_LEN: usize = SLOT_SEQ_AT + 8;
const SLOT_CRC_AT: usize = SLOT_BODY_LEN;
const _: () = assert!(SLOT_CRC_AT + 8 <= SLOT_LEN);
/// Reads ahead this much so that sequential reads of small entries cost one
/// `pread` per many entries, not two per entry.
const READ_AHEAD_BYTES: usize = 256 * 1024;
/// An encode buffer that grew past this for a huge batch is released after
/// use, so that thousands of topics do not each pin their largest batch.
const KEEP_ENCODE_BUF_BYTES: usize = 1024 * 1024;
/// Largest payload: a record length is a u32.
const MAX_PAYLOAD_BYTES: u64 = u32::MAX as u64;

/// The raw-file baseline store. See the module docs for the format.
pub struct RawStore {
    inner: Arc<Inner>,
    /// Present for `FsyncSchedule::Milliseconds`; dropped (final sync) first.
    flusher: Option<Flusher>,
}

struct Inner {
    dir: PathBuf,
    config: StoreConfig,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Next file id; taken under the `topics` write lock.
    next_id: AtomicU64,
    /// Set when a file was created whose directory entry is not yet synced.
    dir_dirty: AtomicBool,
    dir_sync: Mutex<()>,
    /// Tripped by the first failed write-back; later appends are refused
    /// because the kernel may have dropped the pages that failed.
    failure: FailureLatch,
    /// The directory lock (`walrus_store::lock_dir`), held while open.
    /// Declared last so it is released last.
    _lock: File,
}

struct Topic {
    name: String,
    id: u64,
    file: File,
    path: PathBuf,
    writer: Mutex<Writer>,
    /// End of the last complete frame. Bytes below it never change, so
    /// readers may cache them; readers never look past it.
    visible_end: AtomicU64,
    /// Written since the last `fdatasync`.
    dirty: AtomicBool,
    /// Serialises `dirty.swap` + `fdatasync`, so a `sync()` that finds the
    /// flag clear knows the fsync that cleared it has finished.
    sync_lock: Mutex<()>,
    reader: Mutex<Reader>,
}

struct Writer {
    end: u64,
    next_seq: u64,
    buf: Vec<u8>,
}

/// Position of the next record to return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    frame_off: u64,
    index: u32,
    seq: u64,
}

struct Reader {
    cursor: Cursor,
    /// Consumed since the cursor was last persisted (`AtLeastOnce`).
    unpersisted: u64,
    generation: u64,
    /// Whether `<id>.cur` exists with a synced directory entry.
    cursor_file_durable: bool,
    frame: Option<Frame>,
    ahead: ReadAhead,
}

/// The decoded frame the cursor is in.
struct Frame {
    off: u64,
    first_seq: u64,
    end: u64,
    /// Shared by the entries handed out: each is a slice of it, not a copy.
    body: Bytes,
    /// (start, len) of each payload within `body`.
    spans: Vec<(usize, usize)>,
}

/// Bytes of the data file starting at `base`.
#[derive(Default)]
struct ReadAhead {
    base: u64,
    bytes: Vec<u8>,
}

impl RawStore {
    /// Opens (creating if needed) a raw store in `dir`, recovering every
    /// topic file: torn tails are truncated and reported.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<RawStore> {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let lock = lock_dir(dir)?;
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            config,
            topics: RwLock::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            dir_dirty: AtomicBool::new(false),
            dir_sync: Mutex::new(()),
            failure: FailureLatch::new(),
            _lock: lock,
        });
        inner.recover()?;
        let flusher = match config.fsync {
            FsyncSchedule::Milliseconds(_) => {
                let interval = config
                    .fsync
                    .interval()
                    .expect("Milliseconds has an interval");
                let weak = Arc::downgrade(&inner);
                let flusher = Flusher::spawn("raw-flusher", interval, move || {
                    if let Some(inner) = weak.upgrade() {
                        if let Err(e) = inner.sync_all() {
                            tracing::error!(error = %e, "raw store: background sync failed");
                        }
                    }
                })
                .map_err(|e| Error::io("starting the raw store's flusher thread", e))?;
                Some(flusher)
            }
            FsyncSchedule::SyncEach | FsyncSchedule::NoFsync => None,
        };
        Ok(RawStore { inner, flusher })
    }
}

impl Drop for RawStore {
    fn drop(&mut self) {
        // Final sync of the `Milliseconds` schedule.
        drop(self.flusher.take());
        // `AtLeastOnce` promises at most n redeliveries after a crash; after a
        // clean close there should be none.
        if let ReadConsistency::AtLeastOnce { .. } = self.inner.config.consistency {
            let topics: Vec<Arc<Topic>> = self.inner.topics.read().values().cloned().collect();
            for topic in topics {
                let mut reader = topic.reader.lock();
                if reader.unpersisted > 0 {
                    let cursor = reader.cursor;
                    if let Err(e) = self.inner.persist_cursor(&topic, &mut reader, cursor) {
                        tracing::warn!(topic = %topic.name, error = %e, "raw store: cursor not persisted at close");
                    }
                }
            }
        }
    }
}

impl Inner {
    fn data_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }

    fn cursor_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.cur"))
    }

    fn fail(&self, reason: &Error) {
        if self.failure.trip(reason) {
            tracing::error!(%reason, "raw store refuses further writes");
        }
    }

    // ---- recovery ----------------------------------------------------------

    fn recover(&self) -> Result<()> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| Error::io(format!("listing {}", self.dir.display()), e))?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| Error::io(format!("listing {}", self.dir.display()), e))?;
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            ids.push(id);
        }
        ids.sort_unstable();
        let mut topics = self.topics.write();
        for id in ids {
            self.next_id.fetch_max(id + 1, Ordering::Relaxed);
            let Some(topic) = self.recover_topic(id)? else {
                continue;
            };
            if let Some(other) = topics.get(&topic.name) {
                return Err(Error::Corruption {
                    file: topic.path.clone(),
                    offset: 0,
                    reason: format!(
                        "topic {:?} is also stored in {}",
                        topic.name,
                        other.path.display()
                    ),
                });
            }
            topics.insert(topic.name.clone(), Arc::new(topic));
        }
        Ok(())
    }

    /// Recovers one topic file; `None` if its header never fully reached the
    /// disk (then nothing in it was ever durable, and it is removed).
    fn recover_topic(&self, id: u64) -> Result<Option<Topic>> {
        let path = self.data_path(id);
        let io = |what: &'static str| {
            let path = path.clone();
            move |e| Error::io(format!("{what} {}", path.display()), e)
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io("opening"))?;
        let file_len = file.metadata().map_err(io("inspecting"))?.len();
        let mut ahead = ReadAhead::default();

        let (name, header_len) = match read_header(&file, &mut ahead, file_len, &path)? {
            Some(header) => header,
            None => {
                tracing::warn!(file = %path.display(), "raw store: removing a topic file whose header is incomplete");
                fs::remove_file(&path).map_err(io("removing"))?;
                let cursor_path = self.cursor_path(id);
                match fs::remove_file(&cursor_path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(Error::io(format!("removing {}", cursor_path.display()), e))
                    }
                }
                self.dir_dirty.store(true, Ordering::Release);
                return Ok(None);
            }
        };

        let (stored_cursor, generation, cursor_file_durable) = self.load_cursor(id)?;
        // (first seq, record count) of the frame the stored cursor points at.
        let mut at_cursor_frame = None;
        let mut off = header_len;
        let mut seq = 0u64;
        loop {
            let decoded =
                decode_frame_at(&file, &mut ahead, off, file_len, &path).and_then(|frame| {
                    match frame {
                        Some(frame) if frame.first_seq < seq => Err(format!(
                            "frame starts at seq {}, below the previous frame's end {seq}",
                            frame.first_seq
                        )),
                        other => Ok(other),
                    }
                });
            match decoded {
                Ok(Some(frame)) => {
                    if stored_cursor.is_some_and(|c| c.frame_off == off) {
                        at_cursor_frame = Some((frame.first_seq, frame.spans.len()));
                    }
                    seq = frame.first_seq + frame.spans.len() as u64;
                    off = frame.end;
                }
                Ok(None) => break,
                Err(reason) => {
                    tracing::warn!(
                        file = %path.display(),
                        offset = off,
                        dropped_bytes = file_len - off,
                        %reason,
                        "raw store: truncating a torn tail (never acknowledged as durable)"
                    );
                    file.set_len(off)
                        .map_err(io("truncating the torn tail of"))?;
                    file.sync_all().map_err(io("syncing"))?;
                    break;
                }
            }
        }
        let end = off;
        let (cursor, clamped) = match stored_cursor {
            None => (
                Cursor {
                    frame_off: header_len,
                    index: 0,
                    seq: 0,
                },
                false,
            ),
            // At the end, possibly past a gap left by an earlier clamp.
            Some(c) if c.frame_off == end && c.index == 0 && c.seq >= seq => (c, false),
            // The cursor outlived data that a power loss took (data synced on
            // the fsync schedule, cursor synced per read). Those entries are
            // gone; point at the end, keeping the cursor's seq so that no seq
            // it passed is ever reused.
            Some(c) if c.frame_off >= end => (
                Cursor {
                    frame_off: end,
                    index: 0,
                    seq: c.seq.max(seq),
                },
                true,
            ),
            Some(c) => {
                let corrupt = |reason: String| Error::Corruption {
                    file: self.cursor_path(id),
                    offset: 0,
                    reason,
                };
                let (first_seq, count) = at_cursor_frame.ok_or_else(|| {
                    corrupt(format!(
                        "cursor points at offset {} which is not a frame boundary",
                        c.frame_off
                    ))
                })?;
                if c.index as usize >= count || c.seq != first_seq + u64::from(c.index) {
                    return Err(corrupt(format!(
                        "cursor says seq {} at index {} of the frame at {}, which holds \
                         seqs {first_seq}..{}",
                        c.seq,
                        c.index,
                        c.frame_off,
                        first_seq + count as u64
                    )));
                }
                (c, false)
            }
        };

        let topic = Topic {
            name,
            id,
            file,
            path,
            writer: Mutex::new(Writer {
                end,
                // Past the cursor if the cursor passed lost entries.
                next_seq: if cursor.frame_off == end {
                    seq.max(cursor.seq)
                } else {
                    seq
                },
                buf: Vec::new(),
            }),
            visible_end: AtomicU64::new(end),
            dirty: AtomicBool::new(false),
            sync_lock: Mutex::new(()),
            reader: Mutex::new(Reader {
                cursor,
                unpersisted: 0,
                generation,
                cursor_file_durable,
                frame: None,
                ahead: ReadAhead::default(),
            }),
        };
        if clamped {
            // Persist the clamp now: once new appends pass the old position
            // it would no longer be recognisable as stale.
            tracing::warn!(topic = %topic.name, "raw store: cursor was past the recovered data; clamped to its end");
            let mut reader = topic.reader.lock();
            self.persist_cursor(&topic, &mut reader, cursor)?;
        }
        Ok(Some(topic))
    }

    /// Reads `<id>.cur`: the newest valid slot, its generation, and whether
    /// the file exists.
    fn load_cursor(&self, id: u64) -> Result<(Option<Cursor>, u64, bool)> {
        let path = self.cursor_path(id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok((None, 0, false)),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let best = bytes
            .chunks(SLOT_LEN)
            .take(2)
            .filter_map(decode_slot)
            .max_by_key(|(generation, _)| *generation);
        match best {
            Some((generation, cursor)) => Ok((Some(cursor), generation, true)),
            // Both slots torn or unwritten: no consuming read was ever durably
            // recorded, so start from the beginning (at-least-once, never skip).
            None => Ok((None, 0, true)),
        }
    }

    // ---- writing -----------------------------------------------------------

    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    fn topic_or_create(&self, name: &str) -> Result<Arc<Topic>> {
        if let Some(topic) = self.topic(name) {
            return Ok(topic);
        }
        let mut topics = self.topics.write();
        if let Some(topic) = topics.get(name) {
            return Ok(topic.clone());
        }
        let topic = Arc::new(self.create_topic(name)?);
        topics.insert(name.to_owned(), topic.clone());
        Ok(topic)
    }

    fn create_topic(&self, name: &str) -> Result<Topic> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let path = self.data_path(id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let header = encode_header(name);
        if let Err(e) = file.write_all_at(&header, 0) {
            let _ = fs::remove_file(&path);
            return Err(Error::io(
                format!("writing the header of {}", path.display()),
                e,
            ));
        }
        // The entry becomes durable with the next sync (the file's data sync
        // covers the header; the directory needs its own).
        self.dir_dirty.store(true, Ordering::Release);
        let end = header.len() as u64;
        Ok(Topic {
            name: name.to_owned(),
            id,
            file,
            path,
            writer: Mutex::new(Writer {
                end,
                next_seq: 0,
                buf: Vec::new(),
            }),
            visible_end: AtomicU64::new(end),
            dirty: AtomicBool::new(true),
            sync_lock: Mutex::new(()),
            reader: Mutex::new(Reader {
                cursor: Cursor {
                    frame_off: end,
                    index: 0,
                    seq: 0,
                },
                unpersisted: 0,
                generation: 0,
                cursor_file_durable: false,
                frame: None,
                ahead: ReadAhead::default(),
            }),
        })
    }

    fn append_frame(&self, topic_name: &str, payloads: &[&[u8]]) -> Result<()> {
        validate_topic(topic_name)?;
        validate_batch_len(payloads.len())?;
        for payload in payloads {
            if payload.len() as u64 > MAX_PAYLOAD_BYTES {
                return Err(Error::EntryTooLarge {
                    size: payload.len() as u64,
                    max: MAX_PAYLOAD_BYTES,
                });
            }
        }
        self.failure.check()?;
        let topic = self.topic_or_create(topic_name)?;
        {
            let mut writer = topic.writer.lock();
            let writer = &mut *writer;
            encode_frame(&mut writer.buf, writer.next_seq, payloads);
            let start = writer.end;
            if let Err(e) = topic.file.write_all_at(&writer.buf, start) {
                // Cut off whatever part of the frame did land, so that the
                // next frame is not written behind garbage (recovery stops at
                // the first bad frame and would drop it).
                if let Err(e2) = topic.file.set_len(start) {
                    tracing::warn!(error = %e2, "raw store: could not truncate a failed write");
                }
                return Err(Error::io(
                    format!("appending to {}", topic.path.display()),
                    e,
                ));
            }
            writer.end = start + writer.buf.len() as u64;
            writer.next_seq += payloads.len() as u64;
            if writer.buf.capacity() > KEEP_ENCODE_BUF_BYTES {
                writer.buf = Vec::new();
            }
            topic.dirty.store(true, Ordering::Release);
            topic.visible_end.store(writer.end, Ordering::Release);
        }
        if self.config.fsync == FsyncSchedule::SyncEach {
            self.sync_topic(&topic)?;
            self.sync_dir_if_dirty()?;
        }
        Ok(())
    }

    // ---- syncing -----------------------------------------------------------

    fn sync_topic(&self, topic: &Topic) -> Result<()> {
        let _serial = topic.sync_lock.lock();
        if topic.dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = topic.file.sync_data() {
                topic.dirty.store(true, Ordering::Release);
                let err = Error::io(format!("syncing {}", topic.path.display()), e);
                self.fail(&err);
                return Err(err);
            }
        }
        Ok(())
    }

    fn sync_dir_if_dirty(&self) -> Result<()> {
        let _serial = self.dir_sync.lock();
        if self.dir_dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = sync_dir(&self.dir) {
                self.dir_dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    fn sync_all(&self) -> Result<()> {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        let mut first_err = None;
        for topic in topics {
            if let Err(e) = self.sync_topic(&topic) {
                first_err.get_or_insert(e);
            }
        }
        self.sync_dir_if_dirty()?;
        match first_err {
            Some(e) => Err(e),
            None => self.failure.check(),
        }
    }

    // ---- reading -----------------------------------------------------------

    /// Reads up to `budget` from the cursor (`None`: exactly one entry),
    /// consuming what it returns if `consume`.
    fn read(&self, topic_name: &str, budget: Option<usize>, consume: bool) -> Result<Vec<Entry>> {
        validate_topic(topic_name)?;
        let Some(topic) = self.topic(topic_name) else {
            return Ok(Vec::new());
        };
        let mut reader = topic.reader.lock();
        let reader = &mut *reader;
        let limit = topic.visible_end.load(Ordering::Acquire);
        let mut cursor = reader.cursor;
        let mut out = Vec::new();
        let mut total_bytes = 0usize;
        while cursor.frame_off < limit {
            if reader
                .frame
                .as_ref()
                .is_none_or(|f| f.off != cursor.frame_off)
            {
                let corrupt = |reason: String| Error::Corruption {
                    file: topic.path.clone(),
                    offset: cursor.frame_off,
                    reason,
                };
                let frame = decode_frame_at(
                    &topic.file,
                    &mut reader.ahead,
                    cursor.frame_off,
                    limit,
                    &topic.path,
                )
                .map_err(corrupt)?
                .ok_or_else(|| corrupt("no frame below the visible end".into()))?;
                reader.frame = Some(frame);
            }
            let frame = reader.frame.as_ref().expect("loaded above");
            let (start, len) = frame.spans[cursor.index as usize];
            let fits = match budget {
                None => out.is_empty(),
                Some(max) => {
                    out.is_empty()
                        || (total_bytes.saturating_add(len) <= max && out.len() < MAX_BATCH_ENTRIES)
                }
            };
            if !fits {
                break;
            }
            total_bytes = total_bytes.saturating_add(len);
            let seq = frame.first_seq + u64::from(cursor.index);
            out.push(Entry {
                seq,
                data: frame.body.slice(start..start + len),
            });
            cursor.seq = seq + 1;
            cursor.index += 1;
            if cursor.index as usize == frame.spans.len() {
                cursor.frame_off = frame.end;
                cursor.index = 0;
            }
        }
        if consume && !out.is_empty() {
            let taken = out.len() as u64;
            if self
                .config
                .consistency
                .persist_due(reader.unpersisted, taken)
            {
                // Persist before handing the entries out: if this fails they
                // were not returned, and the cursor stays where it was.
                self.persist_cursor(&topic, reader, cursor)?;
                reader.unpersisted = 0;
            } else {
                reader.unpersisted += taken;
            }
            reader.cursor = cursor;
        }
        Ok(out)
    }

    /// Writes `cursor` into the slot the current generation is not in and
    /// syncs it.
    fn persist_cursor(&self, topic: &Topic, reader: &mut Reader, cursor: Cursor) -> Result<()> {
        let path = self.cursor_path(topic.id);
        let io = |what: &'static str| {
            let path = path.clone();
            move |e| Error::io(format!("{what} {}", path.display()), e)
        };
        let generation = reader.generation + 1;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("opening"))?;
        let slot = encode_slot(generation, cursor);
        file.write_all_at(&slot, (generation % 2) * SLOT_LEN as u64)
            .map_err(io("writing"))?;
        file.sync_data().map_err(io("syncing"))?;
        if !reader.cursor_file_durable {
            sync_dir(&self.dir)?;
            reader.cursor_file_durable = true;
        }
        reader.generation = generation;
        Ok(())
    }
}

impl LogStore for RawStore {
    fn name(&self) -> &str {
        "raw"
    }

    fn append(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.inner.append_frame(topic, &[payload])
    }

    fn batch_append(&self, topic: &str, payloads: &[&[u8]]) -> Result<()> {
        if payloads.is_empty() {
            return validate_topic(topic); // a no-op, as in walrus-rust
        }
        self.inner.append_frame(topic, payloads)
    }

    fn read_next(&self, topic: &str, checkpoint: bool) -> Result<Option<Entry>> {
        Ok(self.inner.read(topic, None, checkpoint)?.pop())
    }

    fn batch_read(&self, topic: &str, max_bytes: usize, checkpoint: bool) -> Result<Vec<Entry>> {
        self.inner.read(topic, Some(max_bytes), checkpoint)
    }

    fn sync(&self) -> Result<()> {
        self.inner.sync_all()
    }
}

// ---- encoding --------------------------------------------------------------

fn encode_header(name: &str) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER_FIXED_LEN + name.len() + 8);
    header.extend_from_slice(&MAGIC);
    header.resize(HEADER_FIXED_LEN, 0);
    put_u32(&mut header, HEADER_VERSION_AT, VERSION);
    let name_len = u16::try_from(name.len()).expect("validate_topic bounds names to 255 bytes");
    put_u16(&mut header, HEADER_NAME_LEN_AT, name_len);
    header.extend_from_slice(name.as_bytes());
    let crc = crc64(&[&header]);
    header.extend_from_slice(&crc.to_le_bytes());
    header
}

/// Reads a data file's header: `Ok(None)` if it is incomplete or its crc
/// fails (a crash during topic creation), an error if the file is not ours.
fn read_header(
    file: &File,
    ahead: &mut ReadAhead,
    file_len: u64,
    path: &Path,
) -> Result<Option<(String, u64)>> {
    let io = |e| Error::io(format!("reading {}", path.display()), e);
    let Some(fixed) = ahead.get(file, 0, HEADER_FIXED_LEN, file_len).map_err(io)? else {
        return Ok(None);
    };
    if fixed[..MAGIC.len()] != MAGIC {
        if fixed[..MAGIC.len()].iter().all(|b| *b == 0) {
            return Ok(None);
        }
        return Err(Error::BadMagic {
            file: path.to_path_buf(),
            expected: "raw store topic",
        });
    }
    let version = u32_at(fixed, HEADER_VERSION_AT);
    let name_len = usize::from(u16_at(fixed, HEADER_NAME_LEN_AT));
    let total = HEADER_FIXED_LEN + name_len + 8;
    let Some(header) = ahead.get(file, 0, total, file_len).map_err(io)? else {
        return Ok(None);
    };
    let (body, crc) = header.split_at(total - 8);
    if crc64(&[body]) != u64_at(crc, 0) {
        return Ok(None);
    }
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            file: path.to_path_buf(),
            found: version,
            supported: VERSION,
        });
    }
    let name = std::str::from_utf8(&body[HEADER_FIXED_LEN..])
        .ok()
        .filter(|name| validate_topic(name).is_ok())
        .ok_or_else(|| Error::Corruption {
            file: path.to_path_buf(),
            offset: HEADER_FIXED_LEN as u64,
            reason: "topic name in the header is not a valid topic".into(),
        })?
        .to_owned();
    Ok(Some((name, total as u64)))
}

fn encode_frame(buf: &mut Vec<u8>, first_seq: u64, payloads: &[&[u8]]) {
    buf.clear();
    buf.resize(FRAME_HEADER_LEN, 0);
    for payload in payloads {
        let len = u32::try_from(payload.len()).expect("payload length checked by append_frame");
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(payload);
    }
    let count = u32::try_from(payloads.len()).expect("batch length checked by append_frame");
    let body_len = (buf.len() - FRAME_HEADER_LEN) as u64;
    put_u32(buf, FRAME_COUNT_AT, count);
    put_u64(buf, FRAME_FIRST_SEQ_AT, first_seq);
    put_u64(buf, FRAME_BODY_LEN_AT, body_len);
    let crc = crc64(&[&buf[..FRAME_CRC_COVERS], &buf[FRAME_HEADER_LEN..]]);
    put_u64(buf, FRAME_CRC_AT, crc);
}

/// Decodes the frame at `off`, reading no byte at or past `limit`.
/// `Ok(None)`: no frame starts there (`off == limit`). `Err(reason)`: the
/// bytes there are not a whole, valid frame (a torn tail during recovery,
/// corruption anywhere else).
fn decode_frame_at(
    file: &File,
    ahead: &mut ReadAhead,
    off: u64,
    limit: u64,
    path: &Path,
) -> std::result::Result<Option<Frame>, String> {
    if off >= limit {
        return Ok(None);
    }
    let io = |e: std::io::Error| format!("reading {}: {e}", path.display());
    let header: [u8; FRAME_HEADER_LEN] =
        match ahead.get(file, off, FRAME_HEADER_LEN, limit).map_err(io)? {
            Some(bytes) => bytes.try_into().expect("FRAME_HEADER_LEN bytes"),
            None => {
                return Err(format!(
                    "frame header cut short ({} bytes left)",
                    limit - off
                ))
            }
        };
    let count = u32_at(&header, FRAME_COUNT_AT);
    let first_seq = u64_at(&header, FRAME_FIRST_SEQ_AT);
    let body_len = u64_at(&header, FRAME_BODY_LEN_AT);
    let crc = u64_at(&header, FRAME_CRC_AT);
    if count == 0 || count as usize > MAX_BATCH_ENTRIES {
        return Err(format!("frame claims {count} records"));
    }
    let body_start = off + FRAME_HEADER_LEN as u64;
    // Bounds-check the length before trusting it with an allocation.
    if body_len > limit - body_start {
        return Err(format!(
            "frame body of {body_len} bytes runs past the end ({} bytes left)",
            limit - body_start
        ));
    }
    let body_len_usize =
        usize::try_from(body_len).map_err(|_| "frame too large for memory".to_string())?;
    let body = ahead
        .get(file, body_start, body_len_usize, limit)
        .map_err(io)?
        .expect("bounds checked above")
        .to_vec();
    let body = Bytes::from(body);
    let actual = crc64(&[&header[..FRAME_CRC_COVERS], &body]);
    if actual != crc {
        return Err(format!(
            "frame crc mismatch: stored {crc:#018x}, computed {actual:#018x}"
        ));
    }
    let mut spans = Vec::with_capacity(count as usize);
    let mut pos = 0usize;
    for _ in 0..count {
        let Some(len_bytes) = body.get(pos..pos + RECORD_LEN_LEN) else {
            return Err("record length runs past the frame body".into());
        };
        let len = u32_at(len_bytes, 0) as usize;
        let start = pos + RECORD_LEN_LEN;
        if len > body.len() - start {
            return Err("record payload runs past the frame body".into());
        }
        spans.push((start, len));
        pos = start + len;
    }
    if pos != body.len() {
        return Err(format!("frame body has {} stray bytes", body.len() - pos));
    }
    Ok(Some(Frame {
        off,
        first_seq,
        end: body_start + body_len,
        body,
        spans,
    }))
}

fn encode_slot(generation: u64, cursor: Cursor) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    put_u64(&mut slot, SLOT_GENERATION_AT, generation);
    put_u64(&mut slot, SLOT_FRAME_OFF_AT, cursor.frame_off);
    put_u32(&mut slot, SLOT_INDEX_AT, cursor.index);
    put_u64(&mut slot, SLOT_SEQ_AT, cursor.seq);
    let crc = crc64(&[&slot[..SLOT_BODY_LEN]]);
    put_u64(&mut slot, SLOT_CRC_AT, crc);
    slot
}

fn decode_slot(slot: &[u8]) -> Option<(u64, Cursor)> {
    if slot.len() < SLOT_CRC_AT + 8 {
        return None;
    }
    if crc64(&[&slot[..SLOT_BODY_LEN]]) != u64_at(slot, SLOT_CRC_AT) {
        return None;
    }
    let generation = u64_at(slot, SLOT_GENERATION_AT);
    if generation == 0 {
        return None;
    }
    Some((
        generation,
        Cursor {
            frame_off: u64_at(slot, SLOT_FRAME_OFF_AT),
            index: u32_at(slot, SLOT_INDEX_AT),
            seq: u64_at(slot, SLOT_SEQ_AT),
        },
    ))
}

impl ReadAhead {
    /// `len` bytes at `off`, or `None` if they would reach past `limit`.
    /// Refills from `off` with at least [`READ_AHEAD_BYTES`] (capped at
    /// `limit`) when the range is not buffered.
    fn get(
        &mut self,
        file: &File,
        off: u64,
        len: usize,
        limit: u64,
    ) -> std::io::Result<Option<&[u8]>> {
        let end = off.checked_add(len as u64).filter(|end| *end <= limit);
        let Some(end) = end else {
            return Ok(None);
        };
        let buffered_end = self.base + self.bytes.len() as u64;
        if off < self.base || end > buffered_end {
            let want = (limit - off).min(len.max(READ_AHEAD_BYTES) as u64) as usize;
            self.bytes.clear();
            self.bytes.resize(want, 0);
            file.read_exact_at(&mut self.bytes, off)?;
            self.base = off;
            if self.bytes.capacity() > READ_AHEAD_BYTES.max(want) * 2 {
                self.bytes.shrink_to_fit();
            }
        }
        let start = (off - self.base) as usize;
        Ok(Some(&self.bytes[start..start + len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(fsync: FsyncSchedule) -> StoreConfig {
        StoreConfig {
            consistency: ReadConsistency::StrictlyAtOnce,
            fsync,
        }
    }

    #[test]
    fn a_torn_tail_is_truncated_and_earlier_entries_kept() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = RawStore::open(tmp.path(), config(FsyncSchedule::NoFsync)).unwrap();
            store.append("t", b"one").unwrap();
            store.batch_append("t", &[b"two", b"three"]).unwrap();
        }
        let path = tmp.path().join("0.log");
        let len = fs::metadata(&path).unwrap().len();
        // A half-written third frame.
        let mut frame = Vec::new();
        encode_frame(&mut frame, 3, &[b"four", b"five"]);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&frame[..frame.len() - 3], len).unwrap();
        drop(file);

        let store = RawStore::open(tmp.path(), config(FsyncSchedule::NoFsync)).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), len);
        let got: Vec<_> = store.batch_read("t", usize::MAX, true).unwrap();
        let data: Vec<&[u8]> = got.iter().map(|e| e.data.as_ref()).collect();
        assert_eq!(data, [&b"one"[..], b"two", b"three"]);
        store.append("t", b"after").unwrap();
        assert_eq!(store.read_next("t", true).unwrap().unwrap().seq, 3);
    }

    #[test]
    fn a_flipped_bit_in_the_last_frame_drops_only_that_frame() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = RawStore::open(tmp.path(), config(FsyncSchedule::NoFsync)).unwrap();
            store.append("t", b"keep").unwrap();
            store.append("t", b"lose").unwrap();
        }
        let path = tmp.path().join("0.log");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let store = RawStore::open(tmp.path(), config(FsyncSchedule::NoFsync)).unwrap();
        assert_eq!(
            store.read_next("t", true).unwrap().unwrap().data,
            &b"keep"[..]
        );
        assert_eq!(store.read_next("t", true).unwrap(), None);
    }

    #[test]
    fn a_torn_cursor_slot_falls_back_to_the_previous_generation() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = RawStore::open(tmp.path(), config(FsyncSchedule::NoFsync)).unwrap();
            for i in 0..4u8 {
                store.append("t", &[i]).unwrap();
            }
            store.read_next("t", true).unwrap(); // generation 1, slot 1
            store.read_next("t", true).unwrap(); // generation 2, slot 0
        }
        let path = tmp.path().join("0.cur");
        let mut bytes = fs::read(&path).unwrap();
        bytes[3] ^= 0xff; // tear slot 0 (generation 2)
        fs::write(&path, &bytes).unwrap();
        let store = RawStore::open(tmp.path(), config(FsyncSchedule::NoFsync)).unwrap();
        // Back to generation 1: entry 1 is delivered again, nothing skipped.
        assert_eq!(store.read_next("t", true).unwrap().unwrap().seq, 1);
    }

    #[test]
    fn a_cursor_past_lost_data_is_clamped_and_its_seqs_are_not_reused() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = RawStore::open(tmp.path(), config(FsyncSchedule::NoFsync)).unwrap();
            store.append("t", b"a").unwrap();
            store.append("t", b"b").unwrap();
            store.read_next("t", true).unwrap();
            store.read_next("t", true).unwrap();
        }
        // A power loss that kept the (synced) cursor but not the second entry.
        let path = tmp.path().join("0.log");
        let len = fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 5).unwrap();
        drop(file);
        {
            let store = RawStore::open(tmp.path(), config(FsyncSchedule::NoFsync)).unwrap();
            assert_eq!(store.read_next("t", false).unwrap(), None);
            store.append("t", b"c").unwrap();
        }
        let store = RawStore::open(tmp.path(), config(FsyncSchedule::NoFsync)).unwrap();
        let entry = store.read_next("t", true).unwrap().unwrap();
        // Seq 1 was handed out before the loss; the new entry does not reuse it.
        assert_eq!((entry.seq, entry.data.as_ref()), (2, &b"c"[..]));
    }

    #[test]
    fn a_foreign_file_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("0.log"), b"SQLite format 3\0").unwrap();
        assert!(matches!(
            RawStore::open(tmp.path(), config(FsyncSchedule::NoFsync)),
            Err(Error::BadMagic { .. })
        ));
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_locked_out() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = RawStore::open(tmp.path(), config(FsyncSchedule::NoFsync)).unwrap();
        assert!(matches!(
            RawStore::open(tmp.path(), config(FsyncSchedule::NoFsync)),
            Err(Error::Locked(_))
        ));
    }
}
