//! A mutable graph used during conversion: constants are kept as owned `f32` vectors so
//! fusions can rewrite them, and removed nodes leave holes until [`WorkGraph::finish`].

use std::collections::HashMap;

use ferrolite_runtime::ir::{DType, Graph, Node, Op, Tensor, TensorId};
use ferrolite_runtime::AlignedBytes;

/// Graph under construction or rewrite.
#[derive(Debug, Default, Clone)]
pub struct WorkGraph {
    /// Tensors by id. An f32 activation imported from a QDQ model carries the u8
    /// quantization its QuantizeLinear / DequantizeLinear pair gave it in `quant` until the
    /// conversion moves it to
    /// [`crate::calibrate::Calibration::fixed_activations`].
    pub tensors: Vec<Tensor>,
    /// Constant data by tensor id, as f32 during conversion (a tensor marked f16 is rounded
    /// to half floats when [`WorkGraph::finish`] writes it).
    pub consts: HashMap<TensorId, Vec<f32>>,
    /// Nodes in execution order; `None` marks a node removed by a fusion.
    pub nodes: Vec<Option<Node>>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    /// Names of the graph outputs, kept through fusions that redirect them.
    pub output_names: Vec<String>,
}

impl WorkGraph {
    /// Add a runtime (non-constant) f32 tensor.
    pub fn add_tensor(&mut self, name: impl Into<String>, shape: Vec<usize>) -> TensorId {
        self.tensors.push(Tensor {
            name: name.into(),
            shape,
            dtype: DType::F32,
            quant: None,
            data: None,
        });
        self.tensors.len() - 1
    }

    /// Add an f32 constant tensor.
    pub fn add_const(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Vec<f32>,
    ) -> TensorId {
        let id = self.add_tensor(name, shape);
        self.consts.insert(id, data);
        id
    }

    /// Append a node.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: Vec<TensorId>,
        outputs: Vec<TensorId>,
    ) {
        self.nodes.push(Some(Node {
            name: name.into(),
            op,
            inputs,
            outputs,
        }));
    }

    /// Constant data of a tensor, if it is a constant.
    pub fn const_of(&self, t: TensorId) -> Option<&Vec<f32>> {
        self.consts.get(&t)
    }

    /// If `t` is a constant whose values are all equal, that value.
    pub fn scalar_const(&self, t: TensorId) -> Option<f32> {
        let d = self.consts.get(&t)?;
        let first = *d.first()?;
        d.iter().all(|v| *v == first).then_some(first)
    }

    /// Index of the node producing `t`.
    pub fn producer(&self, t: TensorId) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.outputs.contains(&t)))
    }

    /// Indices of the nodes reading `t`.
    pub fn consumers(&self, t: TensorId) -> Vec<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.as_ref().is_some_and(|n| n.inputs.contains(&t)))
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether `t` is read by exactly one node and is not a graph output.
    pub fn single_use(&self, t: TensorId) -> bool {
        !self.outputs.contains(&t) && self.consumers(t).len() == 1
    }

    /// Replace every read of `from` (and the graph outputs) by `to`. `to` now carries the
    /// value `from` had, so it also takes `from`'s quantization parameters when `from` has
    /// some (recorded from a QDQ model).
    pub fn replace_uses(&mut self, from: TensorId, to: TensorId) {
        if let Some(q) = self.tensors[from].quant.clone() {
            self.tensors[to].quant = Some(q);
        }
        for n in self.nodes.iter_mut().flatten() {
            for i in n.inputs.iter_mut() {
                if *i == from {
                    *i = to;
                }
            }
        }
        for o in self.outputs.iter_mut() {
            if *o == from {
                *o = to;
            }
        }
    }

    /// Drop removed nodes and unreferenced tensors, and lay the constants out in one
    /// 64-byte-aligned weights blob.
    pub fn finish(self) -> (Graph, AlignedBytes) {
        let nodes: Vec<Node> = self.nodes.into_iter().flatten().collect();
        let mut used = vec![false; self.tensors.len()];
        for &t in self.inputs.iter().chain(self.outputs.iter()) {
            used[t] = true;
        }
        for n in &nodes {
            for &t in n.inputs.iter().chain(n.outputs.iter()) {
                used[t] = true;
            }
        }
        let mut tensors_in = self.tensors;
        for (&t, name) in self.outputs.iter().zip(&self.output_names) {
            tensors_in[t].name = name.clone();
        }
        let mut remap = vec![usize::MAX; tensors_in.len()];
        let mut tensors = Vec::new();
        let mut weights = AlignedBytes::new();
        for (old, mut t) in tensors_in.into_iter().enumerate() {
            if !used[old] {
                continue;
            }
            if let Some(data) = self.consts.get(&old) {
                let bytes: Vec<u8> = if t.dtype == DType::F16 {
                    data.iter()
                        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                        .collect()
                } else {
                    data.iter().flat_map(|v| v.to_le_bytes()).collect()
                };
                t.data = Some(weights.push_aligned(&bytes));
            }
            remap[old] = tensors.len();
            tensors.push(t);
        }
        weights.align();
        let map = |ids: &[TensorId]| ids.iter().map(|&t| remap[t]).collect::<Vec<_>>();
        let graph = Graph {
            nodes: nodes
                .into_iter()
                .map(|n| Node {
                    inputs: map(&n.inputs),
                    outputs: map(&n.outputs),
                    ..n
                })
                .collect(),
            inputs: map(&self.inputs),
            outputs: map(&self.outputs),
            tensors,
        };
        (graph, weights)
    }
}
