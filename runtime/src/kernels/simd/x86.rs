//! The x86-64 implementations of [`SimdF32`]: AVX2 + FMA (8 lanes) and AVX-512F (16 lanes).

use core::arch::x86_64::*;

use super::SimdF32;

/// AVX2 + FMA: 256-bit registers; partial accesses through `vmaskmovps`.
#[derive(Clone, Copy, Debug)]
pub struct Avx2(());

/// AVX-512F: 512-bit registers; partial accesses through `k` masks.
#[derive(Clone, Copy, Debug)]
pub struct Avx512(());

// SAFETY (every `unsafe` block in the two impls below): the token's existence proves the
// CPU has the instruction set the intrinsics need; the pointer contracts of `load`,
// `store` and the tail accesses are the caller's, as the trait documents.
impl SimdF32 for Avx2 {
    type V = __m256;
    type Tail = __m256i;
    const LANES: usize = 8;

    #[inline(always)]
    fn detect() -> Option<Self> {
        (std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
            .then_some(Avx2(()))
    }
    #[inline(always)]
    fn zero(self) -> __m256 {
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    fn tail(self, n: usize) -> __m256i {
        unsafe {
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), lane)
        }
    }
    #[inline(always)]
    unsafe fn load_tail(self, p: *const f32, t: __m256i) -> __m256 {
        unsafe { _mm256_maskload_ps(p, t) }
    }
    #[inline(always)]
    unsafe fn store_tail(self, p: *mut f32, t: __m256i, v: __m256) {
        unsafe { _mm256_maskstore_ps(p, t, v) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    fn clamp(self, v: __m256, lo: __m256, hi: __m256) -> __m256 {
        // `max_ps(c, v)` returns `v` for a NaN `v`, and so does `min_ps(c, v)`.
        unsafe { _mm256_min_ps(hi, _mm256_max_ps(lo, v)) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn neg_mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fnmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn select_neg(self, v: __m256, if_neg: __m256) -> __m256 {
        unsafe {
            let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(v, _mm256_setzero_ps());
            _mm256_blendv_ps(v, if_neg, neg)
        }
    }
    #[inline(always)]
    fn abs(self, v: __m256) -> __m256 {
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), v) }
    }
    #[inline(always)]
    fn neg(self, v: __m256) -> __m256 {
        unsafe { _mm256_xor_ps(v, _mm256_set1_ps(-0.0)) }
    }
    #[inline(always)]
    fn round(self, v: __m256) -> __m256 {
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v) }
    }
    #[inline(always)]
    fn scale_pow2(self, p: __m256, n: __m256) -> __m256 {
        // 2^n built in the exponent bits.
        unsafe {
            let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
                _mm256_cvtps_epi32(n),
                _mm256_set1_epi32(127),
            ));
            _mm256_mul_ps(p, _mm256_castsi256_ps(bits))
        }
    }
    #[inline(always)]
    fn recip(self, d: __m256) -> __m256 {
        // A 12-bit estimate and one Newton step (a division costs more).
        unsafe {
            let r = _mm256_rcp_ps(d);
            _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0)))
        }
    }
}

impl SimdF32 for Avx512 {
    type V = __m512;
    type Tail = __mmask16;
    const LANES: usize = 16;

    #[inline(always)]
    fn detect() -> Option<Self> {
        std::arch::is_x86_feature_detected!("avx512f").then_some(Avx512(()))
    }
    #[inline(always)]
    fn zero(self) -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    fn tail(self, n: usize) -> __mmask16 {
        if n >= 16 {
            0xFFFF
        } else {
            (1u16 << n) - 1
        }
    }
    #[inline(always)]
    unsafe fn load_tail(self, p: *const f32, t: __mmask16) -> __m512 {
        unsafe { _mm512_maskz_loadu_ps(t, p) }
    }
    #[inline(always)]
    unsafe fn store_tail(self, p: *mut f32, t: __mmask16, v: __m512) {
        unsafe { _mm512_mask_storeu_ps(p, t, v) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    fn clamp(self, v: __m512, lo: __m512, hi: __m512) -> __m512 {
        // `max_ps(c, v)` returns `v` for a NaN `v`, and so does `min_ps(c, v)`.
        unsafe { _mm512_min_ps(hi, _mm512_max_ps(lo, v)) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn neg_mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fnmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn select_neg(self, v: __m512, if_neg: __m512) -> __m512 {
        unsafe {
            let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, _mm512_setzero_ps());
            _mm512_mask_blend_ps(neg, v, if_neg)
        }
    }
    #[inline(always)]
    fn abs(self, v: __m512) -> __m512 {
        unsafe {
            let sign = _mm512_set1_epi32(i32::MIN);
            _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(v)))
        }
    }
    #[inline(always)]
    fn neg(self, v: __m512) -> __m512 {
        unsafe {
            let sign = _mm512_set1_epi32(i32::MIN);
            _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), sign))
        }
    }
    #[inline(always)]
    fn round(self, v: __m512) -> __m512 {
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v) }
    }
    #[inline(always)]
    fn scale_pow2(self, p: __m512, n: __m512) -> __m512 {
        unsafe { _mm512_scalef_ps(p, n) }
    }
    #[inline(always)]
    fn recip(self, d: __m512) -> __m512 {
        // A 14-bit estimate and one Newton step (a division costs more).
        unsafe {
            let r = _mm512_rcp14_ps(d);
            _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)))
        }
    }
}

