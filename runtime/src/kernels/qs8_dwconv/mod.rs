//! int8 depthwise 2-D convolution on NHWC unsigned 8-bit activations (groups == channels ==
//! outputs), signed 8-bit weights packed `[kh*kw][c]` ([`pack_weights`]), int32 accumulation
//! and [`crate::kernels::requant`]'s output rule.
//!
//! Padding taps read as the input zero point, so they contribute nothing:
//! `acc[c] = bias[c] + Σ_valid taps (x - x_zero_point) · w`.
//!
//! The SIMD tiers ([`avx2`], [`avx512`]) compute the same sum in another exact form: every
//! tap, padding included, reads a byte (the padding ones read the zero point), and
//! `x_zero_point · Σ_all taps w` is subtracted from the bias once per call, which equals the
//! scalar sum modulo 2^32. They interleave 2 (AVX2, `vpmaddwd`) or 4 (VNNI, `vpdpbusd`)
//! taps per 32-bit lane, and repack the `[kh*kw][c]` weights into that order at each call
//! (a few microseconds at most; see the module docs of the tiers).

#[cfg(target_arch = "x86_64")]
macro_rules! unroll {
    ($j:ident < $n:expr => $body:block) => {
        unroll!(@ $j < $n => $body;
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23)
    };
    (@ $j:ident < $n:expr => $body:block; $($i:literal)*) => {
        $({
            const $j: usize = $i;
            if $j < $n $body
        })*
    };
}

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

pub use super::f32_conv::ConvGeom;
use super::requant::Requant;

/// Largest tile width (input columns of one tile) that `unroll!` expands: the SIMD tiers
/// assert their tile shapes against it at compile time.
#[cfg(target_arch = "x86_64")]
const UNROLL_MAX: usize = 24;

/// Arguments of a quantized depthwise call. `x` is `[n,h,w,c]`, `y` is `[n,oh,ow,c]`.
pub struct QDwArgs<'a> {
    pub g: &'a ConvGeom,
    pub x: &'a [u8],
    pub x_zero_point: i32,
    /// Packed `[kh*kw][c]`.
    pub w: &'a [i8],
    /// Length `c`.
    pub bias: &'a [i32],
    /// Per channel: `input scale * weight scale[c] / output scale`.
    pub scale: &'a [f32],
    pub rq: Requant,
    pub y: &'a mut [u8],
}

