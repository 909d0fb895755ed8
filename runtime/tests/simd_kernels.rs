//! The AVX2, AVX-512 and NEON GEMM and depthwise kernels against their scalar twins and a
//! naive f64 reference: sizes 0, 1, tile, tile+1, 3*tile+5 and random shapes, odd channel
//! counts, every fused activation, with and without bias / residual, strided rows, untouched
//! padding around the outputs. The kernels are those of the `f32_gemm` and `f32_dwconv`
//! registries; the ones this CPU cannot run are skipped with a message.

mod twins;

use ferrolite_runtime::kernels::f32_dwconv::{self, pack_weights, ConvArgs, ConvGeom, DwConvFn};
use ferrolite_runtime::kernels::f32_eltwise::scalar::activation;
use ferrolite_runtime::kernels::f32_gemm::{self, pack_b, GemmFn, GemmParams};
use ferrolite_runtime::kernels::{for_isa, Act, CpuFeatures, Isa};

/// Relative tolerance (FMA changes rounding).
const TOL: f64 = 1e-5;
/// Sentinel written around outputs to detect stray stores.
const GUARD: f32 = 12345.0;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0)
            .collect()
    }
}

fn rng(seed: u64) -> Rng {
    Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
}

fn all_acts() -> Vec<Act> {
    vec![
        Act::None,
        Act::Relu,
        Act::Clip {
            min: -0.5,
            max: 1.5,
        },
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
    ]
}

/// Lipschitz bound of `act` on the test range, or `None` when an absolute comparison after
/// the activation is meaningless (poles, NaN domains); those are checked as
/// `fused == activation(unfused)` bit for bit instead. `Exp` is scaled by its value.
fn lipschitz(act: Act) -> Option<f64> {
    match act {
        Act::None | Act::Relu | Act::Clip { .. } | Act::LeakyRelu { .. } => Some(1.0),
        Act::Abs | Act::Neg | Act::Tanh | Act::Sigmoid => Some(1.0),
        Act::HardSigmoid { alpha, .. } => Some(alpha.abs() as f64),
        Act::Silu | Act::Gelu | Act::Erf => Some(1.2),
        // d/dv of v*clamp(v+3,0,6)/6 is at most max(1, (2|v|+3)/6).
        Act::HardSwish => Some(1.0),
        Act::Exp => Some(0.0),
        _ => None,
    }
}

/// A fused activation against the scalar one applied afterwards: sigmoid and SiLU use a
/// polynomial `exp` in registers (within a few ulp), the piecewise-linear activations must
/// agree bit for bit.
fn fused_agrees(act: Act, fused: f32, unfused: f32) -> bool {
    if matches!(act, Act::Sigmoid | Act::Silu) {
        (fused - unfused).abs() <= 1e-6 * unfused.abs().max(1e-3)
    } else {
        same_bits(fused, unfused)
    }
}

fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Compare `got` and `want` (both already activated) elementwise: `pre` is the unfused
/// pre-activation value and `scale` the magnitude sum that bounds its rounding error.
fn close(act: Act, got: f32, want: f32, pre: f32, scale: f64) -> bool {
    let Some(l) = lipschitz(act) else {
        return true;
    };
    let err = TOL * scale;
    let bound = match act {
        Act::Exp => err * (want.abs() as f64).max(1.0) * 2.0,
        Act::HardSwish => err * (1.0f64).max((2.0 * pre.abs() as f64 + 3.0) / 6.0) * 1.01,
        _ => err * l.max(1e-3),
    };
    ((got as f64) - (want as f64)).abs() <= bound + 1e-30
}

// ---------------------------------------------------------------- GEMM

struct GemmCase {
    m: usize,
    n: usize,
    k: usize,
    lda: usize,
    ldc: usize,
    bias: bool,
    residual: bool,
}

struct GemmData {
    a: Vec<f32>,
    b: Vec<f32>,
    packed: Vec<f32>,
    bias: Vec<f32>,
    res: Vec<f32>,
}

/// Length of a strided `rows x cols` matrix that ends exactly after its last element.
fn strided_len(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    }
}

fn gemm_data(c: &GemmCase, seed: u64) -> GemmData {
    let mut r = rng(seed);
    let b = r.values(c.k * c.n);
    GemmData {
        a: r.values(strided_len(c.m, c.k, c.lda)),
        packed: pack_b(c.k, c.n, &b),
        b,
        bias: r.values(c.n),
        res: r.values(strided_len(c.m, c.n, c.ldc)),
    }
}

