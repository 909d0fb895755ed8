//! AVX2 data movement: the pairwise interleave behind the two-group channel shuffle
//! (ShuffleNet) done eight pairs per step with in-register unpacks.

use core::arch::x86_64::*;

/// Interleave two strided row sets (see [`super::scalar::interleave2`]).
#[allow(clippy::too_many_arguments)]
pub fn interleave2_8c(
    pixels: usize,
    n: usize,
    a: &[f32],
    sa: usize,
    b: &[f32],
    sb: usize,
    y: &mut [f32],
    sy: usize,
) {
    if pixels == 0 || n == 0 {
        return;
    }
    if !std::arch::is_x86_feature_detected!("avx2") {
        return super::scalar::interleave2(pixels, n, a, sa, b, sb, y, sy);
    }
    let last = |s: usize, len: usize| (pixels - 1).checked_mul(s).and_then(|v| v.checked_add(len));
    assert!(
        last(sa, n).is_some_and(|e| e <= a.len())
            && last(sb, n).is_some_and(|e| e <= b.len())
            && last(sy, 2 * n).is_some_and(|e| e <= y.len()),
        "interleave2: slices too short for {pixels} rows of {n} pairs"
    );
    // SAFETY: avx2 was detected just above; the assert proved every row is in bounds.
    unsafe { rows(pixels, n, a, sa, b, sb, y, sy) }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
fn rows(
    pixels: usize,
    n: usize,
    a: &[f32],
    sa: usize,
    b: &[f32],
    sb: usize,
    y: &mut [f32],
    sy: usize,
) {
    for p in 0..pixels {
        let (ar, br) = (&a[p * sa..][..n], &b[p * sb..][..n]);
        let yr = &mut y[p * sy..][..2 * n];
        let mut j = 0;
        while j + 8 <= n {
            // SAFETY: j + 8 <= n: 8 floats readable from each row, 16 writable at 2j.
            unsafe {
                let va = _mm256_loadu_ps(ar.as_ptr().add(j));
                let vb = _mm256_loadu_ps(br.as_ptr().add(j));
                // Per 128-bit lane: a0 b0 a1 b1 | a4 b4 a5 b5 and a2 b2 a3 b3 | a6 b6 a7 b7.
                let lo = _mm256_unpacklo_ps(va, vb);
                let hi = _mm256_unpackhi_ps(va, vb);
                let dst = yr.as_mut_ptr().add(2 * j);
                _mm256_storeu_ps(dst, _mm256_permute2f128_ps::<0x20>(lo, hi));
                _mm256_storeu_ps(dst.add(8), _mm256_permute2f128_ps::<0x31>(lo, hi));
            }
            j += 8;
        }
        for j in j..n {
            yr[2 * j] = ar[j];
            yr[2 * j + 1] = br[j];
        }
    }
}
