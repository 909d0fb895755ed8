//! The few NEON vector operations the f32 kernels use, under one name for aarch64 and
//! 32-bit ARM (whose intrinsics differ: no fused multiply-add without VFPv4, no `maxnm`).
//! Every function is a thin wrapper, inlined into its caller.

#[cfg(target_arch = "aarch64")]
pub use core::arch::aarch64::float32x4_t as F32x4;
#[cfg(target_arch = "aarch64")]
use core::arch::aarch64::int32x4_t as I32x4;
#[cfg(target_arch = "aarch64")]
use core::arch::aarch64::*;
#[cfg(target_arch = "arm")]
pub use core::arch::arm::float32x4_t as F32x4;
#[cfg(target_arch = "arm")]
use core::arch::arm::int32x4_t as I32x4;
#[cfg(target_arch = "arm")]
use core::arch::arm::*;

/// Loads four floats.
///
/// # Safety
/// `p..p+4` must be readable.
#[inline(always)]
pub unsafe fn load(p: *const f32) -> F32x4 {
    // SAFETY: caller contract.
    unsafe { vld1q_f32(p) }
}

/// Stores four floats.
///
/// # Safety
/// `p..p+4` must be writable.
#[inline(always)]
pub unsafe fn store(p: *mut f32, v: F32x4) {
    // SAFETY: caller contract.
    unsafe { vst1q_f32(p, v) }
}

/// Broadcasts the float at `p`.
///
/// # Safety
/// `p` must be readable.
#[inline(always)]
pub unsafe fn load_dup(p: *const f32) -> F32x4 {
    // SAFETY: caller contract.
    unsafe { vld1q_dup_f32(p) }
}

/// `[x; 4]`.
#[inline(always)]
pub fn splat(x: f32) -> F32x4 {
    // SAFETY: NEON is part of the target (aarch64 baseline; armv7 builds enable it).
    unsafe { vdupq_n_f32(x) }
}

/// `acc + a * b` (fused on aarch64; multiply then add on 32-bit ARM).
#[inline(always)]
pub fn mul_add(acc: F32x4, a: F32x4, b: F32x4) -> F32x4 {
    // SAFETY: NEON is part of the target.
    unsafe {
        #[cfg(target_arch = "aarch64")]
        {
            vfmaq_f32(acc, a, b)
        }
        #[cfg(target_arch = "arm")]
        {
            vmlaq_f32(acc, a, b)
        }
    }
}

/// `a + b`.
#[inline(always)]
pub fn add(a: F32x4, b: F32x4) -> F32x4 {
    // SAFETY: NEON is part of the target.
    unsafe { vaddq_f32(a, b) }
}

/// `a * b`.
#[inline(always)]
pub fn mul(a: F32x4, b: F32x4) -> F32x4 {
    // SAFETY: NEON is part of the target.
    unsafe { vmulq_f32(a, b) }
}

/// Lane-wise maximum; on aarch64 a NaN lane yields the other operand, as `f32::max`.
#[inline(always)]
pub fn max(a: F32x4, b: F32x4) -> F32x4 {
    // SAFETY: NEON is part of the target.
    unsafe {
        #[cfg(target_arch = "aarch64")]
        {
            vmaxnmq_f32(a, b)
        }
        #[cfg(target_arch = "arm")]
        {
            vmaxq_f32(a, b)
        }
    }
}

/// Lane-wise minimum; on aarch64 a NaN lane yields the other operand, as `f32::min`.
#[inline(always)]
pub fn min(a: F32x4, b: F32x4) -> F32x4 {
    // SAFETY: NEON is part of the target.
    unsafe {
        #[cfg(target_arch = "aarch64")]
        {
            vminnmq_f32(a, b)
        }
        #[cfg(target_arch = "arm")]
        {
            vminq_f32(a, b)
        }
    }
}

