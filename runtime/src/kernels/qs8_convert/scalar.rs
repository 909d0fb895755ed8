//! Portable f32 -> 8-bit quantization: the reference for the SIMD tiers.

/// Scalar per-tensor quantization (see [`super::QuantizeFn`]).
pub fn quantize(x: &[f32], scale: f32, zero_point: i32, lo: i32, hi: i32, y: &mut [u8]) {
    let (lo_f, hi_f) = ((lo - zero_point) as f32, (hi - zero_point) as f32);
    for (q, &v) in y.iter_mut().zip(x) {
        // max/min first: NaN and out-of-range values land on a bound, as in the SIMD tiers.
        let t = (v / scale).max(lo_f).min(hi_f);
        *q = (t.round_ties_even() as i32 + zero_point) as u8;
    }
}
