//! The history the golden files (`tests/golden/v1`) record, shared by the
//! test that writes and reads them through the engine (golden.rs) and the
//! independent decoder (golden_decoder.rs).
#![allow(dead_code)]

use std::collections::BTreeMap;

pub const SEGMENT_BYTES: u64 = 32 << 10;
pub const EXTENT_BYTES: u64 = 8 << 10;

/// One step of the history the golden files record.
pub enum Op {
    /// One frame: a single entry, or an atomic batch.
    Append(&'static str, Vec<Vec<u8>>),
    /// Consuming reads (`read_next(topic, true)`), each persisted.
    Consume(&'static str, usize),
    /// A clean close and a new open: the cursors found are folded into a
    /// snapshot, and later appends go to a new segment.
    Reopen,
}

pub const ORDERS: &str = "orders";
pub const EVENTS: &str = "events";
/// A topic name that is not ASCII: its bytes are stored as UTF-8.
pub const METRICS: &str = "métriques/δ";
/// Entries larger than an extent (an extent of several units) and larger
/// than a segment (a segment of its own).
pub const LARGE: &str = "large";

/// Deterministic payload bytes: `len` bytes derived from `seed`.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn ops() -> Vec<Op> {
    let mut ops = Vec::new();
    for i in 0..40u64 {
        ops.push(Op::Append(ORDERS, vec![bytes(i, (i as usize * 53) % 700)]));
        if i % 8 == 0 {
            ops.push(Op::Append(METRICS, vec![bytes(1000 + i, 16)]));
        }
        match i {
            5 | 35 => {
                // A batch of seven, one of them empty: one frame.
                let batch = (0..7).map(|k| bytes(2000 + i * 10 + k, k as usize * 31));
                ops.push(Op::Append(EVENTS, batch.collect()));
            }
            20 => ops.push(Op::Append(LARGE, vec![bytes(3000, 20 << 10)])),
            30 => ops.push(Op::Append(LARGE, vec![bytes(3001, 40 << 10)])),
            _ => {}
        }
    }
    ops.push(Op::Consume(ORDERS, 10));
    ops.push(Op::Consume(EVENTS, 3));
    ops.push(Op::Append(ORDERS, vec![bytes(40, 100)]));
    ops.push(Op::Reopen);
    ops.push(Op::Consume(ORDERS, 5));
    ops.push(Op::Consume(METRICS, 1));
    ops.push(Op::Append(ORDERS, vec![bytes(41, 333)]));
    ops.push(Op::Append(EVENTS, vec![bytes(2500, 9), bytes(2501, 0)]));
    ops
}

/// What the history leaves in each topic: every entry, and the cursor.
#[derive(Default)]
pub struct Expected {
    pub entries: Vec<Vec<u8>>,
    pub cursor: usize,
}

pub fn expected() -> BTreeMap<&'static str, Expected> {
    let mut topics: BTreeMap<&'static str, Expected> = BTreeMap::new();
    for op in ops() {
        match op {
            Op::Append(t, payloads) => topics.entry(t).or_default().entries.extend(payloads),
            Op::Consume(t, n) => topics.entry(t).or_default().cursor += n,
            Op::Reopen => {}
        }
    }
    topics
}