/// Run `f`, with guard values in the row gaps and after the end of C (which must survive).
fn run_gemm(f: GemmFn, c: &GemmCase, d: &GemmData, act: Act) -> Vec<f32> {
    let len = strided_len(c.m, c.n, c.ldc);
    let mut out = vec![GUARD; len + 19];
    f(GemmParams {
        m: c.m,
        n: c.n,
        k: c.k,
        a: &d.a,
        lda: c.lda,
        b: &d.packed,
        bias: c.bias.then_some(d.bias.as_slice()),
        residual: c.residual.then_some(d.res.as_slice()),
        c: (&mut out[..len]).into(),
        ldc: c.ldc,
        act,
    });
    for (idx, v) in out.iter().enumerate() {
        let inside = idx < len && idx % c.ldc.max(1) < c.n;
        if !inside {
            assert_eq!(v.to_bits(), GUARD.to_bits(), "stray store at C[{idx}]");
        }
    }
    out.truncate(len);
    out
}

/// f64 reference `(value, magnitude sum)` of element (i, j) before the activation.
fn gemm_ref(c: &GemmCase, d: &GemmData, i: usize, j: usize) -> (f64, f64) {
    let (mut v, mut s) = (0f64, 0f64);
    for kk in 0..c.k {
        let t = d.a[i * c.lda + kk] as f64 * d.b[kk * c.n + j] as f64;
        v += t;
        s += t.abs();
    }
    for (on, x) in [
        (c.bias, d.bias.get(j)),
        (c.residual, d.res.get(i * c.ldc + j)),
    ] {
        if on {
            let x = *x.unwrap() as f64;
            v += x;
            s += x.abs();
        }
    }
    (v, s + 1e-6)
}

/// The scalar GEMM of the registry: the twin every SIMD kernel is compared with.
fn scalar_gemm() -> GemmFn {
    twins::scalar("f32_gemm", f32_gemm::GEMM).f
}

fn check_gemm_case(name: &str, f: GemmFn, c: &GemmCase, acts: &[Act], seed: u64) {
    let d = gemm_data(c, seed);
    let pre = run_gemm(f, c, &d, Act::None);
    let pre_scalar = run_gemm(scalar_gemm(), c, &d, Act::None);
    let ctx = format!(
        "{name} m={} n={} k={} lda={} ldc={} bias={} res={}",
        c.m, c.n, c.k, c.lda, c.ldc, c.bias, c.residual
    );
    for i in 0..c.m {
        for j in 0..c.n {
            let (want, scale) = gemm_ref(c, &d, i, j);
            let idx = i * c.ldc + j;
            let (got, sc) = (pre[idx] as f64, pre_scalar[idx] as f64);
            assert!(
                (got - want).abs() <= TOL * scale,
                "{ctx}: C[{i},{j}] = {got}, reference {want}"
            );
            assert!(
                (got - sc).abs() <= TOL * scale,
                "{ctx}: C[{i},{j}] = {got}, scalar {sc}"
            );
        }
    }
    for &act in acts {
        let fused = run_gemm(f, c, &d, act);
        let scalar = run_gemm(scalar_gemm(), c, &d, act);
        let mut unfused = pre.clone();
        for i in 0..c.m {
            activation(act, &mut unfused[i * c.ldc..i * c.ldc + c.n]);
        }
        for i in 0..c.m {
            for j in 0..c.n {
                let idx = i * c.ldc + j;
                assert!(
                    fused_agrees(act, fused[idx], unfused[idx]),
                    "{ctx} {act:?}: fused C[{i},{j}] = {} but act(unfused) = {}",
                    fused[idx],
                    unfused[idx]
                );
                let (_, scale) = gemm_ref(c, &d, i, j);
                assert!(
                    close(act, fused[idx], scalar[idx], pre[idx], scale),
                    "{ctx} {act:?}: C[{i},{j}] = {}, scalar {}",
                    fused[idx],
                    scalar[idx]
                );
            }
        }
    }
}

