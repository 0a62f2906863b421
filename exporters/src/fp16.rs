//! `--precision fp16`: rewrites a traced float32 model to compute in float16, with float32
//! islands where float16 breaks the model, and float32 at the graph's inputs and outputs.
//!
//! Every node runs either in float16 or in float32 ([`is_island`]); a float value crossing
//! between the two gets one Cast (shared by every consumer); float weights read by float16
//! nodes are stored as float16 (the file shrinks to about half), and a weight read by both kinds
//! keeps both copies. Casts to float, ConstantOfShape and Constant values inside the float16
//! part follow it. The island policy is [`ISLAND_OPS`] and [`ISLAND_SCOPES`]; why each entry is
//! there is written next to it.

use std::collections::{HashMap, HashSet};

use half::f16;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::type_proto;
use onnx_protobuf::{AttributeProto, ModelProto, NodeProto, TensorProto};

/// Ops that stay float32 wherever they are. On ORT-CPU these islands change little (measured
/// over the goldens with only TopK kept: fg_logits 9.7e-4 instead of 7.6e-4, pred_logits 6.6e-2
/// instead of 6.4e-2), because ORT-CPU widens float16 nodes that lack a float16 kernel; they are
/// for the runtimes that compute in float16 for real (TensorRT, CUDA), where the reasons below
/// apply.
pub const ISLAND_OPS: &[&str] = &[
    // Selection scores: top-k compares scores whose gaps are far below float16's resolution
    // (3 decimal digits); its input is widened so the order among what float16 kept is exact.
    "TopK",
    // Sigmoid and inverse sigmoid (Log of a clamped ratio, eps 1e-5: below float16's smallest
    // normal, 6.1e-5) of reference points and boxes: their last digits are the box coordinates.
    "Sigmoid",
    "Log",
    // Softmax over the sampling weights and attention logits: sums of many small terms. This
    // covers Swin's window attention too; its shift mask (0 / −100, exact in float16) is built
    // from Range values, so it stays float32 as index arithmetic and meets the float16 logits
    // through one Cast: −100 + logit keeps ~0.06 of resolution there, and exp(−90) is 0 to
    // float32 in the softmax island either way.
    "Softmax",
    "Exp",
    // Normalisation statistics: means of squares lose float16's range first.
    "LayerNormalization",
    "ReduceMean",
    "Pow",
    "Sqrt",
    // Custom ops and plugins (declared float32) are islands too, see `is_island`.
];

/// Module paths (node-name prefixes) that stay float32: the box refinement and the
/// post-processing (boxes in pixels, scores and labels).
pub const ISLAND_SCOPES: &[&str] = &["postprocess", "outputs", "transformer.two_stage"];

/// Whether `n` runs in float32 under the island policy (besides index arithmetic, see
/// [`index_nodes`]).
pub fn is_island(n: &NodeProto) -> bool {
    if !n.domain.is_empty() && n.domain != "ai.onnx" {
        return true;
    }
    if ISLAND_OPS.contains(&n.op_type.as_str()) {
        return true;
    }
    let scope = n.name.rsplit_once('/').map_or("", |(s, _)| s);
    ISLAND_SCOPES
        .iter()
        .any(|p| scope == *p || scope.starts_with(&format!("{p}.")))
}

/// The nodes doing index arithmetic in float: those whose float inputs all derive from
/// integers (a Cast from an integer or bool type, a float Range), apart from constants. Token
/// indices, ranks, grid positions and masks are exact in float32 up to 2^24 but not in float16
/// (2048), and the position embeddings are functions of them: all of it stays float32 and joins
/// the float16 part through one Cast where it meets the features.
fn index_nodes(
    nodes: &[NodeProto],
    weights: &HashSet<&str>,
    is_float: &HashMap<String, bool>,
) -> HashSet<usize> {
    let float = |x: &String| is_float.get(x).copied().unwrap_or(false);
    let mut constant: HashSet<&str> = weights.clone();
    let mut derived: HashSet<&str> = HashSet::new();
    let mut out = HashSet::new();
    for (i, n) in nodes.iter().enumerate() {
        let index_source = match n.op_type.as_str() {
            "Cast" => n.input.first().is_some_and(|x| !float(x)),
            "Range" => true,
            _ => false,
        };
        if matches!(n.op_type.as_str(), "Constant" | "ConstantOfShape") {
            constant.extend(n.output.iter().map(String::as_str));
            continue;
        }
        let data: Vec<&String> = n
            .input
            .iter()
            .filter(|x| float(x) && !constant.contains(x.as_str()))
            .collect();
        let from_indices = !data.is_empty() && data.iter().all(|x| derived.contains(x.as_str()));
        if index_source || from_indices {
            out.insert(i);
            derived.extend(n.output.iter().filter(|o| float(o)).map(String::as_str));
        }
    }
    out
}

