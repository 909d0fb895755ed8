//! AVX-512 layer normalization of contiguous rows; strided rows use the scalar kernel.

use core::arch::x86_64::*;

use super::scalar;
use crate::kernels::simd::avx512::lane_mask;

/// Lanes of a register.
const LANES: usize = 16;

/// Layer normalization of one row (see [`super::LayerNormFn`]), 16 lanes at a time when the
/// row is contiguous in both `x` and `y`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_16c(
    n: usize,
    x: &[f32],
    sx: usize,
    scale: &[f32],
    shift: &[f32],
    eps: f32,
    y: &mut [f32],
    sy: usize,
) {
    if n == 0 || sx != 1 || sy != 1 || !std::arch::is_x86_feature_detected!("avx512f") {
        return scalar::layer_norm_strided(n, x, sx, scale, shift, eps, y, sy);
    }
    // SAFETY: avx512f was detected above; every slice is cut to `n` elements.
    unsafe { row(&x[..n], &scale[..n], &shift[..n], eps, &mut y[..n]) }
}

#[target_feature(enable = "avx512f")]
fn row(x: &[f32], scale: &[f32], shift: &[f32], eps: f32, y: &mut [f32]) {
    let n = x.len();
    let mut acc = _mm512_setzero_ps();
    for c in x.chunks(LANES) {
        // SAFETY: the masked lanes are the `c.len()` elements of `c`; the others read zero.
        acc = _mm512_add_ps(acc, unsafe {
            _mm512_maskz_loadu_ps(lane_mask(c.len()), c.as_ptr())
        });
    }
    let mean = _mm512_reduce_add_ps(acc) / n as f32;
    let vmean = _mm512_set1_ps(mean);
    let mut acc = _mm512_setzero_ps();
    for c in x.chunks(LANES) {
        let m = lane_mask(c.len());
        // SAFETY: as above; lanes outside the mask keep `acc` unchanged.
        let d = _mm512_maskz_sub_ps(m, unsafe { _mm512_maskz_loadu_ps(m, c.as_ptr()) }, vmean);
        acc = _mm512_fmadd_ps(d, d, acc);
    }
    let inv = 1.0 / (_mm512_reduce_add_ps(acc) / n as f32 + eps).sqrt();
    let vinv = _mm512_set1_ps(inv);
    for (((yc, xc), sc), hc) in y
        .chunks_mut(LANES)
        .zip(x.chunks(LANES))
        .zip(scale.chunks(LANES))
        .zip(shift.chunks(LANES))
    {
        let m = lane_mask(yc.len());
        // SAFETY: the four chunks have equal lengths and the mask covers exactly them.
        unsafe {
            let d = _mm512_mul_ps(
                _mm512_sub_ps(_mm512_maskz_loadu_ps(m, xc.as_ptr()), vmean),
                vinv,
            );
            let v = _mm512_fmadd_ps(
                d,
                _mm512_maskz_loadu_ps(m, sc.as_ptr()),
                _mm512_maskz_loadu_ps(m, hc.as_ptr()),
            );
            _mm512_mask_storeu_ps(yc.as_mut_ptr(), m, v);
        }
    }
}
