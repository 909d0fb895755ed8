//! Portable strided copy.

/// Strided row copy; contiguous rows become a `memcpy`.
pub fn copy_strided(n: usize, x: &[f32], sx: usize, y: &mut [f32], sy: usize) {
    if n == 0 {
        return;
    }
    if sx == 1 && sy == 1 {
        y[..n].copy_from_slice(&x[..n]);
    } else if sy == 1 {
        for (i, v) in y[..n].iter_mut().enumerate() {
            *v = x[i * sx];
        }
    } else {
        for i in 0..n {
            y[i * sy] = x[i * sx];
        }
    }
}
