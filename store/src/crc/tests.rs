use super::*;
use proptest::prelude::*;

fn oracle(bytes: &[u8]) -> u64 {
    let mut digest = crc64fast::Digest::new();
    digest.write(bytes);
    digest.sum64()
}

/// Deterministic filler (xorshift64*), so failures reproduce.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// A buffer whose start is 64-byte aligned, so offsets name alignments.
#[repr(C, align(64))]
struct Aligned([u8; 8192]);

fn aligned(seed: u64) -> Box<Aligned> {
    let mut buf = Box::new(Aligned([0; 8192]));
    buf.0.copy_from_slice(&random_bytes(seed, 8192));
    buf
}

/// `x^n mod P` by shifting in the normal bit order, independent of the
/// reflected arithmetic the kernels use.
fn xpow_normal(n: u32) -> u64 {
    let mut v: u64 = 1;
    for _ in 0..n {
        let carry = v >> 63;
        v = (v << 1) ^ if carry == 1 { POLY_NORMAL } else { 0 };
    }
    v
}

#[test]
fn constants_match_an_independent_derivation() {
    for n in [
        63, 127, 191, 255, 319, 383, 447, 511, 575, 639, 767, 895, 1023, 1087,
    ] {
        assert_eq!(xpow_mod(n), xpow_normal(n).reverse_bits(), "x^{n} mod P");
    }
    for bits in (128..=2048).step_by(128) {
        let [lo, hi] = fold_pair(bits);
        assert_eq!(lo, xpow_normal(bits + 63).reverse_bits());
        assert_eq!(hi, xpow_normal(bits - 1).reverse_bits());
    }
    // mu' = floor(x^127 / P): x^127 - mu' * P must have degree below 64.
    let mu = BARRETT_MU.reverse_bits();
    let p = (1u128 << 64) | u128::from(POLY_NORMAL);
    let product = (0..64)
        .filter(|i| (mu >> i) & 1 == 1)
        .fold(0u128, |acc, i| acc ^ (p << i));
    assert_eq!(
        (product ^ (1 << 127)) >> 64,
        0,
        "x^127 mod P has degree < 64"
    );
    assert_eq!(u128::from(BARRETT_P.reverse_bits()) << 1 | 1, p);
}

#[test]
fn standard_check_values() {
    for kernel in Kernel::supported() {
        assert_eq!(
            kernel.crc64(&[b"123456789"]),
            0x995D_C9BB_DF19_39FA,
            "{kernel:?}"
        );
        assert_eq!(
            kernel.crc64(&[b"hello world!"]),
            0x8483_C0FA_3260_7D61,
            "{kernel:?}"
        );
        assert_eq!(
            kernel.crc64(&[b"hello ", b"", b"world!"]),
            0x8483_C0FA_3260_7D61
        );
        assert_eq!(kernel.crc64(&[]), 0, "{kernel:?}");
    }
    assert_eq!(crc64(&[b"123456789"]), 0x995D_C9BB_DF19_39FA);
}

#[test]
fn every_length_to_600_at_every_alignment() {
    let buf = aligned(0x5EED);
    let kernels = Kernel::supported();
    for align in 0..16 {
        for len in 0..=600 {
            let bytes = &buf.0[align..align + len];
            let expected = oracle(bytes);
            for kernel in &kernels {
                assert_eq!(
                    kernel.crc64(&[bytes]),
                    expected,
                    "{kernel:?} len {len} @{align}"
                );
            }
        }
    }
}

#[test]
fn large_input() {
    let bytes = random_bytes(7, 1 << 20);
    let expected = oracle(&bytes);
    for kernel in Kernel::supported() {
        assert_eq!(kernel.crc64(&[&bytes]), expected, "{kernel:?}");
        let (a, b) = bytes.split_at(300_001);
        assert_eq!(kernel.crc64(&[a, b]), expected, "{kernel:?} split");
    }
}

#[test]
fn the_fast_paths_are_tested_where_the_cpu_has_them() {
    #[cfg(target_arch = "x86_64")]
    {
        let kernels = Kernel::supported();
        assert_eq!(
            kernels.iter().any(|k| k.0 == Imp::Pclmul),
            x86::pclmul_detected()
        );
        assert_eq!(
            kernels.iter().any(|k| k.0 == Imp::Avx512),
            x86::avx512_detected()
        );
    }
    assert_eq!(Some(&Kernel::best()), Kernel::supported().last());
}

// ProptestConfig::default() reads PROPTEST_CASES (256 when unset).
proptest! {
    #[test]
    fn parts_at_any_offset_match_crc64fast(
        seed in any::<u64>(),
        len in 0usize..=5000,
        offset in 0usize..64,
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let buf = aligned(seed);
        let bytes = &buf.0[offset..offset + len];
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(len + 1)).collect();
        cuts.sort_unstable();
        let mut parts = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([len]) {
            parts.push(&bytes[start..cut]);
            start = cut;
        }
        let expected = oracle(bytes);
        for kernel in Kernel::supported() {
            prop_assert_eq!(kernel.crc64(&parts), expected, "{:?}", kernel);
            let mut stream = Crc64Stream::on(kernel);
            for part in &parts {
                stream.update(part);
            }
            prop_assert_eq!(stream.finish(), expected, "streamed, {:?}", kernel);
        }
    }
}
