//! int8 depthwise 2-D convolution on NHWC unsigned 8-bit activations (groups == channels ==
//! outputs), signed 8-bit weights packed `[kh*kw][c]` ([`pack_weights`]), int32 accumulation
//! and [`crate::kernels::requant`]'s output rule.
//!
//! Padding taps read as the input zero point, so they contribute nothing:
//! `acc[c] = bias[c] + Σ_valid taps (x - x_zero_point) · w`.

pub mod scalar;

pub use super::f32_conv::ConvGeom;
use super::requant::Requant;

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
