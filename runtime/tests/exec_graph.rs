//! The executor on small hand-built graphs covering every `Op`, compared against a naive
//! logical-layout (NCHW) interpreter written here; plus arena, repeatability and input errors.

use std::collections::HashMap;
use std::sync::Arc;

use ferrolite_runtime::exec::Session;
use ferrolite_runtime::ir::{PadMode, PoolKind, Quant, ReduceOp, Window};
use ferrolite_runtime::kernels;
use ferrolite_runtime::{
    Activation, AlignedBytes, BinaryOp, DType, Error, Graph, Model, Node, Op, Tensor, Weights,
};

struct Rng(u64);
impl Rng {
    fn v(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }
}

#[derive(Default)]
struct B {
    g: Graph,
    w: AlignedBytes,
    vals: HashMap<usize, Vec<f32>>,
    rng: Option<Rng>,
}

impl B {
    fn new() -> Self {
        B {
            rng: Some(Rng(42)),
            ..Default::default()
        }
    }
    fn t(&mut self, shape: &[usize], dtype: DType, quant: Option<Quant>) -> usize {
        let name = format!("t{}", self.g.tensors.len());
        self.g.tensors.push(Tensor {
            name,
            shape: shape.to_vec(),
            dtype,
            quant,
            data: None,
        });
        self.g.tensors.len() - 1
    }
    fn input(&mut self, shape: &[usize]) -> usize {
        let t = self.t(shape, DType::F32, None);
        self.g.inputs.push(t);
        t
    }
    fn cst(&mut self, shape: &[usize], data: Vec<f32>) -> usize {
        let t = self.t(shape, DType::F32, None);
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.g.tensors[t].data = Some(self.w.push_aligned(&bytes));
        self.vals.insert(t, data);
        t
    }
    fn rand(&mut self, shape: &[usize]) -> usize {
        let n = shape.iter().product();
        let d = self.rng.as_mut().unwrap().v(n);
        self.cst(shape, d)
    }
    fn op(&mut self, op: Op, ins: &[usize], out_shapes: &[&[usize]]) -> Vec<usize> {
        let outs: Vec<usize> = out_shapes
            .iter()
            .map(|s| self.t(s, DType::F32, None))
            .collect();
        self.push(op, ins, &outs);
        outs
    }
    fn op1(&mut self, op: Op, ins: &[usize], shape: &[usize]) -> usize {
        self.op(op, ins, &[shape])[0]
    }
    fn push(&mut self, op: Op, ins: &[usize], outs: &[usize]) {
        let name = format!("n{}", self.g.nodes.len());
        self.g.nodes.push(Node {
            name,
            op,
            inputs: ins.to_vec(),
            outputs: outs.to_vec(),
        });
    }
    fn out(&mut self, t: usize) {
        self.g.outputs.push(t);
    }
    fn model(&self) -> Model {
        Model {
            meta: Default::default(),
            graph: self.g.clone(),
            weights: Weights::Owned(self.w.clone()),
        }
    }
}

// ---------------------------------------------------------------- naive interpreter

