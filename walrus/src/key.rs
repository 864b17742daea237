//! Instance keys and the directories they name.
//!
//! Any non-empty UTF-8 key of up to [`MAX_KEY_BYTES`] bytes names one
//! instance directory inside the data directory. The mapping is a bijection
//! onto the names it produces, so two keys never share a directory and every
//! directory name decodes back to its key:
//!
//! - The key's bytes are cut into pieces of `PIECE_BYTES`; each piece
//!   becomes one path component, so a long key stays under every
//!   filesystem's 255-byte name limit.
//! - Within a piece, `[a-z0-9_-]` and `.` (except as the piece's first
//!   byte) stay as they are; every other byte, upper-case letters included,
//!   becomes `%XX` with upper-case hex. No component is then `.`, `..`,
//!   empty, or holds a `/` or NUL, so no key can leave the data directory,
//!   and keys that differ only in case stay apart on case-insensitive
//!   filesystems too.
//! - Every component but the last ends in `+`, a byte the encoding never
//!   emits otherwise, so no instance directory lies inside another's.
//!
//! `orders`, `default` and `queue-1.v2` map to themselves;
//! `prod/payments::v1` maps to `prod%2Fpayments%3A%3Av1`.

use crate::store::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// The longest key: 16 components of at most 193 bytes, which leaves room
/// for a data directory within Linux's 4,096-byte path limit.
pub const MAX_KEY_BYTES: usize = 1024;
/// Key bytes per path component: at most 3 × 64 + 1 = 193 bytes encoded.
const PIECE_BYTES: usize = 64;
const CONTINUED: u8 = b'+';

/// The instance directory of `key`, relative to the data directory.
pub fn encode(key: &str) -> Result<PathBuf> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidKey {
            reason: format!(
                "a key of {} bytes: use 1-{MAX_KEY_BYTES} bytes of UTF-8",
                key.len()
            ),
        });
    }
    Ok(encode_valid(key))
}

fn encode_valid(key: &str) -> PathBuf {
    let pieces: Vec<&[u8]> = key.as_bytes().chunks(PIECE_BYTES).collect();
    let mut path = PathBuf::new();
    for (i, piece) in pieces.iter().enumerate() {
        let mut name = encode_piece(piece);
        if i + 1 < pieces.len() {
            name.push(CONTINUED as char);
        }
        path.push(name);
    }
    path
}

