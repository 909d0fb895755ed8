//! The element-wise kernel bodies, written once over [`SimdF32`] and instantiated per ISA
//! by `eltwise_tier!` in the family's `mod.rs`: activations in place, same-shape and
//! per-channel binary ops. Full registers, then one partial register for the tail.

use super::scalar;
use crate::kernels::simd::{activation_slice, vectorised, SimdF32};
use crate::kernels::{Act, BinOp};

/// Apply `act` to every element in place (see [`super::ActivationFn`]).
#[inline(always)]
pub(super) fn activation<S: SimdF32>(s: S, act: Act, x: &mut [f32]) {
    if vectorised(act) {
        activation_slice(s, act, x);
    } else {
        scalar::activation(act, x);
    }
}

/// Same-shape binary op (see [`super::BinaryFn`]).
#[inline(always)]
pub(super) fn binary<S: SimdF32>(s: S, op: BinOp, a: &[f32], b: &[f32], y: &mut [f32]) {
    if op == BinOp::Pow {
        return scalar::binary(op, a, b, y);
    }
    let n = y.len().min(a.len()).min(b.len());
    rows(s, op, &a[..n], &b[..n], &mut y[..n]);
}

/// Per-channel (channels-last) binary op (see [`super::BinaryChannelFn`]); this is the
/// squeeze-excite gating multiply.
#[inline(always)]
pub(super) fn binary_channel<S: SimdF32>(
    s: S,
    op: BinOp,
    a: &[f32],
    b: &[f32],
    c: usize,
    swap: bool,
    y: &mut [f32],
) {
    if op == BinOp::Pow || c == 0 {
        return scalar::binary_channel(op, a, b, c, swap, y);
    }
    let b = &b[..c];
    for (yr, ar) in y.chunks_exact_mut(c).zip(a.chunks_exact(c)) {
        if swap {
            rows(s, op, b, ar, yr);
        } else {
            rows(s, op, ar, b, yr);
        }
    }
}

/// `a op b` per lane for the operators computed in registers (not `Pow`).
#[inline(always)]
fn op_v<S: SimdF32>(s: S, op: BinOp, a: S::V, b: S::V) -> S::V {
    match op {
        BinOp::Add => s.add(a, b),
        BinOp::Sub => s.sub(a, b),
        BinOp::Mul => s.mul(a, b),
        BinOp::Div => s.div(a, b),
        BinOp::Max => s.max(a, b),
        BinOp::Min => s.min(a, b),
        BinOp::Pow => unreachable!("pow is not vectorised"),
    }
}

/// `y = a op b` over equal-length slices (`op` is not `Pow`).
#[inline(always)]
fn rows<S: SimdF32>(s: S, op: BinOp, a: &[f32], b: &[f32], y: &mut [f32]) {
    let n = y.len().min(a.len()).min(b.len());
    let (pa, pb, py) = (a.as_ptr(), b.as_ptr(), y.as_mut_ptr());
    let mut i = 0;
    while i + S::LANES <= n {
        // SAFETY: i + LANES <= n and all three slices hold at least n elements.
        unsafe {
            let v = op_v(s, op, s.load(pa.add(i)), s.load(pb.add(i)));
            s.store(py.add(i), v);
        }
        i += S::LANES;
    }
    if i < n {
        let t = s.tail(n - i);
        // SAFETY: the tail's lanes are elements i..n of the three slices.
        unsafe {
            let v = op_v(s, op, s.load_tail(pa.add(i), t), s.load_tail(pb.add(i), t));
            s.store_tail(py.add(i), t, v);
        }
    }
}
