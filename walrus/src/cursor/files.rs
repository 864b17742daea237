//! The cursor files' encodings: the snapshot and log layouts written, and
//! read back with every length and checksum checked.

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
    let mut header = [0u8; LOG_HEADER_LEN as usize];
    header[0..8].copy_from_slice(&LOG_MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&generation.to_le_bytes());
    let crc = crc64(&[&header[0..24]]);
    header[24..32].copy_from_slice(&crc.to_le_bytes());
    let mut bytes = vec![0u8; LOG_BYTES as usize];
    bytes[..header.len()].copy_from_slice(&header);
    file.write_all_at(&bytes, 0)
        .and_then(|()| file.sync())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(file)
}

pub(super) fn encode_record(topic: &str, next_seq: u64) -> Vec<u8> {
    let mut r = Vec::with_capacity(18 + topic.len());
    r.extend_from_slice(&[0u8; 8]);
    r.extend_from_slice(&next_seq.to_le_bytes());
    r.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    r.extend_from_slice(topic.as_bytes());
    let crc = crc64(&[&r[8..]]);
    r[0..8].copy_from_slice(&crc.to_le_bytes());
    r
}

pub(super) fn encode_snapshot(generation: u64, values: &HashMap<String, u64>) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&SNAP_MAGIC);
    b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    b.extend_from_slice(&(values.len() as u32).to_le_bytes());
    b.extend_from_slice(&generation.to_le_bytes());
    let mut sorted: Vec<_> = values.iter().collect();
    sorted.sort();
    for (topic, seq) in sorted {
        b.extend_from_slice(&(topic.len() as u16).to_le_bytes());
        b.extend_from_slice(topic.as_bytes());
        b.extend_from_slice(&seq.to_le_bytes());
    }
    let crc = crc64(&[&b]);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

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

pub(super) fn check_magic_and_version(
    b: &[u8],
    magic: &[u8; 8],
    path: &Path,
    what: &'static str,
) -> Result<()> {
    if b.len() < 12 || b[0..8] != *magic {
        return Err(Error::BadMagic {
            file: path.to_owned(),
            expected: what,
        });
    }
    let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            file: path.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

/// A cursor snapshot is replaced by rename, so it is never torn: any damage
/// is corruption and is reported rather than guessed around.
pub(super) fn read_snapshot(
    storage: &dyn Storage,
    path: &Path,
) -> Result<(u64, HashMap<String, u64>)> {
    let b = read_all(storage, path)?;
    if b.len() < 32 {
        return Err(corrupt(path, 0, "truncated cursor snapshot".into()));
    }
    // The checksum first: only an intact snapshot can claim a newer format.
    let body = &b[..b.len() - 8];
    let stored = u64::from_le_bytes(b[b.len() - 8..].try_into().expect("8 bytes"));
    let got = crc64(&[body]);
    if stored != got {
        return Err(corrupt(
            path,
            0,
            format!("snapshot checksum {got:#x} != stored {stored:#x}"),
        ));
    }
    check_magic_and_version(&b, &SNAP_MAGIC, path, "Walrus cursor snapshot")?;
    let count = u32::from_le_bytes(body[12..16].try_into().expect("4 bytes")) as usize;
    let generation = u64::from_le_bytes(body[16..24].try_into().expect("8 bytes"));
    let mut values = HashMap::with_capacity(count.min(1 << 16));
    let mut at = 24usize;
    for _ in 0..count {
        let bad = || corrupt(path, at as u64, "cursor entry overruns snapshot".into());
        let len = u16::from_le_bytes(
            body.get(at..at + 2)
                .ok_or_else(bad)?
                .try_into()
                .expect("2 bytes"),
        ) as usize;
        let topic = body.get(at + 2..at + 2 + len).ok_or_else(bad)?;
        let seq = body.get(at + 2 + len..at + 10 + len).ok_or_else(bad)?;
        let topic = std::str::from_utf8(topic)
            .map_err(|_| corrupt(path, at as u64, "topic is not UTF-8".into()))?;
        values.insert(
            topic.to_owned(),
            u64::from_le_bytes(seq.try_into().expect("8 bytes")),
        );
        at += 10 + len;
    }
    if at != body.len() {
        return Err(corrupt(
            path,
            at as u64,
            "trailing bytes after cursors".into(),
        ));
    }
    Ok((generation, values))
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
    let header_ok = b.len() >= LOG_HEADER_LEN as usize
        && crc64(&[&b[0..24]]).to_le_bytes() == b[24..32]
        && b[16..24] == generation.to_le_bytes();
    if !header_ok {
        return Err(corrupt(
            path,
            0,
            "cursor log header damaged or of another generation".into(),
        ));
    }
    check_magic_and_version(&b, &LOG_MAGIC, path, "Walrus cursor log")?;
    let mut at = LOG_HEADER_LEN as usize;
    let mut end = at;
    while at + 18 <= b.len() {
        if let Some((topic, seq, len)) = record_at(&b, at) {
            values.insert(topic.to_owned(), seq);
            at += len;
            end = at;
            continue;
        }
        if b[at..].iter().all(|&x| x == 0) {
            break;
        }
        let Some(next) = (at + 1..b.len().saturating_sub(17)).find(|&i| record_at(&b, i).is_some())
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

/// The record at `b[at..]`, if a whole valid one starts there: its topic,
/// next sequence number and length.
pub(super) fn record_at(b: &[u8], at: usize) -> Option<(&str, u64, usize)> {
    let head = b.get(at..at + 18)?;
    let len = u16::from_le_bytes([head[16], head[17]]) as usize;
    if len == 0 || len > MAX_TOPIC_LEN {
        return None;
    }
    let record = b.get(at..at + 18 + len)?;
    if crc64(&[&record[8..]]).to_le_bytes() != record[0..8] {
        return None;
    }
    let topic = std::str::from_utf8(&record[18..]).ok()?;
    let seq = u64::from_le_bytes(record[8..16].try_into().expect("8 bytes"));
    Some((topic, seq, 18 + len))
}