/// Errors of the conversion.
#[derive(Debug, thiserror::Error)]
pub enum Fp16Error {
    /// A node input's element type could not be inferred.
    #[error("fp16 conversion: node `{node}` ({op}): element type of input `{input}` unknown")]
    UnknownType {
        /// Node name.
        node: String,
        /// Op type.
        op: String,
        /// The input.
        input: String,
    },
    /// A float16 value (weight or constant) would overflow.
    #[error("fp16 conversion: `{tensor}` holds {value}, beyond float16's range (±65504); keep this model in fp32")]
    OutOfRange {
        /// The tensor (initializer, or the node holding the constant).
        tensor: String,
        /// The first value out of range.
        value: f32,
    },
}

/// What the conversion did.
#[derive(Debug, Clone, Default)]
pub struct Fp16Summary {
    /// Nodes computing in float16.
    pub fp16_nodes: usize,
    /// Nodes kept in float32 (islands) among those touching float values.
    pub fp32_nodes: usize,
    /// Casts inserted.
    pub casts: usize,
    /// Weights stored as float16.
    pub fp16_weights: usize,
}

/// The largest finite float16.
const F16_MAX: f32 = 65504.0;

/// `t` as float16; a finite value beyond float16's range is an error naming the tensor.
fn f16_tensor(t: &TensorProto, what: &str) -> Result<TensorProto, Fp16Error> {
    let mut o = t.clone();
    // f16_tensor is only called on float32 tensors (is_f32).
    let vals = crate::graph::f32_values(t).unwrap_or_default();
    if let Some(&v) = vals.iter().find(|v| v.is_finite() && v.abs() > F16_MAX) {
        return Err(Fp16Error::OutOfRange {
            tensor: what.to_string(),
            value: v,
        });
    }
    o.float_data.clear();
    o.raw_data = vals
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect();
    o.data_type = DataType::FLOAT16 as i32;
    Ok(o)
}

fn is_f32(t: &TensorProto) -> bool {
    t.data_type == DataType::FLOAT as i32
}

/// Inputs that keep their float32 type whatever the node's precision (the op's schema fixes
/// them): Resize's `scales`.
fn fixed_f32_input(n: &NodeProto, i: usize) -> bool {
    n.op_type == "Resize" && i == 2
}

