//! A second reader of the on-disk format, written from `docs/format.md`
//! alone: it shares nothing with the engine but the crc64 function, reads
//! its own little-endian fields, and follows the page's acceptance rules
//! (segment and extent headers, dead extents, the end of the allocated
//! region, frames, the chain rule, the cursor files and the recovery
//! snapshot). It decodes the golden files (`tests/golden/v1`) and must find
//! every entry the golden history wrote, with its sequence number, and
//! every cursor: the proof that the page is enough to write a reader.
//!
//! Its field readers duplicate the engine's on purpose: a reader that
//! imported the engine's layouts would prove nothing about the page.

use crate::golden_history;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use walrus_wal::crc64;

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64le(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// "Extents start on a multiple of the 4096-byte unit."
const UNIT: usize = 4096;
/// "both below 2^62 (anything larger is damage)".
const SEQ_LIMIT: u64 = 1 << 62;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

/// One extent as the page describes it, with the entries of its frames.
#[derive(Debug)]
struct Extent {
    segment: u64,
    start: usize,
    topic: String,
    extent_seq: u64,
    first_entry: u64,
    /// (sequence number, payload) of every entry of its accepted frames.
    entries: Vec<(u64, Vec<u8>)>,
    /// Offset after its last accepted frame.
    frames_end: usize,
}

/// "Segment file": the header's acceptance rules.
fn check_segment_header(b: &[u8], id: u64) {
    assert_eq!(&b[0..8], b"WALRUSSG");
    assert_eq!(crc64(&[&b[0..56]]), u64le(b, 56), "checksum of bytes 0..56");
    assert_eq!(u32le(b, 8), 1, "format version");
    assert_eq!(u64le(b, 16), id, "id equals the file name's");
    assert_eq!(u64le(b, 24), b.len() as u64, "size equals the file length");
    assert_eq!(u64le(b, 32), UNIT as u64, "extent unit");
    assert!(b[64..UNIT].iter().all(|&x| x == 0), "zero up to 4096");
}

/// "Extents": the header at `o` if it is accepted, and whether it is dead.
fn extent_header_at(b: &[u8], o: usize) -> Option<(bool, String, usize, u64, u64)> {
    let size = b.len();
    let dead = match &b[o..o + 4] {
        b"WBLK" => false,
        b"WDED" => true,
        _ => return None,
    };
    let n = u16le(b, o + 4) as usize;
    if n == 0 || n > 255 || o + 40 + n > size {
        return None;
    }
    // The checksum was computed with "WBLK" in bytes 0..4.
    let mut fixed = b[o..o + 32].to_vec();
    fixed[0..4].copy_from_slice(b"WBLK");
    let name = &b[o + 40..o + 40 + n];
    if crc64(&[&fixed, name]) != u64le(b, o + 32) {
        return None;
    }
    let len = u64le(b, o + 8) as usize;
    if !len.is_multiple_of(UNIT) || len > size - o || len <= align8(40 + n) {
        return None;
    }
    let (extent_seq, first) = (u64le(b, o + 16), u64le(b, o + 24));
    if extent_seq >= SEQ_LIMIT || first >= SEQ_LIMIT {
        return None;
    }
    let topic = String::from_utf8(name.to_vec()).ok()?;
    Some((dead, topic, len, extent_seq, first))
}

/// "Frames": the accepted frames of the extent `[data, end)`, from entry
/// `first`; returns the entries and where the accepted frames end.
fn frames(b: &[u8], data: usize, end: usize, first: u64) -> (Vec<(u64, Vec<u8>)>, usize) {
    let (mut at, mut next) = (data, first);
    let mut entries = Vec::new();
    while at + 24 <= end {
        let head = &b[at..at + 24];
        if head.iter().all(|&x| x == 0) {
            break;
        }
        let len = u32le(head, 8) as usize;
        let count = u16le(head, 12) as usize;
        let seq = u64le(head, 16);
        let fits = (1..=2000).contains(&count) && len >= 24 + 4 * count && len <= end - at;
        assert!(fits && seq < SEQ_LIMIT && seq == next, "frame at {at}");
        let frame = &b[at..at + len];
        assert_eq!(
            crc64(&[&frame[8..]]),
            u64le(frame, 0),
            "frame checksum at {at}"
        );
        let lens: Vec<usize> = (0..count)
            .map(|k| u32le(frame, 24 + 4 * k) as usize)
            .collect();
        assert_eq!(
            24 + 4 * count + lens.iter().sum::<usize>(),
            len,
            "lengths fill it"
        );
        let mut p = 24 + 4 * count;
        for (k, l) in lens.into_iter().enumerate() {
            entries.push((seq + k as u64, frame[p..p + l].to_vec()));
            p += l;
        }
        next += count as u64;
        at += align8(len);
    }
    assert!(
        b[at..end].iter().all(|&x| x == 0),
        "nothing after the frames"
    );
    (entries, at)
}

/// "Recovery", step 3: the walk of one segment's extents.
fn read_segment(id: u64, b: &[u8]) -> (Vec<Extent>, usize) {
    check_segment_header(b, id);
    let (mut found, mut dead) = (Vec::new(), 0);
    let mut o = UNIT;
    while o + UNIT <= b.len() {
        let Some((is_dead, topic, len, extent_seq, first)) = extent_header_at(b, o) else {
            // The golden files hold no damaged header: zeros end the region,
            // and nothing follows them.
            let probe = &b[o..(o + 295).min(b.len())];
            assert!(probe.iter().all(|&x| x == 0), "a damaged header at {o}");
            assert!(b[o..].iter().all(|&x| x == 0), "data past the region's end");
            break;
        };
        if is_dead {
            dead += 1;
        } else {
            let data = o + align8(40 + topic.len());
            let (entries, frames_end) = frames(b, data, o + len, first);
            found.push(Extent {
                segment: id,
                start: o,
                topic,
                extent_seq,
                first_entry: first,
                entries,
                frames_end,
            });
        }
        o += len;
    }
    (found, dead)
}

/// "Cursor files": the snapshot, then its log's records over it.
fn read_cursors(dir: &Path) -> HashMap<String, u64> {
    let snap = std::fs::read(dir.join("cursors.snap")).unwrap();
    let (body, crc) = snap.split_at(snap.len() - 8);
    assert_eq!(crc64(&[body]), u64le(crc, 0), "snapshot checksum");
    assert_eq!((&body[0..8], u32le(body, 8)), (&b"WALRUSCS"[..], 1));
    let (count, generation) = (u32le(body, 12) as usize, u64le(body, 16));
    let mut cursors = HashMap::new();
    let mut at = 24;
    for _ in 0..count {
        let n = u16le(body, at) as usize;
        let topic = std::str::from_utf8(&body[at + 2..at + 2 + n]).unwrap();
        cursors.insert(topic.to_owned(), u64le(body, at + 2 + n));
        at += 10 + n;
    }
    assert_eq!(at, body.len(), "the cursors fill the snapshot");
    let log = std::fs::read(dir.join(format!("cursors-{generation:020}.log"))).unwrap();
    assert_eq!(log.len(), 256 << 10, "a log is created 256 KiB long");
    assert_eq!(
        crc64(&[&log[0..24]]),
        u64le(&log, 24),
        "log header checksum"
    );
    assert_eq!((&log[0..8], u32le(&log, 8)), (&b"WALRUSCL"[..], 1));
    assert_eq!(u64le(&log, 16), generation);
    let mut at = 32;
    while at + 18 <= log.len() {
        let n = u16le(&log, at + 16) as usize;
        let valid = (1..=255).contains(&n)
            && at + 18 + n <= log.len()
            && crc64(&[&log[at + 8..at + 18 + n]]) == u64le(&log, at);
        if !valid {
            break;
        }
        let topic = std::str::from_utf8(&log[at + 18..at + 18 + n]).unwrap();
        cursors.insert(topic.to_owned(), u64le(&log, at + 8));
        at += 18 + n;
    }
    assert!(log[at..].iter().all(|&x| x == 0), "zeros end the replay");
    cursors
}

/// "Recovery snapshot": (segment id, extent start) -> (end offset, next
/// entry, sealed).
fn read_recovery_snapshot(dir: &Path) -> HashMap<(u64, usize), (usize, u64, bool)> {
    let b = std::fs::read(dir.join("recovery.ckpt")).unwrap();
    let (body, crc) = b.split_at(b.len() - 8);
    assert_eq!(crc64(&[body]), u64le(crc, 0), "recovery snapshot checksum");
    assert_eq!((&body[0..8], u32le(body, 8)), (&b"WALRUSC2"[..], 1));
    let c = u32le(body, 12) as usize;
    assert_eq!(b.len(), 16 + 40 * c + 8);
    (0..c)
        .map(|i| &body[16 + 40 * i..16 + 40 * (i + 1)])
        .map(|e| {
            let key = (u64le(e, 0), u64le(e, 8) as usize);
            let sealed = u64le(e, 32) & 1 == 1;
            (key, (u64le(e, 16) as usize, u64le(e, 24), sealed))
        })
        .collect()
}

/// "Recovery", step 4: a topic's chain, as its accepted extents.
fn chain(mut extents: Vec<Extent>, cursor: u64) -> Vec<Extent> {
    extents.sort_by_key(|e| e.extent_seq);
    let mut accepted: Vec<Extent> = Vec::new();
    let mut next = 0;
    for e in extents {
        let ok = match accepted.last() {
            None => e.first_entry <= cursor,
            Some(last) => {
                e.extent_seq > last.extent_seq
                    && (e.first_entry == next || (e.first_entry > next && e.first_entry <= cursor))
            }
        };
        assert!(ok, "the golden files hold no extent cut out of its chain");
        next = e.first_entry + e.entries.len() as u64;
        accepted.push(e);
    }
    accepted
}

#[test]
fn a_reader_written_from_format_md_alone_decodes_the_golden_files() {
    let dir = golden();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut by_topic: BTreeMap<String, Vec<Extent>> = BTreeMap::new();
    let mut all = Vec::new();
    for name in &names {
        let Some(id) = name
            .strip_prefix("seg-")
            .and_then(|n| n.strip_suffix(".wal"))
        else {
            continue;
        };
        assert_eq!(id.len(), 20, "seg-<id:020>.wal");
        let (extents, dead) =
            read_segment(id.parse().unwrap(), &std::fs::read(dir.join(name)).unwrap());
        assert_eq!(dead, 0);
        for e in extents {
            all.push((
                e.segment,
                e.start,
                e.frames_end,
                e.first_entry + e.entries.len() as u64,
            ));
            by_topic.entry(e.topic.clone()).or_default().push(e);
        }
    }
    let cursors = read_cursors(&dir);
    let want = golden_history::expected();
    assert_eq!(by_topic.len(), want.len());
    for (topic, extents) in by_topic {
        let exp = &want[topic.as_str()];
        let cursor = cursors.get(&topic).copied().unwrap_or(0);
        assert_eq!(cursor, exp.cursor as u64, "{topic}'s cursor");
        let entries: Vec<(u64, Vec<u8>)> = chain(extents, cursor)
            .into_iter()
            .flat_map(|e| e.entries)
            .collect();
        let first = entries.first().map_or(0, |e| e.0);
        assert!(first <= cursor, "{topic}");
        let wanted: Vec<(u64, Vec<u8>)> = exp
            .entries
            .iter()
            .enumerate()
            .skip(first as usize)
            .map(|(i, d)| (i as u64, d.clone()))
            .collect();
        assert_eq!(entries, wanted, "{topic}: every entry, in order");
    }
    // The recovery snapshot vouches for every extent, up to where its
    // frames end.
    let vouched = read_recovery_snapshot(&dir);
    assert_eq!(vouched.len(), all.len());
    for (segment, start, frames_end, next) in all {
        let (end_off, end_seq, _sealed) = vouched[&(segment, start)];
        assert_eq!(
            (end_off, end_seq),
            (frames_end, next),
            "extent {segment}@{start}"
        );
    }
}
