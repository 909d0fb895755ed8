//! AVX2 f32 -> 8-bit quantization, 8 values per step.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// AVX2 per-tensor quantization (see [`super::QuantizeFn`]); needs AVX2.
pub fn quantize_8x(x: &[f32], scale: f32, zero_point: i32, lo: i32, hi: i32, y: &mut [u8]) {
    assert!(y.len() >= x.len(), "quantize: y too short");
    assert!(
        std::is_x86_feature_detected!("avx2"),
        "quantize_8x needs AVX2"
    );
    let body = x.len() / 8 * 8;
    // SAFETY: AVX2 is present (checked above) and `body <= x.len() <= y.len()`.
    unsafe { quantize_body(&x[..body], scale, zero_point, lo, hi, &mut y[..body]) };
    super::scalar::quantize(&x[body..], scale, zero_point, lo, hi, &mut y[body..]);
}

#[target_feature(enable = "avx2")]
unsafe fn quantize_body(x: &[f32], scale: f32, zero_point: i32, lo: i32, hi: i32, y: &mut [u8]) {
    let vs = _mm256_set1_ps(scale);
    let vlo = _mm256_set1_ps((lo - zero_point) as f32);
    let vhi = _mm256_set1_ps((hi - zero_point) as f32);
    let vzp = _mm256_set1_epi32(zero_point);
    for (xs, ys) in x.chunks_exact(8).zip(y.chunks_exact_mut(8)) {
        // SAFETY: `xs` holds 8 floats and `ys` 8 bytes (chunks_exact).
        unsafe {
            // The same operations in the same order as the scalar twin: divide, max, min,
            // round half to even (the default MXCSR mode), add the zero point. maxps with
            // the value first returns the bound for NaN, as f32::max does.
            let t = _mm256_div_ps(_mm256_loadu_ps(xs.as_ptr()), vs);
            let t = _mm256_min_ps(_mm256_max_ps(t, vlo), vhi);
            let q = _mm256_add_epi32(_mm256_cvtps_epi32(t), vzp);
            // q is within [lo, hi]: keep the low byte of each lane.
            let bytes = _mm256_shuffle_epi8(
                q,
                _mm256_setr_epi8(
                    0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1,
                    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                ),
            );
            let lo4 = _mm256_cvtsi256_si32(bytes) as u32;
            let hi4 = _mm256_extract_epi32::<4>(bytes) as u32;
            std::ptr::write_unaligned(
                ys.as_mut_ptr() as *mut u64,
                (lo4 as u64) | ((hi4 as u64) << 32),
            );
        }
    }
}
