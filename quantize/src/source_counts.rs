//! The parameter count of an ONNX file, read from its protobuf before tract folds anything
//! (tract's import folds some BatchNorms into the convolution before them, so a count on
//! the converted graph depends on which it folded). The definition is
//! [`ferrolite_runtime::summary::Counts`]'s: learned tensors as the file holds them.

use std::collections::HashSet;

use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{GraphProto, TensorProto};

/// Input positions of `op_type` that hold statistics, quantization parameters or sizes,
/// never learned values.
fn non_parameter_inputs(op_type: &str) -> &'static [usize] {
    match op_type {
        "BatchNormalization" => &[3, 4],
        "QuantizeLinear" | "DequantizeLinear" => &[1, 2],
        "QLinearConv" | "QLinearMatMul" => &[1, 2, 4, 5, 6, 7],
        "Resize" | "Upsample" => &[1, 2, 3],
        _ => &[],
    }
}

/// Input positions where an int32 constant is a learned value (a quantized bias), not a
/// shape or an index.
fn int32_parameter_input(op_type: &str, position: usize) -> bool {
    matches!(
        (op_type, position),
        ("DequantizeLinear", 0) | ("QLinearConv", 8) | ("ConvInteger", _)
    )
}

/// Elements of `t` (0 for a malformed negative dimension).
fn numel(t: &TensorProto) -> u64 {
    t.dims
        .iter()
        .map(|&d| u64::try_from(d).unwrap_or(0))
        .fold(1u64, u64::saturating_mul)
}

/// Parameters of `graph`: the elements of every constant (initializer or `Constant` node)
/// of more than one element and a floating-point or 8-bit type that some node reads as a
/// learned input (int32 only as a quantized bias). Subgraphs are not counted.
pub fn parameters(graph: &GraphProto) -> u64 {
    let consts = crate::onnx_check::constants(graph);
    let mut learned: HashSet<&str> = HashSet::new();
    for node in &graph.node {
        let skip = non_parameter_inputs(&node.op_type);
        for (position, name) in node.input.iter().enumerate() {
            let Some(t) = consts.get(name.as_str()) else {
                continue;
            };
            let typed = match DataType::try_from(t.data_type) {
                Ok(
                    DataType::Float
                    | DataType::Float16
                    | DataType::Bfloat16
                    | DataType::Double
                    | DataType::Int8
                    | DataType::Uint8,
                ) => true,
                Ok(DataType::Int32) => int32_parameter_input(&node.op_type, position),
                _ => false,
            };
            if typed && !skip.contains(&position) && numel(t) > 1 {
                learned.insert(name.as_str());
            }
        }
    }
    learned
        .iter()
        .map(|name| numel(consts[name]))
        .fold(0u64, u64::saturating_add)
}
