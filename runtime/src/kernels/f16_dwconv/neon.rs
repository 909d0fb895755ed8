//! fp16-arithmetic depthwise convolution for aarch64 cores with FEAT_FP16. Input rows are
//! converted to f16 once (`fcvtn`) into a cache of `kh` rows reused by consecutive output
//! rows; each output pixel multiply-accumulates 16 channels (two `.8h` vectors) per step
//! in fp16, then 8, then a scalar f32 tail. Partial sums are widened (`fcvtl`) into f32
//! every [`CHAIN`] taps; bias, residual and the activation are applied in f32.

use super::{f16, F16DwArgs};
use crate::kernels::cpu::CpuFeatures;
use crate::kernels::f16_gemm::neon::{to_f16, widen};
use crate::kernels::f32_eltwise::scalar::activation;
use core::arch::aarch64::*;
use core::arch::asm;

/// Longest fp16 accumulation chain (taps) before the partial sums are widened to f32.
pub const CHAIN: usize = 16;

/// `acc += x * w` on eight halves.
macro_rules! fmla {
    ($acc:expr, $x:expr, $w:expr) => {
        asm!(
            "fmla {acc:v}.8h, {x:v}.8h, {w:v}.8h",
            acc = inout(vreg) $acc,
            x = in(vreg) $x,
            w = in(vreg) $w,
            options(pure, nomem, nostack)
        )
    };
}

/// NEON fp16 depthwise convolution, 16 channels per step, any kernel / stride / dilation
/// / padding. Panics when a slice is shorter than the geometry requires, or when the CPU
/// lacks FEAT_FP16 (the dispatcher only installs it where it is present).
pub fn dwconv_16c(a: F16DwArgs<'_>) {
    let g = a.g;
    let c = g.c;
    if c == 0 || g.n == 0 || g.oh == 0 || g.ow == 0 {
        return;
    }
    let taps = g.kh * g.kw;
    assert!(a.x.len() >= g.n * g.h * g.w * c, "dwconv: x too short");
    assert!(a.w.len() >= taps * c, "dwconv: weights too short");
    assert!(a.bias.len() >= c, "dwconv: bias too short");
    let out_len = g.n * g.oh * g.ow * c;
    assert!(a.y.len() >= out_len, "dwconv: y too short");
    if let Some(r) = a.residual {
        assert!(r.len() >= out_len, "dwconv: residual too short");
    }
    assert!(
        CpuFeatures::detect().fp16,
        "f16_dwconv::neon needs FEAT_FP16 (fp16 arithmetic)"
    );
    let row = g.w * c;
    // Input rows converted to f16: slot s holds input row `held[s]` at cache[s*row..].
    let mut cache = vec![0u16; g.kh * row];
    let mut held: Vec<Option<usize>> = vec![None; g.kh];
    let mut slot_of_ky: Vec<Option<usize>> = vec![None; g.kh];
    let mut offs: Vec<(usize, usize)> = Vec::with_capacity(taps);
    for n in 0..g.n {
        held.fill(None);
        for oy in 0..g.oh {
            for ky in 0..g.kh {
                slot_of_ky[ky] = g.in_y(oy, ky).map(|iy| {
                    if let Some(s) = held.iter().position(|&h| h == Some(iy)) {
                        return s;
                    }
                    // A slot whose row this output row does not read (one exists: at most kh
                    // distinct rows are read and `iy` is not held yet).
                    let s = (0..g.kh)
                        .find(|&s| {
                            held[s].is_none_or(|h| (0..g.kh).all(|k2| g.in_y(oy, k2) != Some(h)))
                        })
                        .expect("dwconv: row cache has a free slot");
                    let src = &a.x[(n * g.h + iy) * row..][..row];
                    to_f16(src, &mut cache[s * row..][..row]);
                    held[s] = Some(iy);
                    s
                });
            }
            for ox in 0..g.ow {
                offs.clear();
                for (ky, slot) in slot_of_ky.iter().enumerate() {
                    let Some(s) = slot else { continue };
                    for kx in 0..g.kw {
                        let Some(ix) = g.in_x(ox, kx) else { continue };
                        offs.push((s * row + ix * c, (ky * g.kw + kx) * c));
                    }
                }
                let pix = ((n * g.oh + oy) * g.ow + ox) * c;
                let raw = Raw {
                    x: cache.as_ptr(),
                    w: a.w.as_ptr().cast::<u16>(),
                    b: a.bias.as_ptr(),
                    res: a.residual.map(|r| r.as_ptr()),
                    y: a.y.as_mut_ptr(),
                    c,
                };
                // SAFETY: FEAT_FP16 is present (asserted). Every x offset is a cached row
                // slot < kh plus a valid column ix < w, so its c halves lie in `cache`
                // (kh*row halves); every weight offset is a tap < kh*kw whose c halves lie
                // in w (asserted, f16 is a u16 bit pattern); output, residual pixel `pix`
                // and bias hold c floats (asserted lengths).
                unsafe { pixel(&raw, &offs, pix) };
                activation(a.act, &mut a.y[pix..pix + c]);
            }
        }
    }
}

