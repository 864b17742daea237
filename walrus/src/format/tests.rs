//! The format module's unit tests: each layout round-trips and rejects
//! damage, the golden files decode and re-encode to their exact bytes, and
//! the field tables of `docs/format.md` agree with the offset constants.

use super::*;
use crate::crc::crc64;
use crate::store::Error;
use proptest::prelude::*;
use std::path::Path;

#[test]
fn segment_header_round_trips_and_rejects_damage() {
    let h = SegmentHeader {
        id: 7,
        size_bytes: 1 << 26,
        extent_unit_bytes: 1 << 20,
    };
    let mut b = h.encode();
    let p = Path::new("seg");
    assert_eq!(SegmentHeader::decode(&b, p).unwrap(), Some(h));
    assert_eq!(SegmentHeader::decode(&[0; 64], p).unwrap(), None);
    b[20] ^= 1;
    assert!(matches!(
        SegmentHeader::decode(&b, p),
        Err(Error::Corruption { .. })
    ));
    // A newer version with a valid checksum is refused as such; a
    // damaged version field is damage.
    let mut v2 = h.encode();
    v2[8] = 2;
    assert!(matches!(
        SegmentHeader::decode(&v2, p),
        Err(Error::Corruption { .. })
    ));
    let crc = crc64(&[&v2[0..56]]);
    v2[56..64].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        SegmentHeader::decode(&v2, p),
        Err(Error::UnsupportedVersion { .. })
    ));
    let mut magic = h.encode();
    magic[0] = b'X';
    assert!(matches!(
        SegmentHeader::decode(&magic, p),
        Err(Error::BadMagic { .. })
    ));
}

#[test]
fn extent_header_round_trips_and_is_bounded() {
    let h = ExtentHeader {
        topic: "orders".into(),
        extent_len: 8192,
        extent_seq: 3,
        first_entry_seq: 99,
    };
    let b = h.encode();
    assert_eq!(b.len() as u64, ExtentHeader::data_offset(6));
    assert_eq!(ExtentHeader::decode(&b, 8192, 4096), Some(h.clone()));
    assert_eq!(
        ExtentHeader::decode(&b, 4096, 4096),
        None,
        "extent past segment end"
    );
    let mut flipped = b.clone();
    flipped[41] ^= 0x10;
    assert_eq!(ExtentHeader::decode(&flipped, 8192, 4096), None);
}

#[test]
fn frame_round_trips() {
    let mut out = Vec::new();
    let payloads: [&[u8]; 3] = [b"a", b"", b"hello"];
    encode_frame(&mut out, 42, &payloads);
    assert_eq!(out.len() % 8, 0);
    let h = FrameHeader::decode(&out, out.len() as u64).unwrap();
    assert_eq!((h.count, h.first_seq), (3, 42));
    let frame = &out[..h.len as usize];
    let ranges = h.payload_ranges(frame).unwrap();
    let got: Vec<&[u8]> = ranges.into_iter().map(|r| &frame[r]).collect();
    assert_eq!(got, payloads);
}

proptest! {
    // The decoder must never panic, whatever the bytes.
    #[test]
    fn frame_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(h) = FrameHeader::decode(&bytes, bytes.len() as u64) {
            let _ = h.payload_ranges(&bytes[..h.len as usize]);
        }
        let _ = ExtentHeader::decode(&bytes, bytes.len() as u64, 4096);
    }

    #[test]
    fn flipping_any_bit_of_a_frame_is_detected(
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        bit in 0usize..1024,
    ) {
        let mut out = Vec::new();
        encode_frame(&mut out, 5, &[&payload]);
        let len = frame_len([payload.len()]) as usize;
        let bit = bit % (len * 8);
        out[bit / 8] ^= 1 << (bit % 8);
        let ok = FrameHeader::decode(&out, out.len() as u64)
            .ok()
            .filter(|h| h.len as usize <= out.len())
            .and_then(|h| h.payload_ranges(&out[..h.len as usize]).ok());
        prop_assert!(ok.is_none());
    }
}

/// The golden instance directory (`tests/golden/v1`, see tests/all/golden.rs).
fn golden_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

fn golden_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// An extent of a golden segment, walked frame by frame.
struct GoldenExtent {
    segment: u64,
    start: u64,
    header: ExtentHeader,
    frames_end: u64,
    next_seq: u64,
}

