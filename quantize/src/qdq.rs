//! Import of ONNX QDQ models — the format of ONNX Runtime's static quantizer — straight to
//! the int8 IR, with the model's own quantization parameters (no calibration).
//!
//! A QDQ model is an fp32 graph with `QuantizeLinear -> DequantizeLinear` pairs on the
//! activations and `DequantizeLinear` on int8 weights and int32 biases. The import:
//! - converts the model to fp32 as usual, each activation pair vanishing but leaving its
//!   `(scale, zero point)` on the tensor it quantized ([`crate::import`]); an int8 pair
//!   becomes the u8 parameters representing the same values (zero point + 128);
//! - recovers each convolution / FC weight's int8 values and per-output-channel scales from
//!   the ONNX file: the DequantizeLinear'd initializer whose dequantized values are
//!   bit-identical to the converted f32 weight;
//! - quantizes with those parameters ([`quantize_model`] with
//!   [`Calibration::fixed_activations`], [`Calibration::fixed_weights`] and
//!   [`Calibration::fixed_biases`]). A bias keeps the model's int32 values when the layer's
//!   input keeps its given scale (the bias scale is then `s_x · s_w[c]`); otherwise it is
//!   re-derived as `round(b / (s_x · s_w[c]))`. (Re-deriving from the f32 values alone is
//!   not enough: f32 holds 24 bits, and quantizers emit int32 biases near 2³¹ for channels
//!   whose weights are almost zero.) No bias correction is applied.
//!
//! Tensors our scheme makes share one quantization (linked by reshape, concat, channel
//! shuffle, slice, max pooling) take the given parameters of the member whose range covers
//! all the others' ([`crate::int8::shared_quant`]). A weight the scheme cannot hold exactly
//! (a non-zero zero point leaving `[-127, 127]`, quantization along another axis, values a
//! fusion changed) is re-quantized per channel from its f32 values and reported.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;

use anyhow::{bail, Context, Result};
use ferrolite_runtime::ir::{Op, TensorId};
use ferrolite_runtime::meta::Precision;
use ferrolite_runtime::Model;
use prost::Message;
use tract_onnx::pb;

use crate::calibrate::{Calibration, FixedBias, FixedWeight};
use crate::int8::{quantize_model, KeptFloat};
use crate::{convert_keeping_qdq, ConvertOptions};

/// A weight quantized from its f32 values instead of the QDQ model's int8 values, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RequantizedWeight {
    /// The convolution or FC node.
    pub node: String,
    /// Why the given values could not be used.
    pub reason: String,
}

/// Result of [`import_qdq`].
pub struct QdqImport {
    /// The int8 model (precision [`Precision::Int8`], record `quantization`).
    pub int8: Model,
    /// The fp32 graph the int8 one was made from: the QDQ model without its
    /// QuantizeLinear / DequantizeLinear pairs, weights dequantized.
    pub fp32: Model,
    /// The parameters used, by tensor id of `fp32`.
    pub params: Calibration,
    /// Nodes left in fp32 and why.
    pub kept_float: Vec<KeptFloat>,
    /// Weights that had to be re-quantized.
    pub requantized: Vec<RequantizedWeight>,
}

fn read_proto(path: &Path) -> Result<pb::ModelProto> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read ONNX model {}", path.display()))?;
    pb::ModelProto::decode(bytes.as_slice())
        .with_context(|| format!("cannot parse ONNX model {}", path.display()))
}

fn is_onnx_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// Whether the ONNX model at `path` quantizes activations (holds a QuantizeLinear), i.e. is
/// a QDQ model that [`import_qdq`] imports. A model with DequantizeLinear on its weights
/// only converts as fp32.
pub fn is_qdq(path: &Path) -> Result<bool> {
    let model = read_proto(path)?;
    let graph = model.graph.unwrap_or_default();
    Ok(graph
        .node
        .iter()
        .any(|n| n.op_type == "QuantizeLinear" && is_onnx_domain(&n.domain)))
}

