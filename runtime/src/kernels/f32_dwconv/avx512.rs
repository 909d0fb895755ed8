//! AVX-512 depthwise NHWC convolution, vectorised over channels (16 lanes, up to 4
//! registers per pass, masked channel tail).
//!
//! Each output pixel gathers a list of `(input offset, weight offset)` taps; interior pixels
//! (all taps inside the image) reuse one precomputed list, unrolled at compile time for 3x3
//! and 5x5 kernels, while border pixels build theirs skipping padded taps. Bias starts the
//! accumulators; residual and the cheap activations are applied in registers.

use core::arch::x86_64::*;

use super::ConvArgs;
use crate::kernels::f32_eltwise::scalar::activation;
use crate::kernels::Act;

/// Lanes of a register.
const LANES: usize = 16;
/// Registers (channel vectors) accumulated per pass over the taps.
const REGS: usize = 4;

/// Depthwise convolution for any kernel, stride, dilation and padding; interior pixels of
/// 3x3 and 5x5 kernels take an unrolled fast path.
///
/// Falls back to the scalar kernel when the CPU lacks AVX-512F, so calling it is always
/// sound; [`crate::kernels::for_isa`] only installs it for the `Avx512` tier anyway.
/// Panics (like the scalar kernel) when a slice is too short for the geometry.
pub fn dwconv_16c(a: ConvArgs<'_>) {
    run(a, true)
}

/// Same results as [`dwconv_16c`] without the interior fast path: every pixel builds its tap
/// list (kept public so tests and benchmarks can compare both paths).
pub fn dwconv_generic_16c(a: ConvArgs<'_>) {
    run(a, false)
}

fn run(a: ConvArgs<'_>, fast: bool) {
    if !std::arch::is_x86_feature_detected!("avx512f") {
        return super::scalar::dwconv_generic(a);
    }
    if !check_lengths(&a) {
        return;
    }
    // SAFETY: avx512f was detected just above (the slot invariant of `for_isa` is that this
    // tier is only chosen when `CpuFeatures::supports(Isa::Avx512)`, the check makes the
    // function sound even if called directly). `check_lengths` proved x, w, bias, residual
    // and y cover the full geometry.
    unsafe { dw(a, fast) }
}

/// Assert that every slice covers the geometry; `false` when there is nothing to compute.
fn check_lengths(a: &ConvArgs<'_>) -> bool {
    let g = a.g;
    let prod = |v: &[usize]| {
        v.iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .expect("dwconv: tensor size overflows usize")
    };
    let out = prod(&[g.n, g.oh, g.ow, g.c]);
    if out == 0 {
        return false;
    }
    assert!(
        a.x.len() >= prod(&[g.n, g.h, g.w, g.c]),
        "dwconv: x too short"
    );
    assert!(
        a.w.len() >= prod(&[g.kh, g.kw, g.c]),
        "dwconv: weights too short"
    );
    assert!(a.bias.len() >= g.c, "dwconv: bias too short");
    assert!(a.y.len() >= out, "dwconv: y too short");
    if let Some(r) = a.residual {
        assert!(r.len() >= out, "dwconv: residual too short");
    }
    true
}

/// Output positions `[lo, hi)` along one axis whose taps all fall inside the input.
fn interior(out: usize, s: usize, d: usize, k: usize, pad: usize, size: usize) -> (usize, usize) {
    if s == 0 || k == 0 {
        return (0, 0);
    }
    let ext = (k - 1).saturating_mul(d);
    let limit = size.saturating_add(pad);
    if limit <= ext {
        return (0, 0);
    }
    // Need o*s >= pad and o*s + ext < size + pad.
    let hi = ((limit - ext - 1) / s + 1).min(out);
    (pad.div_ceil(s).min(hi), hi)
}

/// Raw view of the operands (pointers proven in range by [`check_lengths`]).
struct Ops {
    c: usize,
    w: *const f32,
    bias: *const f32,
    residual: Option<*const f32>,
    y: *mut f32,
    act: Act,
}

