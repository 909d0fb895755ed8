//! NEON depthwise convolution on NHWC, vectorised over channels: 16 channels (four
//! vectors) per step, then 4, then a scalar tail. Taps of interior output columns are
//! read without bounds checks; border columns skip padded taps. Bias, residual and
//! ReLU / clamps are applied in registers, other activations on the stored row.

use super::ConvArgs;
use crate::kernels::f32_eltwise::scalar::activation;
use crate::kernels::neon_ops::{self as v, F32x4, VecAct};

/// Channels per main step.
const CB: usize = 16;

/// NEON depthwise convolution, 16 channels per step, any kernel / stride / dilation /
/// padding. Panics when a slice is shorter than the geometry requires.
pub fn dwconv_16c(a: ConvArgs<'_>) {
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
    let vact = VecAct::of(a.act);
    let raw = Raw {
        x: a.x.as_ptr(),
        w: a.w.as_ptr(),
        b: a.bias.as_ptr(),
        res: a.residual.map(|r| r.as_ptr()),
        y: a.y.as_mut_ptr(),
        c,
    };
    // Offsets (into x, relative to the image) of the valid taps of one output pixel.
    let mut offs: Vec<(usize, usize)> = Vec::with_capacity(taps);
    for n in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                offs.clear();
                for ky in 0..g.kh {
                    let Some(iy) = g.in_y(oy, ky) else { continue };
                    for kx in 0..g.kw {
                        let Some(ix) = g.in_x(ox, kx) else { continue };
                        offs.push((((n * g.h + iy) * g.w + ix) * c, (ky * g.kw + kx) * c));
                    }
                }
                let pix = ((n * g.oh + oy) * g.ow + ox) * c;
                // SAFETY: every offset in `offs` is a valid input pixel (in_y/in_x) whose c
                // channels lie in x (asserted length), every weight offset a tap < kh*kw
                // whose c channels lie in w; the output and residual pixel `pix` hold c
                // floats (asserted lengths).
                unsafe {
                    pixel(&raw, &offs, pix, vact);
                    if vact.is_none() {
                        activation(a.act, std::slice::from_raw_parts_mut(raw.y.add(pix), c));
                    }
                }
            }
        }
    }
}

/// Raw views of the operands (lengths asserted by [`dwconv_16c`]).
#[derive(Clone, Copy)]
struct Raw {
    x: *const f32,
    w: *const f32,
    b: *const f32,
    res: Option<*const f32>,
    y: *mut f32,
    c: usize,
}

/// One output pixel: all its channels.
///
/// # Safety
/// As described at the call site.
#[inline(always)]
unsafe fn pixel(raw: &Raw, offs: &[(usize, usize)], pix: usize, vact: Option<VecAct>) {
    let Raw { x, w, b, res, y, c } = *raw;
    let finish = |mut acc: F32x4, ch: usize| -> F32x4 {
        if let Some(r) = res {
            // SAFETY: channel ch..ch+4 of the residual pixel exists (caller).
            acc = v::add(acc, unsafe { v::load(r.add(pix + ch)) });
        }
        match vact {
            Some(va) => va.apply(acc),
            None => acc,
        }
    };
    let mut ch = 0;
    // SAFETY: channel blocks stay below c; offsets per caller contract.
    unsafe {
        while ch + CB <= c {
            let mut acc: [F32x4; 4] = std::array::from_fn(|q| v::load(b.add(ch + 4 * q)));
            for &(xo, wo) in offs {
                for (q, s) in acc.iter_mut().enumerate() {
                    let at = ch + 4 * q;
                    *s = v::mul_add(*s, v::load(x.add(xo + at)), v::load(w.add(wo + at)));
                }
            }
            for (q, &s) in acc.iter().enumerate() {
                v::store(y.add(pix + ch + 4 * q), finish(s, ch + 4 * q));
            }
            ch += CB;
        }
        while ch + 4 <= c {
            let mut s = v::load(b.add(ch));
            for &(xo, wo) in offs {
                s = v::mul_add(s, v::load(x.add(xo + ch)), v::load(w.add(wo + ch)));
            }
            v::store(y.add(pix + ch), finish(s, ch));
            ch += 4;
        }
        for ch in ch..c {
            let mut s = *b.add(ch);
            for &(xo, wo) in offs {
                s += *x.add(xo + ch) * *w.add(wo + ch);
            }
            if let Some(r) = res {
                s += *r.add(pix + ch);
            }
            if let Some(va) = vact {
                s = va.apply1(s);
            }
            *y.add(pix + ch) = s;
        }
    }
}
