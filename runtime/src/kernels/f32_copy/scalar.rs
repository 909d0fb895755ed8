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
