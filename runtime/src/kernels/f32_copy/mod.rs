//! f32 data movement: strided row copies driven by [`crate::kernels::walk::Walk`]; used
//! by Concat, Split, Slice, Transpose, ChannelShuffle, Pad, Reshape and layout changes.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod scalar;

use super::walk::Walk;

/// Copy one strided row: `y[i*sy] = x[i*sx]` for `i < n`.
pub type CopyFn = fn(n: usize, x: &[f32], sx: usize, y: &mut [f32], sy: usize);

/// Interleave two strided row sets, `y[p*sy + 2j + h]` from `a[p*sa + j]` / `b[p*sb + j]`
/// (the two-group channel shuffle).
pub type Interleave2Fn = fn(
    pixels: usize,
    n: usize,
    a: &[f32],
    sa: usize,
    b: &[f32],
    sb: usize,
    y: &mut [f32],
    sy: usize,
);

/// Copy a strided view of `src` (starting at `src_off`) into a strided view of `dst`
/// (starting at `dst_off`); `walk` is over `[dst strides, src strides]`.
pub fn copy_view<T>(
    copy: fn(usize, &[T], usize, &mut [T], usize),
    walk: &Walk<2>,
    src: &[T],
    src_off: usize,
    dst: &mut [T],
    dst_off: usize,
) {
    walk.run(|[d, s], n, [sd, ss]| {
        copy(n, &src[src_off + s..], ss, &mut dst[dst_off + d..], sd);
    });
}

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The strided row-copy kernels, best first (see [`super::registry::select`]).
pub static COPY: &[Entry<CopyFn>] = &[kernel!(f32_copy::scalar::copy_strided)];

/// The two-way interleave kernels, best first.
pub static INTERLEAVE2: &[Entry<Interleave2Fn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_copy::avx2::interleave2_8c, needs = [Avx2]),
    kernel!(f32_copy::scalar::interleave2),
];
