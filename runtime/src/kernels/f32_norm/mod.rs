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
