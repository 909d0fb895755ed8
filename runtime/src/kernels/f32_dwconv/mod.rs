//! f32 depthwise 2-D convolution on NHWC (groups == channels == outputs), weights packed
//! `[kh*kw][c]` ([`pack_weights`]) so every tap is a contiguous channel vector.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
pub mod neon;
pub mod scalar;

pub use super::f32_conv::{ConvArgs, ConvGeom};

/// Signature of a depthwise kernel.
pub type DwConvFn = fn(ConvArgs<'_>);

/// Pack depthwise OIHW weights (`[c][1][kh][kw]`) into `[kh*kw][c]`.
pub fn pack_weights(g: &ConvGeom, oihw: &[f32]) -> Vec<f32> {
    let taps = g.kh * g.kw;
    let mut out = vec![0.0; oihw.len()];
    for ch in 0..g.c {
        for t in 0..taps {
            out[t * g.c + ch] = oihw[ch * taps + t];
        }
    }
    out
}
