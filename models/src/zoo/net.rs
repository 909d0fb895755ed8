//! The architecture builder: layer calls that track shapes, count parameters and
//! multiply-accumulates, and (when weights are wanted) emit an ONNX graph with seeded weights.
//!
//! Weights are scaled so that every activation stays of order one through the whole depth,
//! and BatchNorm running statistics are set from the estimated mean and variance of each
//! channel they normalize, as a trained network's would be: deep zoo models neither overflow
//! nor sink into denormals, their squeeze-excite gates do not saturate, so their timings,
//! their int8 calibration and their parity with other runtimes are representative.

use std::rc::Rc;

use crate::onnx::{Attr, OnnxBuilder};

/// An activation function applied after a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    HardSwish,
    HardSigmoid,
    Sigmoid,
    /// `x · sigmoid(x)` (SiLU).
    Swish,
    /// Exact GELU, `0.5 x (1 + erf(x / √2))`.
    Gelu,
}

/// A value flowing through the network under construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    name: String,
    /// Logical shape (NCHW for feature maps, `[N, tokens, dim]` for transformers).
    pub shape: Vec<usize>,
    /// Estimated mean square of the elements, used to scale the next weights.
    m2: f32,
    /// Estimated mean of the elements.
    mean: f32,
    /// Estimated moments of each channel of an NCHW map, when weights are generated: what a
    /// BatchNorm sets its running statistics from. `m2` and `mean` are their averages.
    per_channel: Option<Rc<[Moments]>>,
}

impl Value {
    /// Channels of an NCHW feature map (axis 1).
    pub fn channels(&self) -> usize {
        self.shape[1]
    }

    fn moments(&self) -> Moments {
        Moments {
            mean: self.mean,
            m2: self.m2,
        }
    }
}

/// Estimated first and second moments of a value's elements.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Moments {
    mean: f32,
    m2: f32,
}

impl Moments {
    fn zero_mean(m2: f32) -> Moments {
        Moments { mean: 0.0, m2 }
    }

    fn from_mean_variance(mean: f32, variance: f32) -> Moments {
        Moments {
            mean,
            m2: variance + mean * mean,
        }
    }

    fn variance(self) -> f32 {
        (self.m2 - self.mean * self.mean).max(1e-3 * self.m2)
    }

    /// Moments of the maximum of `n` neighbouring elements: the mean of the maximum of `n`
    /// independent Gaussian draws; the spread stays that of one element, because neighbours
    /// are correlated.
    fn max_of(self, n: usize) -> Moments {
        const STEPS: usize = 512;
        let dz = 16.0 / STEPS as f32;
        let pdf: Vec<f32> = (0..STEPS)
            .map(|i| {
                let z = -8.0 + (i as f32 + 0.5) * dz;
                (-0.5 * z * z).exp()
            })
            .collect();
        let total: f32 = pdf.iter().sum();
        let (mut cdf, mut z_mean) = (0.0f32, 0.0f32);
        for (i, p) in pdf.iter().enumerate() {
            let lo = cdf / total;
            cdf += p;
            // Probability that the maximum falls in this cell: F(hi)^n − F(lo)^n.
            let w = (cdf / total).powi(n as i32) - lo.powi(n as i32);
            z_mean += w * (-8.0 + (i as f32 + 0.5) * dz);
        }
        let variance = self.variance();
        Moments::from_mean_variance(self.mean + z_mean * variance.sqrt(), variance)
    }

    /// Average of per-channel moments.
    fn average(channels: &[Moments]) -> Moments {
        let n = channels.len() as f32;
        Moments {
            mean: channels.iter().map(|m| m.mean).sum::<f32>() / n,
            m2: channels.iter().map(|m| m.m2).sum::<f32>() / n,
        }
    }

    /// Moments of `f(x)` for a Gaussian `x` with these moments (midpoint rule over ±8σ).
    fn through(self, f: impl Fn(f32) -> f32) -> Moments {
        const STEPS: usize = 512;
        let sd = self.variance().sqrt();
        let dz = 16.0 / STEPS as f32;
        let (mut w_sum, mut m1, mut m2) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..STEPS {
            let z = -8.0 + (i as f32 + 0.5) * dz;
            let w = (-0.5 * z * z).exp();
            let y = f(self.mean + sd * z);
            w_sum += w;
            m1 += w * y;
            m2 += w * y * y;
        }
        Moments {
            mean: m1 / w_sum,
            m2: m2 / w_sum,
        }
    }
}

/// Options of a convolution beyond output channels and kernel size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvOpts {
    pub stride: usize,
    pub groups: usize,
    pub dilation: usize,
    /// `None`: "same" padding `dilation·(k−1)/2` on every side.
    pub pads: Option<[usize; 4]>,
    pub bias: bool,
}