/// Loads `len` floats (`1..=4`) into the low lanes, zeros above (channel tails).
///
/// # Safety
/// `p..p+len` must be readable.
#[inline(always)]
pub unsafe fn load_partial(p: *const f32, len: usize) -> F32x4 {
    debug_assert!((1..=4).contains(&len));
    let mut buf = [0f32; 4];
    // SAFETY: caller contract; `buf` holds 4 >= len floats.
    unsafe {
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), len.min(4));
        load(buf.as_ptr())
    }
}

/// Stores the low `len` lanes (`1..=4`) of `v` (channel tails).
///
/// # Safety
/// `p..p+len` must be writable.
#[inline(always)]
pub unsafe fn store_partial(p: *mut f32, v: F32x4, len: usize) {
    debug_assert!((1..=4).contains(&len));
    let mut buf = [0f32; 4];
    // SAFETY: caller contract; `buf` holds 4 >= len floats.
    unsafe {
        store(buf.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, len.min(4));
    }
}

/// `v` clamped to `[lo, hi]`, a NaN lane staying NaN as with `f32::clamp`.
#[inline(always)]
fn clamp_nan(v: F32x4, lo: F32x4, hi: F32x4) -> F32x4 {
    // SAFETY: NEON is part of the target. `vmaxq`/`vminq` return NaN for a NaN operand.
    unsafe { vminq_f32(vmaxq_f32(v, lo), hi) }
}

/// `x < 0 ? x * alpha : x` per lane.
#[inline(always)]
fn leaky_relu(x: F32x4, alpha: f32) -> F32x4 {
    // SAFETY: NEON is part of the target.
    unsafe { vbslq_f32(vcltq_f32(x, splat(0.0)), mul(x, splat(alpha)), x) }
}

/// Nearest integer of each lane, as integers and as floats (ties may go either way; only
/// used for range reduction).
#[inline(always)]
fn round_int(x: F32x4) -> (I32x4, F32x4) {
    // SAFETY: NEON is part of the target.
    unsafe {
        #[cfg(target_arch = "aarch64")]
        let n = vcvtnq_s32_f32(x);
        // 32-bit ARM has no rounding conversion: add +-0.5 and truncate.
        #[cfg(target_arch = "arm")]
        let n = {
            let half = vbslq_f32(vcltq_f32(x, splat(0.0)), splat(-0.5), splat(0.5));
            vcvtq_s32_f32(vaddq_f32(x, half))
        };
        (n, vcvtq_f32_s32(n))
    }
}

/// `e^x` per lane: range reduction by `ln 2`, degree-6 Taylor polynomial on
/// `|r| <= ln(2)/2` (relative error about 1.2e-7), scaled by `2^n` built in the exponent
/// bits (the AVX2 kernel's algorithm). Inputs are clamped to the range where the result is a
/// normal float; a NaN lane stays NaN.
#[inline(always)]
pub fn exp(x: F32x4) -> F32x4 {
    // SAFETY: NEON is part of the target.
    unsafe {
        let x = vminq_f32(vmaxq_f32(x, splat(-87.33)), splat(88.37));
        let (ni, n) = round_int(mul(x, splat(std::f32::consts::LOG2_E)));
        // x - n*ln2 in two steps (the high part of ln 2 has few bits, so n*C1 is exact).
        let r = vsubq_f32(x, mul(n, splat(0.693_145_75)));
        let r = vsubq_f32(r, mul(n, splat(1.428_606_8e-6)));
        let mut p = splat(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = mul_add(splat(c), p, r);
        }
        let bits = vshlq_n_s32::<23>(vaddq_s32(ni, vdupq_n_s32(127)));
        mul(p, vreinterpretq_f32_s32(bits))
    }
}

