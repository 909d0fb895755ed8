//! Portable element-wise kernels. The operator match is hoisted out of the loops so each
//! loop body is a single expression the compiler can vectorise.

use crate::kernels::{Act, BinOp};

/// Error function, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
#[inline]
pub fn erf(x: f32) -> f32 {
    let s = if x < 0.0 { -1.0 } else { 1.0 };
    let x = x.abs() as f64;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    (s * (1.0 - poly * (-x * x).exp())) as f32
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

macro_rules! map {
    ($x:ident, $v:ident => $e:expr) => {
        for $v in $x.iter_mut() {
            *$v = {
                let $v = *$v;
                $e
            };
        }
    };
}

/// Apply `act` to every element in place.
pub fn activation(act: Act, x: &mut [f32]) {
    match act {
        Act::None => {}
        Act::Relu => map!(x, v => v.max(0.0)),
        Act::Clip { min, max } => map!(x, v => v.max(min).min(max)),
        Act::LeakyRelu { alpha } => map!(x, v => if v < 0.0 { v * alpha } else { v }),
        Act::HardSwish => map!(x, v => v * (v + 3.0).clamp(0.0, 6.0) * (1.0 / 6.0)),
        Act::HardSigmoid { alpha, beta } => map!(x, v => (alpha * v + beta).clamp(0.0, 1.0)),
        Act::Sigmoid => map!(x, v => sigmoid(v)),
        Act::Silu => map!(x, v => v * sigmoid(v)),
        Act::Tanh => map!(x, v => v.tanh()),
        Act::Gelu => map!(x, v => 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2))),
        Act::Exp => map!(x, v => v.exp()),
        Act::Log => map!(x, v => v.ln()),
        Act::Sqrt => map!(x, v => v.sqrt()),
        Act::Rsqrt => map!(x, v => 1.0 / v.sqrt()),
        Act::Reciprocal => map!(x, v => 1.0 / v),
        Act::Abs => map!(x, v => v.abs()),
        Act::Neg => map!(x, v => -v),
        Act::Erf => map!(x, v => erf(v)),
    }
}

/// Apply `op` to one pair of scalars.
#[inline(always)]
pub fn apply(op: BinOp, a: f32, b: f32) -> f32 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Max => a.max(b),
        BinOp::Min => a.min(b),
        BinOp::Pow => a.powf(b),
    }
}

macro_rules! zip3 {
    ($op:expr, $a:expr, $b:expr, $y:expr) => {
        match $op {
            BinOp::Add => zip3!(@ $a, $b, $y, |p, q| p + q),
            BinOp::Sub => zip3!(@ $a, $b, $y, |p, q| p - q),
            BinOp::Mul => zip3!(@ $a, $b, $y, |p, q| p * q),
            BinOp::Div => zip3!(@ $a, $b, $y, |p, q| p / q),
            BinOp::Max => zip3!(@ $a, $b, $y, |p: f32, q| p.max(q)),
            BinOp::Min => zip3!(@ $a, $b, $y, |p: f32, q| p.min(q)),
            BinOp::Pow => zip3!(@ $a, $b, $y, |p: f32, q| p.powf(q)),
        }
    };
    (@ $a:expr, $b:expr, $y:expr, $f:expr) => {{
        let f = $f;
        for ((y, &p), &q) in $y.iter_mut().zip($a).zip($b) {
            *y = f(p, q);
        }
    }};
}

/// Same-shape binary op.
pub fn binary(op: BinOp, a: &[f32], b: &[f32], y: &mut [f32]) {
    zip3!(op, a, b, y);
}

/// Per-channel (channels-last) binary op; `b` has `c` elements.
pub fn binary_channel(op: BinOp, a: &[f32], b: &[f32], c: usize, swap: bool, y: &mut [f32]) {
    if c == 0 {
        return;
    }
    for (ya, aa) in y.chunks_exact_mut(c).zip(a.chunks_exact(c)) {
        if swap {
            zip3!(op, b, aa, ya);
        } else {
            zip3!(op, aa, b, ya);
        }
    }
}

/// Strided broadcast row.
#[allow(clippy::too_many_arguments)]
pub fn binary_strided(
    op: BinOp,
    n: usize,
    a: &[f32],
    sa: usize,
    b: &[f32],
    sb: usize,
    y: &mut [f32],
    sy: usize,
) {
    if sa == 1 && sb == 1 && sy == 1 {
        return binary(op, &a[..n], &b[..n], &mut y[..n]);
    }
    if sa == 1 && sb == 0 && sy == 1 {
        let bv = b[0];
        for (y, &p) in y[..n].iter_mut().zip(&a[..n]) {
            *y = apply(op, p, bv);
        }
        return;
    }
    if sa == 0 && sb == 1 && sy == 1 {
        let av = a[0];
        for (y, &q) in y[..n].iter_mut().zip(&b[..n]) {
            *y = apply(op, av, q);
        }
        return;
    }
    for i in 0..n {
        y[i * sy] = apply(op, a[i * sa], b[i * sb]);
    }
}

/// Per-channel affine; see [`super::AffineFn`].
pub fn affine(x: &[f32], scale: &[f32], shift: &[f32], c: usize, inner: usize, y: &mut [f32]) {
    let block = c * inner;
    if block == 0 {
        return;
    }
    for (yb, xb) in y.chunks_exact_mut(block).zip(x.chunks_exact(block)) {
        if inner == 1 {
            for (((y, &x), &s), &t) in yb.iter_mut().zip(xb).zip(scale).zip(shift) {
                *y = x * s + t;
            }
        } else {
            for ch in 0..c {
                let (s, t) = (scale[ch], shift[ch]);
                let r = ch * inner..(ch + 1) * inner;
                for (y, &x) in yb[r.clone()].iter_mut().zip(&xb[r]) {
                    *y = x * s + t;
                }
            }
        }
    }
}
