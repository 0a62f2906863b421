//! The inputs and outputs of a written model as plain data (name, element type, dimensions),
//! read back from its graph: what deployment configs (Triton's `config.pbtxt`) are generated
//! from, so that no name, type or shape is written twice.

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::dimension;
use onnx_protobuf::{type_proto, ModelProto, ValueInfoProto};

/// One dimension of a graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoDim {
    /// A fixed size.
    Fixed(i64),
    /// A named symbolic size (`batch`, `height`, ...).
    Named(String),
    /// Unknown (no value, no name).
    Unknown,
}

/// A tensor's element type, as far as deployment configs need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoElem {
    /// float32.
    F32,
    /// float16.
    F16,
    /// int64.
    I64,
    /// int32.
    I32,
    /// uint8.
    U8,
    /// bool.
    Bool,
    /// Any other ONNX `DataType` (its number).
    Other(i32),
}

impl IoElem {
    fn from_proto(t: i32) -> Self {
        match t {
            x if x == DataType::FLOAT as i32 => Self::F32,
            x if x == DataType::FLOAT16 as i32 => Self::F16,
            x if x == DataType::INT64 as i32 => Self::I64,
            x if x == DataType::INT32 as i32 => Self::I32,
            x if x == DataType::UINT8 as i32 => Self::U8,
            x if x == DataType::BOOL as i32 => Self::Bool,
            x => Self::Other(x),
        }
    }
}

/// A graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoSpec {
    /// Its name.
    pub name: String,
    /// Its element type.
    pub elem: IoElem,
    /// Its dimensions.
    pub dims: Vec<IoDim>,
}

fn spec(v: &ValueInfoProto) -> IoSpec {
    let tensor = v.type_.as_ref().and_then(|t| match &t.value {
        Some(type_proto::Value::TensorType(tt)) => Some(tt),
        _ => None,
    });
    let elem = IoElem::from_proto(tensor.map_or(0, |t| t.elem_type));
    let dims = tensor
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(dimension::Value::DimValue(v)) => IoDim::Fixed(*v),
                    Some(dimension::Value::DimParam(p)) => IoDim::Named(p.clone()),
                    _ => IoDim::Unknown,
                })
                .collect()
        })
        .unwrap_or_default();
    IoSpec {
        name: v.name.clone(),
        elem,
        dims,
    }
}

/// The model's graph inputs (initializers excluded) and outputs, in graph order.
pub fn graph_io(model: &ModelProto) -> (Vec<IoSpec>, Vec<IoSpec>) {
    let Some(g) = model.graph.as_ref() else {
        return (vec![], vec![]);
    };
    let inits: std::collections::BTreeSet<&str> =
        g.initializer.iter().map(|i| i.name.as_str()).collect();
    let inputs = g
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .map(spec)
        .collect();
    (inputs, g.output.iter().map(spec).collect())
}

/// [`graph_io`] of a serialised model (`Err`: the protobuf decoder's message).
pub fn graph_io_of_bytes(bytes: &[u8]) -> Result<(Vec<IoSpec>, Vec<IoSpec>), String> {
    use protobuf::Message;
    let m = ModelProto::parse_from_bytes(bytes).map_err(|e| e.to_string())?;
    Ok(graph_io(&m))
}