fn check_gemm(name: &str, f: GemmFn, mr: usize, nt: usize) {
    let ms = [0, 1, mr, mr + 1, 3 * mr + 5];
    let ns = [0, 1, 8, 9, nt, nt + 1, 3 * nt + 5];
    let ks = [0, 1, 7, 64];
    let mut seed = 1;
    for &m in &ms {
        for &n in &ns {
            for &k in &ks {
                for (bias, residual) in [(false, false), (true, false), (false, true), (true, true)]
                {
                    let c = GemmCase {
                        m,
                        n,
                        k,
                        lda: k,
                        ldc: n,
                        bias,
                        residual,
                    };
                    check_gemm_case(name, f, &c, &[Act::Relu], seed);
                    seed += 1;
                }
            }
        }
    }
    // Every activation, on an edge-heavy shape, with strided (gapped) rows.
    let acts = all_acts();
    for (bias, residual) in [(false, false), (true, true)] {
        let c = GemmCase {
            m: 3 * mr + 5,
            n: 3 * nt + 5,
            k: 23,
            lda: 29,
            ldc: 3 * nt + 11,
            bias,
            residual,
        };
        check_gemm_case(name, f, &c, &acts, seed);
        seed += 1;
    }
    // Large K: strips of B one register tile wide (small K, above, makes strips of many
    // panels), and single rows (batch-1 fully connected layers) wider than the row-vector tiles.
    for (m, n, k) in [
        (13, 40, 2048),
        (7, 37, 3000),
        (mr + 1, 3 * nt + 5, 1024),
        (1, 1000, 1280),
        (1, 129, 37),
        (1, 300, 5),
    ] {
        let c = GemmCase {
            m,
            n,
            k,
            lda: k + 3,
            ldc: n + 2,
            bias: true,
            residual: true,
        };
        check_gemm_case(name, f, &c, &[Act::Clip { min: 0.0, max: 6.0 }], seed);
        seed += 1;
    }
    // Random shapes.
    let mut r = rng(99);
    for _ in 0..40 {
        let (m, n, k) = (r.below(40), r.below(80), r.below(60));
        let c = GemmCase {
            m,
            n,
            k,
            lda: k + r.below(3),
            ldc: n + r.below(3),
            bias: r.below(2) == 1,
            residual: r.below(2) == 1,
        };
        let act = all_acts()[r.below(19)];
        check_gemm_case(name, f, &c, &[act], seed);
        seed += 1;
    }
    check_gemm_splits(name, f, mr);
}

/// `f` on rows `rows` and 16-column panels from `p0` of `c` (the sub-problem a thread's
/// part of a split GEMM runs), written into `out` (the whole C).
fn run_gemm_part(
    f: GemmFn,
    c: &GemmCase,
    d: &GemmData,
    act: Act,
    rows: std::ops::Range<usize>,
    p0: usize,
    out: &mut [f32],
) {
    let panel = f32_gemm::NR;
    let (j0, m) = (p0 * panel, rows.len());
    let n = c.n - j0;
    let at = rows.start * c.ldc + j0;
    let len = strided_len(m, n, c.ldc);
    f(GemmParams {
        m,
        n,
        k: c.k,
        a: &d.a[rows.start * c.lda..],
        lda: c.lda,
        b: &d.packed[p0 * c.k * panel..],
        bias: c.bias.then_some(&d.bias[j0..]),
        residual: c.residual.then_some(&d.res[at..]),
        c: (&mut out[at..at + len]).into(),
        ldc: c.ldc,
        act,
    });
}

