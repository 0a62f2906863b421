//! A small ONNX graph builder: nodes with scoped names, initializers, inputs, outputs and value
//! infos, serialised with `onnx-protobuf`. Every name comes from counters and scopes, so the same
//! sequence of calls gives byte-identical files.

use std::collections::BTreeMap;

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto;
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// An attribute value.
#[derive(Debug, Clone)]
pub enum Attr {
    /// INT.
    Int(i64),
    /// INTS.
    Ints(Vec<i64>),
    /// FLOAT.
    Float(f32),
    /// STRING.
    Str(String),
}

/// Element types the exporter uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// float32.
    F32,
    /// int64.
    I64,
    /// int32 (TensorRT plugin inputs).
    I32,
    /// bool.
    Bool,
}

impl Elem {
    fn proto(self) -> i32 {
        match self {
            Elem::F32 => DataType::FLOAT as i32,
            Elem::I64 => DataType::INT64 as i32,
            Elem::I32 => DataType::INT32 as i32,
            Elem::Bool => DataType::BOOL as i32,
        }
    }
}

/// A dimension in a declared type: fixed or named (symbolic).
#[derive(Debug, Clone)]
pub enum DeclDim {
    /// A fixed size.
    Fixed(i64),
    /// A named runtime size.
    Named(String),
    /// Unknown.
    Unknown,
}

/// Graph under construction.
#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    value_info: Vec<ValueInfoProto>,
    scopes: Vec<String>,
    next_value: usize,
    next_node: usize,
}

fn value_info(name: &str, elem: Elem, dims: &[DeclDim]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for d in dims {
        let mut dim = Dimension::new();
        dim.value = match d {
            DeclDim::Fixed(v) => Some(dimension::Value::DimValue(*v)),
            DeclDim::Named(n) => Some(dimension::Value::DimParam(n.clone())),
            DeclDim::Unknown => None,
        };
        shape.dim.push(dim);
    }
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = elem.proto();
    tt.shape = protobuf::MessageField::some(shape);
    let mut tp = TypeProto::new();
    tp.value = Some(type_proto::Value::TensorType(tt));
    let mut vi = ValueInfoProto::new();
    vi.name = name.to_string();
    vi.type_ = protobuf::MessageField::some(tp);
    vi
}

impl GraphBuilder {
    /// Enters a scope; node names get its path.
    pub fn push_scope(&mut self, name: &str) {
        self.scopes.push(name.to_string());
    }

    /// Leaves the innermost scope.
    pub fn pop_scope(&mut self) {
        self.scopes.pop();
    }

    /// A fresh value name.
    pub fn fresh(&mut self) -> String {
        self.next_value += 1;
        format!("v{}", self.next_value)
    }

