//! int8 element-wise add and multiply with rescaling (residual sums, squeeze-excite
//! gating), on rows of unsigned 8-bit values:
//! add `t = f32(a - za) * ma + f32(b - zb) * mb`, multiply `t = f32((a - za) * (b - zb)) * ma`,
//! then [`crate::kernels::requant`]'s clamp, rounding and zero point. The product of two
//! 9-bit differences is exact in f32, so every tier gives the same bytes. SIMD tiers: `avx2`
//! (x86-64) and `neon` (aarch64).

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

use super::requant::Requant;

/// Parameters of a quantized add or multiply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QBinary {
    /// Multiply (else add).
    pub mul: bool,
    pub za: i32,
    pub zb: i32,
    /// Add: `sa / sy`; multiply: `sa * sb / sy`.
    pub ma: f32,
    /// Add: `sb / sy`; unused for multiply.
    pub mb: f32,
    pub rq: Requant,
}

/// Signature of a quantized binary kernel: `y[i] = op(a[i], b[i])` for `i < y.len()`
/// (`a` and `b` at least as long).
pub type QBinaryFn = fn(p: &QBinary, a: &[u8], b: &[u8], y: &mut [u8]);

// ---------------------------------------------------------------- registry

use super::registry::{kernel, Entry};

/// The int8 add / multiply kernels, best first (see [`super::registry::select`]).
pub static BINARY: &[Entry<QBinaryFn>] = &[
    #[cfg(target_arch = "x86_64")]
    kernel!(qs8_eltwise::avx2::binary_8x, needs = [Avx2]),
    #[cfg(target_arch = "aarch64")]
    kernel!(qs8_eltwise::neon::binary_16x, needs = [Neon]),
    kernel!(qs8_eltwise::scalar::binary),
];
