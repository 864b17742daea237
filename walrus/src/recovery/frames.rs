//! The scan of one extent's frames (from its start, or from where a
//! recovery snapshot vouches they are valid), and the marking of what
//! recovery cuts out: dead extents and stale headers past a region's end.

use super::*;

/// Returns where the valid frames of `extent` end (offset, next entry),
/// reading from `vouched` (a vouched-for position) or from the start.
pub(super) fn scan_frames(
    extent: &Extent,
    vouched: Option<(u64, u64)>,
    topic: &str,
    truncated_at: Option<u64>,
    report: &mut RecoveryReport,
) -> Result<(u64, u64)> {
    let segment = &extent.segment;
    let (mut off, mut seq) = vouched.unwrap_or((extent.data_start, extent.first_seq));
    // Frames are checked from a window of the extent read in large pieces,
    // not with two reads per frame. After a vouched-for prefix the first
    // read is small: usually nothing follows it.
    let mut window = Window {
        start: off,
        bytes: Vec::new(),
        read_len: if vouched.is_some() {
            FIRST_READ_AFTER_CHECKPOINT
        } else {
            SCAN_WINDOW_BYTES
        },
    };
    while off + FRAME_HEADER_LEN as u64 <= extent.end {
        let header = window.get(segment, off, FRAME_HEADER_LEN as u64, extent.end)?;
        let problem = match FrameHeader::decode(header, extent.end - off) {
            Err(crate::format::FrameError::Empty) => {
                // Zeros where the next frame would start: the end of the
                // topic's frames, unless the file was cut here or something
                // follows the zeros (a frame whose header was lost).
                let to = extent.end;
                if truncated_at.is_some_and(|t| t < off + FRAME_HEADER_LEN as u64) {
                    format!(
                        "the segment was truncated at {}: entries from here on, if any, are lost",
                        truncated_at.unwrap_or_default()
                    )
                } else if let Some(at) = first_nonzero(segment, off + FRAME_HEADER_LEN as u64, to)?
                {
                    format!("zeroed frame header, but data follows at {at}")
                } else {
                    break;
                }
            }
            Err(e) => e.to_string(),
            // A frame too large to hold is checked in pieces from the file.
            Ok(h) if h.len > crate::frames::LARGE_FRAME_BYTES => {
                match crate::frames::check_large_frame(segment, off, &h)? {
                    Err(reason) => reason,
                    Ok(_) if h.first_seq != seq => {
                        format!("frame holds entry {} where {seq} was expected", h.first_seq)
                    }
                    Ok(_) => {
                        seq += h.count as u64;
                        off += align_up(h.len, ALIGN);
                        continue;
                    }
                }
            }
            Ok(h) => {
                let frame = window.get(segment, off, h.len, extent.end)?;
                match h.verify(frame) {
                    Err(e) => e.to_string(),
                    Ok(()) if h.first_seq != seq => {
                        format!("frame holds entry {} where {seq} was expected", h.first_seq)
                    }
                    Ok(()) => {
                        seq += h.count as u64;
                        off += align_up(h.len, ALIGN);
                        continue;
                    }
                }
            }
        };
        report.dropped.push(Dropped {
            file: segment.path.clone(),
            offset: off,
            topic: Some(topic.to_owned()),
            reason: format!("{problem}; the topic's later entries are dropped"),
        });
        break;
    }
    Ok((off, seq))
}

/// Bytes of a segment read ahead for the frame scan.
struct Window {
    start: u64,
    bytes: Vec<u8>,
    /// Bytes the next read fetches (at least what is asked for).
    read_len: u64,
}

const SCAN_WINDOW_BYTES: u64 = 4 << 20;
const FIRST_READ_AFTER_CHECKPOINT: u64 = 4 << 10;

impl Window {
    /// `len` bytes at `at` (which the caller bounded by `end`), reading a new
    /// window from `at` when they are not all in the current one.
    fn get(&mut self, segment: &Segment, at: u64, len: u64, end: u64) -> Result<&[u8]> {
        let covered = at >= self.start && at + len <= self.start + self.bytes.len() as u64;
        if !covered {
            let want = len.max(self.read_len).min(end - at);
            self.read_len = SCAN_WINDOW_BYTES;
            self.bytes.resize(want as usize, 0);
            self.start = at;
            segment
                .file
                .pread_exact_at(&mut self.bytes, at)
                .map_err(|e| Error::io(format!("reading {} at {at}", segment.path.display()), e))?;
        }
        let from = (at - self.start) as usize;
        Ok(&self.bytes[from..from + len as usize])
    }
}

pub(super) fn mark_dead(c: &Candidate) -> Result<()> {
    mark_dead_at(&c.segment, c.start)
}

pub(super) fn mark_dead_at(segment: &Segment, start: u64) -> Result<()> {
    segment
        .file
        .write_all_at(&DEAD_EXTENT_MAGIC, start)
        .and_then(|()| segment.file.sync())
        .map_err(|e| {
            Error::io(
                format!("marking a dead extent in {}", segment.path.display()),
                e,
            )
        })
}

/// Marks dead every valid extent header from `from` to the end of the
/// segment, reading the tail in large windows (it is normally all zeros).
pub(super) fn kill_stale_headers(
    segment: &Segment,
    from: u64,
    report: &mut RecoveryReport,
) -> Result<()> {
    let probe_len = (EXTENT_HEADER_FIXED_LEN + MAX_TOPIC_LEN) as u64;
    let mut window = Window {
        start: from,
        bytes: Vec::new(),
        read_len: SCAN_WINDOW_BYTES,
    };
    let mut off = from;
    while off + EXTENT_UNIT <= segment.size_bytes {
        // Holes hold no header: skip them without reading (a sparse 64 MiB
        // tail costs a few lseeks, not 64 MiB of reads).
        match segment.file.next_data(off) {
            Ok(Some(data)) if data > off => {
                off = align_up(data, EXTENT_UNIT).max(off);
                continue;
            }
            Ok(None) => break,
            _ => {}
        }
        let len = probe_len.min(segment.size_bytes - off);
        let bytes = window.get(segment, off, len, segment.size_bytes)?;
        if bytes[0..4] == EXTENT_MAGIC
            && ExtentHeader::decode(bytes, segment.size_bytes - off, EXTENT_UNIT).is_some()
        {
            report.dropped.push(Dropped {
                file: segment.path.clone(),
                offset: off,
                topic: None,
                reason: "extent past the end of the allocated region (its predecessor was lost)"
                    .into(),
            });
            mark_dead_at(segment, off)?;
        }
        off += EXTENT_UNIT;
    }
    Ok(())
}

/// The offset of the first non-zero byte in `[from, to)`, read through
/// `pread` in pieces (skipping holes); `None` when it is all zeros.
pub(super) fn first_nonzero(segment: &Segment, from: u64, to: u64) -> Result<Option<u64>> {
    const PIECE: u64 = 256 << 10;
    let mut at = from;
    let mut buf = Vec::new();
    while at < to {
        match segment.file.next_data(at) {
            Ok(Some(data)) if data > at => {
                at = data;
                continue;
            }
            Ok(None) => return Ok(None),
            _ => {}
        }
        let n = PIECE.min(to - at);
        buf.resize(n as usize, 0);
        segment
            .file
            .pread_exact_at(&mut buf, at)
            .map_err(|e| Error::io(format!("reading {} at {at}", segment.path.display()), e))?;
        if let Some(i) = buf.iter().position(|&b| b != 0) {
            return Ok(Some(at + i as u64));
        }
        at += n;
    }
    Ok(None)
}
