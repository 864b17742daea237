//! The CRC that guards every structure Walrus (and the raw baseline) writes:
//! CRC-64/XZ (ECMA-182 polynomial, bit-reflected, init and xorout all ones). The value is part of
//! the on-disk format, so every path here must agree bit for bit with
//! `crc64fast::Digest`, which is also the fallback on CPUs without carry-less
//! multiply and the oracle of the tests below.
//!
//! The x86_64 paths fold the input with carry-less multiplies (the scheme of
//! Intel's "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ").
//! Notation, used by every comment in this file:
//!
//! * `P = x^64 + 0x42F0_E1EB_A9EA_3693` (normal bit order).
//! * A `u64` value `v` stands for the polynomial `r64(v) = sum v_j x^(63-j)`
//!   (bit 0 is the highest power: the reflected order). A 128-bit register
//!   `w` stands for `r128(w) = sum w_m x^(127-m)`, which is exactly the
//!   message polynomial of 16 bytes loaded little-endian.
//! * `clmul(a, b)` of two reflected 64-bit values gives a register with
//!   `r128 = x * r64(a) * r64(b)`: the product lands one bit short of where
//!   the register order puts it. Every constant below absorbs that factor of
//!   `x` by using one power fewer.
//! * The CRC state `s` after a message `M` satisfies
//!   `r64(s) = (S * x^|M| + M * x^64) mod P`, `S` the state before. XORing the
//!   state into the first 8 bytes of the message gives `S * x^(|M|-64) + M`,
//!   so only `M * x^64 mod P` remains to be computed.
//!
//! Folding: a register `R` followed by `N` more bits of data contributes
//! `r128(R) * x^N = r64(R.lo) * x^(N+64) + r64(R.hi) * x^N`, congruent modulo
//! `P` to `clmul(R.lo, x^(N+63) mod P) ^ clmul(R.hi, x^(N-1) mod P)`, a
//! 128-bit value that is XORed into the data `N` bits later. The constants are
//! computed below by `const fn`s from the polynomial and cross-checked by an
//! independent derivation in the tests.

use std::sync::OnceLock;

/// `P` without its `x^64` term, in the normal bit order (bit i is `x^i`).
const POLY_NORMAL: u64 = 0x42F0_E1EB_A9EA_3693;
/// The same polynomial in the reflected order of `r64`.
const POLY_REFLECTED: u64 = POLY_NORMAL.reverse_bits();

/// `x^n mod P` as a reflected value. Multiplying by `x` moves every
/// coefficient one bit down; the `x^63` coefficient (bit 0) becomes `x^64`,
/// which is `P - x^64` modulo `P`.
const fn xpow_mod(n: u32) -> u64 {
    let mut v = 1u64 << 63; // x^0
    let mut i = 0;
    while i < n {
        v = (v >> 1) ^ if v & 1 == 1 { POLY_REFLECTED } else { 0 };
        i += 1;
    }
    v
}

/// The pair of constants that folds a 128-bit register forward by `bits`:
/// `[x^(bits+63) mod P, x^(bits-1) mod P]`, multiplied by its low and high
/// 64 bits respectively.
const fn fold_pair(bits: u32) -> [u64; 2] {
    [xpow_mod(bits + 63), xpow_mod(bits - 1)]
}

/// `floor(x^127 / P)` as a reflected value: the Barrett constant. The usual
/// constant is `mu = floor(x^128 / P) = x * floor(x^127 / P) + c` with `c` of
/// degree 0, and `clmul`'s extra factor of `x` restores the first term; `c`
/// only touches powers that the quotient drops.
const fn barrett_mu() -> u64 {
    const P: u128 = (1 << 64) | POLY_NORMAL as u128;
    let mut rem: u128 = 1 << 127;
    let mut quotient: u64 = 0;
    let mut i = 127;
    while i >= 64 {
        if (rem >> i) & 1 == 1 {
            rem ^= P << (i - 64);
            quotient |= 1 << (i - 64);
        }
        i -= 1;
    }
    quotient.reverse_bits()
}

/// `(P - 1) / x` as a reflected value (degree 63, so it fits in 64 bits;
/// `clmul`'s extra `x` turns it back into `P - 1`).
const POLY_DIV_X: u64 = (((1u128 << 64) | POLY_NORMAL as u128) >> 1) as u64;
const BARRETT_P: u64 = POLY_DIV_X.reverse_bits();
const BARRETT_MU: u64 = barrett_mu();