impl Default for ConvOpts {
    fn default() -> Self {
        ConvOpts {
            stride: 1,
            groups: 1,
            dilation: 1,
            pads: None,
            bias: false,
        }
    }
}

/// Deterministic generator of weights (SplitMix64).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    fn uniform_vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Builds one network; see the module documentation.
#[derive(Debug)]
pub struct Net {
    /// `None` when only counting (no weights are generated).
    onnx: Option<OnnxBuilder>,
    rng: Rng,
    params: u64,
    macs: u64,
    counter: usize,
}

/// What a finished build produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// Serialized ONNX model, when weights were requested.
    pub onnx: Option<Vec<u8>>,
    /// Trainable parameters (BatchNorm counts its scale and shift, not its statistics).
    pub params: u64,
    /// Multiply-accumulates of convolutions, dense layers and matrix products.
    pub macs: u64,
    /// Input shape.
    pub input: Vec<usize>,
    /// Output shape.
    pub output: Vec<usize>,
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

impl Net {
    /// Start a network with one f32 input named `input`; `with_weights = false` only counts.
    pub fn new(input: &[usize], seed: u64, with_weights: bool) -> (Net, Value) {
        let mut onnx = with_weights.then(|| OnnxBuilder::new().opset(17));
        if let Some(b) = onnx.as_mut() {
            b.input("input", input);
        }
        let net = Net {
            onnx,
            rng: Rng(seed ^ 0x5EED_F00D),
            params: 0,
            macs: 0,
            counter: 0,
        };
        let x = Self::value(
            "input".into(),
            input.to_vec(),
            Moments { mean: 0.0, m2: 1.0 },
        );
        (net, x)
    }

    /// Mark `out` as the model output and serialize.
    pub fn finish(mut self, input: &[usize], out: &Value) -> Built {
        let onnx = self.onnx.take().map(|mut b| {
            b.output(&out.name);
            b.to_bytes()
        });
        Built {
            onnx,
            params: self.params,
            macs: self.macs,
            input: input.to_vec(),
            output: out.shape.clone(),
        }
    }

    fn fresh(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("{what}{}", self.counter)
    }

    /// A trainable constant: counted, and generated when weights are wanted.
    fn param(
        &mut self,
        what: &str,
        shape: &[usize],
        gen: impl FnOnce(&mut Rng) -> Vec<f32>,
    ) -> String {
        self.param_data(what, shape, gen).0
    }

    /// [`Net::param`], also returning the generated values (none when only counting).
    fn param_data(
        &mut self,
        what: &str,
        shape: &[usize],
        gen: impl FnOnce(&mut Rng) -> Vec<f32>,
    ) -> (String, Option<Vec<f32>>) {
        self.params += numel(shape) as u64;
        self.buffer_data(what, shape, gen)
    }

    /// A constant that is not a trainable parameter (BatchNorm statistics, shapes).
    fn buffer(
        &mut self,
        what: &str,
        shape: &[usize],
        gen: impl FnOnce(&mut Rng) -> Vec<f32>,
    ) -> String {
        self.buffer_data(what, shape, gen).0
    }

    /// [`Net::buffer`], also returning the generated values (none when only counting).
    fn buffer_data(
        &mut self,
        what: &str,
        shape: &[usize],
        gen: impl FnOnce(&mut Rng) -> Vec<f32>,
    ) -> (String, Option<Vec<f32>>) {
        let name = self.fresh(what);
        let data = self.onnx.as_mut().map(|b| {
            let data = gen(&mut self.rng);
            debug_assert_eq!(data.len(), numel(shape));
            b.constant(&name, shape, data.clone());
            data
        });
        (name, data)
    }

    fn shape_const(&mut self, data: &[i64]) -> String {
        let name = self.fresh("shape");
        if let Some(b) = self.onnx.as_mut() {
            b.constant_i64(&name, data.to_vec());
        }
        name
    }

