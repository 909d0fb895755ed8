//! fp16 kernels (f16 weights, f32 activations): the fp16-arithmetic NEON kernels against
//! their scalar twins (f32 arithmetic on the same f16 weights), and whole graphs of an
//! fp16 model on the f16 path against the f32 path. The kernels are those of the `f16_gemm`
//! and `f16_dwconv` registries, skipped (with a message) where the CPU lacks FEAT_FP16.
//!
//! Tolerance. With u = 2^-11 (unit roundoff of fp16), the NEON kernels round each
//! activation to f16 (relative error u) and accumulate chains of at most L products with
//! fused fp16 multiply-adds (L = min(k, KC) for the GEMM, min(taps, CHAIN) for the
//! depthwise kernel) before widening to f32, so the pre-activation error is at most
//! about (L + 1)·u·Σ|a·w|; the f32 reference and the f32 partial sums add k·2^-23·Σ|a·w|.
//! The bound used is 1.05·((L + 1)·u + k·2^-23)·Σ|a·w| + 2^-20·(1 + |pre|), mapped through
//! the activation by evaluating it at pre ± bound.

mod twins;

use std::sync::Arc;

use ferrolite_runtime::exec::Session;
use ferrolite_runtime::ir::Window;
use ferrolite_runtime::kernels::f16_dwconv::{self, ConvGeom, F16DwArgs, F16DwConvFn};
use ferrolite_runtime::kernels::f16_gemm::{self, f16, F16GemmFn, F16GemmParams};
use ferrolite_runtime::kernels::f32_eltwise::scalar::activation;
use ferrolite_runtime::kernels::{self, Act, CpuFeatures, Isa, Kernels};
use ferrolite_runtime::{
    Activation, AlignedBytes, DType, Graph, Model, Node, Op, Precision, Tensor, Weights,
};

const U: f64 = 1.0 / 2048.0;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn halves(v: &[f32]) -> Vec<f16> {
    v.iter().map(|&x| f16::from_f32(x)).collect()
}

/// The fp16 GEMM kernels of the registry this CPU can run, with names.
fn gemm_kernels() -> Vec<(&'static str, F16GemmFn)> {
    twins::simd("f16_gemm", f16_gemm::GEMM)
        .into_iter()
        .map(|e| (e.name, e.f))
        .collect()
}

/// The fp16 depthwise kernels of the registry this CPU can run, with names.
fn dw_kernels() -> Vec<(&'static str, F16DwConvFn)> {
    twins::simd("f16_dwconv", f16_dwconv::DWCONV)
        .into_iter()
        .map(|e| (e.name, e.f))
        .collect()
}

/// Longest fp16 chain of the GEMM kernels (1 when none runs).
fn gemm_chain() -> usize {
    #[cfg(target_arch = "aarch64")]
    return f16_gemm::neon::KC;
    #[cfg(not(target_arch = "aarch64"))]
    1
}

/// Longest fp16 chain of the depthwise kernels.
fn dw_chain() -> usize {
    #[cfg(target_arch = "aarch64")]
    return f16_dwconv::neon::CHAIN;
    #[cfg(not(target_arch = "aarch64"))]
    1
}

fn act1(act: Act, x: f32) -> f32 {
    let mut v = [x];
    activation(act, &mut v);
    v[0]
}

/// Check `got` against the reference: `pre` (pre-activation reference), `mass` (Σ|a·w|
/// per element), `k` (terms), `chain` (longest fp16 chain).
#[allow(clippy::too_many_arguments)]
fn check(
    what: &str,
    act: Act,
    got: &[f32],
    pre: &[f32],
    mass: &[f64],
    k: usize,
    chain: usize,
    idx: impl Fn(usize) -> usize,
) {
    for (e, (&p, &m)) in pre.iter().zip(mass).enumerate() {
        let i = idx(e);
        let g = got[i];
        let bound = 1.05 * (((chain.min(k) + 1) as f64) * U + k as f64 * 2f64.powi(-23)) * m
            + 2f64.powi(-20) * (1.0 + p.abs() as f64);
        let r = act1(act, p);
        let (lo, hi) = (act1(act, p - bound as f32), act1(act, p + bound as f32));
        let pole = act == Act::Reciprocal && (p - bound as f32) <= 0.0 && (p + bound as f32) >= 0.0;
        if pole || lo.is_nan() || hi.is_nan() || r.is_nan() {
            // The interval crosses the activation's domain edge or pole (log / sqrt /
            // reciprocal of ~0): any value is within fp16 error.
            continue;
        }
        let tol = (lo - r).abs().max((hi - r).abs()) * 1.5 + 1e-6 * (1.0 + r.abs());
        assert!(
            (g - r).abs() <= tol,
            "{what}: element {i}: got {g}, want {r} (pre {p}, tolerance {tol})"
        );
    }
}

