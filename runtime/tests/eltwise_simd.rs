//! The SIMD element-wise kernels (activations in place, same-shape and per-channel binary
//! ops) must match their scalar twins at lengths around the register width, on inputs that
//! reach the clamps of every activation and the saturation of sigmoid. The kernels are the
//! ones each SIMD tier installs (AVX2, AVX-512, NEON); tiers this CPU cannot run are skipped.

use ferrolite_runtime::kernels::f32_eltwise::{scalar, ActivationFn, BinaryChannelFn, BinaryFn};
use ferrolite_runtime::kernels::{for_isa, Act, BinOp, CpuFeatures, Isa, Kernels};

/// The kernel sets of the SIMD tiers this CPU runs.
fn simd_tiers() -> Vec<Kernels> {
    let cpu = CpuFeatures::detect();
    [Isa::Avx2, Isa::Avx512, Isa::Neon]
        .into_iter()
        .filter(|&isa| {
            let ok = cpu.supports(isa);
            if !ok {
                eprintln!("SKIP {isa:?}: this CPU or build lacks it");
            }
            ok
        })
        .map(for_isa)
        .collect()
}

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
    for &n in &LENGTHS {
        for (i, &act) in ACTS.iter().enumerate() {
            // Spread 100 reaches exp's clamps and sigmoid's saturation on both sides.
            for spread in [4.0, 100.0] {
                let x = values(n, (n * 31 + i) as u64, spread);
                let mut want = x.clone();
                scalar::activation(act, &mut want);
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
    for (name, f) in kernels_activation() {
        let mut got = x.clone();
        f(Act::Sigmoid, &mut got);
        for (&v, &g) in x.iter().zip(&got) {
            let want = 1.0 / (1.0 + (-v).exp());
            assert!(close(g, want), "{name} sigmoid({v}) = {g}, libm {want}");
        }
    }
}

fn kernels_activation() -> Vec<(&'static str, ActivationFn)> {
    let v: Vec<_> = simd_tiers()
        .iter()
        .map(|k| (k.f32_activation.name, k.f32_activation.f))
        .collect();
    for (name, _) in &v {
        assert!(!name.contains("::scalar::"), "a SIMD tier installs {name}");
    }
    v
}

#[test]
fn simd_activations_match_scalar() {
    for (name, f) in kernels_activation() {
        check_activation(name, f);
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

fn check_binary(name: &str, f: BinaryFn, fc: BinaryChannelFn) {
    for &n in &LENGTHS {
        for (i, &op) in OPS.iter().enumerate() {
            let a = values(n, (n * 7 + i) as u64, 3.0);
            // Positive right operand keeps Pow and Div finite.
            let b: Vec<f32> = values(n, (n * 7 + i + 100) as u64, 1.0)
                .iter()
                .map(|v| v.abs() + 0.5)
                .collect();
            let mut want = vec![0.0; n];
            scalar::binary(op, &a, &b, &mut want);
            let mut got = vec![f32::NAN; n];
            f(op, &a, &b, &mut got);
            assert_eq!(bits(&got), bits(&want), "{name} {op:?} n={n}");
        }
        // Per-channel: n pixels of c channels.
        for c in [1, 7, 16, 17, 96] {
            for swap in [false, true] {
                let op = if swap { BinOp::Sub } else { BinOp::Mul };
                let a = values(n * c, (n + c) as u64, 3.0);
                let b = values(c, c as u64 + 5, 2.0);
                let mut want = vec![0.0; n * c];
                scalar::binary_channel(op, &a, &b, c, swap, &mut want);
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
    for k in simd_tiers() {
        assert!(
            !k.f32_binary.name.contains("::scalar::"),
            "{}",
            k.f32_binary.name
        );
        check_binary(k.f32_binary.name, k.f32_binary.f, k.f32_binary_channel.f);
    }
}
