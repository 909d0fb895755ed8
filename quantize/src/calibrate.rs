//! Calibration: run the fp32 model on the runtime over sample inputs and record, for every
//! activation tensor, the range its int8 version should cover.
//!
//! Methods (`--calib-method`):
//! - `minmax`: the observed minimum and maximum (one pass);
//! - `percentile`: the 0.01 % and 99.99 % quantiles of the observed values, which ignores a
//!   few outliers;
//! - `mse`: the clipping range that minimises the expected squared quantization error
//!   (rounding plus clipping) of the observed value histogram;
//! - `kl`: the upper clip whose 8-bit histogram is closest in KL divergence to the
//!   observed one (the entropy calibration of TensorRT; the minimum stays observed).
//!
//! The last three take a second pass: the first finds each tensor's extent, the second
//! fills a fixed-bin histogram over it.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ferrolite_runtime::exec::Session;
use ferrolite_runtime::ir::{Quant, TensorId};
use ferrolite_runtime::{AlignedBytes, Model, Weights};

/// How activation ranges are chosen from the calibration data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CalibMethod {
    #[default]
    MinMax,
    Percentile,
    Mse,
    Kl,
}

impl CalibMethod {
    /// Every method, in the order of the CLI's help.
    pub const ALL: [CalibMethod; 4] = [
        CalibMethod::MinMax,
        CalibMethod::Percentile,
        CalibMethod::Mse,
        CalibMethod::Kl,
    ];

    /// The method of lower-case name `name` ([`CalibMethod::name`]).
    pub fn from_name(name: &str) -> Option<CalibMethod> {
        CalibMethod::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Lower-case name, as on the command line and in the bundle record.
    pub fn name(self) -> &'static str {
        match self {
            CalibMethod::MinMax => "minmax",
            CalibMethod::Percentile => "percentile",
            CalibMethod::Mse => "mse",
            CalibMethod::Kl => "kl",
        }
    }
}

/// Histogram resolution for the percentile, MSE and KL methods.
const BINS: usize = 2048;
/// Mass left out on each side by the percentile method.
const PERCENTILE_TAIL: f64 = 1e-4;

/// Calibrated `(min, max)` per tensor id of the model's graph (`None` for constants and
/// tensors the observer could not see).
pub type Ranges = Vec<Option<(f32, f32)>>;

/// What calibration learned about the activations, or what an already quantized model
/// (an ONNX QDQ model, see [`crate::qdq`]) prescribes.
#[derive(Debug, Clone, Default)]
pub struct Calibration {
    /// Range each tensor's int8 version covers.
    pub ranges: Ranges,
    /// Mean of each channel (axis 1) per tensor id, for bias correction.
    pub channel_means: Vec<Option<Vec<f32>>>,
    /// u8 per-tensor parameters fixed by the model itself, per tensor id; a tensor that has
    /// them uses them instead of its range (empty or `None`: calibrate).
    pub fixed_activations: Vec<Option<Quant>>,
    /// int8 weights fixed by the model itself, by weight tensor id (no bias correction is
    /// applied to their layers).
    pub fixed_weights: HashMap<TensorId, FixedWeight>,
    /// int32 biases fixed by the model itself, by bias tensor id; used when their scales are
    /// the f32 products `input scale · weight scale[c]` of the quantized layer (otherwise
    /// the bias is re-derived from its f32 values).
    pub fixed_biases: HashMap<TensorId, FixedBias>,
}

/// Given int32 values of a bias: `bias = scales[o] · values`.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedBias {
    /// One value per output channel.
    pub values: Vec<i32>,
    /// The scale each value was quantized with.
    pub scales: Vec<f32>,
}

/// Given int8 values of a convolution or FC weight: `weight = scales[o] · values`.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedWeight {
    /// Values in `[-127, 127]`, in the weight's layout (output channel first).
    pub values: Vec<i8>,
    /// One scale per output channel.
    pub scales: Vec<f32>,
}

/// A session over a copy of `model` whose outputs are every runtime tensor, so that fused
/// kernels cannot hide an intermediate.
pub(crate) struct Observer {
    session: Session,
    /// Graph tensor id of each session output.
    pub(crate) ids: Vec<usize>,
}

