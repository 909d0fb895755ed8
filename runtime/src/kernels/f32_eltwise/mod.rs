//! f32 element-wise kernels: binary ops (same shape, per-channel, strided broadcast rows),
//! activations in place, per-channel affine (BatchNorm).

mod body;
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

pub use super::simd::vectorised;

/// One ISA's instance of the [`body`] kernels, named by its lane count.
macro_rules! eltwise_tier {
    ($(#[$doc:meta])* mod $isa:ident: $simd:ty, #[$feat:meta];
        fn $activation:ident, $binary:ident, $binary_channel:ident;) => {
        $(#[$doc])*
        pub mod $isa {
            use super::{body, scalar};
            use crate::kernels::{Act, BinOp};

            crate::kernels::simd::simd_kernels! { $simd, #[$feat];
                /// Apply `act` to every element in place (see [`super::ActivationFn`]).
                fn $activation(act: Act, x: &mut [f32]) => body::activation,
                    else scalar::activation;
                /// Same-shape binary op (see [`super::BinaryFn`]).
                fn $binary(op: BinOp, a: &[f32], b: &[f32], y: &mut [f32]) => body::binary,
                    else scalar::binary;
                /// Per-channel (channels-last) binary op (see [`super::BinaryChannelFn`]).
                fn $binary_channel(op: BinOp, a: &[f32], b: &[f32], c: usize, swap: bool,
                    y: &mut [f32]) => body::binary_channel, else scalar::binary_channel;
            }
        }
    };
}

eltwise_tier! {
    /// AVX2 + FMA, 8 lanes.
    #[cfg(target_arch = "x86_64")]
    mod avx2: crate::kernels::simd::Avx2, #[target_feature(enable = "avx2,fma")];
    fn activation_8c, binary_8c, binary_channel_8c;
}

eltwise_tier! {
    /// AVX-512F, 16 lanes.
    #[cfg(target_arch = "x86_64")]
    mod avx512: crate::kernels::simd::Avx512, #[target_feature(enable = "avx512f")];
    fn activation_16c, binary_16c, binary_channel_16c;
}

eltwise_tier! {
    /// NEON (aarch64 and 32-bit ARM), 4 lanes.
    #[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
    mod neon: crate::kernels::simd::Neon, #[cfg(all())];
    fn activation_4c, binary_4c, binary_channel_4c;
}

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The same-shape binary kernels, best first (see [`super::registry::select`]).
pub static BINARY: &[Entry<BinaryFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_eltwise::avx512::binary_16c, needs = [Avx512f]),
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_eltwise::avx2::binary_8c, needs = [Avx2, Fma]),
    #[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
    kernel!(f32_eltwise::neon::binary_4c, needs = [Neon]),
    kernel!(f32_eltwise::scalar::binary),
];

/// The per-channel binary kernels, best first.
pub static BINARY_CHANNEL: &[Entry<BinaryChannelFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_eltwise::avx512::binary_channel_16c, needs = [Avx512f]),
    #[cfg(target_arch = "x86_64")]
    kernel!(f32_eltwise::avx2::binary_channel_8c, needs = [Avx2, Fma]),
    #[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
    kernel!(f32_eltwise::neon::binary_channel_4c, needs = [Neon]),
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
    #[cfg(any(target_arch = "aarch64", ferrolite_arm_neon))]
    kernel!(f32_eltwise::neon::activation_4c, needs = [Neon]),
    kernel!(f32_eltwise::scalar::activation),
];

/// The per-channel affine kernels, best first.
pub static AFFINE: &[Entry<AffineFn>] = &[kernel!(f32_eltwise::scalar::affine)];
