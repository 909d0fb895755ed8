//! Checks on the ONNX protobuf before tract sees it. tract trusts a model's attributes: a
//! `Transpose` whose `perm` repeats an axis makes its axis wiring grow without bound, a
//! zero stride or step, a negative `k` or a dangling graph output panics inside it, and an
//! `Expand` to 2³¹×2³¹ is folded into a constant it cannot allocate. Each is refused here
//! with the node's op type and name, in the words of the ONNX file.

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Result};
use ferrolite_runtime::limits::bytes_text;
use tract_onnx::pb::{GraphProto, NodeProto, TensorProto};

/// ONNX `TensorProto.DataType` codes of the integer types shape inputs use.
const INT32: i32 = tract_onnx::pb::tensor_proto::DataType::Int32 as i32;
const INT64: i32 = tract_onnx::pb::tensor_proto::DataType::Int64 as i32;

/// Check `graph` against what tract would choke on. `limit` is the memory limit in bytes:
/// a constant or a constant shape needing more is refused.
pub fn check_graph(graph: &GraphProto, limit: u64) -> Result<()> {
    let consts = constants(graph);
    let mut known: HashSet<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
    known.extend(graph.initializer.iter().map(|t| t.name.as_str()));
    for t in &graph.initializer {
        check_initializer(t, limit)?;
    }
    for node in &graph.node {
        check_node(node, &consts, limit)?;
        known.extend(node.output.iter().map(String::as_str));
    }
    check_acyclic(graph)?;
    for out in &graph.output {
        if !known.contains(out.name.as_str()) {
            bail!(
                "graph output {:?} is not computed by any node, input or initializer",
                out.name
            );
        }
    }
    Ok(())
}

/// Refuse a graph whose nodes depend on themselves (through any chain of tensors), naming
/// one node on the cycle. Kahn's algorithm over the producer of each input.
fn check_acyclic(graph: &GraphProto) -> Result<()> {
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut pending: Vec<usize> = vec![0; graph.node.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); graph.node.len()];
    for (i, n) in graph.node.iter().enumerate() {
        for p in n.input.iter().filter_map(|t| producer.get(t.as_str())) {
            pending[i] += 1;
            users[*p].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..pending.len()).filter(|&i| pending[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &u in &users[i] {
            pending[u] -= 1;
            if pending[u] == 0 {
                ready.push(u);
            }
        }
    }
    if let Some(mut i) = (0..pending.len()).find(|&i| pending[i] > 0 && done < graph.node.len()) {
        // Walk back along unfinished inputs: after as many steps as there are nodes the
        // walk is on the cycle itself, not on a node downstream of it.
        for _ in 0..graph.node.len() {
            let back = graph.node[i]
                .input
                .iter()
                .filter_map(|t| producer.get(t.as_str()))
                .find(|&&p| pending[p] > 0);
            match back {
                Some(&p) => i = p,
                None => break,
            }
        }
        bail!(
            "the graph has a cycle: {} depends on its own output",
            who(&graph.node[i])
        );
    }
    Ok(())
}

/// Constants by tensor name: initializers and `Constant` nodes' `value`.
pub(crate) fn constants(graph: &GraphProto) -> HashMap<&str, &TensorProto> {
    let mut map: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    for n in graph.node.iter().filter(|n| n.op_type == "Constant") {
        if let (Some(out), Some(t)) = (
            n.output.first(),
            n.attribute
                .iter()
                .find(|a| a.name == "value")
                .and_then(|a| a.t.as_ref()),
        ) {
            map.insert(out.as_str(), t);
        }
    }
    map
}

/// The values of an INT64 or INT32 constant (`None` for other types or unreadable data).
fn int_values(t: &TensorProto) -> Option<Vec<i64>> {
    match t.data_type {
        INT64 if !t.int64_data.is_empty() => Some(t.int64_data.clone()),
        INT64 => Some(
            t.raw_data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
        INT32 if !t.int32_data.is_empty() => Some(t.int32_data.iter().map(|&v| v.into()).collect()),
        INT32 => Some(
            t.raw_data
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")).into())
                .collect(),
        ),
        _ => None,
    }
}

/// Bytes per element of an ONNX data type (strings and unknown types count 1).
fn element_bytes(data_type: i32) -> u64 {
    match data_type {
        11 | 7 | 13 | 14 => 8, // double, int64, uint64, complex64
        1 | 6 | 12 => 4,       // float, int32, uint32
        5 | 4 | 10 | 16 => 2,  // int16, uint16, float16, bfloat16
        15 => 16,              // complex128
        _ => 1,
    }
}

/// Product of dimensions, `None` on overflow.
fn volume(dims: impl IntoIterator<Item = u64>) -> Option<u64> {
    dims.into_iter().try_fold(1u64, |n, d| n.checked_mul(d))
}

fn check_initializer(t: &TensorProto, limit: u64) -> Result<()> {
    if let Some(d) = t.dims.iter().find(|&&d| d < 0) {
        bail!("initializer {:?} has a negative dimension ({d})", t.name);
    }
    let bytes = volume(t.dims.iter().map(|&d| d as u64))
        .and_then(|n| n.checked_mul(element_bytes(t.data_type)));
    if bytes.is_none_or(|b| b > limit) {
        bail!(
            "initializer {:?} of shape {:?} needs {}, over the memory limit of {}",
            t.name,
            t.dims,
            bytes.map_or("more than 2^64 bytes".into(), bytes_text),
            bytes_text(limit)
        );
    }
    Ok(())
}

/// A node named for messages: `Transpose node "t1"`.
fn who(node: &NodeProto) -> String {
    if node.name.is_empty() {
        format!(
            "{} node (output {:?})",
            node.op_type,
            node.output.first().map_or("", String::as_str)
        )
    } else {
        format!("{} node {:?}", node.op_type, node.name)
    }
}

fn ints<'a>(node: &'a NodeProto, name: &str) -> Option<&'a [i64]> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.as_slice())
}