/// Walks every extent and frame of a golden segment, checking that each
/// header and frame re-encodes to exactly the bytes on disk.
fn walk_golden_segment(b: &[u8], frames: &mut usize) -> Vec<GoldenExtent> {
    let raw: &[u8; SEGMENT_HEADER_LEN] = b[..SEGMENT_HEADER_LEN].try_into().unwrap();
    let seg = SegmentHeader::decode(raw, Path::new("golden"))
        .unwrap()
        .unwrap();
    assert_eq!(&seg.encode()[..], &b[..SEGMENT_HEADER_LEN]);
    assert_eq!(
        (seg.size_bytes, seg.extent_unit_bytes),
        (b.len() as u64, EXTENT_UNIT)
    );
    assert!(b[SEGMENT_HEADER_LEN..EXTENT_UNIT as usize]
        .iter()
        .all(|&x| x == 0));
    let mut extents = Vec::new();
    let mut off = EXTENT_UNIT as usize;
    while off < b.len() {
        let room = (b.len() - off) as u64;
        let Some(header) = ExtentHeader::decode(&b[off..], room, EXTENT_UNIT) else {
            assert!(b[off..].iter().all(|&x| x == 0), "zeros end the region");
            break;
        };
        let data = ExtentHeader::data_offset(header.topic.len()) as usize;
        assert_eq!(header.encode(), &b[off..off + data]);
        let end = off + header.extent_len as usize;
        let (mut at, mut seq) = (off + data, header.first_entry_seq);
        let mut out = Vec::new();
        while at + FRAME_HEADER_LEN <= end {
            let h = match FrameHeader::decode(&b[at..end], (end - at) as u64) {
                Err(FrameError::Empty) => break,
                other => other.unwrap(),
            };
            let frame = &b[at..at + h.len as usize];
            let ranges = h.payload_ranges(frame).unwrap();
            let payloads: Vec<&[u8]> = ranges.into_iter().map(|r| &frame[r]).collect();
            assert_eq!(h.first_seq, seq, "frames continue the count");
            encode_frame(&mut out, h.first_seq, &payloads);
            assert_eq!(out, &b[at..at + out.len()], "frame at {at}");
            seq += h.count as u64;
            at += out.len();
            *frames += 1;
        }
        assert!(b[at..end].iter().all(|&x| x == 0), "zeros after the frames");
        extents.push(GoldenExtent {
            segment: seg.id,
            start: off as u64,
            header,
            frames_end: at as u64,
            next_seq: seq,
        });
        off = end;
    }
    extents
}

fn golden_extents(frames: &mut usize) -> Vec<GoldenExtent> {
    let segments = golden_names().into_iter().filter(|n| n.ends_with(".wal"));
    let read = |n: String| std::fs::read(golden_dir().join(n)).unwrap();
    segments
        .flat_map(|n| walk_golden_segment(&read(n), frames))
        .collect()
}

#[test]
fn golden_segments_re_encode_to_their_exact_bytes() {
    let mut frames = 0;
    let extents = golden_extents(&mut frames);
    assert!(
        extents.len() >= 8 && frames >= 40,
        "{} {frames}",
        extents.len()
    );
    // Each topic's extents form one chain: strictly increasing extent
    // sequence numbers, each starting where the previous one's entries end.
    let mut chains: std::collections::BTreeMap<&str, Vec<&GoldenExtent>> = Default::default();
    for e in &extents {
        chains.entry(&e.header.topic).or_default().push(e);
    }
    for (topic, mut chain) in chains {
        chain.sort_by_key(|e| e.header.extent_seq);
        for w in chain.windows(2) {
            assert!(w[0].header.extent_seq < w[1].header.extent_seq, "{topic}");
            assert_eq!(w[0].next_seq, w[1].header.first_entry_seq, "{topic}");
        }
    }
}

#[test]
fn the_golden_recovery_snapshot_vouches_for_every_extent_exactly() {
    let bytes = std::fs::read(golden_dir().join("recovery.ckpt")).unwrap();
    let entries = recovery_snapshot::decode(&bytes).unwrap();
    let again = recovery_snapshot::encode(entries.iter().map(|(k, v)| (k, v)));
    assert_eq!(again, bytes);
    let extents = golden_extents(&mut 0);
    assert_eq!(entries.len(), extents.len());
    for ((segment, start), v) in entries {
        let e = extents
            .iter()
            .find(|e| (e.segment, e.start) == (segment, start))
            .expect("an extent the snapshot names");
        assert_eq!((v.end_off, v.end_seq), (e.frames_end, e.next_seq));
    }
}

