//! The recovery checkpoint records, for every live extent, a prefix of its
//! frames known to be durable, so that the next open verifies only what
//! follows. It is written at a clean close (covering everything) and after a
//! sync round (the `Milliseconds` flusher's, an explicit `sync()`, or under
//! `SyncEach` one run for the purpose) once `checkpoint_every_bytes` of new
//! extents were handed out since the last one: the writer notes each
//! extent's committed end (and whether it is sealed), syncs every segment,
//! and only then writes the checkpoint. An open after a crash therefore
//! re-reads about what was written since the last sync round plus the
//! topics' current extents, not the whole log.
//!
//! It is only ever trusted by the next open: open reads it and deletes it
//! (durably) before anything new is written, and within one run an
//! (segment id, extent start) pair never names two extents, because segment
//! ids only grow and extents are never reused. Extents it lists that are
//! gone (reclaimed) are ignored. Any damage to it costs only speed: open
//! falls back to the full scan.
//!
//! ```text
//! recovery.ckpt
//!   0  [u8; 8] magic "WALRUSC2"
//!   8  u32     format version (1)
//!  12  u32     number of extents
//!  16  ..      per extent: u64 segment id, u64 extent start,
//!              u64 end of the vouched frames (file offset), u64 next entry,
//!              u64 flags (bit 0: the extent was sealed, nothing follows)
//!  end u64     crc64 of every byte before it
//! ```

use crate::crc::crc64;
use crate::format::FORMAT_VERSION;
use crate::storage::{FileKind, OpenMode, Storage};
use crate::store::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

const MAGIC: [u8; 8] = *b"WALRUSC2";
const ENTRY_LEN: usize = 40;
const SEALED: u64 = 1;
pub const NAME: &str = "recovery.ckpt";
const TMP_NAME: &str = "recovery.ckpt.tmp";

/// What a checkpoint says of one extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vouched {
    /// File offset after the last frame vouched for.
    pub end_off: u64,
    /// Sequence number after the last entry vouched for.
    pub end_seq: u64,
    /// The writer had moved on: no frame follows `end_off`.
    pub sealed: bool,
}

/// (segment id, extent start) -> what is vouched for.
pub type Extents = HashMap<(u64, u64), Vouched>;

/// Reads and deletes the checkpoint. `Ok(None)` when there is none or it is
/// damaged (a warning is logged); `Err` only when it cannot be deleted.
pub fn take(storage: &dyn Storage, dir: &Path) -> Result<Option<Extents>> {
    let path = dir.join(NAME);
    let names = storage
        .list(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let _ = storage.remove(&dir.join(TMP_NAME));
    if !names.iter().any(|n| n == NAME) {
        return Ok(None);
    }
    let extents = read(storage, &path);
    if extents.is_none() {
        tracing::warn!(
            "walrus: ignoring damaged {}; scanning every extent",
            path.display()
        );
    }
    storage
        .remove(&path)
        .and_then(|()| storage.sync_dir(dir))
        .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    Ok(extents)
}

fn read(storage: &dyn Storage, path: &Path) -> Option<Extents> {
    let file = storage
        .open(path, OpenMode::Existing, FileKind::Small)
        .ok()?;
    let len = file.len().ok()?;
    if !(24..=1 << 30).contains(&len) {
        return None;
    }
    let mut b = vec![0u8; len as usize];
    file.read_exact_at(&mut b, 0).ok()?;
    let (body, crc) = b.split_at(b.len() - 8);
    let version = u32::from_le_bytes(body[8..12].try_into().ok()?);
    if body[0..8] != MAGIC || version != FORMAT_VERSION || crc64(&[body]).to_le_bytes() != crc {
        return None;
    }
    let count = u32::from_le_bytes(body[12..16].try_into().ok()?) as usize;
    if body.len() != 16 + count * ENTRY_LEN {
        return None;
    }
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    Some(
        (0..count)
            .map(|i| 16 + i * ENTRY_LEN)
            .map(|at| {
                let vouched = Vouched {
                    end_off: u64_at(at + 16),
                    end_seq: u64_at(at + 24),
                    sealed: u64_at(at + 32) & SEALED != 0,
                };
                ((u64_at(at), u64_at(at + 8)), vouched)
            })
            .collect(),
    )
}

/// Writes the checkpoint crash-safely (temp file, fsync, rename, fsync dir).
/// The caller has made every extent it lists durable first.
pub fn write(storage: &dyn Storage, dir: &Path, extents: &Extents) -> Result<()> {
    let mut b = Vec::with_capacity(24 + extents.len() * ENTRY_LEN);
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    b.extend_from_slice(&(extents.len() as u32).to_le_bytes());
    for (&(segment, start), v) in extents {
        let flags = if v.sealed { SEALED } else { 0 };
        for v in [segment, start, v.end_off, v.end_seq, flags] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    let crc = crc64(&[&b]);
    b.extend_from_slice(&crc.to_le_bytes());
    let (tmp, path) = (dir.join(TMP_NAME), dir.join(NAME));
    let io = |e| Error::io(format!("writing {}", path.display()), e);
    let _ = storage.remove(&tmp);
    let file = storage
        .open(&tmp, OpenMode::CreateNew, FileKind::Small)
        .map_err(io)?;
    file.write_all_at(&b, 0)
        .and_then(|()| file.sync())
        .map_err(io)?;
    storage
        .rename(&tmp, &path)
        .and_then(|()| storage.sync_dir(dir))
        .map_err(io)
}