    fn node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.node_n(op, inputs, attrs, 1).remove(0)
    }

    fn node_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: &[(&str, Attr)],
        n: usize,
    ) -> Vec<String> {
        match self.onnx.as_mut() {
            Some(b) => b.node_n(op, inputs, attrs, n),
            None => (0..n).map(|_| self.fresh("v")).collect(),
        }
    }

    /// A value with per-channel moments (their average becomes the overall estimate).
    fn value_per_channel(name: String, shape: Vec<usize>, channels: Vec<Moments>) -> Value {
        debug_assert_eq!(channels.len(), shape[1]);
        let mut v = Self::value(name, shape, Moments::average(&channels));
        v.per_channel = Some(channels.into());
        v
    }

    /// `x`'s moments per channel (the overall estimate repeated when not known per channel).
    fn channel_moments(x: &Value) -> Vec<Moments> {
        match &x.per_channel {
            Some(ch) => ch.to_vec(),
            None => vec![x.moments(); x.channels()],
        }
    }

    /// A value whose channels are `x`'s, each transformed by `f`; the overall estimate
    /// transformed when `x` has none per channel.
    fn map_channels(
        x: &Value,
        name: String,
        shape: Vec<usize>,
        f: impl Fn(Moments) -> Moments,
    ) -> Value {
        match &x.per_channel {
            Some(ch) => Self::value_per_channel(name, shape, ch.iter().map(|&m| f(m)).collect()),
            None => Self::value(name, shape, f(x.moments())),
        }
    }

    fn value(name: String, shape: Vec<usize>, m: Moments) -> Value {
        let m2 = m.m2.clamp(1e-3, 1e3);
        let bound = m2.sqrt();
        Value {
            name,
            shape,
            m2,
            mean: m.mean.clamp(-bound, bound),
            per_channel: None,
        }
    }

    /// Convolution of an NCHW map with `out` channels and a `k×k` kernel.
    pub fn conv(&mut self, x: &Value, out: usize, k: usize, o: ConvOpts) -> Value {
        self.conv2(x, out, [k, k], o)
    }

    /// Convolution with a rectangular `[kh, kw]` kernel.
    pub fn conv2(&mut self, x: &Value, out: usize, kernel: [usize; 2], o: ConvOpts) -> Value {
        let [n, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
        assert!(
            c.is_multiple_of(o.groups) && out.is_multiple_of(o.groups),
            "groups must divide channels"
        );
        let pads = o.pads.unwrap_or([
            o.dilation * (kernel[0] - 1) / 2,
            o.dilation * (kernel[1] - 1) / 2,
            o.dilation * (kernel[0] - 1) / 2,
            o.dilation * (kernel[1] - 1) / 2,
        ]);
        let oh = (h + pads[0] + pads[2] - o.dilation * (kernel[0] - 1) - 1) / o.stride + 1;
        let ow = (w + pads[1] + pads[3] - o.dilation * (kernel[1] - 1) - 1) / o.stride + 1;
        let fan_in = c / o.groups * kernel[0] * kernel[1];
        // He scaling with respect to the input's mean square: output mean square ≈ 2.
        let a = (6.0 / (fan_in as f32 * x.m2)).sqrt();
        let wshape = [out, c / o.groups, kernel[0], kernel[1]];
        let (wname, weights) =
            self.param_data("w", &wshape, |r| r.uniform_vec(numel(&wshape), -a, a));
        let mut inputs = vec![x.name.clone(), wname];
        let mut bias = None;
        if o.bias {
            let (name, data) = self.param_data("b", &[out], |r| r.uniform_vec(out, -0.1, 0.1));
            inputs.push(name);
            bias = data;
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let y = self.node(
            "Conv",
            &refs,
            &[
                ("kernel_shape", ints(&kernel)),
                ("strides", ints(&[o.stride, o.stride])),
                ("dilations", ints(&[o.dilation, o.dilation])),
                ("pads", ints(&pads)),
                ("group", Attr::Int(o.groups as i64)),
            ],
        );
        let shape = vec![n, out, oh, ow];
        self.macs += (numel(&shape) * fan_in) as u64;
        let Some(weights) = weights else {
            return Self::value(y, shape, Moments::zero_mean(2.0));
        };
        let coverage = |d: usize, od: usize, k: usize, pad: usize| -> Vec<f32> {
            (0..k)
                .map(|t| {
                    let inside = (0..od)
                        .filter(|&i| {
                            let at = (i * o.stride + t * o.dilation) as isize - pad as isize;
                            (0..d as isize).contains(&at)
                        })
                        .count();
                    inside as f32 / od as f32
                })
                .collect()
        };
        let cov_y = coverage(h, oh, kernel[0], pads[0]);
        let cov_x = coverage(w, ow, kernel[1], pads[1]);
        let inputs = Self::channel_moments(x);
        let per_channel = conv_channel_moments(
            &weights,
            bias.as_deref(),
            out,
            o.groups,
            &inputs,
            &cov_y,
            &cov_x,
        );
        Self::value_per_channel(y, shape, per_channel)
    }

    /// Inference BatchNorm whose running statistics are close to the true mean and variance
    /// of each channel, as after training.
    pub fn bn(&mut self, x: &Value) -> Value {
        let c = x.channels();
        let inputs = Self::channel_moments(x);
        let (gamma, g) = self.param_data("bn_scale", &[c], |r| r.uniform_vec(c, 0.7, 1.3));
        let (beta, b) = self.param_data("bn_shift", &[c], |r| r.uniform_vec(c, -0.2, 0.2));
        let (mean, rm) = self.buffer_data("bn_mean", &[c], |r| {
            let off = |r: &mut Rng, m: Moments| 0.1 * m.variance().sqrt() * r.uniform(-1.0, 1.0);
            inputs.iter().map(|&m| m.mean + off(r, m)).collect()
        });
        let (var, rv) = self.buffer_data("bn_var", &[c], |r| {
            inputs
                .iter()
                .map(|m| m.variance() * r.uniform(0.8, 1.25))
                .collect()
        });
        const EPSILON: f32 = 1e-5;
        let y = self.node(
            "BatchNormalization",
            &[&x.name, &gamma, &beta, &mean, &var],
            &[("epsilon", Attr::Float(EPSILON))],
        );
        let (Some(g), Some(b), Some(rm), Some(rv)) = (g, b, rm, rv) else {
            return Self::value(y, x.shape.clone(), Moments::zero_mean(1.0));
        };
        let per_channel: Vec<Moments> = (0..c)
            .map(|i| {
                let k = g[i] / (rv[i] + EPSILON).sqrt();
                let m = inputs[i];
                Moments::from_mean_variance(b[i] + k * (m.mean - rm[i]), k * k * m.variance())
            })
            .collect();
        // Carried on per channel, small errors in the estimated channel means would compound
        // through the depth; the average is a steadier base for the layers that follow.
        Self::value(y, x.shape.clone(), Moments::average(&per_channel))
    }

    /// Apply an activation function.
    pub fn act(&mut self, x: &Value, act: Act) -> Value {
        fn relu6(v: f32) -> f32 {
            v.clamp(0.0, 6.0)
        }
        fn sigmoid(v: f32) -> f32 {
            1.0 / (1.0 + (-v).exp())
        }
        let (name, f): (String, fn(f32) -> f32) = match act {
            Act::Relu => (self.node("Relu", &[&x.name], &[]), |v| v.max(0.0)),
            Act::Relu6 => {
                let lo = self.buffer("clip_lo", &[], |_| vec![0.0]);
                let hi = self.buffer("clip_hi", &[], |_| vec![6.0]);
                (self.node("Clip", &[&x.name, &lo, &hi], &[]), relu6)
            }
            Act::HardSwish => (self.node("HardSwish", &[&x.name], &[]), |v| {
                v * relu6(v + 3.0) / 6.0
            }),
            Act::HardSigmoid => (
                self.node(
                    "HardSigmoid",
                    &[&x.name],
                    &[
                        ("alpha", Attr::Float(1.0 / 6.0)),
                        ("beta", Attr::Float(0.5)),
                    ],
                ),
                |v| relu6(v + 3.0) / 6.0,
            ),
            Act::Sigmoid => (self.node("Sigmoid", &[&x.name], &[]), sigmoid),
            Act::Swish => {
                let s = self.node("Sigmoid", &[&x.name], &[]);
                (self.node("Mul", &[&x.name, &s], &[]), |v| v * sigmoid(v))
            }
            Act::Gelu => {
                let sqrt2 = self.buffer("sqrt2", &[], |_| vec![std::f32::consts::SQRT_2]);
                let one = self.buffer("one", &[], |_| vec![1.0]);
                let half = self.buffer("half", &[], |_| vec![0.5]);
                let d = self.node("Div", &[&x.name, &sqrt2], &[]);
                let e = self.node("Erf", &[&d], &[]);
                let p = self.node("Add", &[&e, &one], &[]);
                let m = self.node("Mul", &[&x.name, &p], &[]);
                // The tanh form of GELU is close enough for estimating moments.
                (self.node("Mul", &[&m, &half], &[]), |v| {
                    let k = (2.0 / std::f32::consts::PI).sqrt();
                    0.5 * v * (1.0 + (k * (v + 0.044_715 * v * v * v)).tanh())
                })
            }
        };
        Self::map_channels(x, name, x.shape.clone(), |m| m.through(f))
    }

    /// Convolution, BatchNorm and an optional activation: the basic CNN unit.
    pub fn conv_bn(
        &mut self,
        x: &Value,
        out: usize,
        k: usize,
        o: ConvOpts,
        act: Option<Act>,
    ) -> Value {
        let y = self.conv(x, out, k, o);
        let y = self.bn(&y);
        match act {
            Some(a) => self.act(&y, a),
            None => y,
        }
    }

    /// Convolution with bias followed by an activation: the unit of CNNs without BatchNorm
    /// (AlexNet, VGG, SqueezeNet). The bias is added whatever `o.bias` says.
    pub fn conv_act(&mut self, x: &Value, out: usize, k: usize, o: ConvOpts, act: Act) -> Value {
        let y = self.conv(x, out, k, ConvOpts { bias: true, ..o });
        self.act(&y, act)
    }

    /// Element-wise sum (same shapes or broadcast).
    pub fn add(&mut self, a: &Value, b: &Value) -> Value {
        let y = self.node("Add", &[&a.name, &b.name], &[]);
        let shape = broadcast(&a.shape, &b.shape);
        let sum = |a: Moments, b: Moments| {
            Moments::from_mean_variance(a.mean + b.mean, a.variance() + b.variance())
        };
        Self::combine(y, shape, a, b, sum)
    }

    /// Element-wise product (same shapes or broadcast), e.g. a squeeze-excite gate.
    pub fn mul(&mut self, a: &Value, b: &Value) -> Value {
        let y = self.node("Mul", &[&a.name, &b.name], &[]);
        let shape = broadcast(&a.shape, &b.shape);
        let product = |a: Moments, b: Moments| Moments {
            mean: a.mean * b.mean,
            m2: a.m2 * b.m2,
        };
        Self::combine(y, shape, a, b, product)
    }

    /// The result of an element-wise op on independent `a` and `b`: per channel when both
    /// are known per channel, overall otherwise.
    fn combine(
        name: String,
        shape: Vec<usize>,
        a: &Value,
        b: &Value,
        f: impl Fn(Moments, Moments) -> Moments,
    ) -> Value {
        match (&a.per_channel, &b.per_channel) {
            (Some(pa), Some(pb)) if pa.len() == pb.len() => {
                let ch = pa.iter().zip(pb.iter()).map(|(&x, &y)| f(x, y)).collect();
                Self::value_per_channel(name, shape, ch)
            }
            _ => Self::value(name, shape, f(a.moments(), b.moments())),
        }
    }

    /// Concatenation along `axis`.
    pub fn concat(&mut self, xs: &[&Value], axis: usize) -> Value {
        let names: Vec<&str> = xs.iter().map(|v| v.name.as_str()).collect();
        let y = self.node("Concat", &names, &[("axis", Attr::Int(axis as i64))]);
        let mut shape = xs[0].shape.clone();
        shape[axis] = xs.iter().map(|v| v.shape[axis]).sum();
        if axis == 1 && xs.iter().all(|v| v.per_channel.is_some()) {
            let ch = xs.iter().flat_map(|v| Self::channel_moments(v)).collect();
            return Self::value_per_channel(y, shape, ch);
        }
        let share = |v: &Value| v.shape[axis] as f32 / shape[axis] as f32;
        let moments = Moments {
            mean: xs.iter().map(|v| v.mean * share(v)).sum(),
            m2: xs.iter().map(|v| v.m2 * share(v)).sum(),
        };
        Self::value(y, shape, moments)
    }

    /// Split along `axis` into parts of the given sizes.
    pub fn split(&mut self, x: &Value, axis: usize, sizes: &[usize]) -> Vec<Value> {
        let split = self.shape_const(&sizes.iter().map(|&s| s as i64).collect::<Vec<_>>());
        let names = self.node_n(
            "Split",
            &[&x.name, &split],
            &[("axis", Attr::Int(axis as i64))],
            sizes.len(),
        );
        let mut start = 0;
        names
            .into_iter()
            .zip(sizes)
            .map(|(n, &s)| {
                let mut shape = x.shape.clone();
                shape[axis] = s;
                start += s;
                match &x.per_channel {
                    Some(ch) if axis == 1 => {
                        Self::value_per_channel(n, shape, ch[start - s..start].to_vec())
                    }
                    _ => Self::value(n, shape, x.moments()),
                }
            })
            .collect()
    }

    fn pool(
        &mut self,
        op: &str,
        x: &Value,
        k: usize,
        stride: usize,
        pad: usize,
        ceil: bool,
    ) -> Value {
        let [n, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
        assert!(
            h.min(w) + 2 * pad >= k,
            "a {k}×{k} {op} window does not fit a {h}×{w} map padded by {pad}: input resolution too small"
        );
        let out = |d: usize| {
            let span = d + 2 * pad - k;
            let mut o = if ceil {
                span.div_ceil(stride)
            } else {
                span / stride
            } + 1;
            // A window may not start inside the right padding (ONNX / PyTorch rule).
            if ceil && (o - 1) * stride >= d + pad {
                o -= 1;
            }
            o
        };
        let mut attrs = vec![
            ("kernel_shape", ints(&[k, k])),
            ("strides", ints(&[stride, stride])),
            ("pads", ints(&[pad; 4])),
        ];
        if ceil {
            attrs.push(("ceil_mode", Attr::Int(1)));
        }
        if op == "AveragePool" {
            attrs.push(("count_include_pad", Attr::Int(0)));
        }
        let y = self.node(op, &[&x.name], &attrs);
        let shape = vec![n, c, out(h), out(w)];
        if op == "MaxPool" {
            Self::map_channels(x, y, shape, |m| m.max_of(k * k))
        } else {
            // Averaging keeps the mean; the spread between channels is not estimated, so the
            // mean square is kept as a bound rather than shrunk.
            Self::map_channels(x, y, shape, |m| m)
        }
    }

    /// Max pooling with a square window; `ceil` rounds the output size up (Caffe style).
    pub fn max_pool(
        &mut self,
        x: &Value,
        k: usize,
        stride: usize,
        pad: usize,
        ceil: bool,
    ) -> Value {
        self.pool("MaxPool", x, k, stride, pad, ceil)
    }

    /// Average pooling (padding excluded from the divisor).
    pub fn avg_pool(
        &mut self,
        x: &Value,
        k: usize,
        stride: usize,
        pad: usize,
        ceil: bool,
    ) -> Value {
        self.pool("AveragePool", x, k, stride, pad, ceil)
    }

    /// Mean over the spatial axes, keeping them as 1×1.
    pub fn global_avg_pool(&mut self, x: &Value) -> Value {
        let y = self.node("GlobalAveragePool", &[&x.name], &[]);
        // As for average pooling, the mean square is kept as a bound.
        Self::map_channels(x, y, vec![x.shape[0], x.shape[1], 1, 1], |m| m)
    }

    /// Mean over `axes`, keeping them.
    pub fn reduce_mean(&mut self, x: &Value, axes: &[usize]) -> Value {
        let y = self.node(
            "ReduceMean",
            &[&x.name],
            &[("axes", ints(axes)), ("keepdims", Attr::Int(1))],
        );
        let mut shape = x.shape.clone();
        for &a in axes {
            shape[a] = 1;
        }
        Self::value(y, shape, x.moments())
    }

    /// New shape for the same data.
    pub fn reshape(&mut self, x: &Value, shape: &[usize]) -> Value {
        assert_eq!(
            numel(shape),
            numel(&x.shape),
            "reshape must keep the element count"
        );
        let s = self.shape_const(&shape.iter().map(|&d| d as i64).collect::<Vec<_>>());
        let y = self.node("Reshape", &[&x.name, &s], &[]);
        Self::value(y, shape.to_vec(), x.moments())
    }

    /// `[N, C, H, W]` to `[N, C·H·W]`.
    pub fn flatten(&mut self, x: &Value) -> Value {
        let y = self.node("Flatten", &[&x.name], &[("axis", Attr::Int(1))]);
        Self::value(y, vec![x.shape[0], numel(&x.shape[1..])], x.moments())
    }

    /// Axis permutation: output axis `i` is input axis `perm[i]`.
    pub fn transpose(&mut self, x: &Value, perm: &[usize]) -> Value {
        let y = self.node("Transpose", &[&x.name], &[("perm", ints(perm))]);
        let shape = perm.iter().map(|&p| x.shape[p]).collect();
        Self::value(y, shape, x.moments())
    }

    /// ShuffleNet channel shuffle with `groups` groups.
    pub fn channel_shuffle(&mut self, x: &Value, groups: usize) -> Value {
        let [n, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
        let r = self.reshape(x, &[n, groups, c / groups, h, w]);
        let t = self.transpose(&r, &[0, 2, 1, 3, 4]);
        let y = self.reshape(&t, &[n, c, h, w]);
        match &x.per_channel {
            // Output channel `i·groups + g` is input channel `g·(c / groups) + i`.
            Some(ch) => {
                let per_group = c / groups;
                let shuffled = (0..c)
                    .map(|o| ch[o % groups * per_group + o / groups])
                    .collect();
                Self::value_per_channel(y.name, y.shape, shuffled)
            }
            None => y,
        }
    }

    /// Dense layer on the last axis with bias: `Gemm` for `[N, K]`, `MatMul` + `Add` otherwise.
    pub fn linear(&mut self, x: &Value, out: usize) -> Value {
        let k = *x.shape.last().expect("linear needs a non-scalar input");
        let a = (6.0 / (k as f32 * x.m2)).sqrt();
        let mut shape = x.shape.clone();
        *shape.last_mut().unwrap() = out;
        self.macs += (numel(&shape) * k) as u64;
        let b = self.param("b", &[out], |r| r.uniform_vec(out, -0.1, 0.1));
        let y = if x.shape.len() == 2 {
            let w = self.param("w", &[out, k], |r| r.uniform_vec(out * k, -a, a));
            self.node("Gemm", &[&x.name, &w, &b], &[("transB", Attr::Int(1))])
        } else {
            let w = self.param("w", &[k, out], |r| r.uniform_vec(out * k, -a, a));
            let m = self.node("MatMul", &[&x.name, &w], &[]);
            self.node("Add", &[&m, &b], &[])
        };
        Self::value(y, shape, Moments::zero_mean(2.0))
    }

    /// Batched matrix product of two activations `[..., M, K] · [..., K, N]`.
    pub fn matmul(&mut self, a: &Value, b: &Value) -> Value {
        let r = a.shape.len();
        let k = a.shape[r - 1];
        assert_eq!(k, b.shape[r - 2], "matmul inner dimensions differ");
        let mut shape = a.shape.clone();
        shape[r - 1] = b.shape[r - 1];
        self.macs += (numel(&shape) * k) as u64;
        let y = self.node("MatMul", &[&a.name, &b.name], &[]);
        Self::value(y, shape, Moments::zero_mean(a.m2 * b.m2 * k as f32))
    }

    /// Multiply by a constant scalar (e.g. attention's `1/√d`).
    pub fn scale(&mut self, x: &Value, s: f32) -> Value {
        let c = self.buffer("scale", &[], |_| vec![s]);
        let y = self.node("Mul", &[&x.name, &c], &[]);
        Self::value(
            y,
            x.shape.clone(),
            Moments {
                mean: x.mean * s,
                m2: x.m2 * s * s,
            },
        )
    }

    /// Softmax along `axis`.
    pub fn softmax(&mut self, x: &Value, axis: usize) -> Value {
        let y = self.node("Softmax", &[&x.name], &[("axis", Attr::Int(axis as i64))]);
        let n = x.shape[axis] as f32;
        Self::value(
            y,
            x.shape.clone(),
            Moments {
                mean: 1.0 / n,
                m2: 1.0 / (n * n),
            },
        )
    }

    /// LayerNorm over the last axis with learned scale and shift (ONNX opset 17).
    pub fn layer_norm(&mut self, x: &Value) -> Value {
        let d = *x.shape.last().unwrap();
        let gamma = self.param("ln_scale", &[d], |r| r.uniform_vec(d, 0.7, 1.3));
        let beta = self.param("ln_shift", &[d], |r| r.uniform_vec(d, -0.2, 0.2));
        let y = self.node(
            "LayerNormalization",
            &[&x.name, &gamma, &beta],
            &[("axis", Attr::Int(-1)), ("epsilon", Attr::Float(1e-6))],
        );
        Self::value(y, x.shape.clone(), Moments::zero_mean(1.0))
    }

    /// A learned constant added to `x` (position embeddings).
    pub fn add_param(&mut self, x: &Value) -> Value {
        let shape = x.shape.clone();
        let p = self.param("pos", &shape, |r| r.uniform_vec(numel(&shape), -0.5, 0.5));
        let y = self.node("Add", &[&x.name, &p], &[]);
        Self::value(
            y,
            shape,
            Moments {
                mean: x.mean,
                m2: x.m2 + 1.0 / 12.0,
            },
        )
    }

    /// A learned constant of `shape` concatenated before `x` along `axis` (class token).
    pub fn prepend_param(&mut self, x: &Value, shape: &[usize], axis: usize) -> Value {
        let p = self.param("token", shape, |r| r.uniform_vec(numel(shape), -1.0, 1.0));
        let y = self.node(
            "Concat",
            &[&p, &x.name],
            &[("axis", Attr::Int(axis as i64))],
        );
        let mut out = x.shape.clone();
        out[axis] += shape[axis];
        Self::value(y, out, x.moments())
    }

    /// `x[start..end]` along `axis`.
    pub fn slice(&mut self, x: &Value, axis: usize, start: usize, end: usize) -> Value {
        let s = self.shape_const(&[start as i64]);
        let e = self.shape_const(&[end as i64]);
        let a = self.shape_const(&[axis as i64]);
        let y = self.node("Slice", &[&x.name, &s, &e, &a], &[]);
        let mut shape = x.shape.clone();
        shape[axis] = end - start;
        Self::value(y, shape, x.moments())
    }

    /// Squeeze-and-excitation: global pool, two 1×1 convolutions with bias, gate, scale.
    pub fn squeeze_excite(&mut self, x: &Value, squeeze: usize, inner: Act, gate: Act) -> Value {
        let c = x.channels();
        let p = self.global_avg_pool(x);
        let bias = ConvOpts {
            bias: true,
            ..ConvOpts::default()
        };
        let s = self.conv(&p, squeeze, 1, bias);
        let s = self.act(&s, inner);
        let e = self.conv(&s, c, 1, bias);
        let g = self.act(&e, gate);
        self.mul(x, &g)
    }
}

/// Moments of each of the `out` output channels of a grouped convolution whose input channels
/// have the moments `inputs`, elements independent; `cov_y[t]` / `cov_x[t]` is the share of
/// outputs for which kernel row / column `t` lands inside the input rather than in the padding.
fn conv_channel_moments(
    weights: &[f32],
    bias: Option<&[f32]>,
    out: usize,
    groups: usize,
    inputs: &[Moments],
    cov_y: &[f32],
    cov_x: &[f32],
) -> Vec<Moments> {
    let taps = cov_y.len() * cov_x.len();
    let group_in = inputs.len() / groups;
    let group_out = out / groups;
    weights
        .chunks_exact(group_in * taps)
        .enumerate()
        .map(|(o, w)| {
            let first = o / group_out * group_in;
            let (mut mean, mut var) = (bias.map_or(0.0, |b| b[o]), 0.0f32);
            for (ci, wc) in w.chunks_exact(taps).enumerate() {
                let x = inputs[first + ci];
                let (mut sum, mut sum_sq) = (0.0f32, 0.0f32);
                for (t, &wt) in wc.iter().enumerate() {
                    let cov = cov_y[t / cov_x.len()] * cov_x[t % cov_x.len()];
                    sum += wt * cov;
                    sum_sq += wt * wt * cov;
                }
                mean += x.mean * sum;
                var += x.variance() * sum_sq;
            }
            Moments::from_mean_variance(mean, var)
        })
        .collect()
}

fn broadcast(a: &[usize], b: &[usize]) -> Vec<usize> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let da = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let db = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            da.max(db)
        })
        .collect()
}

