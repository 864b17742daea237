//! Recovery at open: scan every segment, rebuild each topic's chain of
//! extents, keep the longest valid prefix of every topic, and report what was
//! dropped. Nothing read from disk is trusted before its checksum and bounds
//! are checked, and no file content can make this code panic.

use crate::format::{
    align_up, ExtentHeader, FrameHeader, SegmentHeader, ALIGN, DEAD_EXTENT_MAGIC,
    EXTENT_HEADER_FIXED_LEN, EXTENT_MAGIC, FRAME_HEADER_LEN, MAX_SEQ, SEGMENT_HEADER_LEN,
};
use crate::segment::{parse_segment_name, Segment, EXTENT_UNIT, TMP_SUFFIX};
use crate::storage::{FileKind, OpenMode, Storage};
use crate::store::{Error, Result, MAX_TOPIC_LEN};
use crate::topic::{Extent, Mark};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod frames;
use frames::*;

/// What recovery found and what it had to drop.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// Segment files opened.
    pub segments: usize,
    /// Extents whose frames were (wholly or partly) not re-read because a
    /// recovery snapshot vouched for them.
    pub checkpointed_extents: usize,
    /// Topics with entries recovered.
    pub topics: usize,
    /// Entries recovered (consumed ones included, until their space is reclaimed).
    pub entries: u64,
    /// Every stretch of a segment that recovery did not accept: each
    /// acknowledged entry that is not readable after open lies in one of
    /// them. `topic` is `None` where the damage hides whose data it was
    /// (a segment header, an extent header, a truncated file).
    pub dropped: Vec<Dropped>,
    /// Damage found in the cursor files: positions lost with it are taken
    /// from older records (or restart at the oldest entry), so consumed
    /// entries may be delivered again. See docs/guarantees.md.
    pub cursor_damage: Vec<Dropped>,
    /// Files moved into `LOST_FOUND` (inside the instance directory)
    /// instead of being deleted, where they are now.
    pub moved: Vec<PathBuf>,
}

/// Directory, inside the instance directory, that damaged files recovery
/// cannot use are moved into (never deleted), for inspection.
pub const LOST_FOUND: &str = "lost+found";

/// Moves `path` (a file of `dir`) into `dir/lost+found`, under its own name
/// or, if that is taken, with a numeric suffix; returns where it went.
pub(crate) fn move_to_lost_found(
    storage: &dyn Storage,
    dir: &Path,
    path: &Path,
) -> Result<PathBuf> {
    let lf = dir.join(LOST_FOUND);
    let io = |e| Error::io(format!("moving {} to {}", path.display(), lf.display()), e);
    storage.create_dir(&lf).map_err(io)?;
    let taken = storage.list(&lf).map_err(io)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file")
        .to_owned();
    let mut target = name.clone();
    let mut n = 1;
    while taken.contains(&target) {
        target = format!("{name}.{n}");
        n += 1;
    }
    let to = lf.join(target);
    storage.rename(path, &to).map_err(io)?;
    storage
        .sync_dir(&lf)
        .and_then(|()| storage.sync_dir(dir))
        .map_err(io)?;
    Ok(to)
}

/// One stretch of a file that recovery did not accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// The file the stretch is in.
    pub file: PathBuf,
    /// Where the stretch starts.
    pub offset: u64,
    /// The topic it belonged to, when known.
    pub topic: Option<String>,
    /// Why it was not accepted.
    pub reason: String,
}

pub struct TopicState {
    pub extents: VecDeque<Arc<Extent>>,
    pub next_seq: u64,
    pub next_extent_seq: u64,
}

pub struct Recovered {
    pub segments: BTreeMap<u64, Arc<Segment>>,
    pub topics: HashMap<String, TopicState>,
    pub next_segment_id: u64,
    pub report: RecoveryReport,
}

struct Candidate {
    segment: Arc<Segment>,
    start: u64,
    header: ExtentHeader,
}