/// One implementation of the checksum. Only `supported` builds a SIMD
/// kernel, and only after the CPU has been seen to support its instructions,
/// which is what makes calling it sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kernel(Imp);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Imp {
    /// `crc64fast::Digest`, which picks its own SIMD path where it has one.
    Portable,
    /// PCLMULQDQ on 128-bit registers.
    #[cfg(target_arch = "x86_64")]
    Pclmul,
    /// VPCLMULQDQ on 512-bit registers, PCLMULQDQ for the last 64 bytes.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    /// The fastest kernel this CPU supports, detected once.
    pub(crate) fn best() -> Kernel {
        static BEST: OnceLock<Kernel> = OnceLock::new();
        *BEST.get_or_init(|| {
            let supported = Kernel::supported();
            *supported
                .last()
                .expect("the portable kernel is always supported")
        })
    }

    /// Every kernel this CPU can run, slowest first. The tests run them all.
    pub(crate) fn supported() -> Vec<Kernel> {
        let mut kernels = vec![Kernel(Imp::Portable)];
        #[cfg(target_arch = "x86_64")]
        {
            if x86::pclmul_detected() {
                kernels.push(Kernel(Imp::Pclmul));
            }
            if x86::avx512_detected() {
                kernels.push(Kernel(Imp::Avx512));
            }
        }
        kernels
    }

    /// CRC-64/XZ of the concatenation of `parts`.
    pub(crate) fn crc64(self, parts: &[&[u8]]) -> u64 {
        match self.0 {
            Imp::Portable => {
                let mut digest = crc64fast::Digest::new();
                for part in parts {
                    digest.write(part);
                }
                digest.sum64()
            }
            #[cfg(target_arch = "x86_64")]
            Imp::Pclmul => !parts.iter().fold(!0, |state, part| {
                // SAFETY: `Imp::Pclmul` is only constructed in `supported`,
                // after `pclmul_detected` saw every feature `update_pclmul`
                // enables.
                unsafe { x86::update_pclmul(state, part) }
            }),
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512 => !parts.iter().fold(!0, |state, part| {
                // SAFETY: `Imp::Avx512` is only constructed in `supported`,
                // after `avx512_detected` saw every feature `update_avx512`
                // enables.
                unsafe { x86::update_avx512(state, part) }
            }),
        }
    }
}

/// CRC-64/XZ of the concatenation of `parts` (the checksum of every record
/// Walrus writes, the value `crc64fast` computes), on the fastest kernel
/// this CPU supports.
pub fn crc64(parts: &[&[u8]]) -> u64 {
    Kernel::best().crc64(parts)
}

/// [`crc64`] of bytes that arrive piece by piece (a frame too large to hold
/// in memory at once), on the same kernel: feeding the pieces to `update`
/// gives what `crc64` of all of them gives.
pub struct Crc64Stream(StreamState);

enum StreamState {
    Portable(crc64fast::Digest),
    /// A carry-less multiply kernel and its raw register.
    #[cfg(target_arch = "x86_64")]
    Raw(Imp, u64),
}

impl Crc64Stream {
    /// A checksum of no bytes yet, on the fastest kernel this CPU supports.
    pub fn new() -> Crc64Stream {
        Crc64Stream::on(Kernel::best())
    }

    fn on(kernel: Kernel) -> Crc64Stream {
        Crc64Stream(match kernel.0 {
            Imp::Portable => StreamState::Portable(crc64fast::Digest::new()),
            #[cfg(target_arch = "x86_64")]
            imp => StreamState::Raw(imp, !0),
        })
    }

    /// Feeds the next piece of the bytes being checksummed.
    pub fn update(&mut self, part: &[u8]) {
        match &mut self.0 {
            StreamState::Portable(digest) => digest.write(part),
            #[cfg(target_arch = "x86_64")]
            StreamState::Raw(imp, state) => {
                *state = match imp {
                    // SAFETY: a `Raw` state holds only kernels `supported`
                    // found this CPU able to run (see `Kernel::crc64`).
                    Imp::Pclmul => unsafe { x86::update_pclmul(*state, part) },
                    // SAFETY: as above.
                    Imp::Avx512 => unsafe { x86::update_avx512(*state, part) },
                    Imp::Portable => unreachable!("the portable kernel streams through Digest"),
                }
            }
        }
    }

    /// The checksum of every piece fed so far (more may follow).
    pub fn finish(&self) -> u64 {
        match &self.0 {
            StreamState::Portable(digest) => digest.sum64(),
            #[cfg(target_arch = "x86_64")]
            StreamState::Raw(_, state) => !state,
        }
    }
}

