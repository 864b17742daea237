//! Little-endian integers at byte offsets: the one reader and writer of the
//! fixed-width fields in the stores' own file formats.
//!
//! Each function takes the whole record and the field's offset, so a format
//! reads as a list of named offsets (`u64_at(slot, SEQ_AT)`), not slice
//! literals. They panic if the field does not fit: callers check a record's
//! length once, before reading its fields, which is where a short record
//! read from disk must be caught.
//!
//! Every function is `#[inline]`: the engine encodes each frame with them,
//! and as calls across the crate boundary they cost the append path about
//! 69 instructions per 1 KiB append, 4% (callgrind, `examples/append_cost.rs`).

/// The `u16` at `at..at + 2`.
#[inline]
pub fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(field(b, at))
}

/// The `u32` at `at..at + 4`.
#[inline]
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(field(b, at))
}

/// The `u64` at `at..at + 8`.
#[inline]
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(field(b, at))
}

/// Writes `v` at `at..at + 2`.
#[inline]
pub fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` at `at..at + 4`.
#[inline]
pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` at `at..at + 8`.
#[inline]
pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[inline]
fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    match b.get(at..at + N) {
        Some(bytes) => bytes.try_into().expect("a slice of N bytes"),
        None => panic!(
            "a {N}-byte field at offset {at} of a {}-byte record",
            b.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_at_their_offsets() {
        let mut b = [0u8; 16];
        put_u16(&mut b, 1, 0xBEEF);
        put_u32(&mut b, 3, 0xDEAD_BEEF);
        put_u64(&mut b, 8, 0x0123_4567_89AB_CDEF);
        assert_eq!(u16_at(&b, 1), 0xBEEF);
        assert_eq!(u32_at(&b, 3), 0xDEAD_BEEF);
        assert_eq!(u64_at(&b, 8), 0x0123_4567_89AB_CDEF);
        // Little-endian: the low byte first.
        assert_eq!(b[8], 0xEF);
        assert_eq!(b[1], 0xEF);
    }

    #[test]
    #[should_panic(expected = "8-byte field at offset 4 of a 10-byte record")]
    fn a_field_past_the_end_panics_with_where() {
        u64_at(&[0; 10], 4);
    }
}