#[test]
fn the_golden_cursor_files_re_encode_to_their_exact_bytes() {
    let snap = std::fs::read(golden_dir().join("cursors.snap")).unwrap();
    let (generation, values) = cursor::decode_snapshot(&snap, Path::new("snap")).unwrap();
    assert_eq!(cursor::encode_snapshot(generation, &values), snap);
    assert!(!values.is_empty());
    let log = std::fs::read(golden_dir().join(format!("cursors-{generation:020}.log"))).unwrap();
    assert_eq!(log.len() as u64, cursor::LOG_BYTES);
    assert!(cursor::log_header_ok(&log, generation));
    assert_eq!(
        &cursor::encode_log_header(generation)[..],
        &log[..cursor::LOG_HEADER_LEN]
    );
    let mut at = cursor::LOG_HEADER_LEN;
    let mut records = 0;
    while let Some((topic, seq, len)) = cursor::record_at(&log, at) {
        assert_eq!(cursor::encode_record(topic, seq), &log[at..at + len]);
        at += len;
        records += 1;
    }
    assert!(records > 0);
    assert!(log[at..].iter().all(|&x| x == 0), "zeros end the log");
}

/// The `offset size field` tables of `docs/format.md`, by title (the line
/// above the table's head): each row's offset, size and field text.
fn doc_tables() -> std::collections::BTreeMap<String, Vec<[String; 3]>> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/format.md");
    let doc = std::fs::read_to_string(doc).unwrap();
    let mut tables = std::collections::BTreeMap::new();
    let (mut in_code, mut current, mut prev) = (false, None::<String>, "");
    for line in doc.lines() {
        if line.starts_with("```") {
            (in_code, current) = (!in_code, None);
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if in_code && words.starts_with(&["offset", "size", "field"]) {
            let title = prev.trim().to_owned();
            tables.insert(title.clone(), Vec::new());
            current = Some(title);
        } else if !in_code || words.is_empty() {
            current = None;
        } else if let Some(title) = &current {
            // A ".." row is a note (padding, payloads), not a field.
            if words[0] != ".." {
                let row = [words[0].into(), words[1].into(), words[2..].join(" ")];
                tables.get_mut(title).unwrap().push(row);
            }
        }
        prev = line;
    }
    tables
}

/// One expected row: offset, size, and how the field's text starts.
type Row = (String, String, String);

fn row(offset: impl ToString, size: impl ToString, field: impl ToString) -> Row {
    (offset.to_string(), size.to_string(), field.to_string())
}

fn magic(m: &[u8]) -> String {
    format!("magic \"{}\"", std::str::from_utf8(m).unwrap())
}