/// Rewrites `m` (a float32 model) to compute in float16 outside the islands.
pub fn convert(m: &mut ModelProto) -> Result<Fp16Summary, Fp16Error> {
    let is_float = crate::lint::float32_values(m);
    let Some(g) = m.graph.as_mut() else {
        return Ok(Fp16Summary::default());
    };
    let weights: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let index = index_nodes(&g.node, &weights, &is_float);
    // Which nodes compute in float16. Constants (Constant, ConstantOfShape) follow their
    // consumers: float16 only when every consumer reads float16, else float32 (a float16 copy
    // cast back would lose digits, e.g. 2π → 6.28125).
    let mut consumers: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
    for (k, n) in g.node.iter().enumerate() {
        for (i, x) in n.input.iter().enumerate() {
            consumers.entry(x.as_str()).or_default().push((k, i));
        }
    }
    let ordinary_low: Vec<bool> = g
        .node
        .iter()
        .enumerate()
        .map(|(k, n)| !index.contains(&k) && !is_island(n))
        .collect();
    let low_node: Vec<bool> = g
        .node
        .iter()
        .enumerate()
        .map(|(k, n)| {
            if !matches!(n.op_type.as_str(), "Constant" | "ConstantOfShape") || !n.domain.is_empty()
            {
                return ordinary_low[k];
            }
            let readers = n
                .output
                .iter()
                .flat_map(|o| consumers.get(o.as_str()))
                .flatten();
            let mut any = false;
            let all_low = readers.into_iter().all(|&(c, i)| {
                any = true;
                ordinary_low[c] && !fixed_f32_input(&g.node[c], i)
            });
            ordinary_low[k] && any && all_low
        })
        .collect();
    drop(consumers);
    let island = |k: usize| !low_node[k];
    let mut summary = Fp16Summary::default();
    // Which weights float16 nodes read, and which float32 nodes read.
    let inits: HashSet<String> = g
        .initializer
        .iter()
        .filter(|t| is_f32(t))
        .map(|t| t.name.clone())
        .collect();
    let (mut read_low, mut read_high) = (HashSet::new(), HashSet::new());
    for (k, n) in g.node.iter().enumerate() {
        let island = island(k);
        for (i, x) in n.input.iter().enumerate() {
            if inits.contains(x) {
                if island || fixed_f32_input(n, i) {
                    read_high.insert(x.clone());
                } else {
                    read_low.insert(x.clone());
                }
            }
        }
    }
    // Float16 copies: in place when no float32 node reads the weight, else beside it.
    let mut low_name: HashMap<String, String> = HashMap::new();
    let mut extra = Vec::new();
    // In initializer order, so that the file is the same bytes every time.
    for t in g
        .initializer
        .iter_mut()
        .filter(|t| read_low.contains(&t.name))
    {
        let name = t.name.clone();
        if read_high.contains(&name) {
            let mut c = f16_tensor(t, &name)?;
            c.name = format!("{name}.fp16");
            low_name.insert(name, c.name.clone());
            extra.push(c);
        } else {
            *t = f16_tensor(t, &name)?;
            low_name.insert(name.clone(), name);
        }
        summary.fp16_weights += 1;
    }
    g.initializer.extend(extra);

    // Where each float value lives: true for float16.
    let mut home: HashMap<String, bool> = HashMap::new();
    for v in &g.input {
        home.insert(v.name.clone(), false);
    }
    let mut casts: HashMap<(String, bool), String> = HashMap::new();
    // Declared shapes, so that a cast value is declared like its source (the plugin's contract
    // and the lint need the ranks of its inputs).
    let declared: HashMap<String, onnx_protobuf::ValueInfoProto> = g
        .value_info
        .iter()
        .chain(&g.input)
        .map(|v| (v.name.clone(), v.clone()))
        .collect();
    let mut cast_info = Vec::new();
    let mut nodes = Vec::with_capacity(g.node.len());
    for (k, mut n) in std::mem::take(&mut g.node).into_iter().enumerate() {
        let low = !island(k);
        let mut touches_float = false;
        for i in 0..n.input.len() {
            let x = n.input[i].clone();
            if x.is_empty() {
                continue;
            }
            let Some(&float) = is_float.get(&x) else {
                return Err(Fp16Error::UnknownType {
                    node: n.name.clone(),
                    op: n.op_type.clone(),
                    input: x,
                });
            };
            if !float {
                continue;
            }
            touches_float = true;
            let want_low = low && !fixed_f32_input(&n, i);
            if inits.contains(&x) {
                if want_low {
                    n.input[i] = low_name[&x].clone();
                }
                continue;
            }
            let is_low = home.get(&x).copied().unwrap_or(false);
            if is_low == want_low {
                continue;
            }
            let key = (x.clone(), want_low);
            let name = casts.entry(key).or_insert_with(|| {
                let out = format!("{x}.{}", if want_low { "fp16" } else { "fp32" });
                let mut c = NodeProto::new();
                c.op_type = "Cast".into();
                c.name = format!("{out}/Cast");
                c.input = vec![x.clone()];
                c.output = vec![out.clone()];
                let mut a = AttributeProto::new();
                a.name = "to".into();
                a.i = if want_low {
                    DataType::FLOAT16 as i64
                } else {
                    DataType::FLOAT as i64
                };
                a.type_ = onnx_protobuf::attribute_proto::AttributeType::INT.into();
                c.attribute.push(a);
                nodes.push(c);
                summary.casts += 1;
                if let Some(v) = declared.get(&x) {
                    let mut v = v.clone();
                    v.name = out.clone();
                    cast_info.push((v, want_low));
                }
                out
            });
            n.input[i] = name.clone();
        }
        if low {
            for a in n.attribute.iter_mut() {
                match (n.op_type.as_str(), a.name.as_str()) {
                    ("Cast", "to") if a.i == DataType::FLOAT as i64 => {
                        a.i = DataType::FLOAT16 as i64;
                    }
                    ("ConstantOfShape" | "Constant", "value") => {
                        if let Some(t) = a.t.as_mut().filter(|t| is_f32(t)) {
                            *t = f16_tensor(t, &n.name)?;
                        }
                    }
                    _ => {}
                }
            }
            // ConstantOfShape without `value` gives float32 zeros: spell out float16 ones.
            if n.op_type == "ConstantOfShape" && !n.attribute.iter().any(|a| a.name == "value") {
                let mut t = TensorProto::new();
                t.dims = vec![1];
                t.data_type = DataType::FLOAT16 as i32;
                t.raw_data = f16::ZERO.to_le_bytes().to_vec();
                let mut a = AttributeProto::new();
                a.name = "value".into();
                a.t = protobuf::MessageField::some(t);
                a.type_ = onnx_protobuf::attribute_proto::AttributeType::TENSOR.into();
                n.attribute.push(a);
            }
        }
        let mut float_out = false;
        for o in &n.output {
            if is_float.get(o).copied().unwrap_or(false) {
                home.insert(o.clone(), low);
                float_out = true;
            }
        }
        if touches_float || float_out {
            if low {
                summary.fp16_nodes += 1;
            } else {
                summary.fp32_nodes += 1;
            }
        }
        nodes.push(n);
    }
    g.node = nodes;
    for (mut v, low) in cast_info {
        if let Some(type_proto::Value::TensorType(tt)) =
            v.type_.as_mut().and_then(|t| t.value.as_mut())
        {
            tt.elem_type = if low {
                DataType::FLOAT16 as i32
            } else {
                DataType::FLOAT as i32
            };
        }
        g.value_info.push(v);
    }
    // Declared types follow: float values that now live in float16.
    for v in g.value_info.iter_mut() {
        if home.get(&v.name).copied().unwrap_or(false) {
            if let Some(type_proto::Value::TensorType(tt)) =
                v.type_.as_mut().and_then(|t| t.value.as_mut())
            {
                if tt.elem_type == DataType::FLOAT as i32 {
                    tt.elem_type = DataType::FLOAT16 as i32;
                }
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Attr, DeclDim, Elem, GraphBuilder};

    fn elem_of(m: &ModelProto, name: &str) -> Option<i32> {
        let g = m.graph.as_ref()?;
        g.initializer
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.data_type)
    }

    fn node<'m>(m: &'m ModelProto, op: &str) -> Vec<&'m NodeProto> {
        m.graph
            .as_ref()
            .map(|g| g.node.iter().filter(|n| n.op_type == op).collect())
            .unwrap_or_default()
    }

    /// x [2, 8] → MatMul(W) → Sigmoid → y, beside index arithmetic: Shape → Gather → Cast to
    /// float → Mul by a constant, added to the product.
    fn model() -> ModelProto {
        let mut g = GraphBuilder::default();
        g.input("x", Elem::F32, &[DeclDim::Fixed(2), DeclDim::Fixed(8)]);
        let w = g.const_f32(&[0.5; 64], &[8, 8]);
        let mm = g.node("MatMul", &["x", &w], 1, &[]);
        let s = g.node("Shape", &["x"], 1, &[]);
        let i = g.const_i64(&[1], &[1]);
        let n = g.node("Gather", &[&s[0], &i], 1, &[]);
        let nf = g.node("Cast", &[&n[0]], 1, &[("to", Attr::Int(1))]);
        let two = g.const_f32(&[2.0], &[]);
        let pos = g.node("Mul", &[&nf[0], &two], 1, &[]);
        let sum = g.node("Add", &[&mm[0], &pos[0]], 1, &[]);
        let y = g.node("Sigmoid", &[&sum[0]], 1, &[]);
        g.output(
            "y",
            &y[0],
            Elem::F32,
            &[DeclDim::Fixed(2), DeclDim::Fixed(8)],
        );
        g.finish("t", 17, &[])
    }

    #[test]
    fn float16_outside_islands_float32_at_the_edges_and_in_index_arithmetic() {
        let mut m = model();
        let s = convert(&mut m).unwrap();
        let g = m.graph.as_ref().unwrap();
        let mm = node(&m, "MatMul")[0];
        // The weight is stored as float16; the input is cast to it.
        assert_eq!(elem_of(&m, &mm.input[1]), Some(DataType::FLOAT16 as i32));
        let cast_x = g.node.iter().find(|n| n.output[0] == mm.input[0]).unwrap();
        assert_eq!(
            (cast_x.op_type.as_str(), cast_x.input[0].as_str()),
            ("Cast", "x")
        );
        assert_eq!(cast_x.attribute[0].i, DataType::FLOAT16 as i64);
        // Index arithmetic stays float32: the int→float Cast keeps `to = FLOAT`, and its Mul
        // reads the float32 constant.
        let casts = node(&m, "Cast");
        let index_cast = casts.iter().find(|c| c.input[0].starts_with('v')).unwrap();
        assert_eq!(index_cast.attribute[0].i, DataType::FLOAT as i64);
        let mul = node(&m, "Mul")[0];
        assert_eq!(elem_of(&m, &mul.input[1]), Some(DataType::FLOAT as i32));
        // Where the index value meets the product it is cast once to float16; the Sigmoid island
        // reads a float32 cast of the sum, and the output stays float32.
        let add = node(&m, "Add")[0];
        assert!(add.input[1].ends_with(".fp16"), "{:?}", add.input);
        let sig = node(&m, "Sigmoid")[0];
        assert!(sig.input[0].ends_with(".fp32"), "{:?}", sig.input);
        assert_eq!(s.casts, 3, "{s:?}");
        assert_eq!(s.fp16_weights, 1);
        let out = &g.output[0];
        let Some(type_proto::Value::TensorType(tt)) = out.type_.as_ref().unwrap().value.as_ref()
        else {
            panic!("output type")
        };
        assert_eq!(tt.elem_type, DataType::FLOAT as i32);
    }

    #[test]
    fn constants_follow_their_consumers_and_overflow_is_an_error() {
        let mut g = GraphBuilder::default();
        g.input("x", Elem::F32, &[DeclDim::Fixed(2), DeclDim::Fixed(8)]);
        let s = g.node("Shape", &["x"], 1, &[]);
        // Zeros from ConstantOfShape (no `value`: float32 by default) added to x in float16.
        let z = g.node("ConstantOfShape", &[&s[0]], 1, &[]);
        let a = g.node("Add", &["x", &z[0]], 1, &[]);
        // A Constant only the Pow island reads stays float32 (2π would become 6.28125).
        let y = g.node("Pow", &[&a[0], "two_pi"], 1, &[]);
        g.output(
            "y",
            &y[0],
            Elem::F32,
            &[DeclDim::Fixed(2), DeclDim::Fixed(8)],
        );
        let mut m = g.finish("t", 17, &[]);
        let mut c = NodeProto::new();
        c.op_type = "Constant".into();
        c.name = "two_pi".into();
        c.output = vec!["two_pi".into()];
        let mut t = TensorProto::new();
        t.data_type = DataType::FLOAT as i32;
        t.raw_data = std::f32::consts::TAU.to_le_bytes().to_vec();
        let mut a = AttributeProto::new();
        a.name = "value".into();
        a.t = protobuf::MessageField::some(t);
        a.type_ = onnx_protobuf::attribute_proto::AttributeType::TENSOR.into();
        c.attribute.push(a);
        m.graph.as_mut().unwrap().node.insert(0, c);
        convert(&mut m).unwrap();
        let cos = node(&m, "ConstantOfShape")[0];
        let v = cos.attribute.iter().find(|a| a.name == "value").unwrap();
        assert_eq!(v.t.as_ref().unwrap().data_type, DataType::FLOAT16 as i32);
        let c = node(&m, "Constant")[0];
        assert_eq!(
            c.attribute[0].t.as_ref().unwrap().data_type,
            DataType::FLOAT as i32
        );
        assert_eq!(node(&m, "Pow")[0].input[1], "two_pi");

        let mut g = GraphBuilder::default();
        g.input("x", Elem::F32, &[DeclDim::Fixed(1)]);
        let big = g.const_f32(&[1e6], &[1]);
        g.node("Mul", &["x", &big], 1, &[]);
        let mut m = g.finish("t", 17, &[]);
        let e = convert(&mut m).unwrap_err().to_string();
        assert!(e.contains(&big) && e.contains("65504"), "{e}");
    }

    #[test]
    fn the_conversion_is_deterministic() {
        let (mut a, mut b) = (model(), model());
        convert(&mut a).unwrap();
        convert(&mut b).unwrap();
        assert_eq!(
            crate::graph::to_bytes(&a).unwrap(),
            crate::graph::to_bytes(&b).unwrap()
        );
    }
}