const ACTS: [Act; 19] = [
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
    Act::Tanh,
    Act::Gelu,
    Act::Exp,
    Act::Log,
    Act::Sqrt,
    Act::Rsqrt,
    Act::Reciprocal,
    Act::Abs,
    Act::Neg,
    Act::Erf,
    Act::Clip {
        min: -0.5,
        max: 0.25,
    },
];

// ---------------------------------------------------------------- GEMM

struct GemmCase {
    m: usize,
    n: usize,
    k: usize,
    lda: usize,
    ldc: usize,
    bias: bool,
    residual: bool,
    act: Act,
    seed: u64,
}

fn gemm_case(f: F16GemmFn, name: &str, t: &GemmCase) {
    let (m, n, k) = (t.m, t.n, t.k);
    let a = values(m.saturating_sub(1) * t.lda + k, t.seed);
    let w = halves(&values(k * n, t.seed + 1));
    let b = f16_gemm::pack_b(k, n, &w);
    let bias = values(n, t.seed + 2);
    let clen = m.saturating_sub(1) * t.ldc + n;
    let res = values(clen, t.seed + 3);
    let run = |f: F16GemmFn, act: Act| {
        let mut c = values(clen, t.seed + 4);
        f(F16GemmParams {
            m,
            n,
            k,
            a: &a,
            lda: t.lda,
            b: &b,
            bias: t.bias.then_some(&bias[..]),
            residual: t.residual.then_some(&res[..]),
            c: &mut c,
            ldc: t.ldc,
            act,
        });
        c
    };
    let pre = run(twins::scalar("f16_gemm", f16_gemm::GEMM).f, Act::None);
    let got = run(f, t.act);
    let mut pre_e = Vec::new();
    let mut mass = Vec::new();
    for i in 0..m {
        for j in 0..n {
            pre_e.push(pre[i * t.ldc + j]);
            let s: f64 = (0..k)
                .map(|kk| (a[i * t.lda + kk] as f64 * w[kk * n + j].to_f64()).abs())
                .sum();
            mass.push(s);
        }
    }
    let what = format!(
        "{name} m={m} n={n} k={k} lda={} ldc={} bias={} res={} {:?}",
        t.lda, t.ldc, t.bias, t.residual, t.act
    );
    check(&what, t.act, &got, &pre_e, &mass, k, gemm_chain(), |e| {
        (e / n) * t.ldc + e % n
    });
    // Columns between rows (ldc > n) are left untouched.
    let untouched = values(clen, t.seed + 4);
    for i in 0..m.saturating_sub(1) {
        for j in n..t.ldc {
            assert_eq!(
                got[i * t.ldc + j],
                untouched[i * t.ldc + j],
                "{what}: gap written"
            );
        }
    }
}

#[test]
fn scalar_gemm_matches_naive() {
    let (m, n, k) = (7, 21, 13);
    let a = values(m * k, 1);
    let w = halves(&values(k * n, 2));
    let b = f16_gemm::pack_b(k, n, &w);
    let mut c = vec![0.0; m * n];
    f16_gemm::scalar::gemm_4x16(F16GemmParams {
        m,
        n,
        k,
        a: &a,
        lda: k,
        b: &b,
        bias: None,
        residual: None,
        c: &mut c,
        ldc: n,
        act: Act::None,
    });
    for i in 0..m {
        for j in 0..n {
            let r: f64 = (0..k)
                .map(|kk| a[i * k + kk] as f64 * w[kk * n + j].to_f64())
                .sum();
            assert!((c[i * n + j] as f64 - r).abs() < 1e-5, "({i},{j})");
        }
    }
    // pack_b_transposed(Wᵀ) == pack_b(W).
    let wt: Vec<f16> = (0..n * k).map(|x| w[(x % k) * n + x / k]).collect();
    assert_eq!(f16_gemm::pack_b_transposed(k, n, &wt), b);
}

