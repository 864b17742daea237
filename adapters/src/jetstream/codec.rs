//! How topics become subjects and how entries become messages.
//!
//! # Subjects
//!
//! A topic's records go to `w.<token>`, the parts of its large records to
//! `p.<token>` and its cursor to `c.<token>`, where `<token>` is the topic
//! with every byte outside `[A-Za-z0-9_-]` written as `=XX` (upper-case hex).
//! The escape is injective and its output never holds `.`, `*`, `>` or
//! whitespace, so a topic is always exactly one subject token: no topic name
//! can be a wildcard or reach into another topic's subject.
//!
//! # Records
//!
//! One message is one *record*: the unit an append or a batch append
//! publishes, so a batch is atomic because it is one message.
//!
//! * no `Walrus-Enc` header: the payload is one entry, as appended;
//! * `Walrus-Enc: b`: the payload is a batch, each entry as a little-endian
//!   `u32` length followed by its bytes;
//! * a `Walrus-Parts: s1,s2,...` header: the payload above is too large for
//!   one message and is the concatenation of the `p.<token>` messages with
//!   those stream sequences, which were published (and acknowledged) before
//!   the record. Parts whose record never got published are never read.

use bytes::Bytes;

/// Header that marks a batch-encoded record.
pub(crate) const ENC_HEADER: &str = "Walrus-Enc";
/// Header listing the stream sequences of a record's parts.
pub(crate) const PARTS_HEADER: &str = "Walrus-Parts";

/// Escapes a topic into one subject token (see the module docs).
pub(crate) fn escape_topic(topic: &str) -> String {
    let mut out = String::with_capacity(topic.len());
    for &b in topic.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push('=');
            out.push_str(&format!("{b:02X}"));
        }
    }
    out
}

/// Encodes a batch of entries into one payload.
pub(crate) fn encode_batch(payloads: &[&[u8]]) -> Vec<u8> {
    let total: usize = payloads.iter().map(|p| p.len() + 4).sum();
    let mut out = Vec::with_capacity(total);
    for p in payloads {
        let len = u32::try_from(p.len()).expect("entries are checked to fit in u32 first");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Decodes a batch payload; `None` if the bytes are not a batch this module
/// wrote (a length that runs past the end).
pub(crate) fn decode_batch(payload: &Bytes) -> Option<Vec<Bytes>> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    while at < payload.len() {
        let len_bytes: [u8; 4] = payload.get(at..at + 4)?.try_into().ok()?;
        let len = u32::from_le_bytes(len_bytes) as usize;
        let start = at + 4;
        let end = start.checked_add(len)?;
        if end > payload.len() {
            return None;
        }
        entries.push(payload.slice(start..end));
        at = end;
    }
    Some(entries)
}

/// Parses a `Walrus-Parts` header value.
pub(crate) fn parse_parts(value: &str) -> Option<Vec<u64>> {
    value.split(',').map(|s| s.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_topics_are_single_tokens_and_distinct() {
        let names = [
            "a.b", "a*b", "a>b", "a b", "a\tb", "a\nb", "a=2Eb", "a_b", "a-b", "ab", "a..b", "a.>",
            "*", ">", ".", "é", "a/b",
        ];
        let mut seen = std::collections::HashSet::new();
        for name in names {
            let token = escape_topic(name);
            assert!(
                !token.contains(['.', '*', '>']) && !token.chars().any(char::is_whitespace),
                "{name:?} -> {token}"
            );
            assert!(seen.insert(token.clone()), "{name:?} collides as {token}");
        }
        assert_eq!(escape_topic("orders_2-x"), "orders_2-x");
        assert_eq!(escape_topic("a.b"), "a=2Eb");
        assert_eq!(escape_topic("a=2Eb"), "a=3D2Eb");
    }

    #[test]
    fn batches_round_trip_and_garbage_is_refused() {
        let batch: [&[u8]; 4] = [b"", b"one", b"", &[7u8; 300]];
        let bytes = Bytes::from(encode_batch(&batch));
        let back = decode_batch(&bytes).unwrap();
        assert_eq!(back.len(), 4);
        for (a, b) in back.iter().zip(batch) {
            assert_eq!(&a[..], b);
        }
        assert!(decode_batch(&Bytes::from_static(&[9, 0, 0, 0, 1])).is_none());
        assert!(decode_batch(&Bytes::from_static(&[1, 0])).is_none());
        assert_eq!(parse_parts("3, 5,9"), Some(vec![3, 5, 9]));
        assert_eq!(parse_parts("3,x"), None);
    }
}
