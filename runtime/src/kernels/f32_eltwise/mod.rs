//! f32 element-wise kernels: binary ops (same shape, per-channel, strided broadcast rows),
//! activations in place, per-channel affine (BatchNorm).

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod scalar;

use super::{Act, BinOp};

/// `y[i] = a[i] op b[i]` over equal-length slices.
pub type BinaryFn = fn(op: BinOp, a: &[f32], b: &[f32], y: &mut [f32]);

/// Channels-last broadcast: `y[p*c + j] = a[p*c + j] op b[j]`, or `b[j] op a[p*c + j]`
/// when `swap` (the per-channel operand is the left one).
pub type BinaryChannelFn = fn(op: BinOp, a: &[f32], b: &[f32], c: usize, swap: bool, y: &mut [f32]);

/// One strided row: `y[i*sy] = a[i*sa] op b[i*sb]` for `i < n` (strides may be 0).
pub type BinaryStridedFn =
    fn(op: BinOp, n: usize, a: &[f32], sa: usize, b: &[f32], sb: usize, y: &mut [f32], sy: usize);

/// Apply an activation in place.
pub type ActivationFn = fn(act: Act, x: &mut [f32]);

/// `y = x * scale[ch] + shift[ch]` where the channel of flat index `i` is
/// `(i / inner) % c` (`inner == 1` for channels-last).
pub type AffineFn =
    fn(x: &[f32], scale: &[f32], shift: &[f32], c: usize, inner: usize, y: &mut [f32]);

/// Whether the SIMD tiers' `apply_act` computes `act` in registers (the others fall back to
/// [`scalar::activation`] on the stored values).
pub fn vectorised(act: Act) -> bool {
    matches!(
        act,
        Act::None
            | Act::Relu
            | Act::Clip { .. }
            | Act::LeakyRelu { .. }
            | Act::HardSwish
            | Act::HardSigmoid { .. }
            | Act::Abs
            | Act::Neg
            | Act::Sigmoid
            | Act::Silu
    )
}

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The same-shape binary kernels, best first (see [`super::registry::select`]).
pub static BINARY: &[Entry<BinaryFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_eltwise::avx512::binary_16c, needs = [Avx512f]),
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_eltwise::avx2::binary_8c, needs = [Avx2, Fma]),
    kernel!(f32_eltwise::scalar::binary),
];

/// The per-channel binary kernels, best first.
pub static BINARY_CHANNEL: &[Entry<BinaryChannelFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_eltwise::avx512::binary_channel_16c, needs = [Avx512f]),
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_eltwise::avx2::binary_channel_8c, needs = [Avx2, Fma]),
    kernel!(f32_eltwise::scalar::binary_channel),
];

/// The strided-row binary kernels, best first.
pub static BINARY_STRIDED: &[Entry<BinaryStridedFn>] =
    &[kernel!(f32_eltwise::scalar::binary_strided)];

/// The in-place activation kernels, best first.
pub static ACTIVATION: &[Entry<ActivationFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_eltwise::avx512::activation_16c, needs = [Avx512f]),
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_eltwise::avx2::activation_8c, needs = [Avx2, Fma]),
    kernel!(f32_eltwise::scalar::activation),
];

/// The per-channel affine kernels, best first.
pub static AFFINE: &[Entry<AffineFn>] = &[kernel!(f32_eltwise::scalar::affine)];
