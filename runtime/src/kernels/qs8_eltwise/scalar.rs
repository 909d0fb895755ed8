//! Portable int8 add / multiply: the reference for the SIMD tier.

use super::QBinary;

/// One element (see [`super`] for the rule).
#[inline(always)]
pub fn binary_one(p: &QBinary, a: u8, b: u8) -> u8 {
    let (da, db) = (a as i32 - p.za, b as i32 - p.zb);
    let t = if p.mul {
        (da * db) as f32 * p.ma
    } else {
        da as f32 * p.ma + db as f32 * p.mb
    };
    p.rq.finish(t)
}

/// Scalar quantized add / multiply over a row.
pub fn binary(p: &QBinary, a: &[u8], b: &[u8], y: &mut [u8]) {
    for ((v, &x), &w) in y.iter_mut().zip(a).zip(b) {
        *v = binary_one(p, x, w);
    }
}