/// The AVX2 activation and tail mask for the kernels of this tier still written with
/// intrinsics directly (the GEMM and direct convolution, called from their
/// `#[target_feature]` functions).
///
/// Hand-written rather than the generic [`crate::kernels::simd::apply_act`]: inlined into
/// the GEMM's tile epilogue, the generic form made LLVM keep the accumulators on the stack
/// in the k loop (measured on Zen 5: the MobileNetV2 projection GEMMs at 57-75 instead of
/// 184 GFLOP/s, the model 1.4x slower). Outputs are the same bits either way.
pub mod avx2 {
    use core::arch::x86_64::*;

    use super::{Avx2, SimdF32};
    use crate::kernels::Act;

    /// `act(v)` for a [`vectorised`] activation; other activations return `v` unchanged.
    ///
    /// The piecewise-linear ones follow the scalar operation order (and its NaN behaviour) and
    /// agree with it bit for bit; sigmoid and SiLU use [`exp`], within a few ulp of the scalar.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA (called from this tier's `#[target_feature]` kernels).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub fn apply_act(act: Act, v: __m256) -> __m256 {
        let zero = _mm256_setzero_ps();
        match act {
            // `max_ps(v, c)` returns `c` for a NaN `v`, as `f32::max` does.
            Act::Relu => _mm256_max_ps(v, zero),
            Act::Clip { min, max } => {
                _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(min)), _mm256_set1_ps(max))
            }
            Act::LeakyRelu { alpha } => {
                let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(v, zero);
                _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(alpha)), neg)
            }
            Act::HardSwish => {
                // `max_ps(c, t)` returns `t` for a NaN `t`, as `f32::clamp` does.
                let t = _mm256_add_ps(v, _mm256_set1_ps(3.0));
                let t = _mm256_min_ps(_mm256_set1_ps(6.0), _mm256_max_ps(zero, t));
                _mm256_mul_ps(_mm256_mul_ps(v, t), _mm256_set1_ps(1.0 / 6.0))
            }
            Act::HardSigmoid { alpha, beta } => {
                let t = _mm256_add_ps(
                    _mm256_mul_ps(_mm256_set1_ps(alpha), v),
                    _mm256_set1_ps(beta),
                );
                _mm256_min_ps(_mm256_set1_ps(1.0), _mm256_max_ps(zero, t))
            }
            Act::Abs => _mm256_andnot_ps(_mm256_set1_ps(-0.0), v),
            Act::Neg => _mm256_xor_ps(v, _mm256_set1_ps(-0.0)),
            Act::Sigmoid => sigmoid(v),
            Act::Silu => _mm256_mul_ps(v, sigmoid(v)),
            _ => v,
        }
    }

    /// `e^x` per lane: range reduction by `ln 2`, degree-6 Taylor polynomial on
    /// `|r| <= ln(2)/2` (relative error about 1.2e-7), scaled by `2^n` built in the exponent
    /// bits. Inputs are clamped to the range where the result is a normal float.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA (called from this tier's `#[target_feature]` kernels).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub fn exp(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-87.33)),
            _mm256_set1_ps(88.37),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_145_75), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm256_set1_ps(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(p, _mm256_castsi256_ps(bits))
    }

    /// `1 / (1 + e^-v)` per lane.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn sigmoid(v: __m256) -> __m256 {
        // 1/d by a 12-bit reciprocal estimate and one Newton step (a division costs more).
        let d = _mm256_add_ps(
            _mm256_set1_ps(1.0),
            exp(_mm256_sub_ps(_mm256_setzero_ps(), v)),
        );
        let r = _mm256_rcp_ps(d);
        _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0)))
    }

    /// The `maskload` / `maskstore` mask of the first `w` lanes.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub fn lane_mask(w: usize) -> __m256i {
        Avx2(()).tail(w)
    }
}