/// Import the QDQ model at `path` to int8. `opts` are those of [`crate::convert_onnx`]
/// (input shape, preprocessing, labels, name); the precision must be left at fp32 (the
/// default) or int8.
pub fn import_qdq(path: &Path, opts: &ConvertOptions) -> Result<QdqImport> {
    if opts.precision == Precision::Fp16 {
        bail!("a QDQ model imports to int8: fp16 weight storage does not apply to it");
    }
    let table = WeightTable::scan(&read_proto(path)?);
    let fp32_opts = ConvertOptions {
        precision: Precision::Fp32,
        ..opts.clone()
    };
    let (fp32, given) = convert_keeping_qdq(path, &fp32_opts)?;
    let activations = given.iter().filter(|q| q.is_some()).count();
    if activations == 0 {
        bail!(
            "{} has no QuantizeLinear -> DequantizeLinear pair on an activation, so it is not \
             a QDQ model (a model quantized on its weights only converts as fp32)",
            path.display()
        );
    }
    let g = &fp32.graph;
    let mut fixed_weights: HashMap<TensorId, FixedWeight> = HashMap::new();
    let mut requantized = Vec::new();
    for n in &g.nodes {
        if !matches!(n.op, Op::Conv2d { .. } | Op::FullyConnected { .. }) {
            continue;
        }
        let Some(&wid) = n.inputs.get(1) else {
            continue;
        };
        let wt = &g.tensors[wid];
        let Ok(w) = fp32.weights.f32s(wt) else {
            continue;
        };
        match table.find(w, wt.shape.first().copied().unwrap_or(0)) {
            Found::Given(f) => {
                fixed_weights.insert(wid, f);
            }
            Found::Unusable(reason) => requantized.push(RequantizedWeight {
                node: n.name.clone(),
                reason,
            }),
            Found::Nothing => requantized.push(RequantizedWeight {
                node: n.name.clone(),
                reason: "no DequantizeLinear'd int8 initializer of the model has these values \
                         (a fusion changed them, or the weight was not quantized)"
                    .into(),
            }),
        }
    }
    let mut fixed_biases = HashMap::new();
    for n in &g.nodes {
        let has_bias = matches!(
            n.op,
            Op::Conv2d { has_bias: true, .. } | Op::FullyConnected { has_bias: true, .. }
        );
        if let (true, Some(&bid)) = (has_bias, n.inputs.get(2)) {
            if let Some(b) = fp32
                .weights
                .f32s(&g.tensors[bid])
                .ok()
                .and_then(|b| table.find_bias(b))
            {
                fixed_biases.insert(bid, b);
            }
        }
    }
    let params = Calibration {
        ranges: vec![None; g.tensors.len()],
        channel_means: Vec::new(),
        fixed_activations: given,
        fixed_weights,
        fixed_biases,
    };
    let q = quantize_model(&fp32, &params)
        .with_context(|| format!("cannot quantize QDQ model {}", path.display()))?;
    let mut int8 = q.model;
    int8.meta.records.insert(
        "quantization".into(),
        serde_json::json!({
            "source": "onnx qdq",
            "given_activations": activations,
            "given_weights": params.fixed_weights.len(),
            "requantized_weights": requantized
                .iter()
                .map(|r| serde_json::json!({"node": r.node, "reason": r.reason}))
                .collect::<Vec<_>>(),
        }),
    );
    Ok(QdqImport {
        int8,
        fp32,
        params,
        kept_float: q.kept_float,
        requantized,
    })
}

/// A DequantizeLinear'd 8-bit initializer in one layout (output channel first).
struct GivenWeight {
    /// The f32 values tract's DequantizeLinear computes, `(q - zero_point) · scale`.
    dequantized: Vec<f32>,
    /// Output channels (rows).
    rows: usize,
    /// The int8 values and per-row scales, or why the scheme cannot hold them as they are.
    int8: std::result::Result<FixedWeight, String>,
}

enum Found {
    Given(FixedWeight),
    Unusable(String),
    Nothing,
}

/// The QDQ model's dequantized 8-bit initializers, found by their exact f32 values.
#[derive(Default)]
struct WeightTable {
    entries: Vec<GivenWeight>,
    by_key: HashMap<(usize, u64), Vec<usize>>,
    /// int32 initializers (biases): dequantized values and the given form.
    biases: Vec<(Vec<f32>, FixedBias)>,
    bias_by_key: HashMap<(usize, u64), Vec<usize>>,
}

fn key_of(values: &[f32]) -> (usize, u64) {
    let mut h = DefaultHasher::new();
    for v in values {
        v.to_bits().hash(&mut h);
    }
    (values.len(), h.finish())
}