/// Threads split a GEMM over rows (any boundary: the last part may be one row) or over
/// 16-column panels; the result must be the same bits as the whole product, whichever
/// register tiles the parts fall into.
fn check_gemm_splits(name: &str, f: GemmFn, mr: usize) {
    let act = Act::HardSwish;
    for (m, n, k) in [
        (1, 1000, 64),
        (49, 960, 40),
        (9, 72, 23),
        (3 * mr + 5, 100, 17),
    ] {
        let c = GemmCase {
            m,
            n,
            k,
            lda: k + 1,
            ldc: n + 3,
            bias: true,
            residual: true,
        };
        let d = gemm_data(&c, (m * n + k) as u64);
        let whole = run_gemm(f, &c, &d, act);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let panels = n.div_ceil(f32_gemm::NR);
        for (r, p) in [(1, 1), (m / 3, panels / 3), (m - 1, panels - 1)] {
            // Rows [0, r) and [r, m) (r = m - 1 leaves a one-row part); panels [0, p) and
            // the rest.
            let mut by_rows = vec![0.0; whole.len()];
            let mut by_cols = vec![0.0; whole.len()];
            for rows in [0..r.min(m), r.min(m)..m] {
                if !rows.is_empty() {
                    run_gemm_part(f, &c, &d, act, rows, 0, &mut by_rows);
                }
            }
            let left = GemmCase {
                n: p.max(1) * f32_gemm::NR,
                ..c
            };
            run_gemm_part(f, &left, &d, act, 0..m, 0, &mut by_cols);
            run_gemm_part(f, &c, &d, act, 0..m, p.max(1), &mut by_cols);
            for (what, got) in [("rows", &by_rows), ("panels", &by_cols)] {
                let same = (0..m).all(|i| {
                    let row = i * c.ldc..i * c.ldc + n;
                    bits(&got[row.clone()]) == bits(&whole[row])
                });
                assert!(
                    same,
                    "{name}: {m}x{n}x{k} split over {what} at {r}/{p} differs"
                );
            }
        }
    }
}

/// Every SIMD GEMM of the registry this CPU runs, at sizes around its register tile.
#[test]
fn simd_gemm_kernels_match_scalar_and_reference() {
    for e in twins::simd("f32_gemm", f32_gemm::GEMM) {
        let (mr, nt) = twins::tile(e);
        check_gemm(e.name, e.f, mr, nt);
    }
}

#[test]
fn scalar_gemm_splits_give_the_same_bits() {
    let scalar = twins::scalar("f32_gemm", f32_gemm::GEMM);
    check_gemm_splits(scalar.name, scalar.f, twins::tile(scalar).0);
}

/// A hand-computed 2x3 product (k = 2) with bias, residual and ReLU6.
#[test]
fn simd_gemm_hand_computed() {
    let a = [1.0, 2.0, -3.0, 0.5];
    let b = [1.0, 0.0, 2.0, 3.0, -1.0, 1.0]; // B[2][3]
    let bias = [0.5, 0.0, -1.0];
    let res = [0.0, 1.0, 0.0, 0.0, 0.0, 10.0];
    // A·B = [[7, -2, 4], [-1.5, -0.5, -5.5]]; + bias + res = [[7.5, -1, 3], [-1, -0.5, 3.5]].
    let want = [6.0, 0.0, 3.0, 0.0, 0.0, 3.5];
    let mut fns = vec![twins::scalar("f32_gemm", f32_gemm::GEMM)];
    fns.extend(twins::simd("f32_gemm", f32_gemm::GEMM));
    for (name, f) in fns.into_iter().map(|e| (e.name, e.f)) {
        let packed = pack_b(2, 3, &b);
        let mut c = [0f32; 6];
        f(GemmParams {
            m: 2,
            n: 3,
            k: 2,
            a: &a,
            lda: 2,
            b: &packed,
            bias: Some(&bias),
            residual: Some(&res),
            c: (&mut c[..]).into(),
            ldc: 3,
            act: Act::Clip { min: 0.0, max: 6.0 },
        });
        assert_eq!(c, want, "{name}");
    }
}

// ---------------------------------------------------------------- depthwise

#[allow(clippy::too_many_arguments)]
fn dw_geom(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: (usize, usize),
    s: (usize, usize),
    d: (usize, usize),
    pad: (usize, usize, usize, usize),
) -> ConvGeom {
    let (pt, pl, pb, pr) = pad;
    let out = |size: usize, p0: usize, p1: usize, k: usize, s: usize, d: usize| {
        let ext = d * (k - 1) + 1;
        (size + p0 + p1).saturating_sub(ext) / s + usize::from(size + p0 + p1 >= ext)
    };
    ConvGeom {
        n,
        h,
        w,
        c,
        oh: out(h, pt, pb, k.0, s.0, d.0),
        ow: out(w, pl, pr, k.1, s.1, d.1),
        o: c,
        kh: k.0,
        kw: k.1,
        sh: s.0,
        sw: s.1,
        dh: d.0,
        dw: d.1,
        pt,
        pl,
        groups: c,
    }
}

struct DwData {
    x: Vec<f32>,
    oihw: Vec<f32>,
    packed: Vec<f32>,
    bias: Vec<f32>,
    res: Vec<f32>,
}