/// Signature of a quantized depthwise kernel.
pub type QDwConvFn = fn(QDwArgs<'_>);

/// Pack depthwise OIHW weights (`[c][1][kh][kw]`) into `[kh*kw][c]`.
pub fn pack_weights(g: &ConvGeom, oihw: &[i8]) -> Vec<i8> {
    let taps = g.kh * g.kw;
    let mut out = vec![0; oihw.len()];
    for ch in 0..g.c {
        for t in 0..taps {
            out[t * g.c + ch] = oihw[ch * taps + t];
        }
    }
    out
}

/// Assert that every slice covers its geometry; `false` when there is nothing to compute.
pub fn check_lengths(a: &QDwArgs<'_>) -> bool {
    let g = a.g;
    let prod = |v: &[usize]| {
        v.iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .expect("qdwconv: tensor size overflows usize")
    };
    let out = prod(&[g.n, g.oh, g.ow, g.c]);
    if out == 0 {
        return false;
    }
    assert!(g.o == g.c, "qdwconv: outputs must equal channels");
    assert!(
        a.x.len() >= prod(&[g.n, g.h, g.w, g.c]),
        "qdwconv: x too short"
    );
    assert!(
        a.w.len() >= prod(&[g.kh, g.kw, g.c]),
        "qdwconv: weights too short"
    );
    assert!(a.bias.len() >= g.c, "qdwconv: bias too short");
    assert!(a.scale.len() >= g.c, "qdwconv: scale too short");
    assert!(a.y.len() >= out, "qdwconv: y too short");
    true
}

/// Whether the SIMD kernels give the scalar kernel's bytes for these arguments; they fall
/// back to it otherwise. Needs both zero points in `0..=255` (padding taps read the input
/// zero point as a byte) and clamp bounds that are not NaN and keep every rounded value
/// plus the output zero point inside `0..=255` (the SIMD pack saturates where the scalar
/// cast wraps). Every [`Requant::new`] with a zero point in `0..=255` qualifies.
pub fn simd_exact(a: &QDwArgs<'_>) -> bool {
    let (zp, rq) = (a.x_zero_point, a.rq);
    if !(0..=255).contains(&zp) || !(0..=255).contains(&rq.zero_point) {
        return false;
    }
    if rq.lo.is_nan() || rq.hi.is_nan() {
        return false;
    }
    // The clamped value lies in [min(lo, hi), hi] (hi wins when lo > hi).
    let ozp = rq.zero_point as f32;
    let low = rq.lo.min(rq.hi).round_ties_even() + ozp;
    let high = rq.hi.round_ties_even() + ozp;
    low >= 0.0 && high <= 255.0
}

/// Run `f` on a copy of `a` with the channels padded to `width` (zero weights, bias and
/// scale in the extra channels), then copy the first `g.c` channels of each output pixel
/// to `a.y`: the SIMD kernels' path for fewer channels than one block. The caller has
/// checked the lengths and [`simd_exact`].
#[cfg(target_arch = "x86_64")]
fn pad_channels(a: QDwArgs<'_>, width: usize, f: QDwConvFn) {
    let g = *a.g;
    let c = g.c;
    debug_assert!(c < width);
    let gp = ConvGeom {
        c: width,
        o: width,
        groups: width,
        ..g
    };
    let pad = |src: &[u8], pixels: usize, fill: u8| {
        let mut out = vec![fill; pixels * width];
        for (d, s) in out.chunks_exact_mut(width).zip(src.chunks_exact(c)) {
            d[..c].copy_from_slice(s);
        }
        out
    };
    let x = pad(a.x, g.n * g.h * g.w, a.x_zero_point as u8);
    let taps = g.kh * g.kw;
    let mut w = vec![0i8; taps * width];
    for (d, s) in w
        .chunks_exact_mut(width)
        .zip(a.w.chunks_exact(c))
        .take(taps)
    {
        d[..c].copy_from_slice(s);
    }
    let mut bias = vec![0i32; width];
    bias[..c].copy_from_slice(&a.bias[..c]);
    let mut scale = vec![0f32; width];
    scale[..c].copy_from_slice(&a.scale[..c]);
    let pixels = g.n * g.oh * g.ow;
    let mut y = vec![0u8; pixels * width];
    f(QDwArgs {
        g: &gp,
        x: &x,
        x_zero_point: a.x_zero_point,
        w: &w,
        bias: &bias,
        scale: &scale,
        rq: a.rq,
        y: &mut y,
    });
    for (d, s) in
        a.y.chunks_exact_mut(c)
            .zip(y.chunks_exact(width))
            .take(pixels)
    {
        d.copy_from_slice(&s[..c]);
    }
}

/// Hide a value from the optimiser (no instruction is emitted). Stepping a tile's column
/// offset as `off = opaque(off + c)` keeps it in one register: otherwise LLVM precomputes
/// every `j * c` of the unrolled column loop as a separate value and spills them. Not
/// `pure`, so that two calls on the same value are not merged: the two halves of a block
/// read the same input bytes, and LLVM would otherwise keep (spill) the first half's loads
/// for the second instead of loading again.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn opaque(mut v: usize) -> usize {
    // SAFETY: an empty template that only claims to redefine the register holding `v`; it
    // touches no memory, flags or stack.
    unsafe {
        core::arch::asm!("/* {0} */", inout(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The int8 depthwise kernels, best first (see [`super::registry::select`]): VNNI where the
/// CPU has it, else AVX2; the `generic` twins (no tiled path) are for tests and benchmarks.
pub static DWCONV: &[Entry<QDwConvFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(
        qs8_dwconv::avx512::qdwconv_64c,
        needs = [Avx512f, Avx512bw, Avx512vnni]
    ),
    #[cfg(target_arch = "x86_64")]
    kernel!(
        qs8_dwconv::avx512::qdwconv_generic_64c,
        needs = [Avx512f, Avx512bw, Avx512vnni],
        twin_of = qdwconv_64c
    ),
    #[cfg(target_arch = "x86_64")]
    kernel!(qs8_dwconv::avx2::qdwconv_32c, needs = [Avx2]),
    #[cfg(target_arch = "x86_64")]
    kernel!(
        qs8_dwconv::avx2::qdwconv_generic_32c,
        needs = [Avx2],
        twin_of = qdwconv_32c
    ),
    #[cfg(target_arch = "aarch64")]
    kernel!(qs8_dwconv::neon::qdwconv_8c, needs = [Neon]),
    kernel!(qs8_dwconv::scalar::qdwconv_generic),
];
