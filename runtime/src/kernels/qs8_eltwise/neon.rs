//! aarch64 NEON int8 add / multiply, 16 elements per step, byte-identical to `scalar`:
//! bytes widened to 32 bits, zero points subtracted (wrapping, as the scalar's release
//! arithmetic), the same f32 operations in the same order (separate multiply and add, no
//! fused multiply-add), then the clamp, `fcvtns` round half to even, the zero point and the
//! low byte of each lane.

use core::arch::aarch64::*;

use super::QBinary;

/// Elements per step.
const STEP: usize = 16;

/// NEON quantized add / multiply over a row (see [`super::QBinaryFn`]); NEON is baseline on
/// aarch64.
pub fn binary_16x(p: &QBinary, a: &[u8], b: &[u8], y: &mut [u8]) {
    assert!(
        a.len() >= y.len() && b.len() >= y.len(),
        "qbinary: operand too short"
    );
    let body = y.len() / STEP * STEP;
    if p.mul {
        body_16x::<true>(p, &a[..body], &b[..body], &mut y[..body]);
    } else {
        body_16x::<false>(p, &a[..body], &b[..body], &mut y[..body]);
    }
    super::scalar::binary(p, &a[body..], &b[body..], &mut y[body..]);
}

/// Sixteen bytes zero-extended to four vectors of 32-bit lanes.
///
/// # Safety
/// NEON available (aarch64 baseline).
#[inline(always)]
unsafe fn widen(v: uint8x16_t) -> [int32x4_t; 4] {
    // SAFETY: register-only NEON operations.
    unsafe {
        let (l, h) = (vmovl_u8(vget_low_u8(v)), vmovl_high_u8(v));
        [
            vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(l))),
            vreinterpretq_s32_u32(vmovl_high_u16(l)),
            vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(h))),
            vreinterpretq_s32_u32(vmovl_high_u16(h)),
        ]
    }
}

/// Whole steps of 16 (`a`, `b` and `y` the same length, a multiple of 16).
#[inline(always)]
fn body_16x<const MUL: bool>(p: &QBinary, a: &[u8], b: &[u8], y: &mut [u8]) {
    for ((ac, bc), yc) in a
        .chunks_exact(STEP)
        .zip(b.chunks_exact(STEP))
        .zip(y.chunks_exact_mut(STEP))
    {
        // SAFETY: each chunk holds exactly 16 bytes (chunks_exact); NEON is baseline.
        unsafe {
            let (za, zb) = (vdupq_n_s32(p.za), vdupq_n_s32(p.zb));
            let (ma, mb) = (vdupq_n_f32(p.ma), vdupq_n_f32(p.mb));
            let (lo, hi) = (vdupq_n_f32(p.rq.lo), vdupq_n_f32(p.rq.hi));
            let zy = vdupq_n_s32(p.rq.zero_point);
            let va = widen(vld1q_u8(ac.as_ptr()));
            let vb = widen(vld1q_u8(bc.as_ptr()));
            let q: [uint32x4_t; 4] = std::array::from_fn(|i| {
                let (da, db) = (vsubq_s32(va[i], za), vsubq_s32(vb[i], zb));
                // Same operations and order as the scalar twin; no fused multiply-add.
                let t = if MUL {
                    vmulq_f32(vcvtq_f32_s32(vmulq_s32(da, db)), ma)
                } else {
                    vaddq_f32(
                        vmulq_f32(vcvtq_f32_s32(da), ma),
                        vmulq_f32(vcvtq_f32_s32(db), mb),
                    )
                };
                let t = vminnmq_f32(vmaxnmq_f32(t, lo), hi);
                vreinterpretq_u32_s32(vaddq_s32(vcvtnq_s32_f32(t), zy))
            });
            // Truncating narrows: the low byte of each lane, as `as u8` keeps.
            let h0 = vcombine_u16(vmovn_u32(q[0]), vmovn_u32(q[1]));
            let h1 = vcombine_u16(vmovn_u32(q[2]), vmovn_u32(q[3]));
            vst1q_u8(yc.as_mut_ptr(), vcombine_u8(vmovn_u16(h0), vmovn_u16(h1)));
        }
    }
}