/// The key whose instance directory is `rel` (relative to the data
/// directory), or `None` when no key encodes to it.
pub fn decode(rel: &Path) -> Option<String> {
    let names: Vec<&str> = rel
        .components()
        .map(|c| match c {
            Component::Normal(name) => name.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let (last, init) = names.split_last()?;
    let mut bytes = Vec::new();
    for name in init {
        let piece = name.strip_suffix(CONTINUED as char)?;
        bytes.extend(decode_piece(piece, PIECE_BYTES)?);
    }
    bytes.extend(decode_piece(last, PIECE_BYTES)?);
    let key = String::from_utf8(bytes).ok()?;
    // Only the canonical spelling decodes: pieces must be full except the
    // last, and escapes are used exactly where the encoder uses them.
    (key.len() <= MAX_KEY_BYTES && encode_valid(&key).as_path() == rel).then_some(key)
}

fn verbatim(byte: u8, at_start: bool) -> bool {
    matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-') || (byte == b'.' && !at_start)
}

fn encode_piece(piece: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(piece.len() * 3);
    for (i, &b) in piece.iter().enumerate() {
        if verbatim(b, i == 0) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
    out
}

fn decode_piece(name: &str, max: usize) -> Option<Vec<u8>> {
    let raw = name.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = std::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    (!out.is_empty() && out.len() <= max).then_some(out)
}

/// Whether the key was accepted by engines before keys were encoded
/// (1-64 bytes of `[A-Za-z0-9_.-]`, not starting with `.`), which used it
/// as the directory name unchanged.
pub fn is_legacy(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// The instance directory for `key` under `data_dir`. A key that older
/// engines used verbatim and whose encoding differs (it has upper-case
/// letters or is longer than 64 bytes) keeps its old directory when that
/// exists under exactly that name and the encoded one does not, so an
/// upgrade never orphans data.
pub fn instance_dir(data_dir: &Path, key: &str) -> Result<PathBuf> {
    let encoded = encode(key)?;
    let dir = data_dir.join(&encoded);
    if encoded.as_os_str() == key || !is_legacy(key) || dir.exists() {
        return Ok(dir);
    }
    // Compare names exactly: on a case-insensitive filesystem `Orders`
    // "exists" when only `orders` does.
    let legacy_exists = std::fs::read_dir(data_dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name() == key && e.path().is_dir())
    });
    Ok(if legacy_exists {
        data_dir.join(key)
    } else {
        dir
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(key: &str) -> String {
        encode(key).unwrap().to_str().unwrap().to_owned()
    }

    #[test]
    fn plain_keys_map_to_themselves() {
        for key in ["default", "orders", "queue-1.v2", "a_b", "0"] {
            assert_eq!(enc(key), key);
        }
    }

    #[test]
    fn separators_dots_and_case_are_escaped() {
        assert_eq!(enc("prod/payments::v1"), "prod%2Fpayments%3A%3Av1");
        assert_eq!(enc(".."), "%2E.");
        assert_eq!(enc("."), "%2E");
        assert_eq!(enc("Prod"), "%50rod");
        assert_eq!(enc("a\0b"), "a%00b");
        assert_eq!(enc("100%"), "100%25");
        assert_eq!(enc("a+"), "a%2B");
    }

    #[test]
    fn every_component_stays_inside_the_data_directory() {
        let long_dots = format!("{}..", "a".repeat(PIECE_BYTES));
        for key in [
            "..",
            "../x",
            "/etc",
            "a/../../b",
            ".",
            long_dots.as_str(),
            "\\..\\",
        ] {
            let path = encode(key).unwrap();
            for c in path.components() {
                let Component::Normal(name) = c else {
                    panic!("{key:?} encodes to a non-normal component {c:?}");
                };
                let name = name.to_str().unwrap();
                assert!(
                    name.len() <= 255 && !name.starts_with('.'),
                    "{key:?}: {name}"
                );
            }
        }
    }

    #[test]
    fn long_keys_split_into_continued_components() {
        let key = "x".repeat(MAX_KEY_BYTES);
        let path = encode(&key).unwrap();
        let names: Vec<_> = path.iter().map(|n| n.to_str().unwrap()).collect();
        assert_eq!(names.len(), MAX_KEY_BYTES / PIECE_BYTES);
        assert!(names[..names.len() - 1].iter().all(|n| n.ends_with('+')));
        assert!(!names.last().unwrap().ends_with('+'));
        let worst = "\u{4e2d}".repeat(MAX_KEY_BYTES / 3);
        assert!(encode(&worst)
            .unwrap()
            .iter()
            .all(|n| n.len() <= 3 * PIECE_BYTES + 1));
    }

    #[test]
    fn bad_lengths_are_typed_errors() {
        assert!(matches!(encode(""), Err(Error::InvalidKey { .. })));
        let too_long = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(matches!(encode(&too_long), Err(Error::InvalidKey { .. })));
    }

    #[test]
    fn decoding_accepts_only_canonical_names() {
        for name in [
            "Prod", "%2e.", "%70", "a/b", "a+", "%zz", "%4", "..", "a%2B+/b",
        ] {
            assert_eq!(decode(Path::new(name)), None, "{name}");
        }
    }

    proptest::proptest! {
        #[test]
        fn encoding_reverses_and_never_collides(a in "\\PC{1,200}", b in "\\PC{1,200}") {
            let (ea, eb) = (encode(&a).unwrap(), encode(&b).unwrap());
            proptest::prop_assert_eq!(decode(&ea), Some(a.clone()));
            proptest::prop_assert_eq!(a == b, ea == eb);
            // No directory lies inside another's.
            proptest::prop_assert!(a == b || (!ea.starts_with(&eb) && !eb.starts_with(&ea)));
        }
    }
}
