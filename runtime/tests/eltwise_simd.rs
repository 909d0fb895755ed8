//! The SIMD element-wise kernels (activations in place, same-shape and per-channel binary
//! ops) must match their scalar twins at lengths around the register width, on inputs that
//! reach the clamps of every activation and the saturation of sigmoid. The kernels are those
//! of the `f32_eltwise` registries; the ones this CPU cannot run are skipped with a message.

mod twins;

use ferrolite_runtime::kernels::f32_eltwise::{self, ActivationFn, BinaryChannelFn, BinaryFn};
use ferrolite_runtime::kernels::{Act, BinOp};

fn values(n: usize, seed: u64, spread: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * spread
        })
        .collect()
}

const LENGTHS: [usize; 9] = [0, 1, 7, 8, 9, 16, 17, 53, 1000];

const ACTS: [Act; 13] = [
    Act::None,
    Act::Relu,
    Act::Clip { min: 0.0, max: 6.0 },
    Act::LeakyRelu { alpha: 0.1 },
    Act::HardSwish,
    Act::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    },
    Act::Sigmoid,
    Act::Silu,
    Act::Abs,
    Act::Neg,
    Act::Tanh,
    Act::Exp,
    Act::Gelu,
];

/// Relative agreement: sigmoid/SiLU/exp use a polynomial `exp` in registers.
fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 4e-7 * b.abs().max(1e-3) || a == b
}

fn check_activation(name: &str, f: ActivationFn) {
    let scalar = twins::scalar("f32_eltwise::activation", f32_eltwise::ACTIVATION).f;
    for &n in &LENGTHS {
        for (i, &act) in ACTS.iter().enumerate() {
            // Spread 100 reaches exp's clamps and sigmoid's saturation on both sides.
            for spread in [4.0, 100.0] {
                let x = values(n, (n * 31 + i) as u64, spread);
                let mut want = x.clone();
                scalar(act, &mut want);
                let mut got = x.clone();
                f(act, &mut got);
                for (k, (&a, &b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        close(a, b),
                        "{name} {act:?} n={n} x[{k}]={}: {a} vs {b}",
                        x[k]
                    );
                }
            }
        }
    }
}

/// The exponential itself, over the whole clamped range (sigmoid and SiLU build on it).
#[test]
fn exp_activation_within_ulps_of_libm() {
    let x: Vec<f32> = (-870..=880).map(|i| i as f32 * 0.1 + 0.0123).collect();
    for e in twins::simd("f32_eltwise::activation", f32_eltwise::ACTIVATION) {
        let (name, f) = (e.name, e.f);
        let mut got = x.clone();
        f(Act::Sigmoid, &mut got);
        for (&v, &g) in x.iter().zip(&got) {
            let want = 1.0 / (1.0 + (-v).exp());
            assert!(close(g, want), "{name} sigmoid({v}) = {g}, libm {want}");
        }
    }
}

#[test]
fn simd_activations_match_scalar() {
    for e in twins::simd("f32_eltwise::activation", f32_eltwise::ACTIVATION) {
        check_activation(e.name, e.f);
    }
}

const OPS: [BinOp; 7] = [
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::Div,
    BinOp::Max,
    BinOp::Min,
    BinOp::Pow,
];

/// Bit patterns, so NaN results (negative base of Pow) compare equal to themselves.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn check_binary(name: &str, f: BinaryFn) {
    let scalar = twins::scalar("f32_eltwise::binary", f32_eltwise::BINARY).f;
    for &n in &LENGTHS {
        for (i, &op) in OPS.iter().enumerate() {
            let a = values(n, (n * 7 + i) as u64, 3.0);
            // Positive right operand keeps Pow and Div finite.
            let b: Vec<f32> = values(n, (n * 7 + i + 100) as u64, 1.0)
                .iter()
                .map(|v| v.abs() + 0.5)
                .collect();
            let mut want = vec![0.0; n];
            scalar(op, &a, &b, &mut want);
            let mut got = vec![f32::NAN; n];
            f(op, &a, &b, &mut got);
            assert_eq!(bits(&got), bits(&want), "{name} {op:?} n={n}");
        }
    }
}

fn check_binary_channel(name: &str, fc: BinaryChannelFn) {
    let scalar = twins::scalar("f32_eltwise::binary_channel", f32_eltwise::BINARY_CHANNEL).f;
    for &n in &LENGTHS {
        // Per-channel: n pixels of c channels.
        for c in [1, 7, 16, 17, 96] {
            for swap in [false, true] {
                let op = if swap { BinOp::Sub } else { BinOp::Mul };
                let a = values(n * c, (n + c) as u64, 3.0);
                let b = values(c, c as u64 + 5, 2.0);
                let mut want = vec![0.0; n * c];
                scalar(op, &a, &b, c, swap, &mut want);
                let mut got = vec![f32::NAN; n * c];
                fc(op, &a, &b, c, swap, &mut got);
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{name} per-channel {op:?} n={n} c={c} swap={swap}"
                );
            }
        }
    }
}

#[test]
fn simd_binary_ops_match_scalar_exactly() {
    for e in twins::simd("f32_eltwise::binary", f32_eltwise::BINARY) {
        check_binary(e.name, e.f);
    }
}

#[test]
fn simd_per_channel_binary_ops_match_scalar_exactly() {
    for e in twins::simd("f32_eltwise::binary_channel", f32_eltwise::BINARY_CHANNEL) {
        check_binary_channel(e.name, e.f);
    }
}
