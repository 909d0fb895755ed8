//! f32 layer normalization over one strided row (the normalized axis may be innermost in
//! memory or not).

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod scalar;

/// `y[i*sy] = (x[i*sx] - mean) / sqrt(var + eps) * scale[i] + shift[i]` for `i < n`, with
/// the mean and the biased variance of the `n` values of the row.
pub type LayerNormFn = fn(
    n: usize,
    x: &[f32],
    sx: usize,
    scale: &[f32],
    shift: &[f32],
    eps: f32,
    y: &mut [f32],
    sy: usize,
);

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The layer-normalization kernels, best first (see [`super::registry::select`]).
pub static LAYER_NORM: &[Entry<LayerNormFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_norm::avx512::layer_norm_16c, needs = [Avx512f]),
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_norm::avx2::layer_norm_8c, needs = [Avx2, Fma]),
    kernel!(f32_norm::scalar::layer_norm_strided),
];