#[test]
fn gemm_sizes() {
    for (name, f) in gemm_kernels() {
        let mut seed = 10;
        for m in [0, 1, 4, 5, 17] {
            for n in [0, 1, 16, 17, 53] {
                for k in [0, 1, 8, 9, 29, 32, 33, 101] {
                    for (bias, residual) in [(false, false), (true, true)] {
                        seed += 1;
                        let t = GemmCase {
                            m,
                            n,
                            k,
                            lda: k,
                            ldc: n,
                            bias,
                            residual,
                            act: Act::None,
                            seed,
                        };
                        gemm_case(f, name, &t);
                    }
                }
            }
        }
    }
}

#[test]
fn gemm_activations_and_long_k() {
    for (name, f) in gemm_kernels() {
        for (s, act) in ACTS.iter().enumerate() {
            for (bias, residual) in [(true, false), (false, true), (true, true)] {
                let t = GemmCase {
                    m: 17,
                    n: 53,
                    k: 101,
                    lda: 101,
                    ldc: 53,
                    bias,
                    residual,
                    act: *act,
                    seed: 100 + s as u64,
                };
                gemm_case(f, name, &t);
            }
        }
        // Long k (MobileNet-scale expansions up to ~1200) and more rows than one row block.
        for (m, n, k) in [(5, 17, 1200), (70, 33, 1152), (65, 16, 960)] {
            let t = GemmCase {
                m,
                n,
                k,
                lda: k,
                ldc: n,
                bias: true,
                residual: true,
                act: Act::Clip { min: 0.0, max: 6.0 },
                seed: 7,
            };
            gemm_case(f, name, &t);
        }
    }
}

#[test]
fn gemm_random_shapes() {
    let kernels = gemm_kernels();
    let mut r = values(400, 99).into_iter().map(|v| (v + 1.0) / 2.0);
    let mut pick = |hi: usize| (r.next().unwrap() * hi as f32) as usize;
    for case in 0..40u64 {
        let (m, n, k) = (pick(80), pick(90), pick(300));
        let (lda, ldc) = (k + pick(5), n + pick(5));
        let act = ACTS[pick(ACTS.len())];
        let t = GemmCase {
            m,
            n,
            k,
            lda,
            ldc,
            bias: case % 2 == 0,
            residual: case % 3 == 0,
            act,
            seed: 1000 + case,
        };
        for &(name, f) in &kernels {
            gemm_case(f, name, &t);
        }
    }
}

// ---------------------------------------------------------------- depthwise

#[allow(clippy::too_many_arguments)]
fn dgeom(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    d: usize,
    p: usize,
) -> ConvGeom {
    let ext = d * (k - 1) + 1;
    ConvGeom {
        n,
        h,
        w,
        c,
        oh: (h + 2 * p).saturating_sub(ext) / s + 1,
        ow: (w + 2 * p).saturating_sub(ext) / s + 1,
        o: c,
        kh: k,
        kw: k,
        sh: s,
        sw: s,
        dh: d,
        dw: d,
        pt: p,
        pl: p,
        groups: c,
    }
}

fn dw_case(f: F16DwConvFn, name: &str, g: &ConvGeom, act: Act, residual: bool, seed: u64) {
    let c = g.c;
    let taps = g.kh * g.kw;
    let x = values(g.n * g.h * g.w * c, seed);
    let oihw = halves(&values(c * taps, seed + 1));
    let w = f16_dwconv::pack_weights(g, &oihw);
    let bias = values(c, seed + 2);
    let out_len = g.n * g.oh * g.ow * c;
    let res = values(out_len, seed + 3);
    let run = |f: F16DwConvFn, act: Act| {
        let mut y = vec![f32::NAN; out_len];
        f(F16DwArgs {
            g,
            x: &x,
            w: &w,
            bias: &bias,
            residual: residual.then_some(&res[..]),
            y: &mut y,
            act,
        });
        y
    };
    let pre = run(twins::scalar("f16_dwconv", f16_dwconv::DWCONV).f, Act::None);
    let got = run(f, act);
    let mut mass = vec![0f64; out_len];
    for n in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let pix = ((n * g.oh + oy) * g.ow + ox) * c;
                for ky in 0..g.kh {
                    let Some(iy) = g.in_y(oy, ky) else { continue };
                    for kx in 0..g.kw {
                        let Some(ix) = g.in_x(ox, kx) else { continue };
                        for ch in 0..c {
                            let xv = x[((n * g.h + iy) * g.w + ix) * c + ch] as f64;
                            let wv = w[(ky * g.kw + kx) * c + ch].to_f64();
                            mass[pix + ch] += (xv * wv).abs();
                        }
                    }
                }
            }
        }
    }
    let what = format!("{name} {g:?} res={residual} {act:?}");
    check(&what, act, &got, &pre, &mass, taps, dw_chain(), |e| e);
}

