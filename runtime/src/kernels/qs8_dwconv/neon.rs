//! aarch64 NEON int8 depthwise convolution, byte-identical to `scalar`: eight channels per
//! step, input bytes widened and offset by the zero point (`x - zp` fits 16 bits), weights
//! widened, products accumulated exactly into 32 bits (`smlal`), then the scalar's output
//! rule (`f32(acc) * scale`, clamp, round half to even, add the zero point). Taps in the
//! padding are skipped, as the scalar does.

use core::arch::aarch64::*;

use super::{check_lengths, simd_exact, QDwArgs};

/// Channels per step.
const CB: usize = 8;

/// NEON int8 depthwise, eight channels per step, any kernel / stride / dilation / padding.
/// Falls back to the scalar kernel for zero points or clamp bounds outside the byte range,
/// where only the scalar's wrapping arithmetic defines the result.
pub fn qdwconv_8c(a: QDwArgs<'_>) {
    if !check_lengths(&a) {
        return;
    }
    if !simd_exact(&a) {
        return super::scalar::qdwconv_generic(a);
    }
    let g = a.g;
    let c = g.c;
    let mut offs: Vec<(usize, usize)> = Vec::with_capacity(g.kh * g.kw);
    let y = a.y.as_mut_ptr();
    for b in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                offs.clear();
                for ky in 0..g.kh {
                    let Some(iy) = g.in_y(oy, ky) else { continue };
                    for kx in 0..g.kw {
                        let Some(ix) = g.in_x(ox, kx) else { continue };
                        offs.push((((b * g.h + iy) * g.w + ix) * c, (ky * g.kw + kx) * c));
                    }
                }
                let pix = ((b * g.oh + oy) * g.ow + ox) * c;
                // SAFETY: every offset is a valid input pixel (in_y/in_x) with c bytes in x,
                // every weight offset a tap < kh*kw with c weights in w, and the output
                // pixel `pix` has c bytes in y (check_lengths).
                unsafe { pixel(&a, y, &offs, pix) };
            }
        }
    }
}

/// All channels of one output pixel.
///
/// # Safety
/// As described at the call site.
#[inline(always)]
unsafe fn pixel(a: &QDwArgs<'_>, y: *mut u8, offs: &[(usize, usize)], pix: usize) {
    let c = a.g.c;
    let (x, w) = (a.x.as_ptr(), a.w.as_ptr());
    let rq = a.rq;
    let mut ch = 0;
    // SAFETY: channel blocks stay below c; offsets per the caller's contract; bias and
    // scale hold c values (check_lengths).
    unsafe {
        let zp = vdupq_n_s16(a.x_zero_point as i16);
        let (lo, hi) = (vdupq_n_f32(rq.lo), vdupq_n_f32(rq.hi));
        let ozp = vdupq_n_s32(rq.zero_point);
        while ch + CB <= c {
            let mut s0 = vld1q_s32(a.bias.as_ptr().add(ch));
            let mut s1 = vld1q_s32(a.bias.as_ptr().add(ch + 4));
            for &(xo, wo) in offs {
                let xv = vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(vld1_u8(x.add(xo + ch)))), zp);
                let wv = vmovl_s8(vld1_s8(w.add(wo + ch)));
                s0 = vmlal_s16(s0, vget_low_s16(xv), vget_low_s16(wv));
                s1 = vmlal_high_s16(s1, xv, wv);
            }
            let out = |s: int32x4_t, at: usize| {
                let t = vmulq_f32(vcvtq_f32_s32(s), vld1q_f32(a.scale.as_ptr().add(at)));
                vaddq_s32(vcvtnq_s32_f32(vminnmq_f32(vmaxnmq_f32(t, lo), hi)), ozp)
            };
            let q = vcombine_u16(vqmovun_s32(out(s0, ch)), vqmovun_s32(out(s1, ch + 4)));
            vst1_u8(y.add(pix + ch), vqmovn_u16(q));
            ch += CB;
        }
        for ch in ch..c {
            let mut s = *a.bias.get_unchecked(ch);
            for &(xo, wo) in offs {
                s = s.wrapping_add(
                    (*x.add(xo + ch) as i32 - a.x_zero_point) * *w.add(wo + ch) as i32,
                );
            }
            *y.add(pix + ch) = rq.apply(s, *a.scale.get_unchecked(ch));
        }
    }
}