impl WeightTable {
    fn scan(model: &pb::ModelProto) -> WeightTable {
        let mut table = WeightTable::default();
        let Some(graph) = &model.graph else {
            return table;
        };
        let mut consts: HashMap<&str, &pb::TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        for n in &graph.node {
            if n.op_type == "Constant" {
                let value = n.attribute.iter().find(|a| a.name == "value");
                if let (Some(t), Some(out)) = (value.and_then(|a| a.t.as_ref()), n.output.first()) {
                    consts.insert(out.as_str(), t);
                }
            }
        }
        for n in &graph.node {
            if n.op_type != "DequantizeLinear" || !is_onnx_domain(&n.domain) {
                continue;
            }
            let get = |i: usize| {
                n.input
                    .get(i)
                    .filter(|s| !s.is_empty())
                    .and_then(|s| consts.get(s.as_str()).copied())
            };
            let (Some(x), Some(scale)) = (get(0), get(1)) else {
                continue;
            };
            let axis = n
                .attribute
                .iter()
                .find(|a| a.name == "axis")
                .map_or(1, |a| a.i);
            if let Some((dequantized, bias)) = given_bias(x, scale, get(2)) {
                let key = key_of(&dequantized);
                table
                    .bias_by_key
                    .entry(key)
                    .or_default()
                    .push(table.biases.len());
                table.biases.push((dequantized, bias));
                continue;
            }
            for w in given_layouts(x, scale, get(2), axis) {
                let key = key_of(&w.dequantized);
                table
                    .by_key
                    .entry(key)
                    .or_default()
                    .push(table.entries.len());
                table.entries.push(w);
            }
        }
        table
    }

    /// The given int32 form of bias `b`, if the model has one.
    fn find_bias(&self, b: &[f32]) -> Option<FixedBias> {
        self.bias_by_key.get(&key_of(b))?.iter().find_map(|&c| {
            let (d, f) = &self.biases[c];
            let same =
                d.len() == b.len() && d.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            same.then(|| f.clone())
        })
    }

    /// The given int8 form of weight `w` with `rows` output channels, if the model has one.
    fn find(&self, w: &[f32], rows: usize) -> Found {
        let Some(candidates) = self.by_key.get(&key_of(w)) else {
            return Found::Nothing;
        };
        let mut unusable = None;
        for &c in candidates {
            let e = &self.entries[c];
            let same = e.rows == rows
                && e.dequantized.len() == w.len()
                && e.dequantized
                    .iter()
                    .zip(w)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
            if !same {
                continue;
            }
            match &e.int8 {
                Ok(f) => return Found::Given(f.clone()),
                Err(reason) => unusable = Some(reason.clone()),
            }
        }
        unusable.map_or(Found::Nothing, Found::Unusable)
    }
}

/// Integer values of an 8- or 32-bit integer tensor (`int32_data` or raw little-endian).
fn int_values(t: &pb::TensorProto) -> Option<Vec<i32>> {
    use pb::tensor_proto::DataType;
    let dt = DataType::try_from(t.data_type).ok()?;
    let width = match dt {
        DataType::Int8 | DataType::Uint8 => 1,
        DataType::Int32 => 4,
        _ => return None,
    };
    if t.raw_data.is_empty() {
        return Some(t.int32_data.clone());
    }
    Some(match dt {
        DataType::Int8 => t.raw_data.iter().map(|&b| b as i8 as i32).collect(),
        DataType::Uint8 => t.raw_data.iter().map(|&b| b as i32).collect(),
        _ => t
            .raw_data
            .chunks_exact(width)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    })
}

