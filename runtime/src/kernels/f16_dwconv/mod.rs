//! Depthwise 2-D convolution on NHWC with fp16 weights (an fp16 bundle's depthwise
//! weights, kept in half precision): f32 input, bias, residual and output. Weights are
//! packed `[kh*kw][c]` ([`pack_weights`]) so every tap is a contiguous channel vector.

#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

pub use super::f16_gemm::f16;
pub use super::f32_conv::ConvGeom;
use super::Act;

/// Arguments of an f16-weight depthwise convolution (groups == channels == outputs).
pub struct F16DwArgs<'a> {
    pub g: &'a ConvGeom,
    /// Input, NHWC.
    pub x: &'a [f32],
    /// Weights packed by [`pack_weights`].
    pub w: &'a [f16],
    /// Bias of length `c` (zeros when the op has none).
    pub bias: &'a [f32],
    /// Optional residual with the output's geometry, added before `act`.
    pub residual: Option<&'a [f32]>,
    /// Output, NHWC.
    pub y: &'a mut [f32],
    pub act: Act,
}

/// Signature of an f16-weight depthwise kernel.
pub type F16DwConvFn = fn(F16DwArgs<'_>);

/// Pack depthwise OIHW weights (`[c][1][kh][kw]`) into `[kh*kw][c]`.
pub fn pack_weights(g: &ConvGeom, oihw: &[f16]) -> Vec<f16> {
    let taps = g.kh * g.kw;
    let mut out = vec![f16::ZERO; oihw.len()];
    for ch in 0..g.c {
        for t in 0..taps {
            out[t * g.c + ch] = oihw[ch * taps + t];
        }
    }
    out
}

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The f16-weight depthwise kernels, best first (see [`super::registry::select`]): the
/// fp16-arithmetic ones need FEAT_FP16.
pub static DWCONV: &[Entry<F16DwConvFn>] = &[
    #[cfg(target_arch = "aarch64")]
    kernel!(f16_dwconv::neon::dwconv_16c, needs = [Neon, Fp16]),
    kernel!(f16_dwconv::scalar::dwconv_generic),
];
