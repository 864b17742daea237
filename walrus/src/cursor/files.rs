//! The cursor files written and read back, every length and checksum
//! checked (their layouts are in `crate::format::cursor`).

use super::*;

pub(super) fn create_log(
    storage: &dyn Storage,
    dir: &Path,
    generation: u64,
) -> Result<Arc<dyn StorageFile>> {
    let path = dir.join(log_name(generation));
    let _ = storage.remove(&path);
    let file = storage
        .open(&path, OpenMode::CreateNew, FileKind::Small)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    let header = layout::encode_log_header(generation);
    let mut bytes = vec![0u8; LOG_BYTES as usize];
    bytes[..header.len()].copy_from_slice(&header);
    file.write_all_at(&bytes, 0)
        .and_then(|()| file.sync())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(file)
}

pub(super) use layout::{encode_record, encode_snapshot};

pub(super) fn read_all(storage: &dyn Storage, path: &Path) -> Result<Vec<u8>> {
    let io = |e| Error::io(format!("reading {}", path.display()), e);
    let file = storage
        .open(path, OpenMode::Existing, FileKind::Small)
        .map_err(io)?;
    let len = file.len().map_err(io)?;
    if len > 1 << 30 {
        return Err(corrupt(path, 0, format!("implausible length {len}")));
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0).map_err(io)?;
    Ok(buf)
}

pub(super) fn corrupt(path: &Path, offset: u64, reason: String) -> Error {
    Error::Corruption {
        file: path.to_owned(),
        offset,
        reason,
    }
}

/// Reads and decodes the snapshot at `path` (see
/// [`layout::decode_snapshot`]: any damage is corruption).
pub(super) fn read_snapshot(
    storage: &dyn Storage,
    path: &Path,
) -> Result<(u64, HashMap<String, u64>)> {
    layout::decode_snapshot(&read_all(storage, path)?, path)
}

/// Applies the log's records in order and returns where the valid ones
/// end. Zeros (the preallocated tail) or a torn record with nothing valid
/// after it end the replay: that is the tail of an interrupted append, whose
/// persist never returned. Bytes that are no record but are followed by a
/// valid one are damage: they are skipped, the replay resumes at the next
/// valid record, and `damage` says what was skipped (a position recorded
/// there may be lost, and the topic's cursor then falls back to an older
/// record).
pub(super) fn replay_log(
    storage: &dyn Storage,
    path: &Path,
    generation: u64,
    values: &mut HashMap<String, u64>,
    damage: &mut Vec<Dropped>,
) -> Result<(u64, bool)> {
    let b = read_all(storage, path)?;
    if !layout::log_header_ok(&b, generation) {
        return Err(corrupt(
            path,
            0,
            "cursor log header damaged or of another generation".into(),
        ));
    }
    let (version, what) = (crate::format::CURSOR_LOG_VERSION, "Walrus cursor log");
    layout::check_magic_and_version(&b, &layout::LOG_MAGIC, version, path, what)?;
    let mut at = layout::LOG_HEADER_LEN;
    let mut end = at;
    while at + layout::RECORD_TOPIC_AT <= b.len() {
        if let Some((topic, seq, len)) = record_at(&b, at) {
            values.insert(topic.to_owned(), seq);
            at += len;
            end = at;
            continue;
        }
        if b[at..].iter().all(|&x| x == 0) {
            break;
        }
        let Some(next) = (at + 1..b.len().saturating_sub(layout::RECORD_TOPIC_AT - 1))
            .find(|&i| record_at(&b, i).is_some())
        else {
            // A torn last append looks like this, but so does damage to the
            // last records: either way positions recorded there are lost.
            damage.push(Dropped {
                file: path.to_owned(),
                offset: at as u64,
                topic: None,
                reason: "the cursor log ends in bytes that are no valid record (an \
                         interrupted persist, or damage): a position recorded there is lost \
                         and consumed entries may be delivered again"
                    .into(),
            });
            break;
        };
        damage.push(Dropped {
            file: path.to_owned(),
            offset: at as u64,
            topic: None,
            reason: format!(
                "{} bytes of the cursor log are no valid record; the cursor positions \
                 recorded there are lost and consumed entries may be delivered again",
                next - at
            ),
        });
        at = next;
    }
    let cut = (b.len() as u64) < LOG_BYTES;
    if cut {
        // Logs are created at full length: this one was cut.
        damage.push(Dropped {
            file: path.to_owned(),
            offset: b.len() as u64,
            topic: None,
            reason: format!(
                "cursor log truncated to {} of {LOG_BYTES} bytes: positions recorded past \
                 the cut are lost and consumed entries may be delivered again",
                b.len()
            ),
        });
    }
    // A stretch of garbage followed by valid records is also what a power
    // loss leaves when writeback reorders unsynced appends to the log. The
    // records after it are real positions and are applied; what the stretch
    // held was never synced, so falling back costs redelivery, never a
    // skip. Taking it for lost positions (and raising cursors to the oldest
    // kept entry) skipped entries in the concurrent crash model
    // (StrictlyAtOnce x no-fsync, KeepRandom images).
    Ok((end as u64, !cut))
}

pub(super) use layout::record_at;
