//! f32 pooling on NHWC: max and average windows, global average.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod scalar;

pub use super::f32_conv::ConvGeom;

/// Max pool; `x` is `[n,h,w,c]`, `y` is `[n,oh,ow,c]` (uses `g.o == g.c`).
pub type MaxPoolFn = fn(g: &ConvGeom, x: &[f32], y: &mut [f32]);

/// Average pool; with `count_include_pad` the divisor is `kh*kw`, else the in-bounds taps.
pub type AvgPoolFn = fn(g: &ConvGeom, count_include_pad: bool, x: &[f32], y: &mut [f32]);

/// Global average: `x` is `[n, hw, c]`, `y` is `[n, c]`.
pub type GlobalAvgFn = fn(n: usize, hw: usize, c: usize, x: &[f32], y: &mut [f32]);

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The max-pool kernels, best first (see [`super::registry::select`]).
pub static MAXPOOL: &[Entry<MaxPoolFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_pool::avx2::maxpool_8c, needs = [Avx2]),
    kernel!(f32_pool::scalar::maxpool),
];

/// The average-pool kernels, best first.
pub static AVGPOOL: &[Entry<AvgPoolFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_pool::avx2::avgpool_8c, needs = [Avx2]),
    kernel!(f32_pool::scalar::avgpool),
];

/// The global-average kernels, best first.
pub static GLOBAL_AVG: &[Entry<GlobalAvgFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_pool::avx2::global_avg_8c, needs = [Avx2]),
    kernel!(f32_pool::scalar::global_avg),
];
