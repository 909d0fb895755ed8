//! The NEON implementation of [`SimdF32`] (4 lanes), for aarch64 and 32-bit ARM, whose
//! instructions differ: 32-bit ARM has no fused multiply-add without VFPv4, no `maxnm`, no
//! rounding conversion and no vector division.

#[cfg(target_arch = "aarch64")]
use core::arch::aarch64::*;
#[cfg(target_arch = "arm")]
use core::arch::arm::*;

use super::SimdF32;

/// NEON: 128-bit registers; partial accesses go through a stack buffer. NEON is part of
/// every ARM target this crate builds (the aarch64 baseline; armv7 builds compile the NEON
/// kernels only with `+neon`), so `detect` always hands out the token.
#[derive(Clone, Copy, Debug)]
pub struct Neon(());

// SAFETY (every `unsafe` block below): NEON is part of the target (see `Neon`); the
// pointer contracts of `load`, `store` and the tail accesses are the caller's, as the trait
// documents.
impl SimdF32 for Neon {
    type V = float32x4_t;
    type Tail = usize;
    const LANES: usize = 4;

    #[inline(always)]
    fn detect() -> Option<Self> {
        Some(Neon(()))
    }
    #[inline(always)]
    fn zero(self) -> float32x4_t {
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> float32x4_t {
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> float32x4_t {
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: float32x4_t) {
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    fn tail(self, n: usize) -> usize {
        n.min(4)
    }
    #[inline(always)]
    unsafe fn load_tail(self, p: *const f32, n: usize) -> float32x4_t {
        let mut buf = [0f32; 4];
        unsafe {
            std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
            vld1q_f32(buf.as_ptr())
        }
    }
    #[inline(always)]
    unsafe fn store_tail(self, p: *mut f32, n: usize, v: float32x4_t) {
        let mut buf = [0f32; 4];
        unsafe {
            vst1q_f32(buf.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n);
        }
    }
    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn div(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        #[cfg(target_arch = "aarch64")]
        unsafe {
            vdivq_f32(a, b)
        }
        #[cfg(target_arch = "arm")]
        {
            let mut q = [0f32; 4];
            let (mut x, mut y) = ([0f32; 4], [0f32; 4]);
            unsafe {
                vst1q_f32(x.as_mut_ptr(), a);
                vst1q_f32(y.as_mut_ptr(), b);
            }
            for i in 0..4 {
                q[i] = x[i] / y[i];
            }
            unsafe { vld1q_f32(q.as_ptr()) }
        }
    }
    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        #[cfg(target_arch = "aarch64")]
        unsafe {
            vmaxnmq_f32(a, b)
        }
        #[cfg(target_arch = "arm")]
        unsafe {
            vmaxq_f32(a, b)
        }
    }
    #[inline(always)]
    fn min(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        #[cfg(target_arch = "aarch64")]
        unsafe {
            vminnmq_f32(a, b)
        }
        #[cfg(target_arch = "arm")]
        unsafe {
            vminq_f32(a, b)
        }
    }
    #[inline(always)]
    fn clamp(self, v: float32x4_t, lo: float32x4_t, hi: float32x4_t) -> float32x4_t {
        // `vmaxq` / `vminq` return NaN for a NaN operand.
        unsafe { vminq_f32(vmaxq_f32(v, lo), hi) }
    }
    #[inline(always)]
    fn mul_add(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        #[cfg(target_arch = "aarch64")]
        unsafe {
            vfmaq_f32(c, a, b)
        }
        #[cfg(target_arch = "arm")]
        unsafe {
            vmlaq_f32(c, a, b)
        }
    }
    #[inline(always)]
    fn neg_mul_add(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        #[cfg(target_arch = "aarch64")]
        unsafe {
            vfmsq_f32(c, a, b)
        }
        #[cfg(target_arch = "arm")]
        unsafe {
            vmlsq_f32(c, a, b)
        }
    }
    #[inline(always)]
    fn select_neg(self, v: float32x4_t, if_neg: float32x4_t) -> float32x4_t {
        unsafe { vbslq_f32(vcltq_f32(v, vdupq_n_f32(0.0)), if_neg, v) }
    }
    #[inline(always)]
    fn abs(self, v: float32x4_t) -> float32x4_t {
        unsafe { vabsq_f32(v) }
    }
    #[inline(always)]
    fn neg(self, v: float32x4_t) -> float32x4_t {
        unsafe { vnegq_f32(v) }
    }
    #[inline(always)]
    fn round(self, v: float32x4_t) -> float32x4_t {
        #[cfg(target_arch = "aarch64")]
        unsafe {
            vrndnq_f32(v)
        }
        // No rounding conversion: add +-0.5 and truncate (ties may go either way; only used
        // for range reduction).
        #[cfg(target_arch = "arm")]
        unsafe {
            let half = vbslq_f32(
                vcltq_f32(v, vdupq_n_f32(0.0)),
                vdupq_n_f32(-0.5),
                vdupq_n_f32(0.5),
            );
            vcvtq_f32_s32(vcvtq_s32_f32(vaddq_f32(v, half)))
        }
    }
    #[inline(always)]
    fn scale_pow2(self, p: float32x4_t, n: float32x4_t) -> float32x4_t {
        // 2^n built in the exponent bits.
        unsafe {
            let bits = vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)));
            vmulq_f32(p, vreinterpretq_f32_s32(bits))
        }
    }
    #[inline(always)]
    fn recip(self, d: float32x4_t) -> float32x4_t {
        #[cfg(target_arch = "aarch64")]
        unsafe {
            vdivq_f32(vdupq_n_f32(1.0), d)
        }
        // The estimate refined by two Newton steps (8 -> 16 -> 32 bits).
        #[cfg(target_arch = "arm")]
        unsafe {
            let r = vrecpeq_f32(d);
            let r = vmulq_f32(r, vrecpsq_f32(d, r));
            vmulq_f32(r, vrecpsq_f32(d, r))
        }
    }
}
