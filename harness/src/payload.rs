//! Deterministic payloads and the verifier that checks them on the way back.
//!
//! A payload is a pure function of `(writer, seq, size)`, so a reader can
//! check every byte it gets without the writer keeping any record. That is
//! what stops a fast but wrong store from winning a benchmark: dropped,
//! duplicated, reordered, torn or foreign entries all fail verification.
//!
//! Layout (little-endian):
//!
//! ```text
//! 0..4   magic  "WBv1"
//! 4..8   writer u32   which writer thread produced it
//! 8..16  seq    u64   the writer's count of entries before this one
//! 16..   body         a slice of the writer's pseudo-random pattern,
//!                     starting at an offset derived from seq
//! ```
//!
//! The body is random-looking and differs from entry to entry, so a store
//! that compresses gains nothing a real log would not also gain, and copying
//! it costs one `memcpy` rather than generating random bytes per append.

use std::fmt;

use walrus_wal::Entry;

/// Bytes at the start of every payload that identify it: magic (4), writer
/// (4), seq (8). The settings bound entry sizes by it.
pub use crate::config::PAYLOAD_HEADER_BYTES;
const _: () = assert!(PAYLOAD_HEADER_BYTES == 4 + 4 + 8);
const MAGIC: [u8; 4] = *b"WBv1";
/// Distinct body start offsets; bodies repeat only after this many bytes of
/// offset space, far beyond any per-entry compressor's reach.
const PATTERN_WINDOW_BYTES: usize = 64 * 1024;

/// Produces and recognises the payloads of one writer.
#[derive(Clone)]
pub struct PayloadGen {
    writer: u32,
    entry_size: usize,
    pattern: Vec<u8>,
}

impl PayloadGen {
    /// `entry_size` must be at least [`PAYLOAD_HEADER_BYTES`]; the config
    /// layer guarantees it.
    pub fn new(writer: u32, entry_size: usize) -> PayloadGen {
        assert!(entry_size >= PAYLOAD_HEADER_BYTES, "entry too small");
        let body = entry_size - PAYLOAD_HEADER_BYTES;
        let mut pattern = vec![0u8; PATTERN_WINDOW_BYTES + body];
        let mut state =
            0x9E37_79B9_7F4A_7C15u64 ^ u64::from(writer).wrapping_mul(0xA24B_AED4_963E_E407);
        for chunk in pattern.chunks_mut(8) {
            let word = splitmix64(&mut state).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        PayloadGen {
            writer,
            entry_size,
            pattern,
        }
    }

    pub fn writer(&self) -> u32 {
        self.writer
    }

    pub fn entry_size(&self) -> usize {
        self.entry_size
    }

    /// Writes payload `seq` of this writer into `out` (exactly `entry_size` long).
    pub fn fill(&self, seq: u64, out: &mut [u8]) {
        debug_assert_eq!(out.len(), self.entry_size);
        out[0..4].copy_from_slice(&MAGIC);
        out[4..8].copy_from_slice(&self.writer.to_le_bytes());
        out[8..16].copy_from_slice(&seq.to_le_bytes());
        out[PAYLOAD_HEADER_BYTES..].copy_from_slice(self.body(seq));
    }

    /// Payload `seq` as a fresh vector (tests, probes).
    pub fn payload(&self, seq: u64) -> Vec<u8> {
        let mut out = vec![0; self.entry_size];
        self.fill(seq, &mut out);
        out
    }

    fn body(&self, seq: u64) -> &[u8] {
        let mut s = seq;
        let offset = (splitmix64(&mut s) % PATTERN_WINDOW_BYTES as u64) as usize;
        &self.pattern[offset..offset + self.entry_size - PAYLOAD_HEADER_BYTES]
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Reads `(writer, seq)` from a payload header, if it is one of ours.
fn parse_header(data: &[u8]) -> Option<(u32, u64)> {
    if data.len() < PAYLOAD_HEADER_BYTES || data[0..4] != MAGIC {
        return None;
    }
    let writer = u32::from_le_bytes(data[4..8].try_into().ok()?);
    let seq = u64::from_le_bytes(data[8..16].try_into().ok()?);
    Some((writer, seq))
}

/// A store handed back something other than what was appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    pub topic: String,
    /// How many entries of the topic had been checked before this one.
    pub position: u64,
    pub reason: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verification failed on topic {} at entry {}: {}",
            self.topic, self.position, self.reason
        )
    }
}

impl std::error::Error for VerifyError {}

/// Checks, in order, the entries read from one topic.
///
/// Each writer's entries must arrive complete, in the writer's order, with
/// no gap, duplicate or foreign entry, and byte-for-byte equal to what the
/// writer produced. Comparing every byte is strictly stronger than comparing
/// a checksum and costs about the same (one pass over the payload).
pub struct TopicVerifier {
    topic: String,
    gens: Vec<PayloadGen>,
    next_seq: Vec<u64>,
    checked: u64,
}

