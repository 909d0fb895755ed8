//! f32 -> 8-bit conversion at a model's input (per-tensor quantization):
//! `q = clamp(round_half_to_even(x / scale) + zero_point, lo, hi)`, stored as bytes (`i8`
//! values two's complement). The division is one IEEE f32 division, so every tier gives
//! the same bytes. SIMD tiers: `avx2` (x86-64) and `neon` (aarch64).

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

/// Signature of a quantize kernel; `lo`/`hi` are the type bounds (0/255 or -128/127) and
/// `y.len() >= x.len()`.
pub type QuantizeFn = fn(x: &[f32], scale: f32, zero_point: i32, lo: i32, hi: i32, y: &mut [u8]);

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The quantize kernels, best first (see [`super::registry::select`]).
pub static QUANTIZE: &[Entry<QuantizeFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(qs8_convert::avx2::quantize_8x, needs = [Avx2]),
    #[cfg(target_arch = "aarch64")]
    kernel!(qs8_convert::neon::quantize_16x, needs = [Neon]),
    kernel!(qs8_convert::scalar::quantize),
];