/// # Safety
/// AVX-512F must be available and `check_lengths(&a)` must have returned `true`.
#[target_feature(enable = "avx512f")]
unsafe fn dw(a: ConvArgs<'_>, fast: bool) {
    let g = *a.g;
    let c = g.c;
    let o = Ops {
        c,
        w: a.w.as_ptr(),
        bias: a.bias.as_ptr(),
        residual: a.residual.map(|r| r.as_ptr()),
        y: a.y.as_mut_ptr(),
        act: a.act,
    };
    let x = a.x.as_ptr();
    let taps_n = g.kh * g.kw;
    // Taps of an interior pixel, relative to its top-left input element.
    let full: Vec<(usize, usize)> = (0..g.kh)
        .flat_map(|ky| (0..g.kw).map(move |kx| (ky, kx)))
        .map(|(ky, kx)| ((ky * g.dh * g.w + kx * g.dw) * c, (ky * g.kw + kx) * c))
        .collect();
    let mut taps: Vec<(usize, usize)> = Vec::with_capacity(taps_n);
    let (oy0, oy1) = interior(g.oh, g.sh, g.dh, g.kh, g.pt, g.h);
    let (ox0, ox1) = interior(g.ow, g.sw, g.dw, g.kw, g.pl, g.w);
    for n in 0..g.n {
        for oy in 0..g.oh {
            let row_inside = fast && (oy0..oy1).contains(&oy);
            let mut ox = 0;
            while ox < g.ow {
                let pix = (n * g.oh + oy) * g.ow + ox;
                if row_inside && (ox0..ox1).contains(&ox) {
                    // Two adjacent interior pixels share each weight load.
                    let pair = ox + 1 < ox1;
                    let (iy, ix) = (oy * g.sh - g.pt, ox * g.sw - g.pl);
                    // SAFETY: interior pixels' taps are all inside image n, so every
                    // offset base + p*dx + tap < n*h*w*c for p < 2 when `pair`.
                    unsafe {
                        let base = x.add(((n * g.h + iy) * g.w + ix) * c);
                        let dx = g.sw * c;
                        match (taps_n, pair) {
                            (9, true) => pixel::<9, 2>(&o, base, dx, &full, pix),
                            (9, false) => pixel::<9, 1>(&o, base, dx, &full, pix),
                            (25, true) => pixel::<25, 2>(&o, base, dx, &full, pix),
                            (25, false) => pixel::<25, 1>(&o, base, dx, &full, pix),
                            (_, true) => pixel::<0, 2>(&o, base, dx, &full, pix),
                            (_, false) => pixel::<0, 1>(&o, base, dx, &full, pix),
                        }
                    }
                    ox += 1 + usize::from(pair);
                } else {
                    taps.clear();
                    for ky in 0..g.kh {
                        let Some(iy) = g.in_y(oy, ky) else { continue };
                        for kx in 0..g.kw {
                            let Some(ix) = g.in_x(ox, kx) else { continue };
                            taps.push((((n * g.h + iy) * g.w + ix) * c, (ky * g.kw + kx) * c));
                        }
                    }
                    // SAFETY: in_y/in_x return iy < h, ix < w, so the offsets are in x.
                    unsafe { pixel::<0, 1>(&o, x, 0, &taps, pix) };
                    ox += 1;
                }
            }
        }
    }
}

/// All channels of the `P` output pixels `pix..pix+P` from the taps `(x offset from
/// xb + p*dx, weight offset)`; `T > 0` fixes the tap count at compile time.
///
/// # Safety
/// As [`dw`]; every `xb + p*dx + tap.0 .. + c` must be inside x, `pix + P <= n*oh*ow`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn pixel<const T: usize, const P: usize>(
    o: &Ops,
    xb: *const f32,
    dx: usize,
    taps: &[(usize, usize)],
    pix: usize,
) {
    let taps = if T > 0 { &taps[..T] } else { taps };
    let c = o.c;
    let mut ch = 0;
    // SAFETY: every block covers channels ch..ch+width <= c (forwarded contract).
    unsafe {
        while ch + REGS * LANES <= c {
            block::<REGS, false, P>(o, xb, dx, taps, pix, ch);
            ch += REGS * LANES;
        }
        match (c - ch) / LANES {
            3 => block::<3, false, P>(o, xb, dx, taps, pix, ch),
            2 => block::<2, false, P>(o, xb, dx, taps, pix, ch),
            1 => block::<1, false, P>(o, xb, dx, taps, pix, ch),
            _ => {}
        }
        ch += (c - ch) / LANES * LANES;
        if ch < c {
            block::<1, true, P>(o, xb, dx, taps, pix, ch);
        }
    }
}

/// Mask selecting the first `w` (0..=16) lanes.
#[inline]
fn lane_mask(w: usize) -> __mmask16 {
    if w >= LANES {
        0xFFFF
    } else {
        (1u16 << w) - 1
    }
}