fn strides(s: &[usize]) -> Vec<usize> {
    let mut st = vec![1; s.len()];
    for a in (0..s.len().saturating_sub(1)).rev() {
        st[a] = st[a + 1] * s[a + 1];
    }
    st
}
fn unflat(s: &[usize], mut i: usize) -> Vec<usize> {
    let mut idx = vec![0; s.len()];
    for a in (0..s.len()).rev() {
        idx[a] = i % s[a];
        i /= s[a];
    }
    idx
}
fn flat(s: &[usize], idx: &[usize]) -> usize {
    idx.iter().zip(strides(s)).map(|(i, st)| i * st).sum()
}
fn erf_ref(x: f64) -> f64 {
    // Maclaurin series, accurate for |x| < 3 (enough for the test values).
    let mut sum = 0.0;
    let mut term = x;
    for n in 0..80 {
        sum += term / (2 * n + 1) as f64;
        term *= -x * x / (n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}
fn act(a: Activation, v: f32) -> f32 {
    let x = v as f64;
    let sig = 1.0 / (1.0 + (-x).exp());
    (match a {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Clip { min, max } => x.max(min as f64).min(max as f64),
        Activation::LeakyRelu { alpha } => {
            if x < 0.0 {
                alpha as f64 * x
            } else {
                x
            }
        }
        Activation::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
        Activation::Sigmoid => sig,
        Activation::Silu => x * sig,
        Activation::Tanh => x.tanh(),
        Activation::Gelu => 0.5 * x * (1.0 + erf_ref(x / 2f64.sqrt())),
        Activation::Exp => x.exp(),
        Activation::Log => x.ln(),
        Activation::Sqrt => x.sqrt(),
        Activation::Rsqrt => 1.0 / x.sqrt(),
        Activation::Reciprocal => 1.0 / x,
        Activation::Abs => x.abs(),
        Activation::Neg => -x,
        Activation::Erf => erf_ref(x),
    }) as f32
}
fn bin(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max => a.max(b),
        BinaryOp::Min => a.min(b),
        BinaryOp::Pow => a.powf(b),
    }
}
/// Element of `x` (shape `s`) at broadcast index `idx` of a rank-`r` output.
fn bget(x: &[f32], s: &[usize], idx: &[usize]) -> f32 {
    let lead = idx.len() - s.len();
    let i: Vec<usize> = (0..s.len())
        .map(|d| if s[d] == 1 { 0 } else { idx[lead + d] })
        .collect();
    x[flat(s, &i)]
}

fn naive(g: &Graph, consts: &HashMap<usize, Vec<f32>>, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let mut v: HashMap<usize, Vec<f32>> = consts.clone();
    for (&t, d) in g.inputs.iter().zip(inputs) {
        v.insert(t, d.clone());
    }
    let sh = |t: usize| g.tensors[t].shape.clone();
    for node in &g.nodes {
        let x = v[&node.inputs[0]].clone();
        let xs = sh(node.inputs[0]);
        let os = sh(node.outputs[0]);
        let on: usize = os.iter().product();
        let mut y = vec![0.0f32; on];
        match &node.op {
            Op::Conv2d {
                window,
                groups,
                activation,
                has_bias,
                has_residual,
            } => {
                let w = &v[&node.inputs[1]];
                let ws = sh(node.inputs[1]);
                let (cg, og) = (xs[1] / groups, os[1] / groups);
                for (i, out) in y.iter_mut().enumerate() {
                    let [n, o, oy, ox] = unflat(&os, i)[..] else {
                        unreachable!()
                    };
                    let mut s = if *has_bias {
                        v[&node.inputs[2]][o]
                    } else {
                        0.0
                    };
                    for ic in 0..cg {
                        for ky in 0..ws[2] {
                            for kx in 0..ws[3] {
                                let iy = (oy * window.strides[0] + ky * window.dilations[0])
                                    as isize
                                    - window.pads[0] as isize;
                                let ix = (ox * window.strides[1] + kx * window.dilations[1])
                                    as isize
                                    - window.pads[1] as isize;
                                if iy < 0 || ix < 0 || iy >= xs[2] as isize || ix >= xs[3] as isize
                                {
                                    continue;
                                }
                                let c = (o / og) * cg + ic;
                                s += x[flat(&xs, &[n, c, iy as usize, ix as usize])]
                                    * w[flat(&ws, &[o, ic, ky, kx])];
                            }
                        }
                    }
                    if *has_residual {
                        s += v[node.inputs.last().unwrap()][i];
                    }
                    *out = act(*activation, s);
                }
            }
            Op::FullyConnected {
                activation,
                has_bias,
            } => {
                let w = &v[&node.inputs[1]];
                let (o, k) = (sh(node.inputs[1])[0], sh(node.inputs[1])[1]);
                for (i, out) in y.iter_mut().enumerate() {
                    let (row, j) = (i / o, i % o);
                    let mut s = if *has_bias {
                        v[&node.inputs[2]][j]
                    } else {
                        0.0
                    };
                    for p in 0..k {
                        s += x[row * k + p] * w[j * k + p];
                    }
                    *out = act(*activation, s);
                }
            }
            Op::MatMul => {
                let b = &v[&node.inputs[1]];
                let bs = sh(node.inputs[1]);
                let k = xs[xs.len() - 1];
                for (i, out) in y.iter_mut().enumerate() {
                    let idx = unflat(&os, i);
                    let r = idx.len();
                    let mut s = 0.0;
                    for p in 0..k {
                        let mut ia = idx.clone();
                        ia[r - 1] = p;
                        let mut ib = idx.clone();
                        ib[r - 2] = p;
                        s += bget(&x, &xs, &ia) * bget(b, &bs, &ib);
                    }
                    *out = s;
                }
            }
            Op::Binary { op, activation } => {
                let b = &v[&node.inputs[1]];
                let bs = sh(node.inputs[1]);
                for (i, out) in y.iter_mut().enumerate() {
                    let idx = unflat(&os, i);
                    *out = act(
                        *activation,
                        bin(*op, bget(&x, &xs, &idx), bget(b, &bs, &idx)),
                    );
                }
            }
            Op::Unary { activation } => y = x.iter().map(|&e| act(*activation, e)).collect(),
            Op::BatchNorm => {
                for (i, out) in y.iter_mut().enumerate() {
                    let c = unflat(&os, i)[1];
                    *out = x[i] * v[&node.inputs[1]][c] + v[&node.inputs[2]][c];
                }
            }
            Op::LayerNorm { epsilon } => {
                let d = *xs.last().unwrap();
                let (scale, shift) = (&v[&node.inputs[1]], &v[&node.inputs[2]]);
                for (row, out) in x.chunks(d).zip(y.chunks_mut(d)) {
                    let mean = row.iter().map(|&e| e as f64).sum::<f64>() / d as f64;
                    let var =
                        row.iter().map(|&e| (e as f64 - mean).powi(2)).sum::<f64>() / d as f64;
                    let inv = 1.0 / (var + *epsilon as f64).sqrt();
                    for (j, o) in out.iter_mut().enumerate() {
                        *o = ((row[j] as f64 - mean) * inv * scale[j] as f64 + shift[j] as f64)
                            as f32;
                    }
                }
            }
            Op::Pool2d { kind, window } => {
                for (i, out) in y.iter_mut().enumerate() {
                    let [n, c, oy, ox] = unflat(&os, i)[..] else {
                        unreachable!()
                    };
                    let (mut m, mut s, mut cnt) = (f32::NEG_INFINITY, 0.0, 0);
                    for ky in 0..window.kernel[0] {
                        for kx in 0..window.kernel[1] {
                            let iy = (oy * window.strides[0] + ky * window.dilations[0]) as isize
                                - window.pads[0] as isize;
                            let ix = (ox * window.strides[1] + kx * window.dilations[1]) as isize
                                - window.pads[1] as isize;
                            if iy < 0 || ix < 0 || iy >= xs[2] as isize || ix >= xs[3] as isize {
                                continue;
                            }
                            let e = x[flat(&xs, &[n, c, iy as usize, ix as usize])];
                            m = m.max(e);
                            s += e;
                            cnt += 1;
                        }
                    }
                    *out = match kind {
                        PoolKind::Max => m,
                        PoolKind::Avg {
                            count_include_pad: false,
                        } => s / cnt as f32,
                        PoolKind::Avg {
                            count_include_pad: true,
                        } => s / (window.kernel[0] * window.kernel[1]) as f32,
                    };
                }
            }
            Op::Reduce {
                op,
                axes,
                keep_dims,
            } => {
                let init = match op {
                    ReduceOp::Max => f32::NEG_INFINITY,
                    ReduceOp::Min => f32::INFINITY,
                    _ => 0.0,
                };
                y.fill(init);
                let count: usize = axes.iter().map(|&a| xs[a]).product();
                for (i, &e) in x.iter().enumerate() {
                    let idx = unflat(&xs, i);
                    let oi: Vec<usize> = (0..xs.len())
                        .filter_map(|d| match (axes.contains(&d), keep_dims) {
                            (false, _) => Some(idx[d]),
                            (true, true) => Some(0),
                            _ => None,
                        })
                        .collect();
                    let o = &mut y[flat(&os, &oi)];
                    *o = match op {
                        ReduceOp::Sum | ReduceOp::Mean => *o + e,
                        ReduceOp::Max => o.max(e),
                        ReduceOp::Min => o.min(e),
                    };
                }
                if *op == ReduceOp::Mean {
                    y.iter_mut().for_each(|e| *e /= count as f32);
                }
            }
            Op::Concat { axis } => {
                for (i, out) in y.iter_mut().enumerate() {
                    let mut idx = unflat(&os, i);
                    for &t in &node.inputs {
                        let ts = sh(t);
                        if idx[*axis] < ts[*axis] {
                            *out = v[&t][flat(&ts, &idx)];
                            break;
                        }
                        idx[*axis] -= ts[*axis];
                    }
                }
            }
            Op::Split { axis, .. } => {
                let mut at = 0;
                for &t in &node.outputs {
                    let ts = sh(t);
                    let d: Vec<f32> = (0..ts.iter().product())
                        .map(|i| {
                            let mut idx = unflat(&ts, i);
                            idx[*axis] += at;
                            x[flat(&xs, &idx)]
                        })
                        .collect();
                    at += ts[*axis];
                    v.insert(t, d);
                }
                continue;
            }
            Op::Slice {
                axis, start, step, ..
            } => {
                for (i, out) in y.iter_mut().enumerate() {
                    let mut idx = unflat(&os, i);
                    idx[*axis] = start + idx[*axis] * step;
                    *out = x[flat(&xs, &idx)];
                }
            }
            Op::Reshape => y = x.clone(),
            Op::Transpose { perm } => {
                for (i, out) in y.iter_mut().enumerate() {
                    let idx = unflat(&os, i);
                    let mut src = vec![0; idx.len()];
                    for (d, &p) in perm.iter().enumerate() {
                        src[p] = idx[d];
                    }
                    *out = x[flat(&xs, &src)];
                }
            }
            Op::Softmax { axis } => {
                for (i, out) in y.iter_mut().enumerate() {
                    let idx = unflat(&os, i);
                    let mut den = 0.0f64;
                    let mut mx = f32::NEG_INFINITY;
                    for j in 0..xs[*axis] {
                        let mut q = idx.clone();
                        q[*axis] = j;
                        mx = mx.max(x[flat(&xs, &q)]);
                    }
                    for j in 0..xs[*axis] {
                        let mut q = idx.clone();
                        q[*axis] = j;
                        den += ((x[flat(&xs, &q)] - mx) as f64).exp();
                    }
                    *out = (((x[i] - mx) as f64).exp() / den) as f32;
                }
            }
            Op::Pad { pads, mode } => {
                for (i, out) in y.iter_mut().enumerate() {
                    let idx = unflat(&os, i);
                    let mut src = vec![0; idx.len()];
                    let mut fill = false;
                    for d in 0..idx.len() {
                        let n = xs[d] as isize;
                        let p = idx[d] as isize - pads[d].0 as isize;
                        src[d] = if (0..n).contains(&p) {
                            p
                        } else {
                            match mode {
                                PadMode::Constant { .. } => {
                                    fill = true;
                                    0
                                }
                                PadMode::Edge => p.clamp(0, n - 1),
                                PadMode::Reflect => {
                                    if p < 0 {
                                        -p
                                    } else {
                                        2 * (n - 1) - p
                                    }
                                }
                            }
                        } as usize;
                    }
                    *out = match (fill, mode) {
                        (true, PadMode::Constant { value }) => *value,
                        _ => x[flat(&xs, &src)],
                    };
                }
            }
            Op::ChannelShuffle { groups, .. } => {
                // Concatenate the inputs on axis 1, shuffle, split evenly into the outputs.
                let mut cs = xs.clone();
                cs[1] = node.inputs.iter().map(|&t| sh(t)[1]).sum();
                let cat: Vec<f32> = (0..cs.iter().product())
                    .map(|i| {
                        let mut idx = unflat(&cs, i);
                        for &t in &node.inputs {
                            let ts = sh(t);
                            if idx[1] < ts[1] {
                                return v[&t][flat(&ts, &idx)];
                            }
                            idx[1] -= ts[1];
                        }
                        unreachable!("channel index inside the concatenation")
                    })
                    .collect();
                let cg = cs[1] / groups;
                let mut at = 0;
                for &t in &node.outputs {
                    let ts = sh(t);
                    let d: Vec<f32> = (0..ts.iter().product())
                        .map(|i| {
                            let mut idx = unflat(&ts, i);
                            let oc = idx[1] + at;
                            idx[1] = (oc % groups) * cg + oc / groups;
                            cat[flat(&cs, &idx)]
                        })
                        .collect();
                    at += ts[1];
                    v.insert(t, d);
                }
                continue;
            }
            Op::Quantize | Op::Dequantize => {
                let q = if matches!(node.op, Op::Quantize) {
                    &g.tensors[node.outputs[0]]
                } else {
                    &g.tensors[node.inputs[0]]
                };
                let (lo, hi) = if q.dtype == DType::I8 {
                    (-128.0, 127.0)
                } else {
                    (0.0, 255.0)
                };
                for (i, out) in y.iter_mut().enumerate() {
                    let (s, z) = match q.quant.as_ref().unwrap() {
                        Quant::PerTensor { scale, zero_point } => (*scale, *zero_point as f32),
                        Quant::PerChannel {
                            axis,
                            scales,
                            zero_points,
                        } => {
                            let c = unflat(&os, i)[*axis];
                            (scales[c], zero_points[c] as f32)
                        }
                    };
                    *out = if matches!(node.op, Op::Quantize) {
                        ((x[i] / s).round_ties_even() + z).clamp(lo, hi)
                    } else {
                        (x[i] - z) * s
                    };
                }
            }
        }
        v.insert(node.outputs[0], y);
    }
    g.outputs.iter().map(|t| v[t].clone()).collect()
}

// ---------------------------------------------------------------- harness

fn check(b: &B, seed: u64) -> Session {
    let model = b.model();
    let mut rng = Rng(seed);
    let inputs: Vec<Vec<f32>> =
        b.g.inputs
            .iter()
            .map(|&t| rng.v(b.g.tensors[t].numel()))
            .collect();
    let want = naive(&b.g, &b.vals, &inputs);
    let refs: Vec<&[f32]> = inputs.iter().map(|v| v.as_slice()).collect();
    let model = Arc::new(model);
    // Every tier this CPU runs must match the naive interpreter (scalar last: returned).
    let cpu = kernels::CpuFeatures::detect();
    let tiers = [kernels::Isa::Avx512, kernels::Isa::Avx2, kernels::Isa::Neon];
    let mut sets: Vec<_> = tiers
        .into_iter()
        .filter(|&isa| cpu.supports(isa))
        .map(kernels::for_isa)
        .collect();
    sets.push(kernels::generic());
    let mut last = None;
    for k in sets {
        let mut s = Session::with_kernels(model.clone(), k).expect("plan");
        s.run(&refs).expect("run");
        for (i, w) in want.iter().enumerate() {
            let got = s.output(i).expect("output");
            assert_eq!(got.len(), w.len(), "output {i} length");
            let scale = w.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (j, (g, e)) in got.iter().zip(w).enumerate() {
                assert!(
                    (g - e).abs() <= 1e-4 * scale,
                    "tier {:?}: output {i} element {j}: got {g}, want {e}",
                    k.isa
                );
            }
        }
        last = Some(s);
    }
    let mut s = last.expect("the scalar tier always runs");
    // a second run gives identical results
    let first: Vec<Vec<f32>> = (0..want.len())
        .map(|i| s.output(i).expect("output").to_vec())
        .collect();
    let times = s.run_profiled(&refs).expect("run twice");
    assert_eq!(times.len(), s.plan().steps().len());
    for (i, f) in first.iter().enumerate() {
        assert_eq!(
            s.output(i).expect("output"),
            f.as_slice(),
            "second run differs"
        );
    }
    s
}

fn win(k: [usize; 2], s: [usize; 2], d: [usize; 2], p: [usize; 4]) -> Window {
    Window {
        kernel: k,
        strides: s,
        dilations: d,
        pads: p,
    }
}

#[allow(clippy::too_many_arguments)]
fn conv(
    b: &mut B,
    x: usize,
    xs: [usize; 4],
    o: usize,
    w: Window,
    groups: usize,
    a: Activation,
    res: Option<usize>,
) -> (usize, [usize; 4]) {
    let [oh, ow] = w.output_hw([xs[2], xs[3]]).unwrap();
    let wt = b.rand(&[o, xs[1] / groups, w.kernel[0], w.kernel[1]]);
    let bias = b.rand(&[o]);
    let mut ins = vec![x, wt, bias];
    ins.extend(res);
    let os = [xs[0], o, oh, ow];
    let y = b.op1(
        Op::Conv2d {
            window: w,
            groups,
            activation: a,
            has_bias: true,
            has_residual: res.is_some(),
        },
        &ins,
        &os,
    );
    (y, os)
}

#[test]
fn conv_pool_fc_softmax_chain() {
    let mut b = B::new();
    let x = b.input(&[2, 3, 11, 10]);
    let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
    let (c1, s1) = conv(
        &mut b,
        x,
        [2, 3, 11, 10],
        6,
        win([3, 3], [2, 2], [1, 1], [1, 0, 2, 1]),
        1,
        relu6,
        None,
    );
    let (c2, s2) = conv(
        &mut b,
        c1,
        s1,
        6,
        win([5, 3], [1, 1], [2, 1], [4, 1, 3, 1]),
        6,
        Activation::HardSwish,
        None,
    );
    let (c3, s3) = conv(
        &mut b,
        c2,
        s2,
        6,
        win([1, 1], [1, 1], [1, 1], [0; 4]),
        1,
        Activation::Relu,
        Some(c2),
    );
    let (c4, s4) = conv(
        &mut b,
        c3,
        s3,
        9,
        win([3, 3], [1, 2], [1, 1], [1, 1, 1, 1]),
        3,
        Activation::Silu,
        None,
    );
    let (c4g, _) = conv(
        &mut b,
        c4,
        s4,
        6,
        win([1, 1], [1, 1], [1, 1], [0; 4]),
        3,
        Activation::Relu,
        None,
    );
    let (c4r, _) = conv(
        &mut b,
        c4g,
        [s4[0], 6, s4[2], s4[3]],
        6,
        win([1, 1], [1, 1], [1, 1], [0; 4]),
        2,
        Activation::None,
        Some(c4g),
    );
    b.out(c4r);
    let (c5, s5) = conv(
        &mut b,
        c4,
        s4,
        4,
        win([1, 1], [2, 2], [1, 1], [0; 4]),
        1,
        Activation::None,
        None,
    );
    let _ = c5;
    let mp_w = win([3, 2], [2, 1], [1, 1], [1, 1, 0, 1]);
    let [mh, mw] = mp_w.output_hw([s4[2], s4[3]]).unwrap();
    let mp = b.op1(
        Op::Pool2d {
            kind: PoolKind::Max,
            window: mp_w,
        },
        &[c4],
        &[2, 9, mh, mw],
    );
    let ap_w = win([3, 3], [1, 1], [1, 1], [1, 1, 1, 1]);
    let ap = b.op1(
        Op::Pool2d {
            kind: PoolKind::Avg {
                count_include_pad: true,
            },
            window: ap_w,
        },
        &[mp],
        &[2, 9, mh, mw],
    );
    let ap2 = b.op1(
        Op::Pool2d {
            kind: PoolKind::Avg {
                count_include_pad: false,
            },
            window: ap_w,
        },
        &[mp],
        &[2, 9, mh, mw],
    );
    let gp = b.op1(
        Op::Pool2d {
            kind: PoolKind::Avg {
                count_include_pad: false,
            },
            window: win([mh, mw], [1, 1], [1, 1], [0; 4]),
        },
        &[ap],
        &[2, 9, 1, 1],
    );
    let flat = b.op1(Op::Reshape, &[gp], &[2, 9]);
    let fw = b.rand(&[5, 9]);
    let fb = b.rand(&[5]);
    let fc = b.op1(
        Op::FullyConnected {
            activation: Activation::None,
            has_bias: true,
        },
        &[flat, fw, fb],
        &[2, 5],
    );
    let sm = b.op1(Op::Softmax { axis: 1 }, &[fc], &[2, 5]);
    b.out(sm);
    b.out(ap2);
    b.out(c5);
    b.out(c3);
    let _ = s5;
    let s = check(&b, 1);
    let steps = s.plan().steps();
    assert_eq!(steps[0].kernel, "f32_conv::scalar::conv_direct");
    assert_eq!(steps[1].kernel, "f32_dwconv::scalar::dwconv_generic");
    assert_eq!(steps[2].kernel, "f32_gemm::scalar::gemm_4x16");
    // grouped 1x1 convs run as one strided GEMM per group
    assert_eq!(steps[4].kernel, "f32_gemm::scalar::gemm_4x16");
    assert_eq!(steps[5].kernel, "f32_gemm::scalar::gemm_4x16");
    assert_eq!(steps[0].macs, (2 * 6 * s1[2] * s1[3] * 3 * 9) as u64);
    assert_eq!(steps[0].params, (6 * 3 * 9 + 6) as u64);
    let gp_step = steps
        .iter()
        .find(|st| st.output_shape == vec![2, 9, 1, 1])
        .unwrap();
    assert_eq!(gp_step.kernel, "f32_pool::scalar::global_avg");
    assert!(
        steps.iter().any(|st| st.kernel == "alias"),
        "reshape of [N,C,1,1] should alias"
    );
}

#[test]
fn shuffle_concat_split_slice_pad() {
    let mut b = B::new();
    let x = b.input(&[1, 4, 5, 6]);
    let (c, _) = conv(
        &mut b,
        x,
        [1, 4, 5, 6],
        6,
        win([1, 1], [1, 1], [1, 1], [0; 4]),
        1,
        Activation::None,
        None,
    );
    // reshape -> transpose -> reshape == channel shuffle
    let r1 = b.op1(Op::Reshape, &[c], &[1, 2, 3, 5, 6]);
    let tr = b.op1(
        Op::Transpose {
            perm: vec![0, 2, 1, 3, 4],
        },
        &[r1],
        &[1, 3, 2, 5, 6],
    );
    let r2 = b.op1(Op::Reshape, &[tr], &[1, 6, 5, 6]);
    let cs = b.op1(
        Op::ChannelShuffle {
            groups: 2,
            splits: 1,
        },
        &[c],
        &[1, 6, 5, 6],
    );
    let cat1 = b.op1(Op::Concat { axis: 1 }, &[r2, cs, x], &[1, 16, 5, 6]);
    let cat3 = b.op1(Op::Concat { axis: 3 }, &[cs, r2], &[1, 6, 5, 12]);
    let sp = b.op(
        Op::Split {
            axis: 1,
            sizes: vec![5, 11],
        },
        &[cat1],
        &[&[1, 5, 5, 6], &[1, 11, 5, 6]],
    );
    let sp2 = b.op(
        Op::Split {
            axis: 2,
            sizes: vec![2, 3],
        },
        &[cat3],
        &[&[1, 6, 2, 12], &[1, 6, 3, 12]],
    );
    let sl = b.op1(
        Op::Slice {
            axis: 3,
            start: 1,
            end: 12,
            step: 2,
        },
        &[sp2[1]],
        &[1, 6, 3, 6],
    );
    let sl1 = b.op1(
        Op::Slice {
            axis: 1,
            start: 2,
            end: 11,
            step: 3,
        },
        &[sp[1]],
        &[1, 3, 5, 6],
    );
    let pr = b.op1(
        Op::Pad {
            pads: vec![(0, 0), (1, 2), (2, 1), (3, 4)],
            mode: PadMode::Reflect,
        },
        &[sl1],
        &[1, 6, 8, 13],
    );
    let pe = b.op1(
        Op::Pad {
            pads: vec![(0, 1), (0, 0), (2, 0), (1, 3)],
            mode: PadMode::Edge,
        },
        &[sl],
        &[2, 6, 5, 10],
    );
    let fl = b.op1(Op::Reshape, &[sp[0]], &[5, 30]);
    let pc = b.op1(
        Op::Pad {
            pads: vec![(1, 0), (2, 3)],
            mode: PadMode::Constant { value: -7.5 },
        },
        &[fl],
        &[6, 35],
    );
    // rank-2 row-major -> NHWC reshape, and NHWC -> NHWC reshape (through scratch)
    let back = b.op1(Op::Reshape, &[pc], &[1, 6, 7, 5]);
    let nn = b.op1(Op::Reshape, &[pr], &[1, 8, 6, 13]);
    for t in [r2, cs, cat1, sp2[0], sl, pr, pe, pc, back, nn] {
        b.out(t);
    }
    let s = check(&b, 2);
    assert!(s.plan().steps().iter().all(|st| !st.kernel.is_empty()));
}

/// Channel shuffles with their concat and split folded in: the interleave fast path (two
/// groups, even parts) and the strided-copy path (unequal inputs, three groups, odd parts).
#[test]
fn fused_channel_shuffles() {
    let mut b = B::new();
    let x = b.input(&[1, 4, 5, 7]);
    let mk = |b: &mut B, o: usize| {
        conv(
            b,
            x,
            [1, 4, 5, 7],
            o,
            win([1, 1], [1, 1], [1, 1], [0; 4]),
            1,
            Activation::None,
            None,
        )
        .0
    };
    let (a6, b6, c8, d5, e5) = (
        mk(&mut b, 6),
        mk(&mut b, 6),
        mk(&mut b, 8),
        mk(&mut b, 5),
        mk(&mut b, 5),
    );
    let shuffle = |groups, splits| Op::ChannelShuffle { groups, splits };
    let mut outs = Vec::new();
    outs.extend(b.op(shuffle(2, 2), &[a6, b6], &[&[1, 6, 5, 7], &[1, 6, 5, 7]]));
    outs.extend(b.op(shuffle(2, 3), &[c8, x], &[&[1, 4, 5, 7][..]; 3]));
    outs.extend(b.op(shuffle(2, 2), &[x, c8], &[&[1, 6, 5, 7][..]; 2]));
    outs.extend(b.op(shuffle(3, 2), &[x, x, x], &[&[1, 6, 5, 7][..]; 2]));
    outs.extend(b.op(shuffle(2, 1), &[d5, e5], &[&[1, 10, 5, 7]]));
    outs.extend(b.op(shuffle(2, 2), &[d5, e5], &[&[1, 5, 5, 7][..]; 2]));
    outs.extend(b.op(shuffle(2, 1), &[c8], &[&[1, 8, 5, 7]]));
    for t in outs {
        b.out(t);
    }
    let s = check(&b, 11);
    let kernels: Vec<&str> = s.plan().steps().iter().map(|st| st.kernel).collect();
    assert_eq!(
        kernels.iter().filter(|k| k.contains("interleave2")).count(),
        3,
        "fast paths (equal halves, even parts): {kernels:?}"
    );
}

/// Inverted-residual blocks large enough to be fused (expansion → depthwise → projection
/// run band by band): strided and asymmetric padding, 5x5 with a residual, batch 2, and a
/// block without expansion. Every tier must match the naive interpreter.
#[test]
fn inverted_residual_blocks_fuse() {
    let mut b = B::new();
    let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
    let pw = win([1, 1], [1, 1], [1, 1], [0; 4]);
    let x = b.input(&[2, 8, 63, 63]);
    // expand -> dw 3x3 s2 (TF "same": no top/left pad) -> project
    let (e, es) = conv(&mut b, x, [2, 8, 63, 63], 96, pw, 1, relu6, None);
    let (d, ds) = conv(
        &mut b,
        e,
        es,
        96,
        win([3, 3], [2, 2], [1, 1], [0, 0, 1, 1]),
        96,
        relu6,
        None,
    );
    let (p1, s1) = conv(&mut b, d, ds, 16, pw, 1, Activation::None, None);
    // expand -> dw 5x5 s1 pad 2 -> project + residual
    let (e, es) = conv(&mut b, p1, s1, 144, pw, 1, Activation::HardSwish, None);
    let (d, ds) = conv(
        &mut b,
        e,
        es,
        144,
        win([5, 5], [1, 1], [1, 1], [2; 4]),
        144,
        relu6,
        None,
    );
    let (p2, s2) = conv(&mut b, d, ds, 16, pw, 1, Activation::None, Some(p1));
    // no expansion: dw 3x3 s1 pad 1 on a large input -> project
    let y = b.input(&[1, 96, 50, 60]);
    let (d, ds) = conv(
        &mut b,
        y,
        [1, 96, 50, 60],
        96,
        win([3, 3], [1, 1], [1, 1], [1; 4]),
        96,
        relu6,
        None,
    );
    let (p3, _) = conv(&mut b, d, ds, 24, pw, 1, relu6, None);
    let _ = s2;
    for t in [p2, p3] {
        b.out(t);
    }
    let s = check(&b, 5);
    let fused = s
        .plan()
        .steps()
        .iter()
        .filter(|st| st.kernel == "fused::inverted_residual")
        .count();
    let kernels: Vec<&str> = s.plan().steps().iter().map(|st| st.kernel).collect();
    assert_eq!(fused, 3, "every block fuses: {kernels:?}");
}

/// Depthwise-separable pairs back to back (MobileNet V1): the projection of one block is
/// followed by the next block's depthwise convolution, so it must not also be fused as that
/// block's expansion. Both blocks fuse (the second without expansion) and match.
#[test]
fn separable_blocks_back_to_back_fuse() {
    let mut b = B::new();
    let dw = win([3, 3], [1, 1], [1, 1], [1; 4]);
    let pw = win([1, 1], [1, 1], [1, 1], [0; 4]);
    let x = b.input(&[1, 64, 64, 64]);
    let mut y = (x, [1, 64, 64, 64]);
    for out in [64, 32] {
        let (d, ds) = conv(&mut b, y.0, y.1, 64, dw, 64, Activation::Relu, None);
        y = conv(&mut b, d, ds, out, pw, 1, Activation::Relu, None);
    }
    b.out(y.0);
    let s = check(&b, 5);
    let kernels: Vec<&str> = s.plan().steps().iter().map(|st| st.kernel).collect();
    let fused = kernels
        .iter()
        .filter(|&&k| k == "fused::inverted_residual")
        .count();
    assert_eq!(fused, 2, "both blocks fuse: {kernels:?}");
}

#[test]
fn binary_unary_broadcasts() {
    let mut b = B::new();
    let x = b.input(&[1, 4, 3, 5]);
    let y = b.input(&[1, 4, 3, 5]);
    let r2 = b.input(&[3, 5]);
    let add = |op| Op::Binary {
        op,
        activation: Activation::None,
    };
    let s0 = b.op1(
        Op::Binary {
            op: BinaryOp::Add,
            activation: Activation::Relu,
        },
        &[x, y],
        &[1, 4, 3, 5],
    );
    let ch = b.rand(&[4, 1, 1]);
    let s1 = b.op1(add(BinaryOp::Mul), &[x, ch], &[1, 4, 3, 5]);
    let ch2 = b.rand(&[1, 4, 1, 1]);
    let s2 = b.op1(add(BinaryOp::Sub), &[ch2, y], &[1, 4, 3, 5]);
    let last = b.rand(&[5]);
    let s3 = b.op1(add(BinaryOp::Max), &[x, last], &[1, 4, 3, 5]);
    let s4 = b.op1(add(BinaryOp::Min), &[r2, y], &[1, 4, 3, 5]);
    let ab = b.op1(
        Op::Unary {
            activation: Activation::Abs,
        },
        &[x],
        &[1, 4, 3, 5],
    );
    let half = b.cst(&[1], vec![0.5]);
    let pos = b.op1(add(BinaryOp::Add), &[ab, half], &[1, 4, 3, 5]);
    let ex = b.cst(&[1, 1, 3, 1], vec![0.5, 2.0, 3.0]);
    let s5 = b.op1(add(BinaryOp::Pow), &[pos, ex], &[1, 4, 3, 5]);
    let s6 = b.op1(
        Op::Binary {
            op: BinaryOp::Div,
            activation: Activation::Tanh,
        },
        &[ch2, pos],
        &[1, 4, 3, 5],
    );
    // a rank-3 row-major tensor mixed with an NHWC one
    let rr = b.op1(Op::Reshape, &[r2], &[1, 3, 5]);
    let s7 = b.op1(add(BinaryOp::Add), &[rr, x], &[1, 4, 3, 5]);
    let c2 = b.rand(&[2, 1, 5]);
    let s8 = b.op1(add(BinaryOp::Mul), &[c2, r2], &[2, 3, 5]);
    for t in [s0, s1, s2, s3, s4, s5, s6, s7, s8] {
        b.out(t);
    }
    let acts = [
        Activation::Relu,
        Activation::Clip {
            min: -0.3,
            max: 0.4,
        },
        Activation::LeakyRelu { alpha: 0.2 },
        Activation::HardSwish,
        Activation::HardSigmoid {
            alpha: 0.3,
            beta: 0.4,
        },
        Activation::Sigmoid,
        Activation::Silu,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Exp,
        Activation::Log,
        Activation::Sqrt,
        Activation::Rsqrt,
        Activation::Reciprocal,
        Activation::Abs,
        Activation::Neg,
        Activation::Erf,
        Activation::None,
    ];
    for a in acts {
        let u = b.op1(Op::Unary { activation: a }, &[pos], &[1, 4, 3, 5]);
        b.out(u);
    }
    let neg = b.op1(
        Op::Unary {
            activation: Activation::Erf,
        },
        &[x],
        &[1, 4, 3, 5],
    );
    b.out(neg);
    let s = check(&b, 3);
    let k: Vec<&str> = s.plan().steps().iter().map(|st| st.kernel).collect();
    assert_eq!(k[0], "f32_eltwise::scalar::binary");
    assert_eq!(k[1], "f32_eltwise::scalar::binary_channel");
    assert_eq!(k[2], "f32_eltwise::scalar::binary_channel");
    assert_eq!(k[3], "f32_eltwise::scalar::binary_strided");
}

/// LayerNorm on a row-major 3-D tensor (contiguous rows, long enough for the SIMD tails)
/// and on a 4-D one, whose last axis is strided in the NHWC layout.
#[test]
fn layer_norm_contiguous_and_strided_rows() {
    let mut b = B::new();
    let x3 = b.input(&[2, 5, 37]);
    let x4 = b.input(&[1, 3, 4, 6]);
    let (s3, h3) = (b.rand(&[37]), b.rand(&[37]));
    let (s4, h4) = (b.rand(&[6]), b.rand(&[6]));
    let ln3 = b.op1(Op::LayerNorm { epsilon: 1e-6 }, &[x3, s3, h3], &[2, 5, 37]);
    let ln4 = b.op1(
        Op::LayerNorm { epsilon: 1e-5 },
        &[x4, s4, h4],
        &[1, 3, 4, 6],
    );
    b.out(ln3);
    b.out(ln4);
    let s = check(&b, 9);
    assert_eq!(s.plan().steps()[0].params, 2 * 37);
}

#[test]
fn matmul_fc_reduce_softmax_batchnorm() {
    let mut b = B::new();
    let a3 = b.input(&[2, 3, 4]);
    let b2 = b.input(&[4, 5]);
    let a4 = b.input(&[1, 2, 3, 4]);
    let b4 = b.input(&[1, 2, 4, 5]);
    let m1 = b.op1(Op::MatMul, &[a3, b2], &[2, 3, 5]);
    let m2 = b.op1(Op::MatMul, &[a4, b4], &[1, 2, 3, 5]);
    let bc = b.rand(&[4, 2]);
    let m3 = b.op1(Op::MatMul, &[a4, bc], &[1, 2, 3, 2]);
    let fw = b.rand(&[6, 4]);
    let fc = b.op1(
        Op::FullyConnected {
            activation: Activation::Sigmoid,
            has_bias: false,
        },
        &[a4, fw],
        &[1, 2, 3, 6],
    );
    let r1 = b.op1(
        Op::Reduce {
            op: ReduceOp::Sum,
            axes: vec![1],
            keep_dims: true,
        },
        &[m2],
        &[1, 1, 3, 5],
    );
    let r2 = b.op1(
        Op::Reduce {
            op: ReduceOp::Mean,
            axes: vec![3, 2],
            keep_dims: true,
        },
        &[fc],
        &[1, 2, 1, 1],
    );
    let r3 = b.op1(
        Op::Reduce {
            op: ReduceOp::Max,
            axes: vec![0, 3],
            keep_dims: false,
        },
        &[m2],
        &[2, 3],
    );
    let r4 = b.op1(
        Op::Reduce {
            op: ReduceOp::Min,
            axes: vec![1],
            keep_dims: false,
        },
        &[m1],
        &[2, 5],
    );
    let r5 = b.op1(
        Op::Reduce {
            op: ReduceOp::Mean,
            axes: vec![2],
            keep_dims: false,
        },
        &[m2],
        &[1, 2, 5],
    );
    let sm1 = b.op1(Op::Softmax { axis: 1 }, &[m2], &[1, 2, 3, 5]);
    let sm2 = b.op1(Op::Softmax { axis: 2 }, &[m2], &[1, 2, 3, 5]);
    let sm3 = b.op1(Op::Softmax { axis: 1 }, &[m1], &[2, 3, 5]);
    let sc = b.rand(&[2]);
    let sh = b.rand(&[2]);
    let bn4 = b.op1(Op::BatchNorm, &[m2, sc, sh], &[1, 2, 3, 5]);
    let sc3 = b.rand(&[3]);
    let sh3 = b.rand(&[3]);
    let bn3 = b.op1(Op::BatchNorm, &[m1, sc3, sh3], &[2, 3, 5]);
    for t in [m1, m2, m3, fc, r1, r2, r3, r4, r5, sm1, sm2, sm3, bn4, bn3] {
        b.out(t);
    }
    let s = check(&b, 4);
    assert_eq!(s.plan().steps()[0].macs, 2 * 3 * 5 * 4);
    assert_eq!(s.input_shapes()[1], vec![4, 5]);
    assert_eq!(s.output_shapes()[1], vec![1, 2, 3, 5]);
}

#[test]
fn quantize_dequantize_roundtrip() {
    let mut b = B::new();
    let x = b.input(&[1, 3, 2, 4]);
    let q = b.t(
        &[1, 3, 2, 4],
        DType::U8,
        Some(Quant::PerTensor {
            scale: 0.01,
            zero_point: 128,
        }),
    );
    b.push(Op::Quantize, &[x], &[q]);
    let dq = b.op1(Op::Dequantize, &[q], &[1, 3, 2, 4]);
    let pc = Quant::PerChannel {
        axis: 1,
        scales: vec![0.02, 0.005, 0.1],
        zero_points: vec![0, -3, 5],
    };
    let q2 = b.t(&[1, 3, 2, 4], DType::I8, Some(pc));
    b.push(Op::Quantize, &[x], &[q2]);
    // data movement on an 8-bit tensor
    let q3 = b.t(
        &[1, 2, 4, 3],
        DType::I8,
        Some(Quant::PerChannel {
            axis: 3,
            scales: vec![0.02, 0.005, 0.1],
            zero_points: vec![0, -3, 5],
        }),
    );
    b.push(
        Op::Transpose {
            perm: vec![0, 2, 3, 1],
        },
        &[q2],
        &[q3],
    );
    let q4 = b.t(&[1, 3, 2, 4], DType::I8, b.g.tensors[q2].quant.clone());
    b.push(
        Op::Transpose {
            perm: vec![0, 3, 1, 2],
        },
        &[q3],
        &[q4],
    );
    let dq2 = b.op1(Op::Dequantize, &[q4], &[1, 3, 2, 4]);
    for t in [q, dq, q2, dq2] {
        b.out(t);
    }
    check(&b, 5);
}

#[test]
fn arena_reuses_memory_along_a_chain() {
    let mut b = B::new();
    let mut t = b.input(&[1, 8, 8, 8]);
    for _ in 0..10 {
        t = b.op1(
            Op::Unary {
                activation: Activation::Relu,
            },
            &[t],
            &[1, 8, 8, 8],
        );
    }
    b.out(t);
    let s = check(&b, 6);
    let one = 512 * 4;
    assert_eq!(s.plan().naive_bytes(), 11 * one);
    assert_eq!(
        s.plan().arena_bytes(),
        2 * one,
        "a chain needs two live tensors"
    );
}

#[test]
fn bad_inputs_are_errors() {
    let mut b = B::new();
    let x = b.input(&[1, 2, 3, 3]);
    let y = b.op1(
        Op::Unary {
            activation: Activation::Relu,
        },
        &[x],
        &[1, 2, 3, 3],
    );
    b.out(y);
    let mut s = Session::with_kernels(Arc::new(b.model()), kernels::generic()).unwrap();
    let short = vec![0.0; 17];
    match s.run(&[&short]) {
        Err(Error::Input(msg)) => assert!(
            msg.contains("t0") && msg.contains("18") && msg.contains("17"),
            "{msg}"
        ),
        other => panic!("expected an input error, got {other:?}"),
    }
    assert!(matches!(s.run(&[]), Err(Error::Input(_))));
    let ok = vec![1.0; 18];
    assert!(matches!(s.run(&[&ok, &ok]), Err(Error::Input(_))));
    s.run(&[&ok]).unwrap();
    assert_eq!(s.output(0).expect("output"), ok.as_slice());
    assert!(s.output(5).is_none());
    // NCHW boundary: input element (c=1, h=0, w=2) comes back at the same logical index
    let mut v = vec![0.0; 18];
    v[9 + 2] = -3.0;
    v[2] = 4.0;
    s.run(&[&v]).unwrap();
    assert_eq!(s.output(0).expect("output")[2], 4.0);
    assert_eq!(s.output(0).expect("output")[11], 0.0);
}

#[test]
fn quantized_compute_is_unsupported_not_a_panic() {
    let mut b = B::new();
    let x = b.input(&[1, 4]);
    let q = b.t(
        &[1, 4],
        DType::I8,
        Some(Quant::PerTensor {
            scale: 0.1,
            zero_point: 0,
        }),
    );
    b.push(Op::Quantize, &[x], &[q]);
    let q2 = b.t(
        &[1, 4],
        DType::I8,
        Some(Quant::PerTensor {
            scale: 0.1,
            zero_point: 0,
        }),
    );
    b.push(
        Op::Unary {
            activation: Activation::Relu,
        },
        &[q],
        &[q2],
    );
    b.out(q2);
    let r = Session::with_kernels(Arc::new(b.model()), kernels::generic());
    assert!(matches!(r, Err(Error::Unsupported(_))));
}

#[test]
fn invalid_graphs_are_errors_not_panics() {
    // element count mismatch in a Reshape
    let mut b = B::new();
    let x = b.input(&[1, 2, 3, 3]);
    let y = b.op1(Op::Reshape, &[x], &[1, 17]);
    b.out(y);
    assert!(Session::with_kernels(Arc::new(b.model()), kernels::generic()).is_err());
    // out-of-range tensor id
    let mut b = B::new();
    let x = b.input(&[1, 4]);
    b.push(
        Op::Unary {
            activation: Activation::Relu,
        },
        &[x],
        &[99],
    );
    assert!(Session::with_kernels(Arc::new(b.model()), kernels::generic()).is_err());
    // conv weight shape inconsistent with the input channels
    let mut b = B::new();
    let x = b.input(&[1, 3, 4, 4]);
    let w = b.rand(&[2, 5, 1, 1]);
    let y = b.op1(
        Op::Conv2d {
            window: win([1, 1], [1, 1], [1, 1], [0; 4]),
            groups: 1,
            activation: Activation::None,
            has_bias: false,
            has_residual: false,
        },
        &[x, w],
        &[1, 2, 4, 4],
    );
    b.out(y);
    assert!(Session::with_kernels(Arc::new(b.model()), kernels::generic()).is_err());
}

#[test]
fn constant_output_and_constant_concat_operand() {
    let mut b = B::new();
    let x = b.input(&[1, 2, 2, 2]);
    let c = b.rand(&[1, 3, 2, 2]);
    let cat = b.op1(Op::Concat { axis: 1 }, &[x, c], &[1, 5, 2, 2]);
    let m = b.rand(&[2, 3]);
    let fl = b.op1(Op::Reshape, &[cat], &[1, 5, 4]);
    let w = b.rand(&[4, 2]);
    let mm = b.op1(Op::MatMul, &[fl, w], &[1, 5, 2]);
    b.out(cat);
    b.out(mm);
    b.out(m);
    let s = check(&b, 8);
    assert_eq!(s.output_shapes()[2], vec![2, 3]);
}

/// Whole-model throughput (run with `--release -- --ignored --nocapture`): a MobileNet-V1
/// style stack at 224x224 (~560M MACs) through the executor.
#[test]
#[ignore]
fn mobilenet_like_throughput() {
    let mut b = B::new();
    let x = b.input(&[1, 3, 224, 224]);
    let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
    let s3 = |s| win([3, 3], [s, s], [1, 1], [1, 1, 1, 1]);
    let pw = win([1, 1], [1, 1], [1, 1], [0; 4]);
    let (mut t, mut sh) = conv(&mut b, x, [1, 3, 224, 224], 32, s3(2), 1, relu6, None);
    let cfg = [
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (1024, 2),
        (1024, 1),
    ];
    for (o, s) in cfg {
        let (d, dsh) = conv(&mut b, t, sh, sh[1], s3(s), sh[1], relu6, None);
        (t, sh) = conv(&mut b, d, dsh, o, pw, 1, relu6, None);
    }
    b.out(t);
    let mut s = Session::with_kernels(Arc::new(b.model()), kernels::generic()).unwrap();
    let macs: u64 = s.plan().steps().iter().map(|st| st.macs).sum();
    let input = vec![0.5f32; 3 * 224 * 224];
    s.run(&[&input]).unwrap();
    let t0 = std::time::Instant::now();
    let times = s.run_profiled(&[&input]).unwrap();
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "{:.0}M MACs in {:.1} ms = {:.2} GFLOP/s; arena {} KiB (naive {} KiB)",
        macs as f64 / 1e6,
        dt * 1e3,
        2.0 * macs as f64 / dt / 1e9,
        s.plan().arena_bytes() / 1024,
        s.plan().naive_bytes() / 1024
    );
    assert_eq!(times.len(), s.plan().steps().len());
}