impl Default for Crc64Stream {
    fn default() -> Self {
        Crc64Stream::new()
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The carry-less multiply kernels. `update_*` take and return the raw
    //! CRC register (before the final inversion), so parts chain.

    use super::{fold_pair, xpow_mod, BARRETT_MU, BARRETT_P};
    use core::arch::x86_64::*;

    /// Folds one 128-bit register over the next 16 bytes.
    const K_128: [u64; 2] = fold_pair(128);
    /// Folds each of 8 registers forward one 128-byte stride.
    const K_1024: [u64; 2] = fold_pair(1024);
    /// Merges 8 registers: register i moves forward over the 7 - i after it.
    const K_MERGE_8: [[u64; 2]; 7] = [
        fold_pair(7 * 128),
        fold_pair(6 * 128),
        fold_pair(5 * 128),
        fold_pair(4 * 128),
        fold_pair(3 * 128),
        fold_pair(2 * 128),
        fold_pair(128),
    ];
    /// Folds each of 4 zmm registers forward one 256-byte stride.
    const K_2048: [u64; 2] = fold_pair(2048);
    const K_1536: [u64; 2] = fold_pair(1536);
    /// Folds one zmm register over the next 64 bytes.
    const K_512: [u64; 2] = fold_pair(512);
    const K_384: [u64; 2] = fold_pair(384);
    const K_256: [u64; 2] = fold_pair(256);
    /// `x^127 mod P`: moves the low qword of the last register (its high
    /// powers) forward by `x^128`, the 64 bits of the high qword behind it
    /// plus the `x^64` every message is multiplied by.
    const K_127: u64 = xpow_mod(127);

    /// pshufb masks for the last partial block. `SHUFFLE[r..r + 16]` moves
    /// bytes `0..r` of a register to `16 - r..16`; `SHUFFLE[16 + r..32 + r]`
    /// moves bytes `r..16` to `0..16 - r`. 0x80 zeroes a byte and, for
    /// `blendv`, picks the other operand.
    const SHUFFLE: [u8; 48] = {
        let mut t = [0x80u8; 48];
        let mut i = 0;
        while i < 16 {
            t[16 + i] = i as u8;
            i += 1;
        }
        t
    };

    pub(super) fn pclmul_detected() -> bool {
        is_x86_feature_detected!("pclmulqdq") && is_x86_feature_detected!("sse4.1")
    }

    pub(super) fn avx512_detected() -> bool {
        pclmul_detected()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("vpclmulqdq")
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn pair(k: [u64; 2]) -> __m128i {
        _mm_set_epi64x(k[1] as i64, k[0] as i64)
    }

    #[inline]
    fn load(block: &[u8; 16]) -> __m128i {
        // SAFETY: the reference covers 16 readable bytes; `loadu` has no
        // alignment requirement.
        unsafe { _mm_loadu_si128(block.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "pclmulqdq")]
    fn fold(acc: __m128i, k: __m128i) -> __m128i {
        _mm_xor_si128(
            _mm_clmulepi64_si128::<0x00>(acc, k),
            _mm_clmulepi64_si128::<0x11>(acc, k),
        )
    }

    /// Barrett reduction of a 128-bit `C` to `r128(C) mod P`. With
    /// `T = r64(C.lo) * x^64 + r64(C.hi)`, the quotient by `P` is
    /// `q = floor(r64(C.lo) * mu / x^64)`, the low 64 bits of
    /// `clmul(C.lo, BARRETT_MU)`; the remainder is `C.hi + (q * P mod x^64)`,
    /// and `clmul(q, BARRETT_P)` is `q * P + q`, whose low powers sit in its
    /// high half.
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn barrett(c: __m128i) -> u64 {
        let k = pair([BARRETT_P, BARRETT_MU]);
        let w = _mm_clmulepi64_si128::<0x10>(c, k);
        let v = _mm_clmulepi64_si128::<0x00>(w, k);
        let t = _mm_xor_si128(_mm_xor_si128(c, v), _mm_slli_si128::<8>(w));
        _mm_extract_epi64::<1>(t) as u64
    }

    /// The CRC register for the data folded into `acc`: `r128(acc) * x^64`
    /// reduced to 128 bits, then modulo `P`.
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn finalize(acc: __m128i) -> u64 {
        let hi_times_x128 = _mm_clmulepi64_si128::<0x00>(acc, pair([K_127, 0]));
        barrett(_mm_xor_si128(hi_times_x128, _mm_srli_si128::<8>(acc)))
    }

    /// Inputs shorter than one register, read without going past the end.
    /// The register is laid out so that `finalize` (8 bytes or more) or
    /// `barrett` directly (fewer) yields `S * x^8n + M * x^64 mod P`.
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn update_short(state: u64, bytes: &[u8]) -> u64 {
        let n = bytes.len();
        debug_assert!(n < 16);
        let to_reg = |v: u128| _mm_set_epi64x((v >> 64) as i64, v as i64);
        match n {
            0 => state,
            1..8 => {
                // M in bytes 8-n..8 (times x^64), S in 8-n..16-n (times x^8n).
                let m = read_le_below_8(bytes);
                barrett(to_reg(u128::from(m ^ state) << (8 * (8 - n))))
            }
            _ => {
                // M in bytes 16-n..16, S XORed into its first 8 bytes.
                let (first, _) = bytes.split_first_chunk::<8>().expect("n >= 8");
                let (_, last) = bytes.split_last_chunk::<8>().expect("n >= 8");
                let m = u128::from(u64::from_le_bytes(*first))
                    | u128::from(u64::from_le_bytes(*last)) << (8 * (n - 8));
                finalize(to_reg((m ^ u128::from(state)) << (8 * (16 - n))))
            }
        }
    }

    /// 1..=7 bytes as a little-endian integer, with overlapping reads.
    #[inline]
    fn read_le_below_8(b: &[u8]) -> u64 {
        let n = b.len();
        if n >= 4 {
            let lo = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
            let hi = u32::from_le_bytes(b[n - 4..].try_into().expect("4 bytes"));
            u64::from(lo) | u64::from(hi) << (8 * (n - 4))
        } else {
            u64::from(b[0])
                | u64::from(b[n / 2]) << (8 * (n / 2))
                | u64::from(b[n - 1]) << (8 * (n - 1))
        }
    }

    /// Folds `rest` (whatever the wide loops left) into `acc` 16 bytes at a
    /// time, then the last partial block, then reduces. `input` is the whole
    /// slice being checksummed, at least 16 bytes, ending where `rest` ends.
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn finish(mut acc: __m128i, rest: &[u8], input: &[u8]) -> u64 {
        let k = pair(K_128);
        let (blocks, tail) = rest.as_chunks::<16>();
        for block in blocks {
            acc = _mm_xor_si128(fold(acc, k), load(block));
        }
        if !tail.is_empty() {
            acc = fold_tail(acc, input, tail.len());
        }
        finalize(acc)
    }

    /// The last `r` (1..16) bytes: the 16 + r bytes of `acc` and the tail
    /// are split as `acc[0..r]`, folded over 128 bits, and the final 16
    /// bytes, `acc[r..16]` followed by the tail, read with one load that ends
    /// at the end of the input (its first 16 - r bytes are replaced).
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn fold_tail(acc: __m128i, input: &[u8], r: usize) -> __m128i {
        let (_, last) = input.split_last_chunk::<16>().expect("input >= 16 bytes");
        let (to_top, _) = SHUFFLE[r..].split_first_chunk::<16>().expect("r < 16");
        let (to_bottom, _) = SHUFFLE[16 + r..].split_first_chunk::<16>().expect("r < 16");
        let (to_top, to_bottom) = (load(to_top), load(to_bottom));
        let head = _mm_shuffle_epi8(acc, to_top);
        let body = _mm_blendv_epi8(_mm_shuffle_epi8(acc, to_bottom), load(last), to_bottom);
        _mm_xor_si128(fold(head, pair(K_128)), body)
    }

    /// 128 bytes per step in 8 independent registers, so the multiplier's
    /// latency overlaps; `groups` is not empty.
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    fn fold_8_wide(state: u64, groups: &[[[u8; 16]; 8]]) -> __m128i {
        let (first, rest) = groups.split_first().expect("at least one group");
        let mut x: [__m128i; 8] = core::array::from_fn(|i| load(&first[i]));
        x[0] = _mm_xor_si128(x[0], _mm_cvtsi64_si128(state as i64));
        let k = pair(K_1024);
        for group in rest {
            for (acc, block) in x.iter_mut().zip(group) {
                *acc = _mm_xor_si128(fold(*acc, k), load(block));
            }
        }
        let mut acc = x[7];
        for (reg, k) in x[..7].iter().zip(K_MERGE_8) {
            acc = _mm_xor_si128(acc, fold(*reg, pair(k)));
        }
        acc
    }

    /// Calling this needs `unsafe` outside code with the same features: the
    /// caller must have seen `pclmul_detected` return true.
    #[target_feature(enable = "pclmulqdq,sse4.1")]
    pub(super) fn update_pclmul(state: u64, bytes: &[u8]) -> u64 {
        if bytes.len() < 16 {
            return update_short(state, bytes);
        }
        let (wide, rest) = bytes.split_at(bytes.len() / 128 * 128);
        if wide.is_empty() {
            let (first, rest) = bytes.split_first_chunk::<16>().expect("16 bytes");
            let acc = _mm_xor_si128(load(first), _mm_cvtsi64_si128(state as i64));
            return finish(acc, rest, bytes);
        }
        let (blocks, _) = wide.as_chunks::<16>();
        let (groups, _) = blocks.as_chunks::<8>();
        finish(fold_8_wide(state, groups), rest, bytes)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load512(block: &[u8; 64]) -> __m512i {
        // SAFETY: the reference covers 64 readable bytes; `loadu` has no
        // alignment requirement.
        unsafe { _mm512_loadu_si512(block.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn broadcast(k: [u64; 2]) -> __m512i {
        let [lo, hi] = k.map(|v| v as i64);
        _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo)
    }

    /// `fold` on each 128-bit lane, XORed with `next`.
    #[inline]
    #[target_feature(enable = "avx512f,vpclmulqdq")]
    fn fold512(acc: __m512i, k: __m512i, next: __m512i) -> __m512i {
        let lo = _mm512_clmulepi64_epi128::<0x00>(acc, k);
        let hi = _mm512_clmulepi64_epi128::<0x11>(acc, k);
        _mm512_ternarylogic_epi64::<0x96>(lo, hi, next)
    }

    /// 256 bytes per step in 4 zmm registers; `groups` is not empty.
    #[inline]
    #[target_feature(enable = "avx512f,vpclmulqdq")]
    fn fold_4_wide(state: u64, groups: &[[[u8; 64]; 4]]) -> __m512i {
        let (first, rest) = groups.split_first().expect("at least one group");
        let mut x: [__m512i; 4] = core::array::from_fn(|i| load512(&first[i]));
        x[0] = _mm512_xor_si512(x[0], _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, state as i64));
        let k = broadcast(K_2048);
        for group in rest {
            for (acc, block) in x.iter_mut().zip(group) {
                *acc = fold512(*acc, k, load512(block));
            }
        }
        let a = fold512(x[0], broadcast(K_1536), x[3]);
        let b = fold512(x[1], broadcast(K_1024), a);
        fold512(x[2], broadcast(K_512), b)
    }

    /// The four lanes of `x` folded into one register: lane i moves over the
    /// 3 - i lanes after it.
    #[inline]
    #[target_feature(enable = "avx512f,vpclmulqdq,avx2")]
    fn lanes_to_128(x: __m512i) -> __m128i {
        let [l384, h384] = K_384.map(|v| v as i64);
        let [l256, h256] = K_256.map(|v| v as i64);
        let [l128, h128] = K_128.map(|v| v as i64);
        // Lane 3 multiplies by zero and takes x's lane 3 unchanged instead.
        let k = _mm512_set_epi64(0, 0, h128, l128, h256, l256, h384, l384);
        let lane3 = _mm512_maskz_mov_epi64(0b1100_0000, x);
        let lo = _mm512_clmulepi64_epi128::<0x00>(x, k);
        let hi = _mm512_clmulepi64_epi128::<0x11>(x, k);
        let y = _mm512_ternarylogic_epi64::<0x96>(lo, hi, lane3);
        let y = _mm256_xor_si256(
            _mm512_extracti64x4_epi64::<0>(y),
            _mm512_extracti64x4_epi64::<1>(y),
        );
        _mm_xor_si128(_mm256_castsi256_si128(y), _mm256_extracti128_si256::<1>(y))
    }

    /// Calling this needs `unsafe` outside code with the same features: the
    /// caller must have seen `avx512_detected` return true.
    #[target_feature(enable = "avx512f,avx512vl,vpclmulqdq,pclmulqdq,sse4.1")]
    pub(super) fn update_avx512(state: u64, bytes: &[u8]) -> u64 {
        if bytes.len() < 64 {
            return update_pclmul(state, bytes);
        }
        let (blocks, rest) = bytes.as_chunks::<64>();
        let (groups, singles) = blocks.as_chunks::<4>();
        let (mut x, singles) = if groups.is_empty() {
            let (first, singles) = blocks.split_first().expect("64 bytes");
            let state = _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, state as i64);
            (_mm512_xor_si512(load512(first), state), singles)
        } else {
            (fold_4_wide(state, groups), singles)
        };
        let k = broadcast(K_512);
        for block in singles {
            x = fold512(x, k, load512(block));
        }
        finish(lanes_to_128(x), rest, bytes)
    }
}

#[cfg(test)]
mod tests;