    /// Adds a node with `n_out` fresh outputs; returns their names.
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        n_out: usize,
        attrs: &[(&str, Attr)],
    ) -> Vec<String> {
        self.node_in_domain(op, "", inputs, n_out, attrs)
    }

    /// Adds a node of a given domain.
    pub fn node_in_domain(
        &mut self,
        op: &str,
        domain: &str,
        inputs: &[&str],
        n_out: usize,
        attrs: &[(&str, Attr)],
    ) -> Vec<String> {
        let outs: Vec<String> = (0..n_out).map(|_| self.fresh()).collect();
        let mut n = NodeProto::new();
        self.next_node += 1;
        let scope = self.scopes.join(".");
        n.name = if scope.is_empty() {
            format!("{op}_{}", self.next_node)
        } else {
            format!("{scope}/{op}_{}", self.next_node)
        };
        n.op_type = op.to_string();
        n.domain = domain.to_string();
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = outs.clone();
        for (name, a) in attrs {
            let mut ap = AttributeProto::new();
            ap.name = name.to_string();
            use onnx_protobuf::attribute_proto::AttributeType as T;
            match a {
                Attr::Int(v) => {
                    ap.i = *v;
                    ap.type_ = T::INT.into();
                }
                Attr::Ints(v) => {
                    ap.ints = v.clone();
                    ap.type_ = T::INTS.into();
                }
                Attr::Float(v) => {
                    ap.f = *v;
                    ap.type_ = T::FLOAT.into();
                }
                Attr::Str(v) => {
                    ap.s = v.as_bytes().to_vec();
                    ap.type_ = T::STRING.into();
                }
            }
            n.attribute.push(ap);
        }
        self.nodes.push(n);
        outs
    }

    /// Adds an initializer with raw little-endian data; returns its name.
    pub fn initializer(&mut self, name: &str, elem: Elem, dims: &[i64], raw: Vec<u8>) -> String {
        let mut t = TensorProto::new();
        t.name = name.to_string();
        t.data_type = elem.proto();
        t.dims = dims.to_vec();
        t.raw_data = raw;
        self.initializers.push(t);
        name.to_string()
    }

    /// A float32 constant (as an initializer with a fresh name).
    pub fn const_f32(&mut self, values: &[f32], dims: &[i64]) -> String {
        let name = format!("c{}", self.next_value + 1);
        self.next_value += 1;
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(&name, Elem::F32, dims, raw)
    }

    /// An int64 constant (as an initializer with a fresh name).
    pub fn const_i64(&mut self, values: &[i64], dims: &[i64]) -> String {
        let name = format!("c{}", self.next_value + 1);
        self.next_value += 1;
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(&name, Elem::I64, dims, raw)
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem: Elem, dims: &[DeclDim]) {
        self.inputs.push(value_info(name, elem, dims));
    }

    /// Declares a graph output named `name`, fed from `value` through an Identity node.
    pub fn output(&mut self, name: &str, value: &str, elem: Elem, dims: &[DeclDim]) {
        let mut n = NodeProto::new();
        n.op_type = "Identity".into();
        n.name = format!("outputs/{name}");
        n.input = vec![value.to_string()];
        n.output = vec![name.to_string()];
        self.nodes.push(n);
        self.outputs.push(value_info(name, elem, dims));
    }

    /// Records the type and shape of an intermediate value.
    pub fn annotate(&mut self, name: &str, elem: Elem, dims: &[DeclDim]) {
        self.value_info.push(value_info(name, elem, dims));
    }

    /// Whether `name` is the output of a node added so far (fresh value names only).
    pub fn is_node_output(&self, name: &str) -> bool {
        name.strip_prefix('v')
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n >= 1 && n <= self.next_value)
    }

    /// Assembles the model; it imports `opset` of the default domain and every custom domain its
    /// nodes use (versions from `focus_ops::decl`).
    pub fn finish(self, name: &str, opset: i64, metadata: &[(String, String)]) -> ModelProto {
        let custom_domains: std::collections::BTreeSet<String> = self
            .nodes
            .iter()
            .filter(|n| !n.domain.is_empty())
            .map(|n| n.domain.clone())
            .collect();
        let mut g = GraphProto::new();
        g.name = name.to_string();
        g.node = self.nodes;
        g.initializer = self.initializers;
        g.input = self.inputs;
        g.output = self.outputs;
        g.value_info = self.value_info;
        let mut m = ModelProto::new();
        // The IR version each opset came with (opset 19 and 20 need IR 9).
        m.ir_version = if opset >= 19 { 9 } else { 8 };
        m.producer_name = "focus-export".into();
        m.producer_version = env!("CARGO_PKG_VERSION").into();
        m.graph = protobuf::MessageField::some(g);
        let mut os = OperatorSetIdProto::new();
        os.domain = String::new();
        os.version = opset;
        m.opset_import.push(os);
        for d in custom_domains {
            let mut os = OperatorSetIdProto::new();
            os.version = focus_ops::decl::domain_version(&d).unwrap_or(1);
            os.domain = d;
            m.opset_import.push(os);
        }
        for (k, v) in metadata {
            let mut e = StringStringEntryProto::new();
            e.key = k.clone();
            e.value = v.clone();
            m.metadata_props.push(e);
        }
        m
    }
}

/// Node counts of a finished model (after any rewrite such as the fp16 pass): total, per op
/// type, and per non-standard `domain::op_type` (both sorted).
pub fn op_counts(m: &ModelProto) -> (usize, BTreeMap<String, usize>, Vec<(String, usize)>) {
    let nodes = m.graph.as_ref().map(|g| g.node.as_slice()).unwrap_or(&[]);
    let (mut ops, mut custom) = (BTreeMap::new(), BTreeMap::new());
    for n in nodes {
        *ops.entry(n.op_type.clone()).or_insert(0) += 1;
        if !n.domain.is_empty() {
            *custom
                .entry(format!("{}::{}", n.domain, n.op_type))
                .or_insert(0) += 1;
        }
    }
    (nodes.len(), ops, custom.into_iter().collect())
}