/// The integer constant feeding input `i` of `node`, when there is one.
fn const_input(
    node: &NodeProto,
    i: usize,
    consts: &HashMap<&str, &TensorProto>,
) -> Option<Vec<i64>> {
    let name = node.input.get(i).filter(|n| !n.is_empty())?;
    int_values(consts.get(name.as_str())?)
}

fn check_node(node: &NodeProto, consts: &HashMap<&str, &TensorProto>, limit: u64) -> Result<()> {
    let op = node.op_type.as_str();
    match op {
        "Transpose" => {
            if let Some(perm) = ints(node, "perm") {
                let mut seen = vec![false; perm.len()];
                for &p in perm {
                    let ok = usize::try_from(p).is_ok_and(|p| p < perm.len() && !seen[p]);
                    if !ok {
                        bail!(
                            "{}: perm {perm:?} is not a permutation of the axes 0..{}",
                            who(node),
                            perm.len()
                        );
                    }
                    seen[p as usize] = true;
                }
            }
        }
        "Conv" | "ConvTranspose" | "MaxPool" | "AveragePool" | "LpPool" | "ConvInteger"
        | "QLinearConv" => {
            for attr in ["strides", "dilations", "kernel_shape"] {
                if let Some(v) = ints(node, attr).filter(|v| v.iter().any(|&x| x <= 0)) {
                    bail!("{}: {attr} {v:?} must be positive", who(node));
                }
            }
            if let Some(p) = ints(node, "pads").filter(|v| v.iter().any(|&x| x < 0)) {
                bail!("{}: pads {p:?} must not be negative", who(node));
            }
            let group = node.attribute.iter().find(|a| a.name == "group");
            if let Some(g) = group.filter(|g| g.i <= 0) {
                bail!("{}: group {} must be positive", who(node), g.i);
            }
        }
        "Slice" => {
            if let Some(steps) = const_input(node, 4, consts).filter(|s| s.contains(&0)) {
                bail!("{}: steps {steps:?} contain 0", who(node));
            }
        }
        "TopK" => {
            let k = const_input(node, 1, consts).and_then(|k| k.first().copied());
            let k = k.or_else(|| node.attribute.iter().find(|a| a.name == "k").map(|a| a.i));
            if let Some(k) = k.filter(|&k| k < 0) {
                bail!("{}: k is {k}; it must not be negative", who(node));
            }
        }
        "Expand" | "ConstantOfShape" | "Tile" | "Reshape" => {
            let input = if op == "ConstantOfShape" { 0 } else { 1 };
            if let Some(dims) = const_input(node, input, consts) {
                let what = if op == "Tile" { "repeats" } else { "shape" };
                if op != "Reshape" && dims.iter().any(|&d| d < 0) {
                    bail!("{}: {what} {dims:?} has a negative entry", who(node));
                }
                // A 0 counts as 1: an empty tensor with a 2^58 dimension still sends tract
                // through that dimension (a 188-byte model spent 3.5 s so, found by fuzzing).
                let n = volume(dims.iter().map(|&d| d.unsigned_abs().max(1)));
                if n.and_then(|n| n.checked_mul(4)).is_none_or(|b| b > limit) {
                    bail!(
                        "{}: {what} {dims:?} asks for {} elements (an empty dimension counted \
                         as 1), over the memory limit of {}",
                        who(node),
                        n.map_or("more than 2^64".into(), |n| n.to_string()),
                        bytes_text(limit)
                    );
                }
            }
        }
        "Pad" => {
            let pads =
                const_input(node, 1, consts).or_else(|| ints(node, "pads").map(<[i64]>::to_vec));
            // Each output dimension is at least 1 + its two pads: a lower bound of the size.
            let at_least = |p: &[i64]| {
                let (begin, end) = p.split_at(p.len() / 2);
                let dims = begin.iter().zip(end).map(|(b, e)| {
                    1u64.saturating_add(b.unsigned_abs())
                        .saturating_add(e.unsigned_abs())
                });
                volume(dims).and_then(|n| n.checked_mul(4))
            };
            if let Some(p) = pads.filter(|p| at_least(p).is_none_or(|b| b > limit)) {
                bail!(
                    "{}: pads {p:?} ask for more than the memory limit of {}",
                    who(node),
                    bytes_text(limit)
                );
            }
        }
        "Range" => {
            let scalar = |i| const_input(node, i, consts).and_then(|v| v.first().copied());
            if let (Some(start), Some(end), Some(delta)) = (scalar(0), scalar(1), scalar(2)) {
                if delta == 0 {
                    bail!("{}: delta is 0", who(node));
                }
                let n = (i128::from(end) - i128::from(start)) / i128::from(delta);
                if n.saturating_mul(8) > i128::from(limit) {
                    bail!(
                        "{}: {n} values, over the memory limit of {}",
                        who(node),
                        bytes_text(limit)
                    );
                }
            }
        }
        _ => {}
    }
    Ok(())
}
