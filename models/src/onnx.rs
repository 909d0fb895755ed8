//! A small programmatic ONNX writer: the model zoo emits whole architectures with it and
//! tests generate op-level graphs, so tract and ONNX Runtime can serve as references.
//!
//! It carries its own minimal subset of the ONNX protobuf schema (the fields a plain
//! inference graph uses), so the zoo needs no ONNX library.

use std::path::Path;

use prost::Message;

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
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v as i64),
                None => dimension::Value::DimParam(format!("d{i}")),
            }),
        })
        .collect();
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
        }),
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
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
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
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
            }],
            producer_name: "ferrolite".into(),
            graph: Some(self.graph.clone()),
        };
        model.encode_to_vec()
    }

    /// Write the model to a file.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_bytes()).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        })
    }
}

/// The subset of `onnx.proto` (field numbers as in the ONNX schema) that the writer fills.
#[allow(missing_docs)]
pub mod pb {
    /// A whole model: IR version, opsets and the graph.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        #[prost(string, tag = "2")]
        pub producer_name: String,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
    }

    /// One operator set the model uses.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    /// Nodes, initializers, inputs and outputs.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }

    /// One operator application.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
    }

    /// A named attribute of a node.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(float, tag = "2")]
        pub f: f32,
        #[prost(int64, tag = "3")]
        pub i: i64,
        #[prost(bytes = "vec", tag = "4")]
        pub s: Vec<u8>,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        #[prost(int32, tag = "20")]
        pub r#type: i32,
    }

    /// Attribute type codes.
    pub mod attribute_proto {
        /// `AttributeProto.AttributeType`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(i32)]
        pub enum AttributeType {
            Float = 1,
            Int = 2,
            String = 3,
            Ints = 7,
        }
    }

    /// A constant tensor (initializer).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(int64, repeated, tag = "1")]
        pub dims: Vec<i64>,
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        #[prost(int32, repeated, tag = "5")]
        pub int32_data: Vec<i32>,
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        #[prost(string, tag = "8")]
        pub name: String,
        #[prost(bytes = "vec", tag = "9")]
        pub raw_data: Vec<u8>,
    }

    /// Element type codes.
    pub mod tensor_proto {
        /// `TensorProto.DataType`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(i32)]
        pub enum DataType {
            Float = 1,
            Uint8 = 2,
            Int8 = 3,
            Int32 = 6,
            Int64 = 7,
        }
    }

    /// A graph input or output with its type.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }

    /// The type of a value: here always a tensor type.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(oneof = "type_proto::Value", tags = "1")]
        pub value: Option<type_proto::Value>,
    }

    /// `TypeProto`'s nested types.
    pub mod type_proto {
        /// The tensor variant of `TypeProto.value`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(message, tag = "1")]
            TensorType(Tensor),
        }

        /// Element type and shape.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Tensor {
            #[prost(int32, tag = "1")]
            pub elem_type: i32,
            #[prost(message, optional, tag = "2")]
            pub shape: Option<super::TensorShapeProto>,
        }
    }

    /// A list of dimensions.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<tensor_shape_proto::Dimension>,
    }

    /// `TensorShapeProto`'s nested types.
    pub mod tensor_shape_proto {
        /// One dimension, fixed or symbolic.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Dimension {
            #[prost(oneof = "dimension::Value", tags = "1, 2")]
            pub value: Option<dimension::Value>,
        }

        /// `Dimension.value`.
        pub mod dimension {
            /// A fixed size or a symbol.
            #[derive(Clone, PartialEq, prost::Oneof)]
            pub enum Value {
                #[prost(int64, tag = "1")]
                DimValue(i64),
                #[prost(string, tag = "2")]
                DimParam(String),
            }
        }
    }
}