/// Channels `ch..ch+V*16` (or the `c - ch < 16` tail when `MASKED`) of `P` output pixels.
///
/// # Safety
/// As [`pixel`], with the channel range inside `0..c`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn block<const V: usize, const MASKED: bool, const P: usize>(
    o: &Ops,
    xb: *const f32,
    dx: usize,
    taps: &[(usize, usize)],
    pix: usize,
    ch: usize,
) {
    let width = if MASKED { o.c - ch } else { V * LANES };
    let mask = lane_mask(width.min(LANES));
    // SAFETY (all loads/stores below): lanes touched are channels ch..ch+width < c of a
    // row that holds c channels and lies inside its tensor (caller contract); masked lanes
    // are not accessed.
    let ld = |p: *const f32| unsafe { _mm512_maskz_loadu_ps(mask, p) };
    let mut acc = [[_mm512_setzero_ps(); V]; P];
    for (v, a) in acc[0].iter_mut().enumerate() {
        // SAFETY: see above.
        *a = ld(unsafe { o.bias.add(ch + v * LANES) });
    }
    for p in 1..P {
        acc[p] = acc[0];
    }
    for &(xo, wo) in taps {
        // SAFETY: see above.
        let (xp, wp) = unsafe { (xb.add(xo + ch), o.w.add(wo + ch)) };
        for v in 0..V {
            // SAFETY: see above.
            let wv = ld(unsafe { wp.add(v * LANES) });
            for (p, a) in acc.iter_mut().enumerate() {
                // SAFETY: see above.
                let xv = ld(unsafe { xp.add(p * dx + v * LANES) });
                a[v] = _mm512_fmadd_ps(xv, wv, a[v]);
            }
        }
    }
    for (p, accp) in acc.iter_mut().enumerate() {
        let off = (pix + p) * o.c + ch;
        if let Some(r) = o.residual {
            for (v, a) in accp.iter_mut().enumerate() {
                // SAFETY: see above.
                *a = _mm512_add_ps(*a, ld(unsafe { r.add(off + v * LANES) }));
            }
        }
        store::<V, MASKED>(o, off, width, mask, accp);
    }
}

/// Activation and store of `V` accumulators to `y[off..off+width]`.
///
/// # Safety
/// As [`block`]: `y[off..off+width]` is inside y.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store<const V: usize, const MASKED: bool>(
    o: &Ops,
    off: usize,
    width: usize,
    mask: __mmask16,
    acc: &[__m512; V],
) {
    let vec_act = vectorised(o.act);
    for (v, a) in acc.iter().enumerate() {
        let val = if vec_act { apply_act(o.act, *a) } else { *a };
        // SAFETY: the (masked) lanes are inside y[off..off+width] (caller contract).
        unsafe {
            let dst = o.y.add(off + v * LANES);
            _mm512_mask_storeu_ps(dst, mask, val);
        }
    }
    if !vec_act {
        // SAFETY: y[off..off+width] was just written and is inside y; no other reference to
        // it is live.
        activation(o.act, unsafe {
            std::slice::from_raw_parts_mut(o.y.add(off), width)
        });
    }
}

/// Whether [`apply_act`] handles `act` in registers.
fn vectorised(act: Act) -> bool {
    matches!(
        act,
        Act::None
            | Act::Relu
            | Act::Clip { .. }
            | Act::LeakyRelu { .. }
            | Act::HardSwish
            | Act::HardSigmoid { .. }
            | Act::Abs
            | Act::Neg
    )
}

/// Apply a [`vectorised`] activation with the exact operation order (and NaN behaviour) of
/// the scalar `activation`; other activations return `v` unchanged.
#[target_feature(enable = "avx512f")]
#[inline]
fn apply_act(act: Act, v: __m512) -> __m512 {
    let zero = _mm512_setzero_ps();
    let sign = _mm512_set1_epi32(i32::MIN);
    match act {
        // `max_ps(v, c)` returns `c` for a NaN `v`, as `f32::max` does.
        Act::Relu => _mm512_max_ps(v, zero),
        Act::Clip { min, max } => {
            _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(min)), _mm512_set1_ps(max))
        }
        Act::LeakyRelu { alpha } => {
            let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, zero);
            _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(alpha))
        }
        Act::HardSwish => {
            // `max_ps(c, t)` returns `t` for a NaN `t`, as `f32::clamp` does.
            let t = _mm512_add_ps(v, _mm512_set1_ps(3.0));
            let t = _mm512_min_ps(_mm512_set1_ps(6.0), _mm512_max_ps(zero, t));
            _mm512_mul_ps(_mm512_mul_ps(v, t), _mm512_set1_ps(1.0 / 6.0))
        }
        Act::HardSigmoid { alpha, beta } => {
            let t = _mm512_add_ps(
                _mm512_mul_ps(_mm512_set1_ps(alpha), v),
                _mm512_set1_ps(beta),
            );
            _mm512_min_ps(_mm512_set1_ps(1.0), _mm512_max_ps(zero, t))
        }
        Act::Abs => _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(v))),
        Act::Neg => _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), sign)),
        _ => v,
    }
}
