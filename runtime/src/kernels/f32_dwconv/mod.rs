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

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The depthwise kernels, best first (see [`super::registry::select`]); the `generic` twins
/// (every pixel on the per-pixel path) are for tests and benchmarks.
pub static DWCONV: &[Entry<DwConvFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_dwconv::avx512::dwconv_16c, needs = [Avx512f]),
    #[cfg(target_arch = "x86_64")]
    kernel!(
        f32_dwconv::avx512::dwconv_generic_16c,
        needs = [Avx512f],
        twin_of = dwconv_16c
    ),
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_dwconv::avx2::dwconv_8c, needs = [Avx2, Fma]),
    #[cfg(target_arch = "x86_64")]
    kernel!(
        f32_dwconv::avx2::dwconv_generic_8c,
        needs = [Avx2, Fma],
        twin_of = dwconv_8c
    ),
    #[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
    kernel!(f32_dwconv::neon::dwconv_16c, needs = [Neon]),
    kernel!(f32_dwconv::scalar::dwconv_generic),
];