fn dw_data(g: &ConvGeom, seed: u64) -> DwData {
    let mut r = rng(seed);
    let oihw = r.values(g.c * g.kh * g.kw);
    DwData {
        x: r.values(g.n * g.h * g.w * g.c),
        packed: pack_weights(g, &oihw),
        oihw,
        bias: r.values(g.c),
        res: r.values(g.n * g.oh * g.ow * g.c),
    }
}

fn run_dw(f: DwConvFn, g: &ConvGeom, d: &DwData, residual: bool, act: Act) -> Vec<f32> {
    let len = g.n * g.oh * g.ow * g.c;
    let mut y = vec![GUARD; len + 21];
    f(ConvArgs {
        g,
        x: &d.x,
        w: &d.packed,
        bias: &d.bias,
        residual: residual.then_some(d.res.as_slice()),
        y: &mut y[..len],
        act,
    });
    assert!(
        y[len..].iter().all(|v| v.to_bits() == GUARD.to_bits()),
        "stray store after y"
    );
    y.truncate(len);
    y
}

/// Naive f64 depthwise reference `(value, magnitude sum)` before the activation, from the
/// unpacked OIHW weights and signed padding arithmetic.
fn dw_ref(g: &ConvGeom, d: &DwData, residual: bool) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for n in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for ch in 0..g.c {
                    let b = d.bias[ch] as f64;
                    let (mut v, mut s) = (b, b.abs());
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let iy = (oy * g.sh + ky * g.dh) as i64 - g.pt as i64;
                            let ix = (ox * g.sw + kx * g.dw) as i64 - g.pl as i64;
                            if iy < 0 || ix < 0 || iy >= g.h as i64 || ix >= g.w as i64 {
                                continue;
                            }
                            let xi = ((n * g.h + iy as usize) * g.w + ix as usize) * g.c + ch;
                            let t = d.x[xi] as f64 * d.oihw[(ch * g.kh + ky) * g.kw + kx] as f64;
                            v += t;
                            s += t.abs();
                        }
                    }
                    if residual {
                        let r = d.res[((n * g.oh + oy) * g.ow + ox) * g.c + ch] as f64;
                        v += r;
                        s += r.abs();
                    }
                    out.push((v, s + 1e-6));
                }
            }
        }
    }
    out
}

/// The scalar depthwise kernel of the registry: the twin every SIMD kernel is compared with.
fn scalar_dw() -> DwConvFn {
    twins::scalar("f32_dwconv", f32_dwconv::DWCONV).f
}

fn check_dw_case(
    name: &str,
    f: DwConvFn,
    generic: DwConvFn,
    g: &ConvGeom,
    acts: &[Act],
    seed: u64,
) {
    let d = dw_data(g, seed);
    for residual in [false, true] {
        let ctx = format!("{name} {g:?} residual={residual}");
        let reference = dw_ref(g, &d, residual);
        let pre = run_dw(f, g, &d, residual, Act::None);
        let pre_generic = run_dw(generic, g, &d, residual, Act::None);
        let pre_scalar = run_dw(scalar_dw(), g, &d, residual, Act::None);
        for (idx, &(want, scale)) in reference.iter().enumerate() {
            let got = pre[idx] as f64;
            assert!(
                (got - want).abs() <= TOL * scale,
                "{ctx}: y[{idx}] = {got}, reference {want}"
            );
            assert!(
                (got - pre_scalar[idx] as f64).abs() <= TOL * scale,
                "{ctx}: y[{idx}] = {got}, scalar {}",
                pre_scalar[idx]
            );
            assert!(
                same_bits(pre[idx], pre_generic[idx]),
                "{ctx}: fast path y[{idx}] = {got}, generic path {}",
                pre_generic[idx]
            );
        }
        for &act in acts {
            let fused = run_dw(f, g, &d, residual, act);
            let scalar = run_dw(scalar_dw(), g, &d, residual, act);
            let mut unfused = pre.clone();
            activation(act, &mut unfused);
            for (idx, &(_, scale)) in reference.iter().enumerate() {
                assert!(
                    fused_agrees(act, fused[idx], unfused[idx]),
                    "{ctx} {act:?}: fused y[{idx}] = {} but act(unfused) = {}",
                    fused[idx],
                    unfused[idx]
                );
                assert!(
                    close(act, fused[idx], scalar[idx], pre[idx], scale),
                    "{ctx} {act:?}: y[{idx}] = {}, scalar {}",
                    fused[idx],
                    scalar[idx]
                );
            }
        }
    }
}