#[test]
fn scalar_dwconv_matches_naive() {
    let g = dgeom(1, 5, 6, 7, 3, 2, 1, 1);
    let x = values(g.h * g.w * g.c, 3);
    let oihw = halves(&values(g.c * 9, 4));
    let w = f16_dwconv::pack_weights(&g, &oihw);
    let bias = vec![0.0; g.c];
    let mut y = vec![0.0; g.oh * g.ow * g.c];
    f16_dwconv::scalar::dwconv_generic(F16DwArgs {
        g: &g,
        x: &x,
        w: &w,
        bias: &bias,
        residual: None,
        y: &mut y,
        act: Act::None,
    });
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            for ch in 0..g.c {
                let mut s = 0f64;
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                        if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                            continue;
                        }
                        let xv = x[(iy as usize * g.w + ix as usize) * g.c + ch] as f64;
                        s += xv * oihw[ch * 9 + ky * 3 + kx].to_f64();
                    }
                }
                let got = y[(oy * g.ow + ox) * g.c + ch] as f64;
                assert!((got - s).abs() < 1e-5, "({oy},{ox},{ch})");
            }
        }
    }
}

#[test]
fn dwconv_sizes() {
    for (name, f) in dw_kernels() {
        let mut seed = 20;
        for c in [0, 1, 8, 9, 16, 17, 53] {
            for (k, s, d, p) in [
                (3, 1, 1, 1),
                (3, 2, 1, 1),
                (3, 1, 2, 2),
                (5, 2, 1, 2),
                (1, 1, 1, 0),
                (7, 1, 1, 3),
                (3, 3, 1, 0),
            ] {
                for residual in [false, true] {
                    seed += 1;
                    let g = dgeom(2, c, 9, 11, k, s, d, p);
                    dw_case(f, name, &g, Act::None, residual, seed);
                }
            }
        }
        // Output of one pixel; image smaller than the kernel (all taps but one padded).
        dw_case(f, name, &dgeom(1, 17, 1, 1, 3, 1, 1, 1), Act::Relu, true, 5);
        dw_case(
            f,
            name,
            &dgeom(1, 53, 2, 3, 5, 1, 1, 2),
            Act::None,
            false,
            6,
        );
    }
}

#[test]
fn dwconv_activations() {
    for (name, f) in dw_kernels() {
        for (s, act) in ACTS.iter().enumerate() {
            for residual in [false, true] {
                let g = dgeom(1, 53, 7, 6, 3, 1, 1, 1);
                dw_case(f, name, &g, *act, residual, 200 + s as u64);
            }
        }
    }
}

#[test]
fn dwconv_random_shapes() {
    let kernels = dw_kernels();
    let mut r = values(400, 77).into_iter().map(|v| (v + 1.0) / 2.0);
    let mut pick = |lo: usize, hi: usize| lo + (r.next().unwrap() * (hi - lo) as f32) as usize;
    for case in 0..30u64 {
        let k = [1, 3, 5, 7][pick(0, 4)];
        let (s, d) = (pick(1, 3), pick(1, 3));
        let p = pick(0, k);
        let (h, w) = (pick(d * (k - 1) + 1, 14), pick(d * (k - 1) + 1, 14));
        let g = dgeom(pick(1, 3), pick(1, 70), h, w, k, s, d, p);
        let act = ACTS[pick(0, ACTS.len())];
        for &(name, f) in &kernels {
            dw_case(f, name, &g, act, case % 2 == 0, 3000 + case);
        }
    }
}

// ---------------------------------------------------------------- dispatch and graphs

