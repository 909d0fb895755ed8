//! aarch64 NEON f32 -> 8-bit quantization, 16 values per step, byte-identical to `scalar`:
//! the same IEEE operations in the same order (`fdiv`, `fmaxnm`/`fminnm`, which return the
//! bound for a NaN lane as `f32::max`/`min` do, `fcvtns` round half to even, saturating as
//! `as i32` does), then the zero point added with wrapping and the low byte kept.

use core::arch::aarch64::*;

/// Values per step.
const STEP: usize = 16;

/// NEON per-tensor quantization (see [`super::QuantizeFn`]); NEON is baseline on aarch64.
pub fn quantize_16x(x: &[f32], scale: f32, zero_point: i32, lo: i32, hi: i32, y: &mut [u8]) {
    assert!(y.len() >= x.len(), "quantize: y too short");
    let body = x.len() / STEP * STEP;
    let (lo_f, hi_f) = ((lo - zero_point) as f32, (hi - zero_point) as f32);
    for (xs, ys) in x[..body]
        .chunks_exact(STEP)
        .zip(y[..body].chunks_exact_mut(STEP))
    {
        // SAFETY: `xs` holds 16 floats and `ys` 16 bytes (chunks_exact); NEON is baseline.
        unsafe {
            let (vs, vlo, vhi) = (vdupq_n_f32(scale), vdupq_n_f32(lo_f), vdupq_n_f32(hi_f));
            let vzp = vdupq_n_s32(zero_point);
            let q: [uint32x4_t; 4] = std::array::from_fn(|i| {
                let t = vdivq_f32(vld1q_f32(xs.as_ptr().add(4 * i)), vs);
                let t = vminnmq_f32(vmaxnmq_f32(t, vlo), vhi);
                vreinterpretq_u32_s32(vaddq_s32(vcvtnq_s32_f32(t), vzp))
            });
            // Truncating narrows: the low byte of each lane, as `as u8` keeps.
            let h0 = vcombine_u16(vmovn_u32(q[0]), vmovn_u32(q[1]));
            let h1 = vcombine_u16(vmovn_u32(q[2]), vmovn_u32(q[3]));
            vst1q_u8(ys.as_mut_ptr(), vcombine_u8(vmovn_u16(h0), vmovn_u16(h1)));
        }
    }
    super::scalar::quantize(&x[body..], scale, zero_point, lo, hi, &mut y[body..]);
}