fn expected_doc_tables() -> Vec<(&'static str, Vec<Row>)> {
    use crate::store::{MAX_BATCH_ENTRIES, MAX_TOPIC_LEN};
    use cursor::*;
    use recovery_snapshot::*;
    let version = |v: u32| format!("format version ({v})");
    vec![
        ("segment header", vec![
            row(SEGMENT_MAGIC_AT, 8, magic(&SEGMENT_MAGIC)),
            row(SEGMENT_VERSION_AT, 4, version(SEGMENT_VERSION)),
            row(SEGMENT_VERSION_AT + 4, 4, "reserved, 0"),
            row(SEGMENT_ID_AT, 8, "segment id"),
            row(SEGMENT_SIZE_AT, 8, "segment size in bytes"),
            row(SEGMENT_UNIT_AT, 8, format!("extent unit in bytes ({EXTENT_UNIT})")),
            row(SEGMENT_UNIT_AT + 8, SEGMENT_CRC_AT - SEGMENT_UNIT_AT - 8, "reserved, 0"),
            row(SEGMENT_CRC_AT, 8, format!("crc64 of bytes 0..{SEGMENT_CRC_AT}")),
            row(SEGMENT_HEADER_LEN, "..", format!("zero up to offset {EXTENT_UNIT}")),
        ]),
        ("extent header", vec![
            row(EXTENT_MAGIC_AT, 4, magic(&EXTENT_MAGIC)),
            row(EXTENT_TOPIC_LEN_AT, 2, format!("topic name length, 1..={MAX_TOPIC_LEN}")),
            row(EXTENT_TOPIC_LEN_AT + 2, 2, "reserved, 0"),
            row(EXTENT_LEN_AT, 8, "extent length in bytes"),
            row(EXTENT_SEQ_AT, 8, "extent sequence number"),
            row(EXTENT_FIRST_ENTRY_AT, 8, "sequence number of the first entry"),
            row(EXTENT_CRC_AT, 8, format!("crc64 of bytes 0..{EXTENT_CRC_AT} followed by the topic name")),
            row(EXTENT_HEADER_FIXED_LEN, "n", "topic name"),
        ]),
        ("frame", vec![
            row(FRAME_CRC_AT, 8, format!("crc64 of bytes {FRAME_LEN_AT}..frame_length")),
            row(FRAME_LEN_AT, 4, "frame length in bytes"),
            row(FRAME_COUNT_AT, 2, format!("entry count, 1..={MAX_BATCH_ENTRIES}")),
            row(FRAME_COUNT_AT + 2, 2, "reserved, 0"),
            row(FRAME_FIRST_SEQ_AT, 8, "sequence number of the first entry"),
            row(FRAME_HEADER_LEN, format!("{FRAME_PAYLOAD_LEN_BYTES}*count"), "payload lengths"),
        ]),
        ("cursor snapshot (cursors.snap)", vec![
            row(CURSOR_MAGIC_AT, 8, magic(&SNAP_MAGIC)),
            row(CURSOR_VERSION_AT, 4, version(CURSOR_SNAPSHOT_VERSION)),
            row(SNAP_COUNT_AT, 4, "number of cursors"),
            row(SNAP_GENERATION_AT, 8, "generation g"),
            row(SNAP_CURSORS_AT, "..", "cursors"),
            row(format!("end-{SNAP_CRC_LEN}"), SNAP_CRC_LEN, "crc64 of every byte before it"),
        ]),
        // Read in place by `decode_snapshot` (a u16 length, the topic, a u64).
        ("snapshot cursor", vec![
            row(0, 2, "topic length n"),
            row(2, "n", "topic"),
            row("2+n", 8, "next sequence number"),
        ]),
        ("cursor log header (cursors-<g>.log)", vec![
            row(CURSOR_MAGIC_AT, 8, magic(&LOG_MAGIC)),
            row(CURSOR_VERSION_AT, 4, version(CURSOR_LOG_VERSION)),
            row(CURSOR_VERSION_AT + 4, 4, "reserved, 0"),
            row(LOG_GENERATION_AT, 8, "generation g"),
            row(LOG_CRC_AT, 8, format!("crc64 of bytes 0..{LOG_CRC_AT}")),
            row(LOG_HEADER_LEN, "..", "records"),
        ]),
        ("cursor log record", vec![
            row(RECORD_CRC_AT, 8, format!("crc64 of the rest of the record (bytes {RECORD_SEQ_AT}..{RECORD_TOPIC_AT}+n)")),
            row(RECORD_SEQ_AT, 8, "next sequence number"),
            row(RECORD_TOPIC_LEN_AT, 2, format!("topic length n, 1..={MAX_TOPIC_LEN}")),
            row(RECORD_TOPIC_AT, "n", "topic"),
        ]),
        ("recovery snapshot (recovery.ckpt)", vec![
            row(SNAPSHOT_MAGIC_AT, 8, magic(&RECOVERY_SNAPSHOT_MAGIC)),
            row(SNAPSHOT_VERSION_AT, 4, version(RECOVERY_SNAPSHOT_VERSION)),
            row(SNAPSHOT_COUNT_AT, 4, "number of extents c"),
            row(SNAPSHOT_ENTRIES_AT, format!("{ENTRY_LEN}*c"), "extents"),
            row(format!("end-{SNAPSHOT_CRC_LEN}"), SNAPSHOT_CRC_LEN, "crc64 of every byte before it"),
        ]),
        ("recovery snapshot extent", vec![
            row(ENTRY_SEGMENT_AT, 8, "segment id"),
            row(ENTRY_START_AT, 8, "extent start"),
            row(ENTRY_END_OFF_AT, 8, "file offset where the vouched frames end"),
            row(ENTRY_END_SEQ_AT, 8, "sequence number after the vouched entries"),
            row(ENTRY_FLAGS_AT, 8, "flags (bit 0: sealed"),
        ]),
    ]
}

#[test]
fn docs_tables_match_the_constants() {
    assert_eq!(recovery_snapshot::SEALED, 1, "the doc's flag bit 0");
    let tables = doc_tables();
    let expected = expected_doc_tables();
    let titles: Vec<&str> = tables.keys().map(|t| t.as_str()).collect();
    let mut wanted: Vec<&str> = expected.iter().map(|(t, _)| *t).collect();
    wanted.sort();
    assert_eq!(titles, wanted, "the tables of docs/format.md");
    for (title, rows) in expected {
        let got = &tables[title];
        assert_eq!(got.len(), rows.len(), "{title}: {got:?}");
        for ([offset, size, field], (w_offset, w_size, w_field)) in got.iter().zip(&rows) {
            assert_eq!((offset, size), (w_offset, w_size), "{title}: {field}");
            assert!(
                field.starts_with(w_field.as_str()),
                "{title}: {field:?} is not {w_field:?}"
            );
        }
        // Fixed-size fields follow each other with no gap or overlap.
        for pair in got.windows(2) {
            let [a, b] = [&pair[0], &pair[1]];
            if let (Ok(at), Ok(len), Ok(next)) = (
                a[0].parse::<usize>(),
                a[1].parse::<usize>(),
                b[0].parse::<usize>(),
            ) {
                assert_eq!(at + len, next, "{title}: {} then {}", a[2], b[2]);
            }
        }
    }
}