#[test]
fn dispatch_follows_fp16() {
    let cpu = CpuFeatures::detect();
    assert!(!kernels::generic().f16_native);
    let names = kernels::generic().names();
    assert!(names.contains(&("f16_gemm", "f16_gemm::scalar::gemm_4x16")));
    assert!(names.contains(&("f16_dwconv", "f16_dwconv::scalar::dwconv_generic")));
    if cpu.supports(Isa::Neon) {
        let k = kernels::for_isa(Isa::Neon);
        assert_eq!(k.f16_native, cpu.fp16);
        if cpu.fp16 {
            assert_eq!(k.f16_gemm.name, "f16_gemm::neon::gemm_4x16");
            assert_eq!(k.f16_dwconv.name, "f16_dwconv::neon::dwconv_16c");
        } else {
            println!("CPU without FEAT_FP16: the neon tier keeps the f32 path");
            assert_eq!(k.f16_gemm.name, "f16_gemm::scalar::gemm_4x16");
        }
    }
}

/// Graph builder with f16 weights (an fp16 bundle as the converter writes it).
struct G {
    g: Graph,
    w: AlignedBytes,
    seed: u64,
}

impl G {
    fn new() -> G {
        G {
            g: Graph::default(),
            w: AlignedBytes::default(),
            seed: 1,
        }
    }
    fn t(&mut self, shape: &[usize], dtype: DType) -> usize {
        self.g.tensors.push(Tensor {
            name: format!("t{}", self.g.tensors.len()),
            shape: shape.to_vec(),
            dtype,
            quant: None,
            data: None,
        });
        self.g.tensors.len() - 1
    }
    fn input(&mut self, shape: &[usize]) -> usize {
        let t = self.t(shape, DType::F32);
        self.g.inputs.push(t);
        t
    }
    fn weight(&mut self, shape: &[usize], scale: f32) -> usize {
        let t = self.t(shape, DType::F16);
        self.seed += 1;
        let n = shape.iter().product();
        let bytes: Vec<u8> = values(n, self.seed)
            .iter()
            .flat_map(|&v| f16::from_f32(v * scale).to_le_bytes())
            .collect();
        self.g.tensors[t].data = Some(self.w.push_aligned(&bytes));
        t
    }
    /// Convolution with bias, output shape `[n, o, oh, ow]`.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        x: usize,
        o: usize,
        k: usize,
        s: usize,
        groups: usize,
        act: Activation,
        res: Option<usize>,
    ) -> usize {
        let xs = self.g.tensors[x].shape.clone();
        let p = k / 2;
        let window = Window {
            kernel: [k, k],
            strides: [s, s],
            dilations: [1, 1],
            pads: [p; 4],
        };
        let [oh, ow] = window.output_hw([xs[2], xs[3]]).unwrap();
        let fan_in = xs[1] / groups * k * k;
        let wt = self.weight(&[o, xs[1] / groups, k, k], 2.0 / (fan_in as f32).sqrt());
        let bias = self.weight(&[o], 0.5);
        let y = self.t(&[xs[0], o, oh, ow], DType::F32);
        let mut inputs = vec![x, wt, bias];
        inputs.extend(res);
        self.g.nodes.push(Node {
            name: format!("n{}", self.g.nodes.len()),
            op: Op::Conv2d {
                window,
                groups,
                activation: act,
                has_bias: true,
                has_residual: res.is_some(),
            },
            inputs,
            outputs: vec![y],
        });
        y
    }
    fn model(&self) -> Arc<Model> {
        let mut m = Model {
            meta: Default::default(),
            graph: self.g.clone(),
            weights: Weights::Owned(self.w.clone()),
        };
        m.meta.precision = Precision::Fp16;
        Arc::new(m)
    }
}

/// Run `model` with `k` on one input; outputs and the per-node kernel names.
fn run(model: &Arc<Model>, k: Kernels, x: &[f32]) -> (Vec<f32>, Vec<&'static str>) {
    let mut s = Session::with_kernels(model.clone(), k).expect("plan");
    s.run(&[x]).expect("run");
    let names = s.plan().steps().iter().map(|i| i.kernel).collect();
    (s.output(0).expect("output").to_vec(), names)
}

/// The f16 path of a kernel set and its f32 twin (same kernels, fp16 not native).
fn paths() -> (Kernels, Kernels) {
    let best = kernels::best();
    (
        best,
        Kernels {
            f16_native: false,
            ..best
        },
    )
}

