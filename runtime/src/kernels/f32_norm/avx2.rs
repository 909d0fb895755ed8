//! AVX2 layer normalization of contiguous rows; strided rows use the scalar kernel.

use core::arch::x86_64::*;

use super::scalar;
use crate::kernels::simd::avx2::lane_mask;

/// Lanes of a register.
const LANES: usize = 8;

/// Layer normalization of one row (see [`super::LayerNormFn`]), 8 lanes at a time when the
/// row is contiguous in both `x` and `y`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_8c(
    n: usize,
    x: &[f32],
    sx: usize,
    scale: &[f32],
    shift: &[f32],
    eps: f32,
    y: &mut [f32],
    sy: usize,
) {
    let simd =
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    if n == 0 || sx != 1 || sy != 1 || !simd {
        return scalar::layer_norm_strided(n, x, sx, scale, shift, eps, y, sy);
    }
    // SAFETY: avx2 and fma were detected above; every slice is cut to `n` elements.
    unsafe { row(&x[..n], &scale[..n], &shift[..n], eps, &mut y[..n]) }
}

/// Sum of the 8 lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Lanes `i..i + w` of `s` (masked load: lanes past `w` read as zero).
///
/// # Safety
/// `i + w <= s.len()` and `w <= 8`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load(s: &[f32], i: usize, w: usize) -> __m256 {
    // SAFETY: the caller guarantees lanes `i..i + w` are inside `s`.
    unsafe {
        if w == LANES {
            _mm256_loadu_ps(s.as_ptr().add(i))
        } else {
            _mm256_maskload_ps(s.as_ptr().add(i), lane_mask(w))
        }
    }
}

#[target_feature(enable = "avx2,fma")]
fn row(x: &[f32], scale: &[f32], shift: &[f32], eps: f32, y: &mut [f32]) {
    let n = x.len();
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < n {
        let w = (n - i).min(LANES);
        // SAFETY: i + w <= n.
        acc = _mm256_add_ps(acc, unsafe { load(x, i, w) });
        i += w;
    }
    let mean = hsum(acc) / n as f32;
    let vmean = _mm256_set1_ps(mean);
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < n {
        let w = (n - i).min(LANES);
        // SAFETY: i + w <= n; masked-off lanes are zeroed so they add nothing.
        let d = unsafe {
            let v = load(x, i, w);
            _mm256_and_ps(_mm256_sub_ps(v, vmean), _mm256_castsi256_ps(lane_mask(w)))
        };
        acc = _mm256_fmadd_ps(d, d, acc);
        i += w;
    }
    let inv = 1.0 / (hsum(acc) / n as f32 + eps).sqrt();
    let vinv = _mm256_set1_ps(inv);
    let mut i = 0;
    while i < n {
        let w = (n - i).min(LANES);
        // SAFETY: i + w <= n for all four slices, which hold `n` elements.
        unsafe {
            let d = _mm256_mul_ps(_mm256_sub_ps(load(x, i, w), vmean), vinv);
            let v = _mm256_fmadd_ps(d, load(scale, i, w), load(shift, i, w));
            let p = y.as_mut_ptr().add(i);
            if w == LANES {
                _mm256_storeu_ps(p, v);
            } else {
                _mm256_maskstore_ps(p, lane_mask(w), v);
            }
        }
        i += w;
    }
}
