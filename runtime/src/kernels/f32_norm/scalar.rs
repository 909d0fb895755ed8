//! Portable layer normalization: mean, then the variance of the deviations (two passes, so
//! rows with a large mean keep their precision), then the scaled and shifted output.

/// Layer normalization of one strided row (see [`super::LayerNormFn`]).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_strided(
    n: usize,
    x: &[f32],
    sx: usize,
    scale: &[f32],
    shift: &[f32],
    eps: f32,
    y: &mut [f32],
    sy: usize,
) {
    if n == 0 {
        return;
    }
    let mut sum = 0.0f32;
    for i in 0..n {
        sum += x[i * sx];
    }
    let mean = sum / n as f32;
    let mut sq = 0.0f32;
    for i in 0..n {
        let d = x[i * sx] - mean;
        sq += d * d;
    }
    let inv = 1.0 / (sq / n as f32 + eps).sqrt();
    for i in 0..n {
        y[i * sy] = (x[i * sx] - mean) * inv * scale[i] + shift[i];
    }
}
