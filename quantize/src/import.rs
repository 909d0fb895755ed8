//! ONNX import: tract parses and declutters the model, then each tract op is lowered to
//! Ferrolite IR with explicit attributes (NCHW semantics kept as in ONNX).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use ferrolite_runtime::ir::{
    Activation, BinaryOp, Op, PadMode, PoolKind, Quant, ReduceOp, TensorId, Window,
};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_core::ops::array::{
    Gather, Pad, PadMode as TractPadMode, Slice, TypedConcat,
};
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::downsample::Downsample;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::identity::Identity;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::math::{PowConst, Square};
use tract_onnx::tract_core::ops::nn::{
    DataFormat, LeakyRelu, Reduce, Reducer, RmsNorm, Softmax, SoftmaxKind,
};
use tract_onnx::tract_core::ops::quant::{
    DequantizeLinearF32, LookupTable, QuantizeLinearI8, QuantizeLinearU8,
};
use tract_onnx::tract_core::ops::source::TypedSource;
use tract_onnx::tract_hir::infer::Factoid;

use crate::int8::shared_quant;
use crate::work::WorkGraph;

/// Parse an ONNX file and return tract's decluttered typed model with concrete input shapes,
/// the file's node names and its parameter count ([`crate::source_counts`]).
///
/// `input_shape` overrides the shape of the first input (needed when it has symbolic dims
/// other than a leading batch dim, which defaults to 1). The protobuf is checked first
/// ([`crate::onnx_check`]), tract runs under `catch_unwind` so a panic left in it becomes an
/// error, and every tensor's size is compared with the memory limit before lowering.
pub fn load_onnx(
    path: &Path,
    input_shape: Option<&[usize]>,
) -> Result<(TypedModel, OnnxNodes, u64)> {
    let limit = ferrolite_runtime::limits::memory_limit().map_err(anyhow::Error::msg)?;
    let proto = tract_onnx::onnx()
        .proto_model_for_path(path)
        .with_context(|| format!("cannot parse ONNX model {}", path.display()))?;
    let graph = proto
        .graph
        .as_ref()
        .with_context(|| format!("ONNX model {} has no graph", path.display()))?;
    crate::onnx_check::check_graph(graph, limit)
        .with_context(|| format!("cannot convert {}", path.display()))?;
    let nodes = OnnxNodes::of(graph);
    let params = crate::source_counts::parameters(graph);
    let typed =
        crate::tract_guard::guarded(|| load_proto(&proto, path, input_shape, &nodes, limit))
            .and_then(|typed| typed)
            .with_context(|| format!("cannot convert {}", path.display()))?;
    Ok((typed, nodes, params))
}

/// The ONNX file's own node names and op types, so a message about a tract node names the
/// node the user wrote (`Resize` rather than tract's `NearestUpsample`).
#[derive(Debug, Default)]
pub struct OnnxNodes {
    /// (node name, op type), longest names first.
    nodes: Vec<(String, String)>,
}

impl OnnxNodes {
    fn of(graph: &tract_onnx::pb::GraphProto) -> OnnxNodes {
        let mut nodes: Vec<(String, String)> = graph
            .node
            .iter()
            .filter(|n| !n.name.is_empty())
            .map(|n| (n.name.clone(), n.op_type.clone()))
            .collect();
        nodes.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        OnnxNodes { nodes }
    }

    /// The ONNX node a tract node comes from: tract keeps the ONNX name, sometimes with a
    /// `.suffix` per op it split the node into.
    fn source_of(&self, tract_name: &str) -> Option<(&str, &str)> {
        self.nodes.iter().find_map(|(name, op)| {
            let rest = tract_name.strip_prefix(name.as_str())?;
            (rest.is_empty() || rest.starts_with('.')).then_some((name.as_str(), op.as_str()))
        })
    }
}

/// tract's shape-inference failure in the user's words: which ONNX node, and the last cause
/// with tract's `Val(…)` wrappers taken off; an `--input-shape` that does not fit says so.
fn explain_typing(
    e: &anyhow::Error,
    input_shape: Option<&[usize]>,
    nodes: &OnnxNodes,
) -> anyhow::Error {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    let node = chain.iter().find_map(|c| {
        let rest = c.split_once("node #")?.1;
        let name = rest.split('"').nth(1)?;
        Some(match nodes.source_of(name) {
            Some((name, op)) => format!("ONNX node {name:?} ({op})"),
            None => format!("node {name:?}"),
        })
    });
    let cause = unwrap_tract_values(chain.last().map_or("", String::as_str));
    let at = node.map_or(String::new(), |n| format!("{n}: "));
    match input_shape {
        Some(shape) => {
            anyhow::anyhow!(
            "--input-shape {} does not fit this model: {at}{cause} (the model fixes this shape \
             for its own input size)",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",")
        )
        }
        None => anyhow::anyhow!("cannot work out the model's shapes: {at}{cause}"),
    }
}