fn check_dw(name: &str, f: DwConvFn, generic: DwConvFn, lanes: usize) {
    let mut seed = 1000;
    // Channel counts around the vector width and the 4-register block.
    let channels = [
        0,
        1,
        3,
        5,
        lanes,
        lanes + 1,
        3 * lanes + 5,
        4 * lanes,
        4 * lanes + 1,
        17,
        33,
        96,
        144,
    ];
    let kernels = [
        ((3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
        ((3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
        ((3, 3), (2, 2), (1, 1), (0, 0, 1, 1)),
        ((5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),
        ((5, 5), (2, 2), (1, 1), (1, 2, 2, 1)),
        ((3, 3), (1, 1), (2, 2), (2, 2, 2, 2)),
        ((1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
        ((2, 3), (1, 2), (1, 1), (0, 1, 1, 0)),
        ((7, 7), (1, 1), (1, 1), (3, 3, 3, 3)),
        ((3, 3), (3, 1), (1, 3), (0, 3, 0, 0)),
    ];
    for &c in &channels {
        for (ki, &(k, s, dil, pad)) in kernels.iter().enumerate() {
            let (h, w) = (5 + ki % 4, 7 + ki % 3);
            let g = dw_geom(1 + ki % 2, c, h, w, k, s, dil, pad);
            check_dw_case(
                name,
                f,
                generic,
                &g,
                &[Act::Clip { min: 0.0, max: 6.0 }],
                seed,
            );
            seed += 1;
        }
    }
    // Tiny and degenerate images: 1x1 input, kernel larger than the padded input.
    for g in [
        dw_geom(1, 19, 1, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
        dw_geom(1, 9, 2, 2, (5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),
        dw_geom(2, 3, 1, 4, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
        dw_geom(1, 8, 3, 3, (3, 3), (1, 1), (1, 1), (0, 0, 0, 0)),
        dw_geom(1, 16, 0, 4, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    ] {
        check_dw_case(name, f, generic, &g, &[Act::Relu], seed);
        seed += 1;
    }
    // Every activation on an odd channel count with both interior and border pixels.
    let g = dw_geom(1, 2 * lanes + 3, 9, 8, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1));
    check_dw_case(name, f, generic, &g, &all_acts(), seed);
    let g = dw_geom(1, 33, 8, 9, (5, 5), (2, 2), (1, 1), (2, 2, 2, 2));
    check_dw_case(name, f, generic, &g, &all_acts(), seed + 1);
    // Random geometries.
    let mut r = rng(7);
    for i in 0..40 {
        let k = (1 + r.below(5), 1 + r.below(5));
        let s = (1 + r.below(3), 1 + r.below(3));
        let dil = (1 + r.below(2), 1 + r.below(2));
        let pad = (r.below(3), r.below(3), r.below(3), r.below(3));
        let g = dw_geom(
            1 + r.below(2),
            1 + r.below(70),
            1 + r.below(12),
            1 + r.below(12),
            k,
            s,
            dil,
            pad,
        );
        let act = all_acts()[r.below(19)];
        check_dw_case(name, f, generic, &g, &[act], seed + 2 + i);
    }
}

/// The tiled row path of the SIMD kernels (3x3 and 5x5 kernels at column stride 1 and 2):
/// symmetric and TF "same" (top/left 0, bottom/right 1) padding, output widths 1, 2, tile,
/// tile+1, 3*tile+5 for both tile sizes in use (4 and 7 pixels) and their neighbours, and
/// channel counts around the 8- and 16-lane registers and the 2-register blocks.
fn check_dw_tiled(name: &str, f: DwConvFn, generic: DwConvFn) {
    let channels = [1, 7, 8, 15, 16, 17, 33, 96, 144];
    let widths: [usize; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 10, 14, 17, 26];
    // (kernel, stride, padding top/left/bottom/right)
    let configs = [
        (3, 1, (1, 1, 1, 1)),
        (3, 1, (0, 0, 1, 1)),
        (3, 2, (1, 1, 1, 1)),
        (3, 2, (0, 0, 1, 1)),
        (5, 1, (2, 2, 2, 2)),
        (5, 1, (0, 0, 1, 1)),
        (5, 2, (2, 2, 2, 2)),
        (5, 2, (1, 1, 2, 2)),
    ];
    let acts = [
        Act::Clip { min: 0.0, max: 6.0 },
        Act::HardSwish,
        Act::Sigmoid,
    ];
    let mut seed = 5000;
    for (ci, &(k, s, pad)) in configs.iter().enumerate() {
        let (pt, pl, pb, pr) = pad;
        for (wi, &ow) in widths.iter().enumerate() {
            // Input width giving `ow` outputs (the widest one, so the last column is used).
            let w = ((ow - 1) * s + k).saturating_sub(pl + pr).max(1) + (s - 1);
            let h = 4 + (ci + wi) % 4;
            for (chi, &c) in channels.iter().enumerate() {
                let g = dw_geom(1 + (wi + chi) % 2, c, h, w, (k, k), (s, s), (1, 1), pad);
                assert_eq!(g.ow, ow, "{k}x{k} s{s} {pad:?} w={w}");
                let act = acts[(ci + wi + chi) % acts.len()];
                check_dw_case(name, f, generic, &g, &[act], seed);
                seed += 1;
            }
        }
        // Every activation once per configuration.
        let g = dw_geom(1, 37, 6, 15, (k, k), (s, s), (1, 1), (pt, pl, pb, pr));
        check_dw_case(name, f, generic, &g, &all_acts(), seed);
        seed += 1;
    }
    // Row stride and dilation differ from the column ones (the tiled path only needs unit
    // column dilation); column stride 2 with row stride 1.
    for (k, s, d, pad) in [
        ((3, 3), (2, 1), (1, 1), (1, 1, 1, 1)),
        ((3, 3), (1, 2), (1, 1), (0, 0, 1, 1)),
        ((3, 3), (1, 1), (2, 1), (2, 1, 2, 1)),
        ((5, 5), (3, 2), (2, 1), (4, 2, 4, 2)),
    ] {
        for c in [7, 16, 33] {
            let g = dw_geom(2, c, 9, 19, k, s, d, pad);
            check_dw_case(name, f, generic, &g, &[Act::Relu], seed);
            seed += 1;
        }
    }
}

/// f32 lanes of one register of tier `isa`: the channel counts of the depthwise checks
/// straddle it and its 4-register blocks.
fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Scalar => 1,
        Isa::Neon => 4,
        Isa::Avx2 => 8,
        Isa::Avx512 => 16,
    }
}

/// Every SIMD depthwise kernel of the registry this CPU runs, against the scalar one and the
/// reference, and bit for bit against its generic-path test twin (itself when it has none).
#[test]
fn simd_dwconv_kernels_match_scalar_and_reference() {
    for e in twins::simd_dispatched("f32_dwconv", f32_dwconv::DWCONV) {
        let generic = twins::twin(f32_dwconv::DWCONV, e).f;
        check_dw(e.name, e.f, generic, lanes(e.isa));
        check_dw_tiled(e.name, e.f, generic);
    }
}

/// The SIMD tiers install these kernels in their slots (as `inspect` reports them).
#[test]
fn simd_slots_are_installed_per_tier() {
    let cpu = CpuFeatures::detect();
    if cpu.supports(Isa::Avx2) {
        let k = for_isa(Isa::Avx2);
        assert_eq!(k.f32_gemm.name, "f32_gemm::avx2::gemm_6x16");
        assert_eq!(k.f32_dwconv.name, "f32_dwconv::avx2::dwconv_8c");
    } else {
        eprintln!("SKIP avx2 slots: tier not supported");
    }
    if cpu.supports(Isa::Avx512) {
        let k = for_isa(Isa::Avx512);
        // Cores that split 512-bit operations in two keep the faster 256-bit GEMM tiles.
        let gemm = if cpu.split_512 {
            "f32_gemm::avx2::gemm_6x16"
        } else {
            "f32_gemm::avx512::gemm_8x32"
        };
        assert_eq!(k.f32_gemm.name, gemm);
        assert_eq!(k.f32_dwconv.name, "f32_dwconv::avx512::dwconv_16c");
    } else {
        eprintln!("SKIP avx512 slots: tier not supported");
    }
    let k = for_isa(Isa::Scalar);
    assert_eq!(k.f32_gemm.name, "f32_gemm::scalar::gemm_4x16");
}