/// Raw views of the operands (lengths asserted by [`dwconv_16c`]).
struct Raw {
    /// The f16 row cache.
    x: *const u16,
    w: *const u16,
    b: *const f32,
    res: Option<*const f32>,
    y: *mut f32,
    c: usize,
}

/// One output pixel, all channels, before the activation.
///
/// # Safety
/// FEAT_FP16 present; offsets as described at the call site.
#[target_feature(enable = "neon,fp16")]
unsafe fn pixel(raw: &Raw, offs: &[(usize, usize)], pix: usize) {
    let c = raw.c;
    let mut ch = 0;
    // SAFETY: channel blocks stay below c; offsets per caller contract.
    unsafe {
        while ch + 16 <= c {
            block::<2>(raw, offs, pix, ch);
            ch += 16;
        }
        if ch + 8 <= c {
            block::<1>(raw, offs, pix, ch);
            ch += 8;
        }
        for ch in ch..c {
            let mut s = *raw.b.add(ch);
            for &(xo, wo) in offs {
                let x = f16::from_bits(*raw.x.add(xo + ch)).to_f32();
                s += x * f16::from_bits(*raw.w.add(wo + ch)).to_f32();
            }
            if let Some(r) = raw.res {
                s += *r.add(pix + ch);
            }
            *raw.y.add(pix + ch) = s;
        }
    }
}

/// Channels `ch..ch+8*Q` of one output pixel.
///
/// # Safety
/// As [`pixel`], with `ch + 8*Q <= c`.
#[target_feature(enable = "neon,fp16")]
unsafe fn block<const Q: usize>(raw: &Raw, offs: &[(usize, usize)], pix: usize, ch: usize) {
    // SAFETY: caller contract; asm blocks touch registers only.
    unsafe {
        let mut s: [[float32x4_t; 2]; Q] =
            std::array::from_fn(|q| [0, 1].map(|h| vld1q_f32(raw.b.add(ch + 8 * q + 4 * h))));
        for chain in offs.chunks(CHAIN) {
            let mut acc = [vdupq_n_u16(0); Q];
            for &(xo, wo) in chain {
                for (q, acc) in acc.iter_mut().enumerate() {
                    let x = vld1q_u16(raw.x.add(xo + ch + 8 * q));
                    let w = vld1q_u16(raw.w.add(wo + ch + 8 * q));
                    fmla!(*acc, x, w);
                }
            }
            for (s, &acc) in s.iter_mut().zip(&acc) {
                s[0] = vaddq_f32(s[0], widen!(lo acc));
                s[1] = vaddq_f32(s[1], widen!(hi acc));
            }
        }
        for (q, s) in s.iter().enumerate() {
            for (h, &v) in s.iter().enumerate() {
                let at = pix + ch + 8 * q + 4 * h;
                let v = match raw.res {
                    Some(r) => vaddq_f32(v, vld1q_f32(r.add(at))),
                    None => v,
                };
                vst1q_f32(raw.y.add(at), v);
            }
        }
    }
}
