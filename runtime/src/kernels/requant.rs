//! The output stage shared by every int8 kernel: one rounding rule, so that every ISA tier
//! produces the same bytes.
//!
//! The rule ("fp32 requantization", as XNNPACK and TFLite's newer kernels use):
//!
//! ```text
//! t = f32(acc) * scale[c]                      (one IEEE f32 multiply, round to nearest)
//! t = t + f32(r - zr) * rscale                 (only with a residual; two separate ops, no FMA)
//! t = min(max(t, qmin - zp), qmax - zp)        (clamp in f32 first, so nothing overflows)
//! y = round_half_to_even(t) + zp               (exact: t is in the clamped range)
//! ```
//!
//! Every step is an exactly specified IEEE operation, which SIMD units perform identically
//! (`cvtdq2ps`, `mulps`, `addps`, `maxps`/`minps`, `cvtps2dq` under the default rounding mode;
//! `scvtf`, `fmul`, `fadd`, `fmax`/`fmin`, `fcvtns` on ARM). Fused multiply-add must not be
//! used in the residual step: it rounds once instead of twice.

/// Zero point and clamp bounds of an 8-bit unsigned output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Requant {
    /// Output zero point (0..=255).
    pub zero_point: i32,
    /// `qmin - zero_point` as f32.
    pub lo: f32,
    /// `qmax - zero_point` as f32.
    pub hi: f32,
}

impl Requant {
    /// Output zero point `zero_point` clamped to `[qmin, qmax]` (a fused ReLU / ReLU6 narrows
    /// the bounds; without one they are `0..=255`).
    pub fn new(zero_point: i32, qmin: u8, qmax: u8) -> Requant {
        Requant {
            zero_point,
            lo: (qmin as i32 - zero_point) as f32,
            hi: (qmax as i32 - zero_point) as f32,
        }
    }

    /// Clamp, round half to even and add the zero point (the last two lines of the rule).
    #[inline(always)]
    pub fn finish(&self, t: f32) -> u8 {
        (t.max(self.lo).min(self.hi).round_ties_even() as i32 + self.zero_point) as u8
    }

    /// The whole rule without a residual.
    #[inline(always)]
    pub fn apply(&self, acc: i32, scale: f32) -> u8 {
        self.finish(acc as f32 * scale)
    }
}