impl Observer {
    pub(crate) fn new(model: &Model) -> Result<Observer> {
        let g = &model.graph;
        let mut ids: Vec<usize> = g.inputs.clone();
        for n in &g.nodes {
            ids.extend(n.outputs.iter().copied());
        }
        ids.sort_unstable();
        ids.dedup();
        let mut graph = g.clone();
        graph.outputs = ids.clone();
        let observed = Model {
            meta: model.meta.clone(),
            graph,
            weights: Weights::Owned(AlignedBytes::from_slice(model.weights.bytes())),
        };
        let session = Session::new(Arc::new(observed)).context("cannot plan the fp32 model")?;
        Ok(Observer { session, ids })
    }

    pub(crate) fn run(&mut self, input: &[f32]) -> Result<()> {
        self.session.run(&[input])?;
        Ok(())
    }

    /// Observed tensor `i` of the last run.
    pub(crate) fn values(&self, i: usize) -> Result<&[f32]> {
        self.session
            .output(i)
            .with_context(|| format!("observed tensor {i} is missing from the run"))
    }
}

/// Collect ranges for `model` over `inputs` (each one the first input's data). `progress`
/// is called once per input and pass; an error from it stops the calibration.
pub fn calibrate(
    model: &Model,
    inputs: &[Vec<f32>],
    method: CalibMethod,
    mut progress: impl FnMut() -> Result<()>,
) -> Result<Calibration> {
    if inputs.is_empty() {
        bail!("calibration needs at least one input");
    }
    let mut obs = Observer::new(model)?;
    let nt = model.graph.tensors.len();
    let mut extent: Vec<Option<(f32, f32)>> = vec![None; obs.ids.len()];
    // Per observed tensor: channel count, elements per channel and batch, channel sums.
    let geometry: Vec<(usize, usize)> = obs
        .ids
        .iter()
        .map(|&t| {
            let s = &model.graph.tensors[t].shape;
            match s.len() {
                0 | 1 => (0, 0),
                _ => (s[1], s[2..].iter().product()),
            }
        })
        .collect();
    let mut sums: Vec<Vec<f64>> = geometry.iter().map(|&(c, _)| vec![0.0; c]).collect();
    for input in inputs {
        obs.run(input)?;
        for (k, e) in extent.iter_mut().enumerate() {
            let values = obs.values(k)?;
            for &v in values {
                if v.is_finite() {
                    let (lo, hi) = e.get_or_insert((v, v));
                    *lo = lo.min(v);
                    *hi = hi.max(v);
                }
            }
            let (c, inner) = geometry[k];
            if c > 0 && inner > 0 {
                for (i, plane) in values.chunks(inner).enumerate() {
                    sums[k][i % c] += plane.iter().map(|&v| v as f64).sum::<f64>();
                }
            }
        }
        progress()?;
    }
    let mut channel_means = vec![None; nt];
    for (k, &t) in obs.ids.iter().enumerate() {
        let (c, inner) = geometry[k];
        if c > 0 && inner > 0 {
            let batch = model.graph.tensors[t].shape[0].max(1);
            let count = (inputs.len() * inner * batch) as f64;
            channel_means[t] = Some(sums[k].iter().map(|s| (s / count) as f32).collect());
        }
    }
    let mut ranges: Ranges = vec![None; nt];
    if method == CalibMethod::MinMax {
        for (k, &t) in obs.ids.iter().enumerate() {
            ranges[t] = extent[k];
        }
        return Ok(Calibration {
            ranges,
            channel_means,
            ..Default::default()
        });
    }
    let mut hists: Vec<Vec<u64>> = vec![vec![0; BINS]; obs.ids.len()];
    for input in inputs {
        obs.run(input)?;
        for (k, h) in hists.iter_mut().enumerate() {
            let Some((lo, hi)) = extent[k] else { continue };
            let width = (hi - lo).max(f32::MIN_POSITIVE);
            for &v in obs.values(k)? {
                if v.is_finite() {
                    let b = (((v - lo) / width) * BINS as f32) as usize;
                    h[b.min(BINS - 1)] += 1;
                }
            }
        }
        progress()?;
    }
    for (k, &t) in obs.ids.iter().enumerate() {
        ranges[t] = extent[k].map(|(lo, hi)| {
            let (a, b) = match method {
                CalibMethod::Percentile => percentile_bins(&hists[k]),
                CalibMethod::Mse => best_clip(&hists[k], mse_cost, true),
                _ => best_clip(&hists[k], kl_cost, false),
            };
            let at = |bin: usize| lo + (hi - lo) * bin as f32 / BINS as f32;
            // Zero stays representable: the range is widened to include it later anyway.
            (at(a), at(b))
        });
    }
    Ok(Calibration {
        ranges,
        channel_means,
        ..Default::default()
    })
}