fn float_values(t: &pb::TensorProto) -> Option<Vec<f32>> {
    if t.data_type != pb::tensor_proto::DataType::Float as i32 {
        return None;
    }
    if t.raw_data.is_empty() {
        return Some(t.float_data.clone());
    }
    Some(
        t.raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// A DequantizeLinear'd 1-D int32 initializer with zero point 0 (a bias, per channel or per
/// tensor): its f32 values as tract computes them and the given form.
fn given_bias(
    x: &pb::TensorProto,
    scale: &pb::TensorProto,
    zero_point: Option<&pb::TensorProto>,
) -> Option<(Vec<f32>, FixedBias)> {
    if x.data_type != pb::tensor_proto::DataType::Int32 as i32 || x.dims.len() != 1 {
        return None;
    }
    let q = int_values(x)?;
    let s = float_values(scale)?;
    if let Some(z) = zero_point {
        if int_values(z)?.iter().any(|&v| v != 0) {
            return None;
        }
    }
    if q.is_empty() || !(s.len() == 1 || s.len() == q.len()) {
        return None;
    }
    let scales: Vec<f32> = (0..q.len()).map(|i| s[i.min(s.len() - 1)]).collect();
    let dequantized = q.iter().zip(&scales).map(|(&v, &s)| v as f32 * s).collect();
    Some((dequantized, FixedBias { values: q, scales }))
}

/// The layouts (output channel first) in which a convolution or FC could read the 8-bit
/// initializer `x` dequantized with `scale` and `zero_point` along `axis`: as stored, and
/// transposed for a 2-D weight (a `[K, O]` Gemm operand).
fn given_layouts(
    x: &pb::TensorProto,
    scale: &pb::TensorProto,
    zero_point: Option<&pb::TensorProto>,
    axis: i64,
) -> Vec<GivenWeight> {
    use pb::tensor_proto::DataType;
    if ![DataType::Int8 as i32, DataType::Uint8 as i32].contains(&x.data_type) {
        return Vec::new(); // int32 biases are re-derived, not looked up
    }
    let shape: Vec<usize> = x.dims.iter().map(|&d| d.max(0) as usize).collect();
    let (Some(q), Some(s)) = (int_values(x), float_values(scale)) else {
        return Vec::new();
    };
    let zp = match zero_point.map(int_values) {
        None => vec![0],
        Some(Some(z)) => z,
        Some(None) => return Vec::new(),
    };
    let rank = shape.len();
    if rank == 0 || q.len() != shape.iter().product::<usize>() || s.is_empty() || zp.is_empty() {
        return Vec::new();
    }
    let per_tensor = s.len() == 1 && zp.len() == 1;
    let axis = if axis < 0 { axis + rank as i64 } else { axis };
    let axis = match usize::try_from(axis).ok().filter(|&a| a < rank) {
        _ if per_tensor => 0,
        Some(a) if s.len() == shape[a] && (zp.len() == 1 || zp.len() == shape[a]) => a,
        _ => return Vec::new(),
    };
    let (channels, inner) = if per_tensor {
        (1, q.len())
    } else {
        (shape[axis], shape[axis + 1..].iter().product::<usize>())
    };
    let channel = |i: usize| (i / inner.max(1)) % channels;
    let pick = |v: &[f32], c: usize| v[c.min(v.len() - 1)];
    let zpf: Vec<i32> = zp;
    // `q - zero_point` (exact in f32 for 8-bit values) and the dequantized value.
    let v: Vec<i32> = (0..q.len())
        .map(|i| q[i] - zpf[channel(i).min(zpf.len() - 1)])
        .collect();
    let deq: Vec<f32> = (0..q.len())
        .map(|i| v[i] as f32 * pick(&s, channel(i)))
        .collect();
    let fits = v.iter().all(|&x| (-127..=127).contains(&x));
    let int8 = |values: &[i32], scales: Vec<f32>| {
        if fits {
            Ok(FixedWeight {
                values: values.iter().map(|&x| x as i8).collect(),
                scales,
            })
        } else {
            Err(
                "its values minus zero point leave [-127, 127] (asymmetric or full-range \
                 int8 weights)"
                    .to_string(),
            )
        }
    };
    let mut out = Vec::new();
    let rows = shape[0];
    if per_tensor || axis == 0 {
        let scales = (0..rows)
            .map(|r| pick(&s, if per_tensor { 0 } else { r }))
            .collect();
        out.push(GivenWeight {
            dequantized: deq.clone(),
            rows,
            int8: int8(&v, scales),
        });
    } else if rank != 2 {
        out.push(GivenWeight {
            dequantized: deq.clone(),
            rows,
            int8: Err(format!(
                "it is quantized along axis {axis}, not along the output channels"
            )),
        });
    }
    if rank == 2 && (per_tensor || axis == 1) {
        let (k, o) = (shape[0], shape[1]);
        let at = |i: usize| (i % k) * o + i / k;
        let values: Vec<i32> = (0..o * k).map(|i| v[at(i)]).collect();
        let scales = (0..o)
            .map(|r| pick(&s, if per_tensor { 0 } else { r }))
            .collect();
        out.push(GivenWeight {
            dequantized: (0..o * k).map(|i| deq[at(i)]).collect(),
            rows: o,
            int8: int8(&values, scales),
        });
    }
    out
}