/// The AVX-512 activation and tail mask for the kernels of this tier still written with
/// intrinsics directly (the GEMM and direct convolution, called from their
/// `#[target_feature]` functions).
///
/// Hand-written rather than the generic [`crate::kernels::simd::apply_act`]: inlined into
/// the GEMM's tile epilogue, the generic form made LLVM keep the accumulators on the stack
/// in the k loop (measured on Zen 5: the MobileNetV2 projection GEMMs at 57-75 instead of
/// 184 GFLOP/s, the model 1.4x slower). Outputs are the same bits either way.
pub mod avx512 {
    use core::arch::x86_64::*;

    use super::{Avx512, SimdF32};
    use crate::kernels::Act;

    /// `act(v)` for a [`vectorised`] activation; other activations return `v` unchanged.
    ///
    /// The piecewise-linear ones follow the scalar operation order (and its NaN behaviour) and
    /// agree with it bit for bit; sigmoid and SiLU use [`exp`], within a few ulp of the scalar.
    ///
    /// # Safety
    /// The CPU must support AVX-512F (called from this tier's `#[target_feature]` kernels).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub fn apply_act(act: Act, v: __m512) -> __m512 {
        let zero = _mm512_setzero_ps();
        let sign = _mm512_set1_epi32(i32::MIN);
        match act {
            // `max_ps(v, c)` returns `c` for a NaN `v`, as `f32::max` does.
            Act::Relu => _mm512_max_ps(v, zero),
            Act::Clip { min, max } => {
                _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(min)), _mm512_set1_ps(max))
            }
            Act::LeakyRelu { alpha } => {
                let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, zero);
                _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(alpha))
            }
            Act::HardSwish => {
                // `max_ps(c, t)` returns `t` for a NaN `t`, as `f32::clamp` does.
                let t = _mm512_add_ps(v, _mm512_set1_ps(3.0));
                let t = _mm512_min_ps(_mm512_set1_ps(6.0), _mm512_max_ps(zero, t));
                _mm512_mul_ps(_mm512_mul_ps(v, t), _mm512_set1_ps(1.0 / 6.0))
            }
            Act::HardSigmoid { alpha, beta } => {
                let t = _mm512_add_ps(
                    _mm512_mul_ps(_mm512_set1_ps(alpha), v),
                    _mm512_set1_ps(beta),
                );
                _mm512_min_ps(_mm512_set1_ps(1.0), _mm512_max_ps(zero, t))
            }
            Act::Abs => _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(v))),
            Act::Neg => _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), sign)),
            Act::Sigmoid => sigmoid(v),
            Act::Silu => _mm512_mul_ps(v, sigmoid(v)),
            _ => v,
        }
    }

    /// `e^x` per lane: range reduction by `ln 2`, degree-6 Taylor polynomial on
    /// `|r| <= ln(2)/2` (relative error about 1.2e-7), scaled by `2^n`. Inputs are clamped to
    /// the range where the result is a normal float.
    ///
    /// # Safety
    /// The CPU must support AVX-512F (called from this tier's `#[target_feature]` kernels).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub fn exp(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(-87.33)),
            _mm512_set1_ps(88.37),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm512_set1_ps(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }

    /// `1 / (1 + e^-v)` per lane.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn sigmoid(v: __m512) -> __m512 {
        // 1/d by a 14-bit reciprocal estimate and one Newton step (a division costs more).
        let d = _mm512_add_ps(
            _mm512_set1_ps(1.0),
            exp(_mm512_sub_ps(_mm512_setzero_ps(), v)),
        );
        let r = _mm512_rcp14_ps(d);
        _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)))
    }

    /// The `k` mask of the first `w` lanes.
    #[inline]
    pub fn lane_mask(w: usize) -> __mmask16 {
        Avx512(()).tail(w)
    }
}
