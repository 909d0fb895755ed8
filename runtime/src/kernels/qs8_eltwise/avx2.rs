//! AVX2 int8 add / multiply, eight elements per step.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::QBinary;

/// AVX2 quantized add / multiply over a row (see [`super::QBinaryFn`]); needs AVX2.
pub fn binary_8x(p: &QBinary, a: &[u8], b: &[u8], y: &mut [u8]) {
    assert!(
        a.len() >= y.len() && b.len() >= y.len(),
        "qbinary: operand too short"
    );
    assert!(
        std::is_x86_feature_detected!("avx2"),
        "binary_8x needs AVX2"
    );
    let body = y.len() / 8 * 8;
    // SAFETY: AVX2 is present (checked above); `a`, `b` and `y` hold at least `body` bytes.
    unsafe { body_8x(p, &a[..body], &b[..body], &mut y[..body]) };
    super::scalar::binary(p, &a[body..], &b[body..], &mut y[body..]);
}

#[target_feature(enable = "avx2")]
unsafe fn body_8x(p: &QBinary, a: &[u8], b: &[u8], y: &mut [u8]) {
    let (za, zb) = (_mm256_set1_epi32(p.za), _mm256_set1_epi32(p.zb));
    let (ma, mb) = (_mm256_set1_ps(p.ma), _mm256_set1_ps(p.mb));
    let (lo, hi) = (_mm256_set1_ps(p.rq.lo), _mm256_set1_ps(p.rq.hi));
    let zy = _mm256_set1_epi32(p.rq.zero_point);
    let pick = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1,
    );
    for ((ac, bc), yc) in a
        .chunks_exact(8)
        .zip(b.chunks_exact(8))
        .zip(y.chunks_exact_mut(8))
    {
        // SAFETY: each chunk holds exactly 8 bytes (chunks_exact).
        unsafe {
            let va = _mm256_cvtepu8_epi32(_mm_loadl_epi64(ac.as_ptr() as *const __m128i));
            let vb = _mm256_cvtepu8_epi32(_mm_loadl_epi64(bc.as_ptr() as *const __m128i));
            let (da, db) = (_mm256_sub_epi32(va, za), _mm256_sub_epi32(vb, zb));
            // Same operations and order as the scalar twin; no FMA.
            let t = if p.mul {
                _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_mullo_epi32(da, db)), ma)
            } else {
                _mm256_add_ps(
                    _mm256_mul_ps(_mm256_cvtepi32_ps(da), ma),
                    _mm256_mul_ps(_mm256_cvtepi32_ps(db), mb),
                )
            };
            let t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
            let q = _mm256_add_epi32(_mm256_cvtps_epi32(t), zy);
            let bytes = _mm256_shuffle_epi8(q, pick);
            let lo4 = _mm256_cvtsi256_si32(bytes) as u32 as u64;
            let hi4 = _mm256_extract_epi32::<4>(bytes) as u32 as u64;
            std::ptr::write_unaligned(yc.as_mut_ptr() as *mut u64, lo4 | (hi4 << 32));
        }
    }
}