/// `cursors` are the persisted consumer positions: entries below them may
/// legitimately be missing from a topic's chain. `cursors_lost`: the cursor
/// files were damaged, so a position may be older than the truth, and a
/// topic's chain may start anywhere (its oldest extents may have been
/// reclaimed after the lost position was recorded).
pub fn recover(
    storage: &dyn Storage,
    dir: &Path,
    cursors: &HashMap<String, u64>,
    cursors_lost: bool,
    snapshot: Option<&crate::recovery_snapshot::Extents>,
) -> Result<Recovered> {
    let names = storage
        .list(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut report = RecoveryReport::default();
    let mut segments = BTreeMap::new();
    let mut candidates: HashMap<String, Vec<Candidate>> = HashMap::new();
    let mut next_segment_id = 1;
    // Segments found damaged (no recovery snapshot is trusted for them), with the
    // length each was truncated to (and restored from), if it was.
    let mut damaged: HashMap<u64, Option<u64>> = HashMap::new();
    // (segment id, start) of every extent header found, live or dead.
    let mut seen: std::collections::HashSet<(u64, u64)> = Default::default();
    for name in names {
        let Some(id) = parse_segment_name(&name) else {
            if name.starts_with("seg-") && name.ends_with(TMP_SUFFIX) {
                // A segment whose creation did not finish: no data was ever
                // written to it (appends start after the rename).
                let path = dir.join(&name);
                storage
                    .remove(&path)
                    .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
            }
            continue;
        };
        let path = dir.join(&name);
        if id >= MAX_SEQ {
            report.dropped.push(Dropped {
                file: path,
                offset: 0,
                topic: None,
                reason: format!("segment id {id} out of range; file left alone"),
            });
            continue;
        }
        next_segment_id = next_segment_id.max(id + 1);
        let (segment, header_damaged) = match open_segment(storage, &path, id, &mut report)? {
            Opened::Segment {
                segment,
                truncated_at,
                header_damaged,
            } => {
                if truncated_at.is_some() || header_damaged {
                    damaged.insert(id, truncated_at);
                }
                (segment, header_damaged)
            }
            Opened::Unusable(reason) => {
                // Created files are named only once their header is durable
                // (see `Allocator::create_segment`), so a named segment
                // without one was damaged, never unused: its loss is
                // reported and the file kept.
                let to = move_to_lost_found(storage, dir, &path)?;
                report.dropped.push(Dropped {
                    file: path,
                    offset: 0,
                    topic: None,
                    reason: format!("{reason}; moved to {}", to.display()),
                });
                report.moved.push(to);
                continue;
            }
        };
        let found = scan_extents(&segment, &mut seen, &mut report)?;
        if header_damaged && found.is_empty() {
            // Nothing in it could be used: keep it for inspection rather
            // than let the open delete it as an empty segment.
            drop(segment);
            let to = move_to_lost_found(storage, dir, &path)?;
            report.dropped.push(Dropped {
                file: path,
                offset: 0,
                topic: None,
                reason: format!(
                    "no valid extent behind the damaged header; moved to {}",
                    to.display()
                ),
            });
            report.moved.push(to);
            continue;
        }
        for c in found {
            candidates
                .entry(c.header.topic.clone())
                .or_default()
                .push(c);
        }
        segments.insert(id, segment);
    }
    // An extent the recovery snapshot vouched for, in a segment still here, whose
    // header is gone: its entries are lost (a recovery snapshot lists only live
    // extents, and only the next open reads it).
    let mut gone: Vec<_> = snapshot
        .into_iter()
        .flat_map(|x| x.keys())
        .filter(|key| segments.contains_key(&key.0) && !seen.contains(key))
        .collect();
    gone.sort();
    for &(id, start) in gone {
        report.dropped.push(Dropped {
            file: segments[&id].path.clone(),
            offset: start,
            topic: None,
            reason: "the recovery snapshot lists an extent here whose header is gone: \
                     its entries are lost"
                .into(),
        });
    }
    report.segments = segments.len();
    let mut topics = HashMap::new();
    for (name, mut extents) in candidates {
        extents.sort_by_key(|c| c.header.extent_seq);
        let mut cursor = cursors.get(&name).copied().unwrap_or(0);
        if cursors_lost {
            // The chain may start at its first extent, whatever the cursor.
            cursor = cursor.max(extents.first().map_or(0, |c| c.header.first_entry_seq));
        }
        let state = build_chain(&name, extents, cursor, snapshot, &damaged, &mut report)?;
        report.entries += state
            .extents
            .iter()
            .map(|b| b.written().seq - b.first_seq)
            .sum::<u64>();
        topics.insert(name, state);
    }
    report.topics = topics.len();
    Ok(Recovered {
        segments,
        topics,
        next_segment_id,
        report,
    })
}

enum Opened {
    Segment {
        segment: Arc<Segment>,
        /// The file was shorter than its header says, and was restored to
        /// that length: bytes from here on are zeros, whatever they held.
        truncated_at: Option<u64>,
        /// The header was unreadable: the geometry was taken from the file
        /// name and length.
        header_damaged: bool,
    },
    /// Nothing in the file can hold an extent; why.
    Unusable(String),
}

/// Opens a segment and checks its header. A damaged header does not make
/// the file unusable: extents carry their own checksums, so the file is
/// scanned with the geometry its name and length imply. Only a header that
/// checks out and names a newer format is refused (an error).
fn open_segment(
    storage: &dyn Storage,
    path: &Path,
    id: u64,
    report: &mut RecoveryReport,
) -> Result<Opened> {
    let io = |e| Error::io(format!("opening {}", path.display()), e);
    let probe = storage
        .open(path, OpenMode::Existing, FileKind::Small)
        .map_err(io)?;
    let len = probe.len().map_err(io)?;
    if len <= EXTENT_UNIT {
        return Ok(Opened::Unusable(if len == 0 {
            "empty segment file (its data was lost)".into()
        } else {
            format!("segment of {len} bytes holds no extent (truncated)")
        }));
    }
    let mut raw = [0u8; SEGMENT_HEADER_LEN];
    probe.read_exact_at(&mut raw, 0).map_err(io)?;
    let problem = match SegmentHeader::decode(&raw, path) {
        Err(e @ Error::UnsupportedVersion { .. }) => return Err(e),
        Err(e) => Some(e.to_string()),
        Ok(None) => Some("segment header is all zeros".into()),
        Ok(Some(h)) if h.id != id || h.extent_unit_bytes != EXTENT_UNIT => {
            Some(format!("header {h:?} does not match the file name {id}"))
        }
        Ok(Some(h))
            if !h.size_bytes.is_multiple_of(EXTENT_UNIT)
                || h.size_bytes > crate::topic::MAX_EXTENT_BYTES =>
        {
            Some(format!("implausible segment size in header {h:?}"))
        }
        Ok(Some(h)) => {
            drop(probe);
            return finish_open(storage, path, id, len, h.size_bytes, false, report);
        }
    };
    let size =
        align_up(len, EXTENT_UNIT).min(crate::topic::MAX_EXTENT_BYTES / EXTENT_UNIT * EXTENT_UNIT);
    report.dropped.push(Dropped {
        file: path.into(),
        offset: 0,
        topic: None,
        reason: format!(
            "damaged segment header ({}); its extents are read as those of a {size}-byte segment",
            problem.unwrap_or_default()
        ),
    });
    drop(probe);
    finish_open(storage, path, id, len, size, true, report)
}

fn finish_open(
    storage: &dyn Storage,
    path: &Path,
    id: u64,
    len: u64,
    size: u64,
    header_damaged: bool,
    report: &mut RecoveryReport,
) -> Result<Opened> {
    let io = |e| Error::io(format!("opening {}", path.display()), e);
    let mut truncated_at = None;
    if len < size {
        // Restore the length (a sparse extension: it needs no space), so
        // the extents before the cut stay readable and a mapping of the file
        // never reaches past its end.
        let probe = storage
            .open(path, OpenMode::Existing, FileKind::Small)
            .map_err(io)?;
        if let Err(e) = probe.set_len(size).and_then(|()| probe.sync()) {
            return Ok(Opened::Unusable(format!(
                "segment truncated to {len} of {size} bytes, and its length cannot be restored ({e})"
            )));
        }
        report.dropped.push(Dropped {
            file: path.into(),
            offset: len,
            topic: None,
            reason: format!(
                "segment truncated to {len} of {size} bytes: whatever lay past {len} is lost"
            ),
        });
        truncated_at = Some(len);
    } else if len > size {
        report.dropped.push(Dropped {
            file: path.into(),
            offset: size,
            topic: None,
            reason: format!("{} bytes past the segment's {size} ignored", len - size),
        });
    }
    let file = storage
        .open(
            path,
            OpenMode::Existing,
            FileKind::Segment { size_bytes: size },
        )
        .map_err(io)?;
    Ok(Opened::Segment {
        segment: Arc::new(Segment::new(id, path.into(), file, size)),
        truncated_at,
        header_damaged,
    })
}

/// Walks a segment's extents. Headers are written in offset order, so the
/// first all-zero unit ends the allocated region; after a damaged header the
/// scan probes every unit to the end, so later extents of other topics
/// survive.
fn scan_extents(
    segment: &Arc<Segment>,
    seen: &mut std::collections::HashSet<(u64, u64)>,
    report: &mut RecoveryReport,
) -> Result<Vec<Candidate>> {
    let mut found = Vec::new();
    let mut off = EXTENT_UNIT;
    let mut resync = false;
    let probe_len = EXTENT_HEADER_FIXED_LEN + MAX_TOPIC_LEN;
    let mut buf = vec![0u8; probe_len];
    while off + EXTENT_UNIT <= segment.size_bytes {
        let n = probe_len.min((segment.size_bytes - off) as usize);
        segment
            .file
            .pread_exact_at(&mut buf[..n], off)
            .map_err(|e| Error::io(format!("reading {} at {off}", segment.path.display()), e))?;
        let bytes = &mut buf[..n];
        let dead = bytes[0..4] == DEAD_EXTENT_MAGIC;
        if dead {
            bytes[0..4].copy_from_slice(&EXTENT_MAGIC);
        }
        match ExtentHeader::decode(bytes, segment.size_bytes - off, EXTENT_UNIT) {
            Some(header) => {
                let extent_len = header.extent_len;
                seen.insert((segment.id, off));
                if !dead {
                    found.push(Candidate {
                        segment: segment.clone(),
                        start: off,
                        header,
                    });
                }
                off += extent_len;
                resync = false;
            }
            None if bytes.iter().all(|&b| b == 0) && !resync => {
                // The allocated region ends here. A power loss may still have
                // kept a later header whose earlier neighbour it lost; such a
                // stale extent must never resurface (say, if bit rot later
                // makes this unit non-zero and sends a scan probing), so it
                // is marked dead now.
                // Anything but zeros past here was written after a header
                // this unit no longer holds (or by a write a power loss
                // half kept): report it, whoever it belonged to.
                if let Some(at) = first_nonzero(segment, off + n as u64, segment.size_bytes)? {
                    report.dropped.push(Dropped {
                        file: segment.path.clone(),
                        offset: off,
                        topic: None,
                        reason: format!(
                            "no extent header at {off}, but data follows at {at}: \
                             the extents from here on are lost"
                        ),
                    });
                }
                kill_stale_headers(segment, off + EXTENT_UNIT, report)?;
                break;
            }
            None => {
                if !resync && !bytes.iter().all(|&b| b == 0) {
                    report.dropped.push(Dropped {
                        file: segment.path.clone(),
                        offset: off,
                        topic: None,
                        reason: "damaged extent header; probing for the next extent".into(),
                    });
                }
                resync = true;
                off += EXTENT_UNIT;
            }
        }
    }
    Ok(found)
}

/// Links a topic's extents by extent sequence and first entry: an extent
/// continues the chain only if it starts exactly where the previous one's
/// valid frames end, or anywhere up to the consumer's `cursor` (the first
/// one included). The rest are cut out (marked dead) so that no later
/// recovery can stitch stale frames back in.
fn build_chain(
    topic: &str,
    candidates: Vec<Candidate>,
    cursor: u64,
    snapshot: Option<&crate::recovery_snapshot::Extents>,
    damaged: &HashMap<u64, Option<u64>>,
    report: &mut RecoveryReport,
) -> Result<TopicState> {
    let next_extent_seq = candidates
        .iter()
        .map(|c| c.header.extent_seq + 1)
        .max()
        .unwrap_or(0);
    let mut extents: VecDeque<Arc<Extent>> = VecDeque::new();
    // Entries below the cursor may be gone (reclaimed, or consumed before a
    // power loss took them), so the chain may start anywhere up to it; an
    // extent that starts past it follows lost entries and is no prefix.
    let mut next_seq = candidates
        .first()
        .map_or(0, |c| c.header.first_entry_seq.min(cursor));
    for c in candidates {
        let continues = match extents.back() {
            None => c.header.first_entry_seq <= cursor,
            // A gap is fine where every entry in it was consumed: those
            // entries may be gone (reclaimed, or lost unsynced after being
            // read) and the topic resumed from its cursor.
            Some(prev) => {
                let first = c.header.first_entry_seq;
                c.header.extent_seq > prev.extent_seq
                    && (first == next_seq || (first > next_seq && first <= cursor))
            }
        };
        if !continues {
            report.dropped.push(Dropped {
                file: c.segment.path.clone(),
                offset: c.start,
                topic: Some(topic.to_owned()),
                reason: format!(
                    "extent starts at entry {} but the topic's valid entries end at {next_seq}",
                    c.header.first_entry_seq
                ),
            });
            mark_dead(&c)?;
            continue;
        }
        let data_start = c.start + ExtentHeader::data_offset(topic.len());
        let extent = Extent::new(
            c.segment.clone(),
            data_start,
            c.start + c.header.extent_len,
            c.header.extent_seq,
            c.header.first_entry_seq,
        );
        // A recovery snapshot vouches for a prefix of the extent that was durable
        // when it was written; only what may follow it is read and verified.
        // Not in a segment found damaged: the recovery snapshot described the file
        // before the damage.
        let vouched = snapshot
            .filter(|_| !damaged.contains_key(&c.segment.id))
            .and_then(|x| x.get(&(c.segment.id, c.start)))
            .copied()
            .filter(|v| {
                // Every entry takes at least 4 bytes: more entries than that
                // is a damaged recovery snapshot, never to be trusted.
                (extent.data_start..=extent.end).contains(&v.end_off)
                    && v.end_seq >= extent.first_seq
                    && v.end_seq - extent.first_seq <= (v.end_off - extent.data_start) / 4
            });
        if vouched.is_some() {
            report.checkpointed_extents += 1;
        }
        let (end_off, end_seq) = match vouched {
            Some(v) if v.sealed => (v.end_off, v.end_seq),
            _ => scan_frames(
                &extent,
                vouched.map(|v| (v.end_off, v.end_seq)),
                topic,
                damaged.get(&c.segment.id).copied().flatten(),
                report,
            )?,
        };
        extent.record_write(
            Mark {
                off: end_off,
                seq: end_seq,
            },
            0,
            true,
        );
        extent.seal();
        c.segment.add_extent();
        next_seq = end_seq;
        extents.push_back(Arc::new(extent));
    }
    Ok(TopicState {
        extents,
        next_seq,
        next_extent_seq,
    })
}