/// `1 / d` per lane: a division on aarch64; on 32-bit ARM (no vector division) the
/// reciprocal estimate refined by two Newton steps (8 -> 16 -> 32 bits).
#[inline(always)]
fn recip(d: F32x4) -> F32x4 {
    // SAFETY: NEON is part of the target.
    unsafe {
        #[cfg(target_arch = "aarch64")]
        {
            vdivq_f32(splat(1.0), d)
        }
        #[cfg(target_arch = "arm")]
        {
            let r = vrecpeq_f32(d);
            let r = vmulq_f32(r, vrecpsq_f32(d, r));
            vmulq_f32(r, vrecpsq_f32(d, r))
        }
    }
}

/// `1 / (1 + e^-x)` per lane (within a few ulp of the scalar sigmoid).
#[inline(always)]
pub fn sigmoid(x: F32x4) -> F32x4 {
    // SAFETY: NEON is part of the target.
    recip(add(splat(1.0), exp(unsafe { vnegq_f32(x) })))
}

/// The activations a kernel applies in registers before storing: ReLU and clamps (ReLU6),
/// LeakyReLU, HardSwish, HardSigmoid, Sigmoid and SiLU. Others are applied by the scalar
/// function on the stored values.
#[derive(Clone, Copy)]
pub enum VecAct {
    None,
    Clamp(f32, f32),
    LeakyRelu(f32),
    HardSwish,
    HardSigmoid(f32, f32),
    Sigmoid,
    Silu,
}

impl VecAct {
    /// The in-register form of `act`, or `None` when it must run after the store.
    pub fn of(act: crate::kernels::Act) -> Option<VecAct> {
        use crate::kernels::Act;
        match act {
            Act::None => Some(VecAct::None),
            Act::Relu => Some(VecAct::Clamp(0.0, f32::INFINITY)),
            Act::Clip { min, max } if !min.is_nan() && !max.is_nan() => {
                Some(VecAct::Clamp(min, max))
            }
            Act::LeakyRelu { alpha } => Some(VecAct::LeakyRelu(alpha)),
            Act::HardSwish => Some(VecAct::HardSwish),
            Act::HardSigmoid { alpha, beta } => Some(VecAct::HardSigmoid(alpha, beta)),
            Act::Sigmoid => Some(VecAct::Sigmoid),
            Act::Silu => Some(VecAct::Silu),
            _ => None,
        }
    }

    /// Applies the activation to four lanes. The piecewise-linear ones keep the operation
    /// order of the scalar activation (no fused multiply-add), so finite results are
    /// bit-identical to it; Sigmoid and SiLU use the polynomial [`exp`] (a few ulp).
    #[inline(always)]
    pub fn apply(self, v: F32x4) -> F32x4 {
        match self {
            VecAct::None => v,
            VecAct::Clamp(lo, hi) => min(max(v, splat(lo)), splat(hi)),
            VecAct::LeakyRelu(alpha) => leaky_relu(v, alpha),
            VecAct::HardSwish => {
                let t = clamp_nan(add(v, splat(3.0)), splat(0.0), splat(6.0));
                mul(mul(v, t), splat(1.0 / 6.0))
            }
            VecAct::HardSigmoid(alpha, beta) => clamp_nan(
                add(mul(splat(alpha), v), splat(beta)),
                splat(0.0),
                splat(1.0),
            ),
            VecAct::Sigmoid => sigmoid(v),
            VecAct::Silu => mul(v, sigmoid(v)),
        }
    }

    /// The same activation on one float (channel tails), as the scalar kernels compute it.
    #[inline(always)]
    pub fn apply1(self, v: f32) -> f32 {
        match self {
            VecAct::None => v,
            VecAct::Clamp(lo, hi) => v.max(lo).min(hi),
            VecAct::HardSwish => v * (v + 3.0).clamp(0.0, 6.0) * (1.0 / 6.0),
            VecAct::LeakyRelu(alpha) => {
                if v < 0.0 {
                    v * alpha
                } else {
                    v
                }
            }
            VecAct::HardSigmoid(alpha, beta) => (alpha * v + beta).clamp(0.0, 1.0),
            VecAct::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            VecAct::Silu => v * (1.0 / (1.0 + (-v).exp())),
        }
    }
}
