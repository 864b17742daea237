//! Readers keep bytes read ahead between calls (a small window for
//! `read_next`, a larger one within a batch read). Whatever the mix of
//! appends, single reads, peeks and batch reads, every read must return
//! exactly the entries a simple model predicts: windows that end inside a
//! frame, at the commit point while the writer goes on, or at the end of a
//! sealed extent must never hide, repeat or tear an entry.

use crate::common::*;
use proptest::prelude::*;
use std::collections::VecDeque;
use walrus_wal::ReadConsistency;

#[derive(Debug, Clone)]
enum Op {
    /// Appends `n` entries of about `len` bytes each, one call per entry.
    Append {
        n: usize,
        len: usize,
    },
    /// One atomic batch of `n` entries.
    Batch {
        n: usize,
        len: usize,
    },
    ReadNext,
    Peek,
    BatchRead {
        max_bytes: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    // Sizes from a few bytes to several times the 64 KiB single-read window
    // (the extents in these tests are 16 KiB, so large entries get their own).
    let len = prop_oneof![4 => 0usize..64, 4 => 500usize..3_000, 1 => 20_000usize..150_000];
    prop_oneof![
        3 => (1usize..12, len.clone()).prop_map(|(n, len)| Op::Append { n, len }),
        1 => (1usize..20, 0usize..2_000).prop_map(|(n, len)| Op::Batch { n, len }),
        4 => Just(Op::ReadNext),
        1 => Just(Op::Peek),
        2 => (0usize..300_000).prop_map(|max_bytes| Op::BatchRead { max_bytes }),
    ]
}

fn entry(seq: u64, len: usize) -> Vec<u8> {
    let mut data = seq.to_le_bytes().to_vec();
    data.extend((0..len).map(|i| (i as u64 * 31 + seq) as u8));
    data
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(16), ..ProptestConfig::default() })]

    #[test]
    fn reads_match_the_model_whatever_the_read_ahead(ops in proptest::collection::vec(op(), 1..60)) {
        for backend in BACKENDS {
            let dir = tempfile::tempdir().unwrap();
            // AtLeastOnce: the cursor's durability is not under test here,
            // and a cursor sync per read would make the test slow.
            let wal = builder(dir.path(), backend)
                .consistency(ReadConsistency::AtLeastOnce { persist_every: 1_000 })
                .segment_bytes(4 << 20)
                .open()
                .unwrap();
            let mut unread: VecDeque<Vec<u8>> = VecDeque::new();
            let mut next_seq = 0u64;
            let mut consumed = 0u64;
            for op in &ops {
                match *op {
                    Op::Append { n, len } => {
                        for k in 0..n {
                            let data = entry(next_seq, len + k * 7);
                            wal.append_for_topic("t", &data).unwrap();
                            unread.push_back(data);
                            next_seq += 1;
                        }
                    }
                    Op::Batch { n, len } => {
                        let batch: Vec<Vec<u8>> =
                            (0..n as u64).map(|k| entry(next_seq + k, len)).collect();
                        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                        wal.batch_append_for_topic("t", &refs).unwrap();
                        next_seq += n as u64;
                        unread.extend(batch);
                    }
                    Op::ReadNext | Op::Peek => {
                        let consume = matches!(op, Op::ReadNext);
                        let got = wal.read_next("t", consume).unwrap();
                        let want = unread.front().cloned();
                        prop_assert_eq!(got.as_ref().map(|e| e.seq), want.as_ref().map(|_| consumed));
                        prop_assert_eq!(got.map(|e| e.data.to_vec()), want);
                        if consume && !unread.is_empty() {
                            unread.pop_front();
                            consumed += 1;
                        }
                    }
                    Op::BatchRead { max_bytes } => {
                        let got = wal.batch_read_for_topic("t", max_bytes, true).unwrap();
                        // At least one entry when any is unread; then as many
                        // as fit in `max_bytes`.
                        let mut want = 0;
                        let mut total = 0;
                        for e in &unread {
                            if want > 0 && total + e.len() > max_bytes {
                                break;
                            }
                            total += e.len();
                            want += 1;
                        }
                        prop_assert_eq!(got.len(), want, "{} {:?}", backend, op);
                        for e in got {
                            prop_assert_eq!(e.seq, consumed);
                            prop_assert_eq!(Some(e.data.to_vec()), unread.pop_front());
                            consumed += 1;
                        }
                    }
                }
            }
        }
    }
}