/// Bins `[a, b)` holding all but [`PERCENTILE_TAIL`] of the mass on each side.
fn percentile_bins(h: &[u64]) -> (usize, usize) {
    let total: u64 = h.iter().sum();
    let tail = (total as f64 * PERCENTILE_TAIL) as u64;
    let mut acc = 0;
    let mut a = 0;
    while a < h.len() - 1 && acc + h[a] <= tail {
        acc += h[a];
        a += 1;
    }
    acc = 0;
    let mut b = h.len();
    while b > a + 1 && acc + h[b - 1] <= tail {
        acc += h[b - 1];
        b -= 1;
    }
    (a, b)
}

/// Search clipping windows `[a, b)` (shrinking from the top, and from the bottom when
/// `both_sides`, in steps of 1/64 of the extent) for the lowest `cost`.
fn best_clip(h: &[u64], cost: fn(&[u64], usize, usize) -> f64, both_sides: bool) -> (usize, usize) {
    let step = (h.len() / 64).max(1);
    let mut best = (0, h.len());
    let mut best_cost = f64::INFINITY;
    let lows = if both_sides { h.len() / 2 } else { 1 };
    for a in (0..lows).step_by(step) {
        for b in (h.len() / 2 + 1..=h.len()).rev().step_by(step) {
            if b - a < h.len() / 16 {
                continue;
            }
            let c = cost(h, a, b);
            if c < best_cost {
                best_cost = c;
                best = (a, b);
            }
        }
    }
    best
}

/// Expected squared error (in bin units) of quantizing the histogram to 256 levels over
/// `[a, b)`: uniform rounding noise inside, the clipping distance outside.
fn mse_cost(h: &[u64], a: usize, b: usize) -> f64 {
    let step = (b - a) as f64 / 255.0;
    let mut err = 0.0;
    for (i, &n) in h.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let x = i as f64 + 0.5;
        let d = if x < a as f64 {
            a as f64 - x
        } else if x > b as f64 {
            x - b as f64
        } else {
            0.0
        };
        err += n as f64 * (d * d + step * step / 12.0);
    }
    err
}

/// KL divergence between the observed histogram (outliers folded into the edge bins) and
/// its 256-level quantized version over `[a, b)`.
fn kl_cost(h: &[u64], a: usize, b: usize) -> f64 {
    let clipped: Vec<f64> = h[a..b].iter().map(|&v| v as f64).collect();
    let mut p = clipped.clone();
    p[0] += h[..a].iter().sum::<u64>() as f64;
    let last = p.len() - 1;
    p[last] += h[b..].iter().sum::<u64>() as f64;
    let n = p.len();
    let levels = 256.min(n);
    // q spreads each level's in-range mass (without the folded outliers, so clipping them
    // costs divergence) evenly over the level's occupied bins.
    let mut q = vec![0.0; n];
    for l in 0..levels {
        let (s, e) = (l * n / levels, (l + 1) * n / levels);
        let nonzero = clipped[s..e].iter().filter(|&&v| v > 0.0).count();
        if nonzero == 0 {
            continue;
        }
        let mean = clipped[s..e].iter().sum::<f64>() / nonzero as f64;
        for i in s..e {
            if clipped[i] > 0.0 {
                q[i] = mean;
            }
        }
    }
    let (ps, qs): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if ps == 0.0 || qs == 0.0 {
        return 0.0;
    }
    p.iter()
        .zip(&q)
        .filter(|(&pv, _)| pv > 0.0)
        .map(|(&pv, &qv)| {
            let (pn, qn) = (pv / ps, (qv / qs).max(1e-12));
            pn * (pn / qn).ln()
        })
        .sum()
}