/// `[Val(1), Val(116)]` → `[1, 116]`; `Sym(N)` → `N`.
fn unwrap_tract_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(j) = ["Val(", "Sym("].iter().filter_map(|p| rest.find(p)).min() {
        out.push_str(&rest[..j]);
        let inner = &rest[j + 4..];
        let k = inner.find(')').unwrap_or(inner.len());
        out.push_str(&inner[..k]);
        rest = inner.get(k + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// A shape fact as people write it (`1x3x224x224`; symbols by name).
fn fact_text(fact: &TypedFact) -> String {
    let dims: Vec<String> = fact.shape.iter().map(|d| d.to_string()).collect();
    if dims.is_empty() {
        "scalar".into()
    } else {
        dims.join("x")
    }
}

/// Refuse a model one of whose tensors would need more than `limit` bytes.
fn check_sizes(model: &TypedModel, limit: u64) -> Result<()> {
    for node in &model.nodes {
        for (i, out) in node.outputs.iter().enumerate() {
            let Some(dims) = out.fact.shape.as_concrete() else {
                continue;
            };
            // An empty dimension counts as 1, as in `onnx_check`: tract still walks the others.
            let bytes = dims
                .iter()
                .try_fold(out.fact.datum_type.size_of() as u64, |n, &d| {
                    n.checked_mul(d.max(1) as u64)
                });
            if bytes.is_none_or(|b| b > limit) {
                let label = model.outlet_label(OutletId::new(node.id, i));
                bail!(
                    "tensor {:?} (output of node {:?}) of shape {} needs {}, over the memory \
                     limit of {}: set {} to raise it",
                    label.unwrap_or(&node.name),
                    node.name,
                    ferrolite_runtime::meta::shape_text(dims),
                    bytes.map_or(
                        "more than 2^64 bytes".into(),
                        ferrolite_runtime::limits::bytes_text
                    ),
                    ferrolite_runtime::limits::bytes_text(limit),
                    ferrolite_runtime::limits::MEMORY_ENV
                );
            }
        }
    }
    Ok(())
}

/// tract's part of [`load_onnx`]: build the inference model from the protobuf, fix the input
/// shapes, type it and declutter it, refusing tensors over `limit` bytes as soon as their
/// shapes are known (tract's simplification is slow on absurd shapes).
fn load_proto(
    proto: &tract_onnx::pb::ModelProto,
    path: &Path,
    input_shape: Option<&[usize]>,
    nodes: &OnnxNodes,
    limit: u64,
) -> Result<TypedModel> {
    let dir = path.parent().and_then(|d| d.to_str());
    let parsed = tract_onnx::onnx()
        .parse(proto, dir)
        .context("cannot parse the model")?;
    if !parsed.unresolved_inputs.is_empty() {
        bail!(
            "nodes read tensors nothing computes: {}",
            parsed.unresolved_inputs.join(", ")
        );
    }
    let mut model = parsed.model;
    let n_inputs = model.inputs.len();
    for i in 0..n_inputs {
        let fact = model.input_fact(i)?.clone();
        let name = model.node(model.inputs[i].node).name.clone();
        let dt = fact.datum_type.concretize().unwrap_or(f32::datum_type());
        if dt != f32::datum_type() {
            bail!(
                "input {name:?} has type {}: only float32 inputs are supported",
                type_name(dt)
            );
        }
        let shape: Vec<usize> = match (i, input_shape) {
            (0, Some(s)) => s.to_vec(),
            _ => {
                let dims = fact
                    .shape
                    .dims()
                    .map(|d| d.concretize())
                    .collect::<Vec<_>>();
                let rank_known = fact.shape.rank().concretize().is_some();
                if !rank_known {
                    bail!("input {name:?} has an unknown rank: pass --input-shape");
                }
                let mut shape = Vec::new();
                for (axis, d) in dims.iter().enumerate() {
                    match d.as_ref().and_then(|d| d.to_usize().ok()) {
                        Some(v) => shape.push(v),
                        None if axis == 0 => shape.push(1),
                        None => bail!(
                            "input {name:?} has symbolic dimension {axis} ({}): pass --input-shape, e.g. --input-shape 1,3,224,224",
                            fact.shape.dims().map(|d| d.to_string()).collect::<Vec<_>>().join(",")
                        ),
                    }
                }
                shape
            }
        };
        if shape.contains(&0) {
            bail!(
                "input {name:?} has shape {}: empty tensors are not supported",
                ferrolite_runtime::meta::shape_text(&shape)
            );
        }
        let bytes = shape.iter().try_fold(4u64, |n, &d| n.checked_mul(d as u64));
        if bytes.is_none_or(|b| b > limit) {
            bail!(
                "input {name:?} of shape {} needs {}, over the memory limit of {}: set {} to \
                 raise it",
                ferrolite_runtime::meta::shape_text(&shape),
                bytes.map_or(
                    "more than 2^64 bytes".into(),
                    ferrolite_runtime::limits::bytes_text
                ),
                ferrolite_runtime::limits::bytes_text(limit),
                ferrolite_runtime::limits::MEMORY_ENV
            );
        }
        model.set_input_fact(i, f32::fact(&shape).into())?;
    }
    let output_names: Vec<Option<String>> = model
        .outputs
        .iter()
        .map(|o| model.outlet_label(*o).map(|s| s.to_string()))
        .collect();
    let mut typed = model
        .into_typed()
        .map_err(|e| explain_typing(&e, input_shape, nodes))?;
    check_sizes(&typed, limit)?;
    // Declutter without the pass that drops size-1 axes: the IR keeps ONNX's NCHW rank-4
    // feature maps so the runtime can lay them out as NHWC.
    let mut opt = tract_onnx::tract_core::optim::Optimizer::declutter();
    opt.passes
        .retain(|p| !format!("{p:?}").contains("ChangeAxes"));
    opt.session()
        .optimize(&mut typed)
        .context("cannot simplify the model")?;
    // Simplification renames outputs after their last op: restore the ONNX names.
    for (i, name) in output_names.into_iter().enumerate() {
        if let (Some(name), Some(o)) = (name, typed.outputs.get(i).copied()) {
            typed.set_outlet_label(o, name)?;
        }
    }
    check_sizes(&typed, limit)?;
    Ok(typed)
}

/// What a tract outlet became in the IR.
#[derive(Clone)]
enum Value {
    Tensor(TensorId),
    /// A non-float constant (indices, shapes); usable only as an attribute-like operand.
    Other(Arc<tract_onnx::prelude::Tensor>),
    /// The 8-bit output of an ONNX QuantizeLinear (a QDQ model), possibly moved by axis
    /// changes: it stands for the f32 tensor `t`, and must reach a DequantizeLinear with the
    /// same parameters, which makes the pair a marker of `t`'s quantization.
    Quantized(QuantizedValue),
}

/// A QuantizeLinear's output as [`Value::Quantized`] tracks it.
#[derive(Clone, Copy, Debug)]
struct QuantizedValue {
    /// The f32 tensor the value stands for (after the axis changes applied to it).
    t: TensorId,
    /// The f32 tensor the QuantizeLinear read.
    origin: TensorId,
    /// tract's QuantizeLinear multiplier, `1 / scale`.
    inv_scale: f32,
    /// Zero point, in the 8-bit type's own range.
    zero_point: i32,
    /// int8 (rather than uint8) values.
    signed: bool,
    /// tract node id of the QuantizeLinear, for messages.
    node: usize,
}

/// Lower a decluttered tract model into a [`WorkGraph`]; `onnx` names the ONNX nodes in
/// messages.
pub fn lower(model: &TypedModel, onnx: &OnnxNodes) -> Result<WorkGraph> {
    let mut l = Lowering {
        model,
        g: WorkGraph::default(),
        values: HashMap::new(),
    };
    for id in model.eval_order()? {
        let node = model.node(id);
        l.lower_node(node).with_context(|| {
            let shapes: Vec<String> = node
                .inputs
                .iter()
                .map(|o| model.outlet_fact(*o).map(fact_text).unwrap_or_default())
                .collect();
            match onnx.source_of(&node.name) {
                Some((name, op)) => format!(
                    "ONNX node {name:?} ({op}, input shapes {})",
                    shapes.join(", ")
                ),
                None => format!("node {:?} (input shapes {})", node.name, shapes.join(", ")),
            }
        })?;
    }
    for o in model.input_outlets()? {
        let t = l.tensor(*o)?;
        l.g.inputs.push(t);
    }
    for o in model.output_outlets()? {
        let t = l.tensor(*o)?;
        if l.g.consts.contains_key(&t) {
            bail!("output {:?} is a constant", model.node(o.node).name);
        }
        let name = model
            .outlet_label(*o)
            .map(|s| s.to_string())
            .unwrap_or_else(|| l.g.tensors[t].name.clone());
        l.g.output_names.push(name);
        l.g.outputs.push(t);
    }
    Ok(l.g)
}

struct Lowering<'a> {
    model: &'a TypedModel,
    g: WorkGraph,
    values: HashMap<OutletId, Value>,
}

fn concrete_shape(fact: &TypedFact) -> Result<Vec<usize>> {
    fact.shape.as_concrete().map(|s| s.to_vec()).ok_or_else(|| {
        let dims: Vec<String> = fact.shape.iter().map(|d| d.to_string()).collect();
        anyhow!("symbolic shape {}: pass --input-shape", dims.join("x"))
    })
}

/// An element type as ONNX spells it (`int64`, `float16`), for messages.
fn type_name(dt: DatumType) -> String {
    match dt {
        DatumType::F16 => "float16".into(),
        DatumType::F32 => "float32".into(),
        DatumType::F64 => "double".into(),
        DatumType::I8 => "int8".into(),
        DatumType::U8 => "uint8".into(),
        DatumType::I16 => "int16".into(),
        DatumType::U16 => "uint16".into(),
        DatumType::I32 => "int32".into(),
        DatumType::U32 => "uint32".into(),
        DatumType::I64 => "int64".into(),
        DatumType::U64 => "uint64".into(),
        DatumType::Bool => "bool".into(),
        DatumType::String => "string".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn window_from(spec: &PoolSpec, input_hw: &[usize], output_hw: &[usize]) -> Result<Window> {
    if spec.data_format != DataFormat::NCHW {
        bail!(
            "data format {:?} (only NCHW is supported)",
            spec.data_format
        );
    }
    if spec.kernel_shape.len() != 2 {
        bail!(
            "{}-D window (only 2-D convolutions and pools are supported)",
            spec.kernel_shape.len()
        );
    }
    let padding = spec.computed_padding(input_hw);
    let mut w = Window {
        kernel: [spec.kernel_shape[0], spec.kernel_shape[1]],
        strides: [spec.stride(0), spec.stride(1)],
        dilations: [spec.dilation(0), spec.dilation(1)],
        pads: [
            padding[0].pad_before,
            padding[1].pad_before,
            padding[0].pad_after,
            padding[1].pad_after,
        ],
    };
    // Ceil-mode pools: extend the trailing pad until the output size matches tract's.
    for a in 0..2 {
        for _ in 0..w.strides[a] + 1 {
            match w.output_hw([input_hw[0], input_hw[1]]) {
                Some(o) if o[a] < output_hw[a] => w.pads[a + 2] += 1,
                _ => break,
            }
        }
    }
    if w.output_hw([input_hw[0], input_hw[1]]) != Some([output_hw[0], output_hw[1]]) {
        bail!("cannot express the window geometry of {spec:?}");
    }
    Ok(w)
}

fn activation_of(op: &ElementWiseOp) -> Option<Activation> {
    if let Some(l) = op.0.downcast_ref::<LeakyRelu>() {
        return Some(Activation::LeakyRelu { alpha: l.alpha });
    }
    Some(match op.0.name().as_ref() {
        "Sigmoid" => Activation::Sigmoid,
        "Silu" => Activation::Silu,
        "Tanh" => Activation::Tanh,
        "HardSwish" => Activation::HardSwish,
        "GeluExact" => Activation::Gelu,
        "Exp" => Activation::Exp,
        "Ln" => Activation::Log,
        "Sqrt" => Activation::Sqrt,
        "Rsqrt" => Activation::Rsqrt,
        "Recip" => Activation::Reciprocal,
        "Abs" => Activation::Abs,
        "Neg" => Activation::Neg,
        "Erf" => Activation::Erf,
        _ => return None,
    })
}

/// `perm` such that output axis i is input axis perm[i], for moving axis `from` to `to`.
fn move_axis_perm(rank: usize, from: usize, to: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..rank).collect();
    let a = perm.remove(from);
    perm.insert(to, a);
    perm
}

impl Lowering<'_> {
    fn tensor(&self, o: OutletId) -> Result<TensorId> {
        match self.values.get(&o) {
            Some(Value::Tensor(t)) => Ok(*t),
            Some(Value::Other(_)) => bail!(
                "non-float constant from node {:?} used as data",
                self.model.node(o.node).name
            ),
            Some(Value::Quantized(q)) => bail!(
                "the 8-bit output of QuantizeLinear {:?} is read by an op other than \
                 DequantizeLinear: only QuantizeLinear -> DequantizeLinear pairs on f32 \
                 activations can be imported from a QDQ model",
                self.model.node(q.node).name
            ),
            None => bail!(
                "value from node {:?} not lowered",
                self.model.node(o.node).name
            ),
        }
    }

    fn input(&self, node: &TypedNode, i: usize) -> Result<TensorId> {
        let o = *node
            .inputs
            .get(i)
            .ok_or_else(|| anyhow!("missing input {i}"))?;
        self.tensor(o)
    }

    fn out_shape(&self, node: &TypedNode, i: usize) -> Result<Vec<usize>> {
        concrete_shape(&node.outputs[i].fact)
    }

    fn in_shape(&self, node: &TypedNode, i: usize) -> Result<Vec<usize>> {
        concrete_shape(self.model.outlet_fact(node.inputs[i])?)
    }

    /// Create the output tensor `i` of `node` and remember it.
    fn output(&mut self, node: &TypedNode, i: usize) -> Result<TensorId> {
        let name = if i == 0 {
            node.name.clone()
        } else {
            format!("{}.{i}", node.name)
        };
        let t = self.g.add_tensor(name, self.out_shape(node, i)?);
        self.values
            .insert(OutletId::new(node.id, i), Value::Tensor(t));
        Ok(t)
    }

    fn emit(&mut self, node: &TypedNode, op: Op, inputs: Vec<TensorId>) -> Result<()> {
        let outs = (0..node.outputs.len())
            .map(|i| self.output(node, i))
            .collect::<Result<Vec<_>>>()?;
        self.g.add_node(node.name.clone(), op, inputs, outs);
        Ok(())
    }

    fn const_data(&self, t: TensorId, what: &str) -> Result<Vec<f32>> {
        self.g
            .const_of(t)
            .cloned()
            .ok_or_else(|| anyhow!("{what} must be a constant"))
    }

    fn lower_node(&mut self, node: &TypedNode) -> Result<()> {
        let op = node.op();
        if let Some(src) = op.downcast_ref::<TypedSource>() {
            let shape = concrete_shape(&src.fact)?;
            let t = self.g.add_tensor(node.name.clone(), shape);
            self.values
                .insert(OutletId::new(node.id, 0), Value::Tensor(t));
            return Ok(());
        }
        if let Some(k) = op.downcast_ref::<Const>() {
            let v = self.const_value(node.name.clone(), k.val().clone())?;
            self.values.insert(OutletId::new(node.id, 0), v);
            return Ok(());
        }
        if op.downcast_ref::<Identity>().is_some() {
            let t = self.input(node, 0)?;
            self.values
                .insert(OutletId::new(node.id, 0), Value::Tensor(t));
            return Ok(());
        }
        if self.fold_constant(node)? || self.lower_qdq(node)? {
            return Ok(());
        }
        if let Some(c) = op.downcast_ref::<Cast>() {
            let from = self.model.outlet_fact(node.inputs[0])?.datum_type;
            if c.to == DatumType::F32 && from == DatumType::F32 {
                let t = self.input(node, 0)?;
                self.values
                    .insert(OutletId::new(node.id, 0), Value::Tensor(t));
                return Ok(());
            }
            bail!("Cast from {from:?} to {:?} is not supported", c.to);
        }
        for (i, o) in node.outputs.iter().enumerate() {
            if o.fact.datum_type != DatumType::F32 {
                bail!(
                    "output {i} has type {:?}: only f32 computation is supported",
                    o.fact.datum_type
                );
            }
        }
        if let Some(conv) = op.downcast_ref::<Conv>() {
            return self.lower_conv(node, conv);
        }
        if let Some(p) = op.downcast_ref::<MaxPool>() {
            if p.with_index_outputs.is_some() {
                bail!("MaxPool with index outputs is not supported");
            }
            let window = self.pool_window(node, &p.pool_spec)?;
            let x = self.input(node, 0)?;
            return self.emit(
                node,
                Op::Pool2d {
                    kind: PoolKind::Max,
                    window,
                },
                vec![x],
            );
        }
        if let Some(p) = op.downcast_ref::<SumPool>() {
            if !p.normalize {
                bail!("un-normalised SumPool is not supported");
            }
            let window = self.pool_window(node, &p.pool_spec)?;
            let x = self.input(node, 0)?;
            let kind = PoolKind::Avg {
                count_include_pad: p.count_include_pad,
            };
            return self.emit(node, Op::Pool2d { kind, window }, vec![x]);
        }
        if let Some(e) = op.downcast_ref::<EinSum>() {
            return self.lower_einsum(node, e);
        }
        if let Some(b) = op.downcast_ref::<TypedBinOp>() {
            let bop = match b.0.name() {
                "Add" => BinaryOp::Add,
                "Sub" => BinaryOp::Sub,
                "Mul" => BinaryOp::Mul,
                "Div" => BinaryOp::Div,
                "Max" => BinaryOp::Max,
                "Min" => BinaryOp::Min,
                "Pow" => BinaryOp::Pow,
                other => bail!("binary operator {other} is not supported"),
            };
            let a = self.input(node, 0)?;
            let c = self.input(node, 1)?;
            let op = Op::Binary {
                op: bop,
                activation: Activation::None,
            };
            return self.emit(node, op, vec![a, c]);
        }
        if let Some(e) = op.downcast_ref::<ElementWiseOp>() {
            let x = self.input(node, 0)?;
            let binary = Op::Binary {
                op: BinaryOp::Pow,
                activation: Activation::None,
            };
            if e.0.is::<Square>() {
                let op = Op::Binary {
                    op: BinaryOp::Mul,
                    activation: Activation::None,
                };
                return self.emit(node, op, vec![x, x]);
            }
            if let Some(p) = e.0.downcast_ref::<PowConst>() {
                let c =
                    self.g
                        .add_const(format!("{}.exponent", node.name), vec![], vec![p.exponent]);
                return self.emit(node, binary, vec![x, c]);
            }
            let activation = activation_of(e)
                .ok_or_else(|| anyhow!("element-wise function {} is not supported", e.0.name()))?;
            return self.emit(node, Op::Unary { activation }, vec![x]);
        }
        if let Some(a) = op.downcast_ref::<AxisOp>() {
            let x = self.input(node, 0)?;
            let op = self.axis_op(node, a)?;
            return self.emit(node, op, vec![x]);
        }
        if let Some(c) = op.downcast_ref::<TypedConcat>() {
            let ins = (0..node.inputs.len())
                .map(|i| self.input(node, i))
                .collect::<Result<Vec<_>>>()?;
            return self.emit(node, Op::Concat { axis: c.axis }, ins);
        }
        if let Some(s) = op.downcast_ref::<Slice>() {
            let start = s.start.to_usize().context("symbolic slice start")?;
            let end = s.end.to_usize().context("symbolic slice end")?;
            let x = self.input(node, 0)?;
            let op = Op::Slice {
                axis: s.axis,
                start,
                end,
                step: 1,
            };
            return self.emit(node, op, vec![x]);
        }
        if let Some(d) = op.downcast_ref::<Downsample>() {
            if d.stride <= 0 {
                bail!("Downsample with stride {} is not supported", d.stride);
            }
            let dim = self.in_shape(node, 0)?[d.axis];
            let x = self.input(node, 0)?;
            let op = Op::Slice {
                axis: d.axis,
                start: d.modulo.min(dim),
                end: dim,
                step: d.stride as usize,
            };
            return self.emit(node, op, vec![x]);
        }
        if let Some(p) = op.downcast_ref::<Pad>() {
            let mode = match &p.mode {
                TractPadMode::Constant(v) => PadMode::Constant {
                    value: v.cast_to_scalar::<f32>()?,
                },
                TractPadMode::Reflect => PadMode::Reflect,
                TractPadMode::Edge => PadMode::Edge,
            };
            let x = self.input(node, 0)?;
            let op = Op::Pad {
                pads: p.pads.clone(),
                mode,
            };
            return self.emit(node, op, vec![x]);
        }
        if let Some(r) = op.downcast_ref::<Reduce>() {
            if r.reducer == Reducer::MeanOfSquares {
                let x = self.input(node, 0)?;
                return self.mean_of_squares(node, x, r.axes.to_vec());
            }
            let rop = match r.reducer {
                Reducer::Sum => ReduceOp::Sum,
                Reducer::Max => ReduceOp::Max,
                Reducer::Min => ReduceOp::Min,
                other => bail!("reduction {other:?} is not supported"),
            };
            let x = self.input(node, 0)?;
            let op = Op::Reduce {
                op: rop,
                axes: r.axes.to_vec(),
                keep_dims: true,
            };
            return self.emit(node, op, vec![x]);
        }
        if let Some(r) = op.downcast_ref::<RmsNorm>() {
            // x * rsqrt(mean(x², axis) + eps)
            let x = self.input(node, 0)?;
            let eps = r.eps.cast_to_scalar::<f32>()?;
            let ms = self.mean_of_squares_tensor(node, x, vec![r.axis])?;
            let shape = self.g.tensors[ms].shape.clone();
            let e = self
                .g
                .add_const(format!("{}.eps", node.name), vec![], vec![eps]);
            let sum = self
                .g
                .add_tensor(format!("{}.var_eps", node.name), shape.clone());
            let add = Op::Binary {
                op: BinaryOp::Add,
                activation: Activation::Rsqrt,
            };
            self.g
                .add_node(format!("{}.rsqrt", node.name), add, vec![ms, e], vec![sum]);
            let mul = Op::Binary {
                op: BinaryOp::Mul,
                activation: Activation::None,
            };
            return self.emit(node, mul, vec![x, sum]);
        }
        if let Some(gather) = op.downcast_ref::<Gather>() {
            return self.lower_gather(node, gather);
        }
        if let Some(s) = op.downcast_ref::<Softmax>() {
            if s.kind != SoftmaxKind::Softmax || s.axes.len() != 1 || s.quant_output_dt.is_some() {
                bail!("only single-axis float Softmax is supported ({s:?})");
            }
            let x = self.input(node, 0)?;
            return self.emit(node, Op::Softmax { axis: s.axes[0] }, vec![x]);
        }
        bail!(
            "not supported: Ferrolite has no kernel for it (tract reads it as {})",
            op.name()
        )
    }

    /// A constant as a value: floats become f32 constant tensors, other types stay tract
    /// tensors (indices, shapes, quantized weights before their DequantizeLinear).
    fn const_value(
        &mut self,
        name: String,
        tensor: Arc<tract_onnx::prelude::Tensor>,
    ) -> Result<Value> {
        Ok(match tensor.datum_type() {
            DatumType::F32 | DatumType::F16 | DatumType::F64 => {
                let t = tensor.cast_to::<f32>()?;
                let data: Vec<f32> = t.to_plain_array_view::<f32>()?.iter().copied().collect();
                Value::Tensor(self.g.add_const(name, tensor.shape().to_vec(), data))
            }
            _ => Value::Other(tensor),
        })
    }

    /// The constant behind outlet `o`, if it is one.
    fn constant_at(&self, o: OutletId) -> Option<Arc<tract_onnx::prelude::Tensor>> {
        match self.values.get(&o)? {
            Value::Other(t) => Some(t.clone()),
            Value::Tensor(id) => {
                let data = self.g.const_of(*id)?;
                tract_onnx::prelude::Tensor::from_shape(&self.g.tensors[*id].shape, data)
                    .ok()
                    .map(Arc::new)
            }
            Value::Quantized(_) => None,
        }
    }

    /// Evaluate a node whose inputs are all constants (tract leaves some unfolded, e.g. the
    /// cast and scale of a per-channel DequantizeLinear of a QDQ model's weights). Returns
    /// whether it did.
    fn fold_constant(&mut self, node: &TypedNode) -> Result<bool> {
        if node.inputs.is_empty() {
            return Ok(false);
        }
        let Some(inputs) = node
            .inputs
            .iter()
            .map(|&o| self.constant_at(o).map(|t| t.into_tvalue()))
            .collect::<Option<TVec<TValue>>>()
        else {
            return Ok(false);
        };
        // An op that cannot evaluate here (or rejects the f32 form of an f16 constant) is
        // lowered as usual instead.
        let Ok(Some(outputs)) = node.op.eval_out_of_plan(inputs) else {
            return Ok(false);
        };
        for (i, v) in outputs.into_iter().enumerate() {
            let name = if i == 0 {
                node.name.clone()
            } else {
                format!("{}.{i}", node.name)
            };
            let value = self.const_value(name, v.into_arc_tensor())?;
            self.values.insert(OutletId::new(node.id, i), value);
        }
        Ok(true)
    }

    /// QuantizeLinear / DequantizeLinear pairs of a QDQ model (and the axis changes and
    /// identity lookup tables tract's simplification leaves between them): the pair vanishes
    /// and the f32 tensor it quantized records the pair's `(scale, zero point)`, as u8
    /// parameters (an int8 zero point is shifted by 128: the same real values). Returns
    /// whether `node` was one of these.
    fn lower_qdq(&mut self, node: &TypedNode) -> Result<bool> {
        let op = node.op();
        let out = OutletId::new(node.id, 0);
        let quantized_input = match node.inputs.first().and_then(|o| self.values.get(o)) {
            Some(Value::Quantized(q)) => Some(*q),
            _ => None,
        };
        if let Some(e) = op.downcast_ref::<ElementWiseOp>() {
            let params = if let Some(q) = e.0.downcast_ref::<QuantizeLinearU8>() {
                Some((q.scale, q.zero_point as i32, false))
            } else {
                e.0.downcast_ref::<QuantizeLinearI8>()
                    .map(|q| (q.scale, q.zero_point as i32, true))
            };
            if let Some((inv_scale, zero_point, signed)) = params {
                let t = self.input(node, 0)?;
                let q = QuantizedValue {
                    t,
                    origin: t,
                    inv_scale,
                    zero_point,
                    signed,
                    node: node.id,
                };
                self.values.insert(out, Value::Quantized(q));
                return Ok(true);
            }
            if e.0.is::<LookupTable>() {
                let Some(q) = quantized_input else {
                    bail!("8-bit lookup table on a value that is not a QuantizeLinear output");
                };
                if !self.is_identity_table(node, q.signed)? {
                    bail!(
                        "tract fused a DequantizeLinear -> element-wise op -> QuantizeLinear \
                         chain into an 8-bit lookup table; only QuantizeLinear -> \
                         DequantizeLinear pairs around ops Ferrolite runs can be imported"
                    );
                }
                self.values.insert(out, Value::Quantized(q));
                return Ok(true);
            }
        }
        if let Some(dq) = op.downcast_ref::<DequantizeLinearF32>() {
            let Some(q) = quantized_input else {
                bail!(
                    "DequantizeLinear of a value that is not the output of a QuantizeLinear \
                     (only constant weights and QuantizeLinear -> DequantizeLinear pairs are \
                     supported)"
                );
            };
            if dq.zero_point != q.zero_point || dq.scale.recip() != q.inv_scale {
                bail!(
                    "QuantizeLinear {:?} (scale {}, zero point {}) is read by a \
                     DequantizeLinear with other parameters (scale {}, zero point {}): \
                     requantizing QDQ chains are not supported",
                    self.model.node(q.node).name,
                    q.inv_scale.recip(),
                    q.zero_point,
                    dq.scale,
                    dq.zero_point
                );
            }
            // An 8-bit zero point, shifted to u8 when signed, is always in 0..=255.
            let zero_point = q.zero_point + if q.signed { 128 } else { 0 };
            if !(dq.scale.is_finite() && dq.scale > 0.0) {
                bail!(
                    "QuantizeLinear {:?}: scale {} must be finite and positive",
                    self.model.node(q.node).name,
                    dq.scale
                );
            }
            self.record_quant(q.origin, dq.scale, zero_point);
            if q.t != q.origin {
                self.record_quant(q.t, dq.scale, zero_point);
            }
            self.values.insert(out, Value::Tensor(q.t));
            return Ok(true);
        }
        if let (Some(q), Some(a)) = (quantized_input, op.downcast_ref::<AxisOp>()) {
            // The 8-bit value moved: move the f32 tensor it stands for the same way.
            let ir = self.axis_op(node, a)?;
            let t = self.output(node, 0)?;
            self.g.add_node(node.name.clone(), ir, vec![q.t], vec![t]);
            self.values
                .insert(out, Value::Quantized(QuantizedValue { t, ..q }));
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether the lookup table `node` maps every 8-bit value to itself.
    fn is_identity_table(&self, node: &TypedNode, signed: bool) -> Result<bool> {
        let input = if signed {
            tensor1(&(-128i8..=127).collect::<Vec<i8>>())
        } else {
            tensor1(&(0u8..=255).collect::<Vec<u8>>())
        };
        let Some(out) = node
            .op
            .eval_out_of_plan(tvec![input.clone().into_tvalue()])?
        else {
            return Ok(false);
        };
        Ok(out.first().is_some_and(|o| **o == input))
    }

    /// Record that f32 tensor `t` is quantized with `(scale, zero_point)` (u8). A tensor
    /// quantized twice with different parameters keeps one set covering both
    /// ([`crate::int8::shared_quant`]).
    fn record_quant(&mut self, t: TensorId, scale: f32, zero_point: i32) {
        let mut params = Vec::new();
        if let Some(Quant::PerTensor { scale, zero_point }) = self.g.tensors[t].quant {
            params.push((scale, zero_point));
        }
        params.push((scale, zero_point));
        self.g.tensors[t].quant = shared_quant(&params, None);
    }

    /// The IR op of a tract axis change (`Move` is a transpose, the others reshapes).
    fn axis_op(&self, node: &TypedNode, a: &AxisOp) -> Result<Op> {
        let rank = self.in_shape(node, 0)?.len();
        Ok(match a {
            AxisOp::Move(from, to) => Op::Transpose {
                perm: move_axis_perm(rank, *from, *to),
            },
            _ => Op::Reshape,
        })
    }

    /// `mean(x * x, axes)` as a new tensor (keeping reduced axes).
    fn mean_of_squares_tensor(
        &mut self,
        node: &TypedNode,
        x: TensorId,
        axes: Vec<usize>,
    ) -> Result<TensorId> {
        let xshape = self.g.tensors[x].shape.clone();
        let sq = self
            .g
            .add_tensor(format!("{}.square", node.name), xshape.clone());
        let mul = Op::Binary {
            op: BinaryOp::Mul,
            activation: Activation::None,
        };
        self.g
            .add_node(format!("{}.square", node.name), mul, vec![x, x], vec![sq]);
        let mut rshape = xshape;
        for &a in &axes {
            *rshape
                .get_mut(a)
                .ok_or_else(|| anyhow!("axis {a} out of range"))? = 1;
        }
        let ms = self.g.add_tensor(format!("{}.mean_sq", node.name), rshape);
        let op = Op::Reduce {
            op: ReduceOp::Mean,
            axes,
            keep_dims: true,
        };
        self.g
            .add_node(format!("{}.mean_sq", node.name), op, vec![sq], vec![ms]);
        Ok(ms)
    }

    fn mean_of_squares(&mut self, node: &TypedNode, x: TensorId, axes: Vec<usize>) -> Result<()> {
        let ms = self.mean_of_squares_tensor(node, x, axes)?;
        let out_shape = self.out_shape(node, 0)?;
        if self.g.tensors[ms].shape != out_shape {
            bail!("MeanOfSquares output shape {out_shape:?} is not the kept-dims shape");
        }
        self.values
            .insert(OutletId::new(node.id, 0), Value::Tensor(ms));
        Ok(())
    }

    /// Gather with constant indices: one Slice per index (then Concat), then Reshape.
    fn lower_gather(&mut self, node: &TypedNode, gather: &Gather) -> Result<()> {
        let x = self.input(node, 0)?;
        let indices = match self.values.get(&node.inputs[1]) {
            Some(Value::Other(t)) => t.cast_to::<i64>()?.into_owned(),
            _ => bail!("Gather with non-constant indices is not supported"),
        };
        let idx: Vec<i64> = indices
            .to_plain_array_view::<i64>()?
            .iter()
            .copied()
            .collect();
        let xshape = self.g.tensors[x].shape.clone();
        let axis = gather.axis;
        let dim = *xshape
            .get(axis)
            .ok_or_else(|| anyhow!("Gather axis {axis} out of range"))? as i64;
        if idx.is_empty() || indices.rank() > 1 {
            bail!(
                "Gather supports a scalar or 1-D constant index, got shape {:?}",
                indices.shape()
            );
        }
        let mut parts = Vec::new();
        for (k, &i) in idx.iter().enumerate() {
            let i = if i < 0 { i + dim } else { i };
            if !(0..dim).contains(&i) {
                bail!("Gather index {i} out of range for dimension {dim}");
            }
            let mut s = xshape.clone();
            s[axis] = 1;
            let t = self.g.add_tensor(format!("{}.{k}", node.name), s);
            let op = Op::Slice {
                axis,
                start: i as usize,
                end: i as usize + 1,
                step: 1,
            };
            self.g
                .add_node(format!("{}.slice{k}", node.name), op, vec![x], vec![t]);
            parts.push(t);
        }
        let gathered = if parts.len() == 1 {
            parts[0]
        } else {
            let mut s = xshape.clone();
            s[axis] = parts.len();
            let t = self.g.add_tensor(format!("{}.concat", node.name), s);
            self.g.add_node(
                format!("{}.concat", node.name),
                Op::Concat { axis },
                parts,
                vec![t],
            );
            t
        };
        self.emit(node, Op::Reshape, vec![gathered])
    }

    fn pool_window(&self, node: &TypedNode, spec: &PoolSpec) -> Result<Window> {
        let ishape = self.in_shape(node, 0)?;
        let oshape = self.out_shape(node, 0)?;
        if ishape.len() != 4 {
            bail!("pooling input must be 4-D NCHW, got {ishape:?}");
        }
        window_from(spec, &ishape[2..], &oshape[2..])
    }

    fn lower_conv(&mut self, node: &TypedNode, conv: &Conv) -> Result<()> {
        if conv.q_params.is_some() {
            bail!("quantized convolution import is not supported yet");
        }
        let ishape = self.in_shape(node, 0)?;
        let oshape = self.out_shape(node, 0)?;
        if ishape.len() != 4 {
            bail!("convolution input must be 4-D NCHW, got {ishape:?}");
        }
        let window = window_from(&conv.pool_spec, &ishape[2..], &oshape[2..])?;
        let x = self.input(node, 0)?;
        let k = self.input(node, 1)?;
        let kshape = self.in_shape(node, 1)?;
        let kdata = self.const_data(k, "convolution weight")?;
        let o = oshape[1];
        let g = conv.group;
        let cpg = ishape[1] / g.max(1);
        let (kh, kw) = (window.kernel[0], window.kernel[1]);
        let weight: Vec<f32> = match conv.kernel_fmt {
            KernelFormat::OIHW => kdata,
            KernelFormat::HWIO | KernelFormat::OHWI => {
                let mut w = vec![0.0; o * cpg * kh * kw];
                for oc in 0..o {
                    for ic in 0..cpg {
                        for y in 0..kh {
                            for xx in 0..kw {
                                let src = if conv.kernel_fmt == KernelFormat::HWIO {
                                    // H, W, I, O/g per group laid out as O in the last axis.
                                    ((y * kw + xx) * cpg + ic) * o + oc
                                } else {
                                    ((oc * kh + y) * kw + xx) * cpg + ic
                                };
                                w[((oc * cpg + ic) * kh + y) * kw + xx] = *kdata
                                    .get(src)
                                    .ok_or_else(|| anyhow!("kernel shape {kshape:?} too small"))?;
                            }
                        }
                    }
                }
                w
            }
        };
        if weight.len() != o * cpg * kh * kw {
            bail!("kernel shape {kshape:?} does not match {o} outputs x {cpg} inputs x {kh}x{kw}");
        }
        let wt = self.g.add_const(
            format!("{}.weight", node.name),
            vec![o, cpg, kh, kw],
            weight,
        );
        let mut inputs = vec![x, wt];
        let mut has_bias = false;
        if node.inputs.len() > 2 {
            let b = self.input(node, 2)?;
            let bdata = self.const_data(b, "convolution bias")?;
            let bias = match bdata.len() {
                n if n == o => bdata,
                1 => vec![bdata[0]; o],
                n => bail!("bias has {n} values for {o} output channels"),
            };
            if bias.iter().any(|v| *v != 0.0) {
                let bt = self
                    .g
                    .add_const(format!("{}.bias", node.name), vec![o], bias);
                inputs.push(bt);
                has_bias = true;
            }
        }
        let op = Op::Conv2d {
            window,
            groups: g,
            activation: Activation::None,
            has_bias,
            has_residual: false,
        };
        self.emit(node, op, inputs)
    }

    fn lower_einsum(&mut self, node: &TypedNode, e: &EinSum) -> Result<()> {
        if e.q_params.is_some() || node.inputs.len() != 2 {
            bail!("quantized or n-ary EinSum is not supported ({})", e.axes);
        }
        let expr = e.axes.to_string();
        let (lhs, out) = expr
            .split_once("->")
            .ok_or_else(|| anyhow!("cannot parse einsum {expr}"))?;
        let (a, b) = lhs
            .split_once(',')
            .ok_or_else(|| anyhow!("cannot parse einsum {expr}"))?;
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        let out: Vec<char> = out.chars().collect();
        let x = self.input(node, 0)?;
        let w = self.input(node, 1)?;
        let wconst = self.g.const_of(w).is_some();
        if self.g.const_of(x).is_some() {
            bail!("EinSum {expr} with a constant first operand is not supported");
        }
        if wconst {
            // Linear layer: the weight holds one output axis and the contracted axes, which
            // must be contiguous in the input (several of them are merged by a Reshape).
            let ks: Vec<char> = a
                .iter()
                .copied()
                .filter(|c| b.contains(c) && !out.contains(c))
                .collect();
            let os: Vec<char> = b
                .iter()
                .copied()
                .filter(|c| !a.contains(c) && out.contains(c))
                .collect();
            if ks.is_empty() || os.len() != 1 || ks.len() + 1 != b.len() {
                bail!("EinSum {expr} is not a linear layer");
            }
            let oax = os[0];
            let kpos = a.iter().position(|c| *c == ks[0]).unwrap_or(0);
            if a[kpos..].len() < ks.len() || a[kpos..kpos + ks.len()] != ks[..] {
                bail!("EinSum {expr}: contracted axes are not contiguous");
            }
            let mut expect = a.clone();
            expect.splice(kpos..kpos + ks.len(), [oax]);
            if expect != out {
                bail!("EinSum {expr}: axis order change is not supported");
            }
            let wshape = self.in_shape(node, 1)?;
            let wdata = self.const_data(w, "weight")?;
            // Permute the weight to [O, K...] in the input's contraction order.
            let perm: Vec<usize> = std::iter::once(oax)
                .chain(ks.iter().copied())
                .map(|c| b.iter().position(|x| *x == c).unwrap_or(0))
                .collect();
            let w_ok = permute(&wdata, &wshape, &perm);
            let odim = wshape[perm[0]];
            let kdim: usize = perm[1..].iter().map(|&p| wshape[p]).product();
            let mut ishape = self.in_shape(node, 0)?;
            let mut x = x;
            if ks.len() > 1 {
                ishape.splice(kpos..kpos + ks.len(), [kdim]);
                let merged = self
                    .g
                    .add_tensor(format!("{}.merged", node.name), ishape.clone());
                self.g.add_node(
                    format!("{}.merge", node.name),
                    Op::Reshape,
                    vec![x],
                    vec![merged],
                );
                x = merged;
            }
            if ishape.len() == 4 && kpos == 1 {
                let wt = self.g.add_const(
                    format!("{}.weight", node.name),
                    vec![odim, kdim, 1, 1],
                    w_ok,
                );
                let op = Op::Conv2d {
                    window: Window {
                        kernel: [1, 1],
                        strides: [1, 1],
                        dilations: [1, 1],
                        pads: [0; 4],
                    },
                    groups: 1,
                    activation: Activation::None,
                    has_bias: false,
                    has_residual: false,
                };
                return self.emit(node, op, vec![x, wt]);
            }
            if kpos == ishape.len() - 1 {
                let wt = self
                    .g
                    .add_const(format!("{}.weight", node.name), vec![odim, kdim], w_ok);
                let op = Op::FullyConnected {
                    activation: Activation::None,
                    has_bias: false,
                };
                return self.emit(node, op, vec![x, wt]);
            }
            bail!("EinSum {expr}: contraction on axis {kpos} is not supported");
        }
        // Batched matrix product "...mk,...kn->...mn".
        let n = a.len();
        if n >= 2 && b.len() == n && out.len() == n {
            let (m, k, nn) = (a[n - 2], a[n - 1], b[n - 1]);
            let batch_ok = a[..n - 2] == b[..n - 2] && a[..n - 2] == out[..n - 2];
            if batch_ok && b[n - 2] == k && out[n - 2] == m && out[n - 1] == nn {
                return self.emit(node, Op::MatMul, vec![x, w]);
            }
        }
        bail!("EinSum {expr} is not supported")
    }
}

/// Row-major transpose of `data` with `shape`: output axis i is input axis `perm[i]`.
fn permute(data: &[f32], shape: &[usize], perm: &[usize]) -> Vec<f32> {
    let rank = shape.len();
    let mut strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0usize; rank];
    for _ in 0..data.len() {
        let off: usize = (0..rank).map(|i| idx[i] * strides[perm[i]]).sum();
        out.push(data[off]);
        for i in (0..rank).rev() {
            idx[i] += 1;
            if idx[i] < out_shape[i] {
                break;
            }
            idx[i] = 0;
        }
    }
    out
}