/// Round `v` to the nearest multiple of `divisor` not below 90 % of `v` (the channel rounding
/// of MobileNet V2/V3, MNASNet and EfficientNet).
pub fn make_divisible(v: f32, divisor: usize) -> usize {
    let d = divisor as f32;
    let mut r = ((v + d / 2.0) / d).floor() as usize * divisor;
    r = r.max(divisor);
    if (r as f32) < 0.9 * v {
        r += divisor;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::Moments;

    #[test]
    fn gaussian_moments_through_relu_match_the_closed_form() {
        // For x ~ N(0, 1): E[relu(x)] = 1/√(2π), E[relu(x)²] = 1/2.
        let m = Moments::zero_mean(1.0).through(|v| v.max(0.0));
        assert!((m.mean - 0.398_942_3).abs() < 1e-4, "{m:?}");
        assert!((m.m2 - 0.5).abs() < 1e-4, "{m:?}");
        // For x ~ N(3, 4), with Φ(1.5) = 0.933193 and φ(1.5) = 0.129518:
        // E[relu(x)] = 3Φ + 2φ, E[relu(x)²] = 13Φ + 6φ.
        let m = Moments {
            mean: 3.0,
            m2: 13.0,
        }
        .through(|v| v.max(0.0));
        assert!((m.mean - 3.058_615).abs() < 1e-4, "{m:?}");
        assert!((m.m2 - 12.908_617).abs() < 1e-3, "{m:?}");
    }

    #[test]
    fn maximum_of_two_gaussians_has_the_closed_form_mean() {
        // For two independent N(1, 4): E[max] = 1 + 2/√π; the variance is kept.
        let m = Moments::from_mean_variance(1.0, 4.0).max_of(2);
        assert!((m.mean - 2.128_38).abs() < 1e-3, "{m:?}");
        assert!((m.variance() - 4.0).abs() < 1e-4, "{m:?}");
    }

    #[test]
    fn convolution_moments_follow_weights_groups_and_padding() {
        // Two groups of one input and one output channel, 1×3 kernel; the first tap lands
        // in the padding for half the outputs. Input means 2 and −1, variances 1 and 4.
        let w = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
        let x = [
            Moments::from_mean_variance(2.0, 1.0),
            Moments::from_mean_variance(-1.0, 4.0),
        ];
        let got =
            super::conv_channel_moments(&w, Some(&[0.5, 0.0]), 2, 2, &x, &[1.0], &[0.5, 1.0, 1.0]);
        // mean = μ·(0.5·w0 + w1 + w2) + b, variance = σ²·(0.5·w0² + w1² + w2²).
        let want = [
            Moments::from_mean_variance(2.0 * 5.5 + 0.5, 13.5),
            Moments::from_mean_variance(-0.5, 4.0 * 1.5),
        ];
        assert_eq!(got, want);
    }
}
