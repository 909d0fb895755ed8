//! AVX-512 element-wise kernels and the in-register activation shared by the conv, depthwise
//! and GEMM epilogues of this tier.

use core::arch::x86_64::*;

use super::scalar;
use crate::kernels::{Act, BinOp};

/// Lanes of a register.
const LANES: usize = 16;

pub use super::vectorised;

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

/// Mask selecting the first `w` (0..=16) lanes.
#[inline]
pub fn lane_mask(w: usize) -> __mmask16 {
    if w >= LANES {
        0xFFFF
    } else {
        (1u16 << w) - 1
    }
}

/// Apply `act` to every element in place (see [`super::ActivationFn`]).
pub fn activation_16c(act: Act, x: &mut [f32]) {
    if !vectorised(act) || !std::arch::is_x86_feature_detected!("avx512f") {
        return scalar::activation(act, x);
    }
    // SAFETY: avx512f was detected just above.
    unsafe { activation_in_place(act, x) }
}

#[target_feature(enable = "avx512f")]
fn activation_in_place(act: Act, x: &mut [f32]) {
    for chunk in x.chunks_mut(LANES) {
        let mask = lane_mask(chunk.len());
        let p = chunk.as_mut_ptr();
        // SAFETY: the lanes selected by `mask` are the `chunk.len()` elements of `chunk`.
        unsafe {
            let v = _mm512_maskz_loadu_ps(mask, p);
            _mm512_mask_storeu_ps(p, mask, apply_act(act, v));
        }
    }
}

/// `a op b` per lane for the operators computed in registers (`None` for `Pow`).
#[target_feature(enable = "avx512f")]
#[inline]
fn op_ps(op: BinOp, a: __m512, b: __m512) -> __m512 {
    match op {
        BinOp::Add => _mm512_add_ps(a, b),
        BinOp::Sub => _mm512_sub_ps(a, b),
        BinOp::Mul => _mm512_mul_ps(a, b),
        BinOp::Div => _mm512_div_ps(a, b),
        BinOp::Max => _mm512_max_ps(a, b),
        BinOp::Min => _mm512_min_ps(a, b),
        BinOp::Pow => unreachable!("pow is not vectorised"),
    }
}

/// Same-shape binary op (see [`super::BinaryFn`]).
pub fn binary_16c(op: BinOp, a: &[f32], b: &[f32], y: &mut [f32]) {
    if op == BinOp::Pow || !std::arch::is_x86_feature_detected!("avx512f") {
        return scalar::binary(op, a, b, y);
    }
    let n = y.len().min(a.len()).min(b.len());
    // SAFETY: avx512f was detected just above.
    unsafe { binary_rows(op, &a[..n], &b[..n], &mut y[..n]) }
}

/// `y = a op b` over equal-length slices (`op` is not `Pow`).
#[target_feature(enable = "avx512f")]
fn binary_rows(op: BinOp, a: &[f32], b: &[f32], y: &mut [f32]) {
    for ((yc, ac), bc) in y
        .chunks_mut(LANES)
        .zip(a.chunks(LANES))
        .zip(b.chunks(LANES))
    {
        let mask = lane_mask(yc.len());
        // SAFETY: the masked lanes are the `yc.len()` elements of each chunk (equal lengths).
        unsafe {
            let v = op_ps(
                op,
                _mm512_maskz_loadu_ps(mask, ac.as_ptr()),
                _mm512_maskz_loadu_ps(mask, bc.as_ptr()),
            );
            _mm512_mask_storeu_ps(yc.as_mut_ptr(), mask, v);
        }
    }
}

/// Per-channel (channels-last) binary op (see [`super::BinaryChannelFn`]); this is the
/// squeeze-excite gating multiply.
pub fn binary_channel_16c(op: BinOp, a: &[f32], b: &[f32], c: usize, swap: bool, y: &mut [f32]) {
    if op == BinOp::Pow || c == 0 || !std::arch::is_x86_feature_detected!("avx512f") {
        return scalar::binary_channel(op, a, b, c, swap, y);
    }
    let b = &b[..c];
    for (yr, ar) in y.chunks_exact_mut(c).zip(a.chunks_exact(c)) {
        // SAFETY: avx512f was detected above; the rows and `b` all hold `c` elements.
        unsafe {
            if swap {
                binary_rows(op, b, ar, yr)
            } else {
                binary_rows(op, ar, b, yr)
            }
        }
    }
}
