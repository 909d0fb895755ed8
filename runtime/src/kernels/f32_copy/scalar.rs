//! Portable strided copy (generic over the element, so 8-bit tensors move through it too).

/// Strided row copy; contiguous rows become a `memcpy`.
pub fn copy_strided<T: Copy>(n: usize, x: &[T], sx: usize, y: &mut [T], sy: usize) {
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

/// Interleave two strided row sets: for each of `pixels` rows, `y[p*sy + 2j + h]` takes
/// `a[p*sa + j]` (`h = 0`) and `b[p*sb + j]` (`h = 1`) for `j < n`. A two-group channel
/// shuffle on channels-last data is this with `a`, `b` the two channel halves.
#[allow(clippy::too_many_arguments)]
pub fn interleave2<T: Copy>(
    pixels: usize,
    n: usize,
    a: &[T],
    sa: usize,
    b: &[T],
    sb: usize,
    y: &mut [T],
    sy: usize,
) {
    for p in 0..pixels {
        let (ar, br) = (&a[p * sa..][..n], &b[p * sb..][..n]);
        for (j, pair) in y[p * sy..][..2 * n].chunks_exact_mut(2).enumerate() {
            pair[0] = ar[j];
            pair[1] = br[j];
        }
    }
}

/// Planar to interleaved: `y[p*c + ch] = x[ch*pixels + p]` for pixels `p` in `range` of one
/// image (an NCHW model input stored NHWC); `y` starts at pixel `range.start`.
pub fn planar_to_interleaved(
    c: usize,
    pixels: usize,
    range: std::ops::Range<usize>,
    x: &[f32],
    y: &mut [f32],
) {
    let y = &mut y[..range.len() * c];
    match c {
        1 => y.copy_from_slice(&x[range]),
        3 => {
            let (r, g, b) = (
                &x[range.clone()],
                &x[pixels..][range.clone()],
                &x[2 * pixels..],
            );
            let b = &b[range];
            for (((o, &r), &g), &b) in y.chunks_exact_mut(3).zip(r).zip(g).zip(b) {
                o[0] = r;
                o[1] = g;
                o[2] = b;
            }
        }
        _ => {
            for (i, o) in y.chunks_exact_mut(c).enumerate() {
                for (ch, v) in o.iter_mut().enumerate() {
                    *v = x[ch * pixels + range.start + i];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::planar_to_interleaved;

    /// Every channel count path against the index formula, on a sub-range of pixels.
    #[test]
    fn planar_to_interleaved_matches_the_formula() {
        for c in [1, 3, 4] {
            let pixels = 37;
            let x: Vec<f32> = (0..c * pixels).map(|i| i as f32).collect();
            for range in [0..pixels, 5..23, 36..37] {
                let mut y = vec![-1.0; range.len() * c];
                planar_to_interleaved(c, pixels, range.clone(), &x, &mut y);
                for (i, p) in range.clone().enumerate() {
                    for ch in 0..c {
                        assert_eq!(y[i * c + ch], x[ch * pixels + p], "c {c} pixel {p}");
                    }
                }
            }
        }
    }
}
