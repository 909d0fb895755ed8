//! AVX2+FMA element-wise kernels and the in-register activation shared by the conv,
//! depthwise and GEMM epilogues of this tier.

use core::arch::x86_64::*;

use super::scalar;
use crate::kernels::{Act, BinOp};

/// Lanes of a register.
const LANES: usize = 8;

pub use super::vectorised;

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
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
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

/// Lane mask selecting the first `w` (0..=8) lanes, for `maskload` / `maskstore`.
///
/// # Safety
/// The CPU must support AVX2 and FMA (called from this tier's `#[target_feature]` kernels).
#[target_feature(enable = "avx2,fma")]
#[inline]
pub fn lane_mask(w: usize) -> __m256i {
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(w.min(LANES) as i32), lane)
}

/// Apply `act` to every element in place (see [`super::ActivationFn`]).
pub fn activation_8c(act: Act, x: &mut [f32]) {
    if !vectorised(act) || !has_avx2_fma() {
        return scalar::activation(act, x);
    }
    // SAFETY: avx2 and fma were detected just above.
    unsafe { activation_in_place(act, x) }
}

fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[target_feature(enable = "avx2,fma")]
fn activation_in_place(act: Act, x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        let p = chunk.as_mut_ptr();
        // SAFETY: `chunk` holds exactly 8 elements.
        unsafe { _mm256_storeu_ps(p, apply_act(act, _mm256_loadu_ps(p))) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mask = lane_mask(tail.len());
        let p = tail.as_mut_ptr();
        // SAFETY: the lanes selected by `mask` are the `tail.len()` elements of `tail`.
        unsafe {
            let v = _mm256_maskload_ps(p, mask);
            _mm256_maskstore_ps(p, mask, apply_act(act, v));
        }
    }
}

/// `a op b` per lane for the operators computed in registers (not `Pow`).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn op_ps(op: BinOp, a: __m256, b: __m256) -> __m256 {
    match op {
        BinOp::Add => _mm256_add_ps(a, b),
        BinOp::Sub => _mm256_sub_ps(a, b),
        BinOp::Mul => _mm256_mul_ps(a, b),
        BinOp::Div => _mm256_div_ps(a, b),
        BinOp::Max => _mm256_max_ps(a, b),
        BinOp::Min => _mm256_min_ps(a, b),
        BinOp::Pow => unreachable!("pow is not vectorised"),
    }
}

/// Same-shape binary op (see [`super::BinaryFn`]).
pub fn binary_8c(op: BinOp, a: &[f32], b: &[f32], y: &mut [f32]) {
    if op == BinOp::Pow || !has_avx2_fma() {
        return scalar::binary(op, a, b, y);
    }
    let n = y.len().min(a.len()).min(b.len());
    // SAFETY: avx2 and fma were detected just above.
    unsafe { binary_rows(op, &a[..n], &b[..n], &mut y[..n]) }
}

/// `y = a op b` over equal-length slices (`op` is not `Pow`).
#[target_feature(enable = "avx2,fma")]
fn binary_rows(op: BinOp, a: &[f32], b: &[f32], y: &mut [f32]) {
    let n = y.len();
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: i + 8 <= n and all three slices hold n elements.
        unsafe {
            let v = op_ps(
                op,
                _mm256_loadu_ps(a.as_ptr().add(i)),
                _mm256_loadu_ps(b.as_ptr().add(i)),
            );
            _mm256_storeu_ps(y.as_mut_ptr().add(i), v);
        }
        i += LANES;
    }
    for j in i..n {
        y[j] = scalar::apply(op, a[j], b[j]);
    }
}

/// Per-channel (channels-last) binary op (see [`super::BinaryChannelFn`]); this is the
/// squeeze-excite gating multiply.
pub fn binary_channel_8c(op: BinOp, a: &[f32], b: &[f32], c: usize, swap: bool, y: &mut [f32]) {
    if op == BinOp::Pow || c == 0 || !has_avx2_fma() {
        return scalar::binary_channel(op, a, b, c, swap, y);
    }
    let b = &b[..c];
    for (yr, ar) in y.chunks_exact_mut(c).zip(a.chunks_exact(c)) {
        // SAFETY: avx2 and fma were detected above; the rows and `b` all hold `c` elements.
        unsafe {
            if swap {
                binary_rows(op, b, ar, yr)
            } else {
                binary_rows(op, ar, b, yr)
            }
        }
    }
}
