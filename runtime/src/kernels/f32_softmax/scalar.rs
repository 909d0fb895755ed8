//! Portable numerically stable softmax.

/// Softmax of one strided row (see [`super::SoftmaxFn`]).
pub fn softmax_strided(n: usize, x: &[f32], sx: usize, y: &mut [f32], sy: usize) {
    if n == 0 {
        return;
    }
    let mut max = f32::NEG_INFINITY;
    for i in 0..n {
        max = max.max(x[i * sx]);
    }
    let mut sum = 0.0f32;
    for i in 0..n {
        let e = (x[i * sx] - max).exp();
        y[i * sy] = e;
        sum += e;
    }
    let inv = 1.0 / sum;
    for i in 0..n {
        y[i * sy] *= inv;
    }
}
