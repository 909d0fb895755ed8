//! A small programmatic ONNX writer: tests generate op-level graphs with it and the model
//! zoo emits whole architectures, so tract and ONNX Runtime can serve as references.

use std::path::Path;

use anyhow::{Context, Result};
use prost::Message;
use tract_onnx::pb;

/// An attribute value of an ONNX node.
#[derive(Debug, Clone)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(String),
}

/// Builds one ONNX graph (opset 13 by default) with f32 tensors (and integer initializers
/// for shapes and quantized models).
#[derive(Debug, Clone)]
pub struct OnnxBuilder {
    graph: pb::GraphProto,
    opset: i64,
    counter: usize,
}

fn value_info(name: &str, shape: &[Option<usize>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension, Dimension};
    let dim = shape
        .iter()
        .enumerate()
        .map(|(i, d)| Dimension {
            denotation: String::new(),
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v as i64),
                None => dimension::Value::DimParam(format!("d{i}")),
            }),
        })
        .collect();
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
        }),
        doc_string: String::new(),
    }
}

impl Default for OnnxBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl OnnxBuilder {
    /// An empty graph targeting opset 13.
    pub fn new() -> Self {
        OnnxBuilder {
            graph: pb::GraphProto {
                name: "graph".into(),
                ..Default::default()
            },
            opset: 13,
            counter: 0,
        }
    }

    /// Use another opset version (e.g. 14 for HardSwish).
    pub fn opset(mut self, v: i64) -> Self {
        self.opset = v;
        self
    }

    /// Declare a graph input with a static shape.
    pub fn input(&mut self, name: &str, shape: &[usize]) -> String {
        let dims: Vec<Option<usize>> = shape.iter().map(|d| Some(*d)).collect();
        self.graph.input.push(value_info(name, &dims));
        name.to_string()
    }

    /// Declare a graph input whose `None` dims are symbolic.
    pub fn input_symbolic(&mut self, name: &str, shape: &[Option<usize>]) -> String {
        self.graph.input.push(value_info(name, shape));
        name.to_string()
    }

    /// Add an f32 initializer and return its name.
    pub fn constant(&mut self, name: &str, shape: &[usize], data: Vec<f32>) -> String {
        self.graph.initializer.push(pb::TensorProto {
            name: name.to_string(),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: data,
            ..Default::default()
        });
        name.to_string()
    }

    /// Add an i64 initializer (shapes, axes, pads) and return its name.
    pub fn constant_i64(&mut self, name: &str, data: Vec<i64>) -> String {
        self.graph.initializer.push(pb::TensorProto {
            name: name.to_string(),
            dims: vec![data.len() as i64],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: data,
            ..Default::default()
        });
        name.to_string()
    }

    /// Add an i64 initializer with an explicit shape (e.g. `[]` for a scalar index).
    pub fn constant_i64_shaped(&mut self, name: &str, shape: &[usize], data: Vec<i64>) -> String {
        self.graph.initializer.push(pb::TensorProto {
            name: name.to_string(),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: data,
            ..Default::default()
        });
        name.to_string()
    }

    /// Add an int8 initializer (quantized weights) and return its name.
    pub fn constant_i8(&mut self, name: &str, shape: &[usize], data: Vec<i8>) -> String {
        self.int_constant(
            name,
            shape,
            pb::tensor_proto::DataType::Int8,
            data.into_iter().map(i32::from),
        )
    }

    /// Add a uint8 initializer (zero points of u8 activations) and return its name.
    pub fn constant_u8(&mut self, name: &str, shape: &[usize], data: Vec<u8>) -> String {
        self.int_constant(
            name,
            shape,
            pb::tensor_proto::DataType::Uint8,
            data.into_iter().map(i32::from),
        )
    }

    /// Add an int32 initializer (quantized biases) and return its name.
    pub fn constant_i32(&mut self, name: &str, shape: &[usize], data: Vec<i32>) -> String {
        self.int_constant(name, shape, pb::tensor_proto::DataType::Int32, data)
    }

    /// An initializer of an integer type stored, as ONNX specifies for types up to 32 bits,
    /// in `int32_data`.
    fn int_constant(
        &mut self,
        name: &str,
        shape: &[usize],
        dtype: pb::tensor_proto::DataType,
        data: impl IntoIterator<Item = i32>,
    ) -> String {
        self.graph.initializer.push(pb::TensorProto {
            name: name.to_string(),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: dtype as i32,
            int32_data: data.into_iter().collect(),
            ..Default::default()
        });
        name.to_string()
    }

    /// Add a node with one output; returns the output name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.node_n(op, inputs, attrs, 1).remove(0)
    }

    /// Add a node with `n_out` outputs; returns their names.
    pub fn node_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: &[(&str, Attr)],
        n_out: usize,
    ) -> Vec<String> {
        use pb::attribute_proto::AttributeType;
        self.counter += 1;
        let name = format!("{}_{}", op.to_lowercase(), self.counter);
        let outputs: Vec<String> = (0..n_out).map(|i| format!("{name}_out{i}")).collect();
        let attribute = attrs
            .iter()
            .map(|(k, v)| {
                let mut a = pb::AttributeProto {
                    name: k.to_string(),
                    ..Default::default()
                };
                match v {
                    Attr::Int(i) => {
                        a.i = *i;
                        a.r#type = AttributeType::Int as i32;
                    }
                    Attr::Ints(v) => {
                        a.ints = v.clone();
                        a.r#type = AttributeType::Ints as i32;
                    }
                    Attr::Float(f) => {
                        a.f = *f;
                        a.r#type = AttributeType::Float as i32;
                    }
                    Attr::Str(s) => {
                        a.s = s.as_bytes().to_vec();
                        a.r#type = AttributeType::String as i32;
                    }
                }
                a
            })
            .collect();
        self.graph.node.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.clone(),
            name,
            op_type: op.to_string(),
            attribute,
            ..Default::default()
        });
        outputs
    }

    /// Mark a value as a graph output (shape left for inference).
    pub fn output(&mut self, name: &str) {
        self.graph.output.push(pb::ValueInfoProto {
            name: name.to_string(),
            ..Default::default()
        });
    }

    /// Serialize the model.
    pub fn to_bytes(&self) -> Vec<u8> {
        let model = pb::ModelProto {
            ir_version: 7,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
            }],
            producer_name: "ferrolite".into(),
            graph: Some(self.graph.clone()),
            ..Default::default()
        };
        model.encode_to_vec()
    }

    /// Write the model to a file.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}