impl TopicVerifier {
    /// A verifier for `topic`, into which exactly the writers `gens` wrote.
    pub fn new(topic: impl Into<String>, gens: Vec<PayloadGen>) -> TopicVerifier {
        let next_seq = vec![0; gens.len()];
        TopicVerifier {
            topic: topic.into(),
            gens,
            next_seq,
            checked: 0,
        }
    }

    /// Entries checked so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// Checks the next entry read from the topic.
    pub fn check(&mut self, entry: &Entry) -> Result<(), VerifyError> {
        if let Err(reason) = self.check_inner(entry) {
            return Err(VerifyError {
                topic: self.topic.clone(),
                position: self.checked,
                reason,
            });
        }
        self.checked += 1;
        Ok(())
    }

    fn check_inner(&mut self, entry: &Entry) -> Result<(), String> {
        if entry.seq != self.checked {
            return Err(format!(
                "entry reports topic position {}, expected {}",
                entry.seq, self.checked
            ));
        }
        let (writer, seq) = parse_header(&entry.data).ok_or_else(|| {
            format!(
                "{} bytes that are not a benchmark payload",
                entry.data.len()
            )
        })?;
        let slot = self
            .gens
            .iter()
            .position(|g| g.writer == writer)
            .ok_or_else(|| format!("payload of writer {writer}, which never wrote here"))?;
        let expected_seq = self.next_seq[slot];
        if seq != expected_seq {
            return Err(format!(
                "writer {writer}'s entry {seq} where its entry {expected_seq} was due"
            ));
        }
        let gen = &self.gens[slot];
        if entry.data.len() != gen.entry_size {
            return Err(format!(
                "writer {writer}'s entry {seq} is {} bytes, {} were appended",
                entry.data.len(),
                gen.entry_size
            ));
        }
        if entry.data[PAYLOAD_HEADER_BYTES..] != *gen.body(seq) {
            return Err(format!(
                "writer {writer}'s entry {seq} has corrupted content"
            ));
        }
        self.next_seq[slot] += 1;
        Ok(())
    }

    /// After the topic is drained: every writer's acknowledged entries
    /// (`acked[i]` for `gens[i]`) must all have been read.
    pub fn finish(&self, acked: &[u64]) -> Result<(), VerifyError> {
        for ((gen, read), acked) in self.gens.iter().zip(&self.next_seq).zip(acked) {
            if read != acked {
                return Err(VerifyError {
                    topic: self.topic.clone(),
                    position: self.checked,
                    reason: format!(
                        "writer {} had {acked} appends acknowledged but {read} were read back",
                        gen.writer
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, data: Vec<u8>) -> Entry {
        Entry {
            seq,
            data: data.into(),
        }
    }

    #[test]
    fn payloads_are_deterministic_and_distinct() {
        let a = PayloadGen::new(3, 100);
        let b = PayloadGen::new(3, 100);
        assert_eq!(a.payload(7), b.payload(7));
        assert_ne!(a.payload(7), a.payload(8));
        assert_ne!(a.payload(7), PayloadGen::new(4, 100).payload(7));
        assert_eq!(parse_header(&a.payload(7)), Some((3, 7)));
    }

    #[test]
    fn verifier_accepts_interleaved_writers_in_order() {
        let gens = vec![PayloadGen::new(0, 32), PayloadGen::new(1, 32)];
        let mut v = TopicVerifier::new("t", gens.clone());
        let order = [(0, 0), (1, 0), (1, 1), (0, 1)];
        for (pos, (w, s)) in order.iter().enumerate() {
            v.check(&entry(pos as u64, gens[*w].payload(*s))).unwrap();
        }
        v.finish(&[2, 2]).unwrap();
        assert!(
            v.finish(&[2, 3]).is_err(),
            "a missing acknowledged entry is caught"
        );
    }

    #[test]
    fn verifier_catches_each_kind_of_wrong_data() {
        let g = PayloadGen::new(0, 64);
        let check_first = |e: Entry| TopicVerifier::new("t", vec![g.clone()]).check(&e);
        assert!(check_first(entry(0, g.payload(0))).is_ok());
        assert!(
            check_first(entry(0, g.payload(1))).is_err(),
            "skipped entry"
        );
        assert!(
            check_first(entry(1, g.payload(0))).is_err(),
            "wrong position"
        );
        assert!(
            check_first(entry(0, g.payload(0)[..63].to_vec())).is_err(),
            "truncated"
        );
        assert!(check_first(entry(0, vec![0; 64])).is_err(), "garbage");
        assert!(
            check_first(entry(0, PayloadGen::new(9, 64).payload(0))).is_err(),
            "foreign"
        );
        let mut flipped = g.payload(0);
        flipped[40] ^= 1;
        assert!(check_first(entry(0, flipped)).is_err(), "bit flip");
        let mut v = TopicVerifier::new("t", vec![g.clone()]);
        v.check(&entry(0, g.payload(0))).unwrap();
        assert!(v.check(&entry(1, g.payload(0))).is_err(), "duplicate");
    }
}