/// Graph-level tolerance: each of the `layers` fp16 layers adds at most about
/// (KC + 1)·u of its Σ|a·w| (≈ 2 with these weight scales), and errors carry through
/// later layers with gain ≈ 1; we allow `layers`·(KC + 1)·u·(1 + |y|).
fn graph_tol(layers: usize, y: f32) -> f32 {
    (layers as f64 * (gemm_chain().max(dw_chain()) + 1) as f64 * U * (1.0 + y.abs() as f64)) as f32
}

fn compare(what: &str, got: &[f32], want: &[f32], layers: usize) {
    assert_eq!(got.len(), want.len());
    let mut worst = 0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= graph_tol(layers, w),
            "{what}: output {i}: f16 path {g}, f32 path {w}"
        );
        worst = worst.max((g - w).abs());
    }
    println!(
        "{what}: max |f16 - f32| = {worst:e} over {} outputs",
        got.len()
    );
}

/// Depthwise + pointwise blocks with activations: the f16 path (when the CPU has fp16
/// arithmetic) and the scalar f16-kernel path agree with the f32 path within fp16 error,
/// and the plan names the kernels that ran.
#[test]
fn fp16_graph_matches_f32_path() {
    let mut b = G::new();
    let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
    let x = b.input(&[2, 24, 9, 10]);
    let e = b.conv(x, 40, 1, 1, 1, relu6, None);
    let d = b.conv(e, 40, 3, 1, 40, Activation::HardSwish, None);
    let p = b.conv(d, 24, 1, 1, 1, Activation::None, Some(x));
    let d2 = b.conv(p, 24, 5, 2, 24, Activation::Silu, None);
    let y = b.conv(d2, 19, 1, 1, 1, Activation::Tanh, None);
    b.g.outputs.push(y);
    let model = b.model();
    let input = values(2 * 24 * 9 * 10, 5);

    let (fast, f32_twin) = paths();
    let (want, names32) = run(&model, f32_twin, &input);
    assert!(names32.iter().all(|n| n.starts_with("f32_")), "{names32:?}");

    // The f16 kernels through the planner on every CPU (scalar twins, f32 arithmetic).
    let scalar16 = Kernels {
        f16_native: true,
        ..kernels::generic()
    };
    let (got, names) = run(&model, scalar16, &input);
    assert_eq!(
        names,
        [
            "f16_gemm::scalar::gemm_4x16",
            "f16_dwconv::scalar::dwconv_generic",
            "f16_gemm::scalar::gemm_4x16",
            "f16_dwconv::scalar::dwconv_generic",
            "f16_gemm::scalar::gemm_4x16",
        ]
    );
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "scalar f16 path {g} vs {w}"
        );
    }

    if !fast.f16_native {
        println!("skipping the fp16-arithmetic graph run: this CPU has no FEAT_FP16");
        return;
    }
    let (got, names) = run(&model, fast, &input);
    assert_eq!(
        names,
        [
            "f16_gemm::neon::gemm_4x16",
            "f16_dwconv::neon::dwconv_16c",
            "f16_gemm::neon::gemm_4x16",
            "f16_dwconv::neon::dwconv_16c",
            "f16_gemm::neon::gemm_4x16",
        ]
    );
    compare("fp16 graph", &got, &want, 5);
}

/// A block large enough to be fused keeps its f32 fused step on the f16 path (same
/// result as the f32 path), while the pointwise conv after it runs the f16 kernel.
#[test]
fn fused_block_stays_f32() {
    let mut b = G::new();
    let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
    let x = b.input(&[1, 16, 64, 64]);
    let e = b.conv(x, 64, 1, 1, 1, relu6, None);
    let d = b.conv(e, 64, 3, 1, 64, relu6, None);
    let p = b.conv(d, 16, 1, 1, 1, Activation::None, Some(x));
    let y = b.conv(p, 8, 1, 1, 1, Activation::None, None);
    b.g.outputs.push(y);
    let model = b.model();
    let input = values(16 * 64 * 64, 9);
    let (fast, f32_twin) = paths();
    let (want, names32) = run(&model, f32_twin, &input);
    assert_eq!(names32[2], "fused::inverted_residual");
    let (got, names) = run(&model, fast, &input);
    assert_eq!(names[..3], names32[..3]);
    if !fast.f16_native {
        println!("skipping the fp16-arithmetic run: this CPU has no FEAT_FP16");
        assert_eq!(got, want);
        return;
    }
    assert_eq!(names[3], "f16_gemm::neon::gemm_4x16");
    compare("fused block + f16 pointwise", &got, &want, 4);
}