/// The float32 values of `t` (raw little-endian data or `float_data`; None for other types).
pub fn f32_values(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != DataType::FLOAT as i32 {
        return None;
    }
    Some(if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

/// Serialises a model to bytes.
pub fn to_bytes(m: &ModelProto) -> Result<Vec<u8>, protobuf::Error> {
    m.write_to_bytes()
}

/// Field numbers of the two messages [`write_model`] writes by hand (onnx.proto).
const MODEL_GRAPH_FIELD: u32 = 7;
const GRAPH_INITIALIZER_FIELD: u32 = 5;
const TENSOR_RAW_DATA_FIELD: u32 = 9;

/// Bytes per element of the initializer types the exporter writes.
fn elem_bytes(data_type: i32) -> Option<u64> {
    use protobuf::Enum;
    use DataType as D;
    Some(match DataType::from_i32(data_type)? {
        D::FLOAT | D::INT32 => 4,
        D::INT64 | D::DOUBLE => 8,
        D::FLOAT16 | D::BFLOAT16 => 2,
        D::BOOL | D::INT8 | D::UINT8 => 1,
        _ => return None,
    })
}

/// Writes `m` to `out` as a protobuf, streaming the data of the *deferred* initializers (those
/// `deferred` names; their `raw_data` is empty in `m`) from `fetch` one at a time, so the weights
/// are never held twice: the file is the same message `m` with that data filled in. The graph's
/// fields come first and its initializers after them (protobuf reads fields in any order).
/// Returns the bytes written.
pub fn write_model<'a>(
    m: &ModelProto,
    deferred: impl Fn(&str) -> bool,
    fetch: impl Fn(&str) -> std::io::Result<std::borrow::Cow<'a, [u8]>>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<u64> {
    use protobuf::rt::compute_raw_varint64_size as varint_len;
    use protobuf::rt::WireType::LengthDelimited;
    let pb = |e: protobuf::Error| std::io::Error::other(e.to_string());

    let mut head = m.clone();
    let mut graph = head.graph.take().unwrap_or_default();
    let inits = std::mem::take(&mut graph.initializer);
    let head = head.write_to_bytes().map_err(pb)?;
    let graph = graph.write_to_bytes().map_err(pb)?;
    // Each initializer: its encoding without raw data, and the raw length to append (deferred).
    let mut parts = Vec::with_capacity(inits.len());
    let mut graph_len = graph.len() as u64;
    for t in &inits {
        let bytes = t.write_to_bytes().map_err(pb)?;
        let raw = if deferred(&t.name) {
            let per = elem_bytes(t.data_type).ok_or_else(|| {
                std::io::Error::other(format!(
                    "initializer `{}`: element type {} cannot be streamed",
                    t.name, t.data_type
                ))
            })?;
            t.dims.iter().map(|&d| d.max(0) as u64).product::<u64>() * per
        } else {
            0
        };
        let raw_field = if raw > 0 {
            1 + varint_len(raw) + raw
        } else {
            0
        };
        let len = bytes.len() as u64 + raw_field;
        graph_len += 1 + varint_len(len) + len;
        parts.push((t, bytes, raw, len));
    }

    let mut os = protobuf::CodedOutputStream::new(out);
    os.write_raw_bytes(&head).map_err(pb)?;
    os.write_tag(MODEL_GRAPH_FIELD, LengthDelimited)
        .map_err(pb)?;
    os.write_raw_varint64(graph_len).map_err(pb)?;
    os.write_raw_bytes(&graph).map_err(pb)?;
    for (t, bytes, raw, len) in parts {
        os.write_tag(GRAPH_INITIALIZER_FIELD, LengthDelimited)
            .map_err(pb)?;
        os.write_raw_varint64(len).map_err(pb)?;
        os.write_raw_bytes(&bytes).map_err(pb)?;
        if raw > 0 {
            let data = fetch(&t.name)?;
            if data.len() as u64 != raw {
                return Err(std::io::Error::other(format!(
                    "initializer `{}`: {} bytes of data, its dims {:?} need {raw}",
                    t.name,
                    data.len(),
                    t.dims
                )));
            }
            os.write_tag(TENSOR_RAW_DATA_FIELD, LengthDelimited)
                .map_err(pb)?;
            os.write_raw_varint64(raw).map_err(pb)?;
            os.write_raw_bytes(&data).map_err(pb)?;
        }
    }
    os.flush().map_err(pb)?;
    Ok(head.len() as u64 + 1 + varint_len(graph_len) + graph_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph with two weights (one deferred, one not), a constant and a node.
    fn model(deferred_data: Option<&[u8]>) -> ModelProto {
        let mut g = GraphBuilder::default();
        g.input("x", Elem::F32, &[DeclDim::Fixed(2), DeclDim::Fixed(3)]);
        let w = g.initializer(
            "w",
            Elem::F32,
            &[3, 2],
            deferred_data.map(<[u8]>::to_vec).unwrap_or_default(),
        );
        let c = g.const_f32(&[0.5, -1.0], &[2]);
        let y = g.node("MatMul", &["x", &w], 1, &[]);
        let z = g.node("Add", &[&y[0], &c], 1, &[]);
        g.output(
            "z",
            &z[0],
            Elem::F32,
            &[DeclDim::Fixed(2), DeclDim::Fixed(2)],
        );
        g.initializer("empty", Elem::F32, &[0], Vec::new());
        g.finish("t", 17, &[("k".into(), "v".into())])
    }

    #[test]
    fn a_streamed_model_parses_to_the_model_with_its_data() {
        let data: Vec<u8> = (0..24u8).collect();
        let mut out = Vec::new();
        let n = write_model(
            &model(None),
            |name| name == "w" || name == "empty",
            |name| {
                assert_eq!(name, "w", "only initializers with data are fetched");
                Ok(std::borrow::Cow::Borrowed(&data[..]))
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(n, out.len() as u64);
        let back = ModelProto::parse_from_bytes(&out).unwrap();
        assert_eq!(back, model(Some(&data)));
        // The same sizes as the ordinary encoding (only the graph's field order differs).
        assert_eq!(out.len(), to_bytes(&model(Some(&data))).unwrap().len());
    }

    #[test]
    fn deferred_data_of_the_wrong_size_is_an_error_naming_the_initializer() {
        let e = write_model(
            &model(None),
            |name| name == "w",
            |_| Ok(std::borrow::Cow::Owned(vec![0u8; 20])),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("`w`") && e.to_string().contains("need 24"),
            "{e}"
        );
    }
}
