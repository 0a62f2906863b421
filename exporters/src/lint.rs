//! TensorRT compatibility lint: the restrictions of TensorRT 10's ONNX parser on the ops
//! focus-export emits, kept in one table ([`RULES`]) with the document each comes from, checked
//! on an ONNX file without TensorRT. Each violation names the node, the rule and the fix.
//!
//! The parser's restrictions are documented per op in onnx-tensorrt's `docs/operators.md`
//! (release 10.1 GA, the first of the TensorRT 10 line with the opset-20 parser); two rules come
//! from its importer source where the document is silent (Range's input types, GridSample's mode
//! names), and the plugin rule from `focus_ops::decl::TRT_MS_DEFORM_ATTN`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::dimension;
use onnx_protobuf::{type_proto, AttributeProto, Message, ModelProto, NodeProto, TensorProto};

use focus_ops::decl::{DType, TRT_MS_DEFORM_ATTN};

/// The onnx-tensorrt operator document the rules cite.
const OPERATORS_MD: &str = "onnx-tensorrt 10.1 GA, docs/operators.md";
/// The onnx-tensorrt importer source the rules cite where the document is silent.
const IMPORTERS_CPP: &str = "onnx-tensorrt 10.1 GA, onnxOpImporters.cpp";

/// The largest TopK K the parser accepts, plus one ("`K` input must be less than 3840").
pub const TRT_TOPK_K_LIMIT: i64 = 3840;
/// The default-domain opsets TensorRT 10's parser accepts (inclusive).
pub const TRT_OPSETS: (i64, i64) = (9, 20);

/// One restriction of TensorRT's ONNX parser.
#[derive(Debug)]
pub struct Rule {
    /// Short identifier, as reports print it.
    pub id: &'static str,
    /// The ops it applies to (`*`: every node).
    pub ops: &'static [&'static str],
    /// What the parser requires.
    pub requirement: &'static str,
    /// Where that is documented.
    pub source: &'static str,
    /// How to export a model that meets it.
    pub fix: &'static str,
}

/// Every rule the lint checks, in report order.
pub const RULES: &[Rule] = &[
    Rule {
        id: "opset",
        ops: &["*"],
        requirement: "the model imports a default-domain opset from 9 to 20",
        source: OPERATORS_MD,
        fix: "export with --opset 17 (or any of 16..=20)",
    },
    Rule {
        id: "op-supported",
        ops: &["*"],
        requirement: "every standard op is one the parser imports (support matrix, Supported = Y)",
        source: OPERATORS_MD,
        fix: "export with --target tensorrt",
    },
    Rule {
        id: "plugin-domain",
        ops: &["*"],
        requirement: "nodes outside the default domain are TensorRT plugins TensorRT ships \
                      (trt.plugins::MultiscaleDeformableAttnPlugin_TRT)",
        source: "TensorRT plugin registry (libnvinfer_plugin); deployment_notes.md",
        fix: "export with --target tensorrt (--msda trt-plugin --topk threshold), not with our \
              ai.focus_detr ops",
    },
    Rule {
        id: "dtype",
        ops: &["*"],
        requirement: "each op's data input has one of the op's Supported Types",
        source: OPERATORS_MD,
        fix: "cast to a supported type around the op (the --target tensorrt export does)",
    },
    Rule {
        id: "topk-sorted",
        ops: &["TopK"],
        requirement: "`sorted` must be 1",
        source: OPERATORS_MD,
        fix: "export with --target tensorrt",
    },
    Rule {
        id: "topk-k",
        ops: &["TopK"],
        requirement: "`K` must be less than 3840, so a constant the lint can read",
        source: OPERATORS_MD,
        fix: "export with --target tensorrt (threshold selection for the large selections)",
    },
    Rule {
        id: "cumsum-axis",
        ops: &["CumSum"],
        requirement: "`axis` must be an initializer",
        source: OPERATORS_MD,
        fix: "export with --target tensorrt",
    },
    Rule {
        id: "axes-initializer",
        ops: &[
            "ReduceMax",
            "ReduceMean",
            "ReduceMin",
            "ReduceSum",
            "ReduceProd",
            "Slice",
            "Squeeze",
            "Unsqueeze",
            "Pad",
        ],
        requirement: "`axes` must be an initializer (a constant tensor for Unsqueeze)",
        source: OPERATORS_MD,
        fix: "export with --target tensorrt",
    },
    Rule {
        id: "scatternd-reduction",
        ops: &["ScatterND"],
        requirement: "`reduction` is not supported",
        source: OPERATORS_MD,
        fix: "export with --target tensorrt",
    },
    Rule {
        id: "range-dtypes",
        ops: &["Range"],
        requirement: "start, limit and delta have one type, int32, int64 or float32",
        source: IMPORTERS_CPP,
        fix: "export with --target tensorrt",
    },
    Rule {
        id: "layernorm-outputs",
        ops: &["LayerNormalization"],
        requirement: "only the first output `Y` is supported",
        source: OPERATORS_MD,
        fix: "export with --target tensorrt",
    },
    Rule {
        id: "maxpool-indices",
        ops: &["MaxPool"],
        requirement: "the `Indices` output is unsupported",
        source: OPERATORS_MD,
        fix: "export with --target tensorrt",
    },
    Rule {
        id: "gridsample-mode",
        ops: &["GridSample"],
        requirement: "4-D input, and `mode` spelled bilinear, nearest or bicubic: the parser \
                      does not map opset 20's linear and cubic",
        source: IMPORTERS_CPP,
        fix: "export with --opset 19 or lower, or with --target tensorrt (plugin instead of \
              GridSample)",
    },
    Rule {
        id: "resize-modes",
        ops: &["Resize"],
        requirement: "mode nearest or linear; coordinate transformation half_pixel, \
                      pytorch_half_pixel, tf_half_pixel_for_nn, asymmetric or align_corners; \
                      nearest_mode floor, ceil, round_prefer_floor or round_prefer_ceil; \
                      aspect-ratio policy stretch; no antialiasing",
        source: OPERATORS_MD,
        fix: "export with --target tensorrt",
    },
    Rule {
        id: "constant-value",
        ops: &["Constant"],
        requirement: "`sparse_value`, `value_string` and `value_strings` are unsupported",
        source: OPERATORS_MD,
        fix: "export with --target tensorrt",
    },
    Rule {
        id: "plugin-contract",
        ops: &["MultiscaleDeformableAttnPlugin_TRT"],
        requirement: "five inputs: value [N, S, M, D] float, spatial_shapes [L, 2] int32, \
                      level_start_index [L] int32, sampling_locations [N, Lq, M, L, P, 2] and \
                      attention_weights [N, Lq, M, L, P] float; one output [N, Lq, M, D]",
        source: "TensorRT plugin MultiscaleDeformableAttnPlugin_TRT (focus_ops::decl::TRT_MS_DEFORM_ATTN)",
        fix: "export with --target tensorrt",
    },
];

/// The rule with `id` (every id used below is in [`RULES`]).
fn rule(id: &str) -> &'static Rule {
    RULES.iter().find(|r| r.id == id).unwrap_or(&RULES[0])
}

/// Element types, as the support matrix names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    F32,
    F16,
    Bf16,
    I32,
    I64,
    U8,
    Bool,
    F64,
    I8,
    Other(i32),
}

impl Ty {
    fn from_proto(t: i32) -> Option<Ty> {
        use DataType as D;
        Some(match t {
            x if x == D::FLOAT as i32 => Ty::F32,
            x if x == D::FLOAT16 as i32 => Ty::F16,
            x if x == D::BFLOAT16 as i32 => Ty::Bf16,
            x if x == D::INT32 as i32 => Ty::I32,
            x if x == D::INT64 as i32 => Ty::I64,
            x if x == D::UINT8 as i32 => Ty::U8,
            x if x == D::BOOL as i32 => Ty::Bool,
            x if x == D::DOUBLE as i32 => Ty::F64,
            x if x == D::INT8 as i32 => Ty::I8,
            0 => return None,
            x => Ty::Other(x),
        })
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::F32 => f.write_str("FP32"),
            Ty::F16 => f.write_str("FP16"),
            Ty::Bf16 => f.write_str("BF16"),
            Ty::I32 => f.write_str("INT32"),
            Ty::I64 => f.write_str("INT64"),
            Ty::U8 => f.write_str("UINT8"),
            Ty::Bool => f.write_str("BOOL"),
            Ty::F64 => f.write_str("DOUBLE"),
            Ty::I8 => f.write_str("INT8"),
            Ty::Other(x) => write!(f, "ONNX type {x}"),
        }
    }
}

const FLT: &[Ty] = &[Ty::F32, Ty::F16, Ty::Bf16];
const NUM: &[Ty] = &[Ty::F32, Ty::F16, Ty::Bf16, Ty::I32, Ty::I64];
const ANY: &[Ty] = &[Ty::F32, Ty::F16, Ty::Bf16, Ty::I32, Ty::I64, Ty::Bool];
const BOOL: &[Ty] = &[Ty::Bool];
const CAST: &[Ty] = &[
    Ty::F32,
    Ty::F16,
    Ty::Bf16,
    Ty::I32,
    Ty::I64,
    Ty::U8,
    Ty::Bool,
];
const F32_F16: &[Ty] = &[Ty::F32, Ty::F16];

/// Which inputs carry the op's type in the support matrix.
#[derive(Clone, Copy)]
enum Data {
    /// Input 0.
    First,
    /// Every input.
    All,
    /// Inputs 1 and 2 (Where's X and Y).
    Branches,
}

/// The support matrix's Supported Types for the standard ops the lint knows ([`OPERATORS_MD`]).
/// An op not listed here is reported by `op-supported`.
const SUPPORT: &[(&str, &[Ty], Data)] = &[
    ("Abs", NUM, Data::First),
    ("Add", NUM, Data::All),
    ("And", BOOL, Data::All),
    ("ArgMax", NUM, Data::First),
    ("ArgMin", NUM, Data::First),
    ("BatchNormalization", FLT, Data::First),
    ("Cast", CAST, Data::First),
    ("Ceil", FLT, Data::First),
    ("Clip", FLT, Data::First),
    ("Concat", ANY, Data::All),
    ("Constant", ANY, Data::All),
    ("ConstantOfShape", ANY, Data::All),
    ("Conv", FLT, Data::First),
    ("Cos", FLT, Data::First),
    ("CumSum", FLT, Data::First),
    ("Div", NUM, Data::All),
    ("Einsum", FLT, Data::All),
    ("Equal", NUM, Data::All),
    ("Erf", FLT, Data::First),
    ("Exp", FLT, Data::First),
    ("Expand", ANY, Data::First),
    ("Flatten", ANY, Data::First),
    ("Floor", FLT, Data::First),
    ("Gather", ANY, Data::First),
    ("Gelu", NUM, Data::First),
    ("GatherElements", ANY, Data::First),
    ("GatherND", ANY, Data::First),
    ("Gemm", FLT, Data::First),
    ("Greater", NUM, Data::All),
    ("GreaterOrEqual", NUM, Data::All),
    ("GridSample", F32_F16, Data::First),
    ("Identity", ANY, Data::First),
    ("LayerNormalization", FLT, Data::First),
    ("Less", NUM, Data::All),
    ("LessOrEqual", NUM, Data::All),
    ("Log", FLT, Data::First),
    ("MatMul", FLT, Data::All),
    ("Max", NUM, Data::All),
    ("MaxPool", FLT, Data::First),
    ("Min", NUM, Data::All),
    ("Mod", NUM, Data::All),
    ("Mul", NUM, Data::All),
    ("Neg", NUM, Data::First),
    ("NonZero", F32_F16, Data::First),
    ("Not", BOOL, Data::First),
    ("Or", BOOL, Data::All),
    ("Pad", NUM, Data::First),
    ("Pow", FLT, Data::All),
    ("Range", NUM, Data::All),
    ("Reciprocal", FLT, Data::First),
    ("ReduceMax", NUM, Data::First),
    ("ReduceMean", NUM, Data::First),
    ("ReduceMin", NUM, Data::First),
    ("ReduceProd", NUM, Data::First),
    ("ReduceSum", NUM, Data::First),
    ("Relu", NUM, Data::First),
    ("Reshape", ANY, Data::First),
    ("Resize", FLT, Data::First),
    ("ScatterElements", NUM, Data::First),
    ("ScatterND", NUM, Data::First),
    ("Shape", ANY, Data::First),
    ("Sigmoid", FLT, Data::First),
    ("Sin", FLT, Data::First),
    ("Size", ANY, Data::First),
    ("Slice", ANY, Data::First),
    ("Softmax", FLT, Data::First),
    ("Split", ANY, Data::First),
    ("Sqrt", FLT, Data::First),
    ("Squeeze", ANY, Data::First),
    ("Sub", NUM, Data::All),
    ("Sum", NUM, Data::All),
    ("Tanh", FLT, Data::First),
    ("Tile", ANY, Data::First),
    ("TopK", NUM, Data::First),
    ("Transpose", ANY, Data::First),
    ("Unsqueeze", ANY, Data::First),
    ("Where", ANY, Data::Branches),
];

/// One rule broken by one node.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The node's name (its module path), or `(model)` for model-level rules.
    pub node: String,
    /// The node's op type.
    pub op: String,
    /// The rule's id.
    pub rule: &'static str,
    /// What is wrong here.
    pub detail: String,
    /// How to fix it.
    pub fix: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): [{}] {}; fix: {}",
            self.node, self.op, self.rule, self.detail, self.fix
        )
    }
}

/// What the lint found.
#[derive(Debug, Clone, Default)]
pub struct LintReport {
    /// Nodes checked.
    pub nodes: usize,
    /// Every violation, in graph order.
    pub violations: Vec<Violation>,
    /// Checks the lint could not decide (a type or shape it could not infer), as violations'
    /// text without a fix.
    pub undecided: Vec<String>,
}

impl LintReport {
    /// True when no rule is broken.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The rule ids broken, each once, in [`RULES`] order.
    pub fn rules_broken(&self) -> Vec<&'static str> {
        RULES
            .iter()
            .map(|r| r.id)
            .filter(|id| self.violations.iter().any(|v| v.rule == *id))
            .collect()
    }
}

/// Errors reading the model to lint.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not an ONNX model.
    #[error("{path}: not an ONNX model (protobuf ModelProto): {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the decoder said.
        message: String,
    },
}

/// Lints the ONNX file at `path` for TensorRT.
pub fn lint_tensorrt_file(path: &Path) -> Result<LintReport, LintError> {
    let bytes = std::fs::read(path).map_err(|source| LintError::Read {
        path: path.display().to_string(),
        source,
    })?;
    lint_tensorrt_bytes(&bytes).map_err(|message| LintError::Parse {
        path: path.display().to_string(),
        message,
    })
}

/// Lints a serialised ONNX model for TensorRT (`Err`: the protobuf decoder's message, or that
/// the bytes decode to no graph, as an empty file does: protobuf reads it as an empty model).
pub fn lint_tensorrt_bytes(bytes: &[u8]) -> Result<LintReport, String> {
    let m = ModelProto::parse_from_bytes(bytes).map_err(|e| e.to_string())?;
    if m.graph.is_none() || m.graph.node.is_empty() {
        return Err(format!(
            "it holds no graph with nodes ({} bytes; ir_version {})",
            bytes.len(),
            m.ir_version
        ));
    }
    Ok(lint_tensorrt(&m))
}

/// What the lint knows of a value: element type and dims (`None`: unknown).
#[derive(Clone, Default)]
struct Info {
    ty: Option<Ty>,
    dims: Option<Vec<Option<i64>>>,
}

/// Types and shapes of the graph's values, and its constants.
struct Values<'m> {
    info: HashMap<&'m str, Info>,
    consts: HashMap<&'m str, &'m TensorProto>,
}

impl<'m> Values<'m> {
    fn ty(&self, name: &str) -> Option<Ty> {
        self.info.get(name).and_then(|i| i.ty)
    }
    fn rank(&self, name: &str) -> Option<usize> {
        self.info
            .get(name)
            .and_then(|i| i.dims.as_ref())
            .map(Vec::len)
    }
    fn dims(&self, name: &str) -> Option<&[Option<i64>]> {
        self.info.get(name).and_then(|i| i.dims.as_deref())
    }
    fn is_const(&self, name: &str) -> bool {
        self.consts.contains_key(name)
    }
    /// An integer constant's values.
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        let t = self.consts.get(name)?;
        let ty = Ty::from_proto(t.data_type)?;
        match ty {
            Ty::I64 if !t.raw_data.is_empty() => Some(
                t.raw_data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            ),
            Ty::I64 => Some(t.int64_data.clone()),
            Ty::I32 if !t.raw_data.is_empty() => Some(
                t.raw_data
                    .chunks_exact(4)
                    .map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
                    .collect(),
            ),
            Ty::I32 => Some(t.int32_data.iter().map(|&v| i64::from(v)).collect()),
            _ => None,
        }
    }
}

fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_int(n: &NodeProto, name: &str) -> Option<i64> {
    attr(n, name).map(|a| a.i)
}

fn attr_str(n: &NodeProto, name: &str) -> Option<String> {
    attr(n, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

fn tensor_info(t: &TensorProto) -> Info {
    Info {
        ty: Ty::from_proto(t.data_type),
        dims: Some(t.dims.iter().map(|&d| Some(d)).collect()),
    }
}

fn value_info_info(v: &onnx_protobuf::ValueInfoProto) -> Option<Info> {
    let Some(type_proto::Value::TensorType(tt)) = v.type_.as_ref()?.value.as_ref() else {
        return None;
    };
    let dims = tt.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match d.value {
                Some(dimension::Value::DimValue(v)) => Some(v),
                _ => None,
            })
            .collect()
    });
    Some(Info {
        ty: Ty::from_proto(tt.elem_type),
        dims,
    })
}

/// The element type of each output of `n`, from its inputs' types (the ONNX type rules of the
/// ops focus-export emits; `None` where the lint does not know the op).
fn output_types(n: &NodeProto, vals: &Values) -> Vec<Option<Ty>> {
    let first = n.input.first().and_then(|i| vals.ty(i));
    let one = |t: Option<Ty>| vec![t; n.output.len().max(1)];
    // The default domain may be spelled "" or "ai.onnx".
    let domain = if n.domain == "ai.onnx" {
        ""
    } else {
        n.domain.as_str()
    };
    match (domain, n.op_type.as_str()) {
        ("", "Cast") => one(attr_int(n, "to").and_then(|t| Ty::from_proto(t as i32))),
        ("", "Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin") => one(Some(Ty::I64)),
        (
            "",
            "Equal" | "Greater" | "GreaterOrEqual" | "Less" | "LessOrEqual" | "Not" | "And" | "Or"
            | "Xor" | "IsNaN" | "IsInf",
        ) => one(Some(Ty::Bool)),
        ("", "TopK") => vec![first, Some(Ty::I64)],
        ("", "MaxPool") => vec![first, Some(Ty::I64)],
        ("", "ConstantOfShape") => one(Some(
            attr(n, "value")
                .and_then(|a| a.t.as_ref())
                .and_then(|t| Ty::from_proto(t.data_type))
                .unwrap_or(Ty::F32),
        )),
        ("", "Constant") => one(attr(n, "value")
            .and_then(|a| a.t.as_ref())
            .and_then(|t| Ty::from_proto(t.data_type))),
        ("", "Where") => one(n.input.get(1).and_then(|i| vals.ty(i))),
        ("", _) => one(first),
        (domain, op) => {
            let decl = focus_ops::decl::DOMAIN_OPS
                .iter()
                .chain([&TRT_MS_DEFORM_ATTN])
                .find(|d| d.domain == domain && d.op_type == op);
            match decl {
                Some(d) => d.outputs.iter().map(|o| Some(decl_ty(o.dtype))).collect(),
                None => one(None),
            }
        }
    }
}

fn decl_ty(d: DType) -> Ty {
    match d {
        DType::F32 => Ty::F32,
        DType::I64 => Ty::I64,
        DType::I32 => Ty::I32,
    }
}

/// Collects the graph's value types, shapes and constants: declared ones first (inputs,
/// initializers, value_info, outputs), then types propagated through the nodes in order.
fn values(m: &ModelProto) -> Values<'_> {
    let mut vals = Values {
        info: HashMap::new(),
        consts: HashMap::new(),
    };
    let Some(g) = m.graph.as_ref() else {
        return vals;
    };
    for t in &g.initializer {
        vals.info.insert(&t.name, tensor_info(t));
        vals.consts.insert(&t.name, t);
    }
    for v in g.input.iter().chain(&g.value_info).chain(&g.output) {
        if let Some(i) = value_info_info(v) {
            vals.info.entry(&v.name).or_insert(i);
        }
    }
    for n in &g.node {
        if n.domain.is_empty() && n.op_type == "Constant" {
            if let (Some(t), Some(out)) = (
                attr(n, "value").and_then(|a| a.t.as_ref()),
                n.output.first(),
            ) {
                vals.consts.insert(out, t);
                vals.info.entry(out).or_insert_with(|| tensor_info(t));
            }
        }
        let tys = output_types(n, &vals);
        for (o, t) in n.output.iter().zip(tys) {
            if o.is_empty() {
                continue;
            }
            let e = vals.info.entry(o).or_default();
            if e.ty.is_none() {
                e.ty = t;
            }
        }
    }
    vals
}

/// Element types of the graph's values as the lint infers them: `Some(true)` for float32,
/// `Some(false)` for another known type, absent when unknown (shared with the fp16 conversion).
pub(crate) fn float32_values(m: &ModelProto) -> HashMap<String, bool> {
    values(m)
        .info
        .iter()
        .filter_map(|(k, i)| i.ty.map(|t| (k.to_string(), t == Ty::F32)))
        .collect()
}

/// Lints a parsed model for TensorRT 10's ONNX parser.
pub fn lint_tensorrt(m: &ModelProto) -> LintReport {
    let mut report = LintReport::default();
    let mut broke = |node: &str, op: &str, id: &str, detail: String| {
        let r = rule(id);
        report.violations.push(Violation {
            node: node.to_string(),
            op: op.to_string(),
            rule: r.id,
            detail,
            fix: r.fix,
        });
    };
    let opset = m
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version);
    match opset {
        Some(v) if (TRT_OPSETS.0..=TRT_OPSETS.1).contains(&v) => {}
        Some(v) => broke(
            "(model)",
            "opset_import",
            "opset",
            format!(
                "default-domain opset {v} is outside {}..={}",
                TRT_OPSETS.0, TRT_OPSETS.1
            ),
        ),
        None => broke(
            "(model)",
            "opset_import",
            "opset",
            "the model imports no default-domain opset".into(),
        ),
    }
    let vals = values(m);
    let mut undecided = Vec::new();
    let nodes = m.graph.as_ref().map(|g| g.node.as_slice()).unwrap_or(&[]);
    let support: HashMap<&str, (&[Ty], Data)> =
        SUPPORT.iter().map(|(op, t, d)| (*op, (*t, *d))).collect();
    for n in nodes {
        let name = if n.name.is_empty() {
            n.output.first().map(String::as_str).unwrap_or("?")
        } else {
            n.name.as_str()
        };
        let op = n.op_type.as_str();
        let mut err = |id: &str, detail: String| broke(name, op, id, detail);
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            if n.domain == TRT_MS_DEFORM_ATTN.domain && op == TRT_MS_DEFORM_ATTN.op_type {
                plugin_contract(n, &vals, &mut err, &mut undecided, name);
            } else {
                err(
                    "plugin-domain",
                    format!("{}::{op} is not a TensorRT plugin", n.domain),
                );
            }
            continue;
        }
        let Some(&(types, data)) = support.get(op) else {
            err(
                "op-supported",
                format!(
                    "{op} is not among the ops the parser imports (or not in this lint's table)"
                ),
            );
            continue;
        };
        // Types of the data inputs.
        let checked: Vec<&String> = match data {
            Data::First => n.input.iter().take(1).collect(),
            // Each distinct input once (Mul(x, x) is one violation); Range's types have their
            // own rule.
            Data::All if op == "Range" => Vec::new(),
            Data::All => {
                let mut seen = std::collections::HashSet::new();
                n.input
                    .iter()
                    .filter(|i| !i.is_empty() && seen.insert(i.as_str()))
                    .collect()
            }
            Data::Branches => n.input.iter().skip(1).take(2).collect(),
        };
        for i in checked {
            match vals.ty(i) {
                Some(t) if types.contains(&t) => {}
                Some(t) => err(
                    "dtype",
                    format!(
                        "input `{i}` is {t}; {op} takes {}",
                        types
                            .iter()
                            .map(Ty::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                None => undecided.push(format!("{name} ({op}): [dtype] type of `{i}` unknown")),
            }
        }
        if op == "Cast" {
            if let Some(t) = attr_int(n, "to").and_then(|t| Ty::from_proto(t as i32)) {
                if !CAST.contains(&t) {
                    err("dtype", format!("casts to {t}; Cast produces {CAST:?}"));
                }
            }
        }
        op_rules(n, op, &vals, &mut err, &mut undecided, name);
    }
    report.nodes = nodes.len();
    report.undecided = undecided;
    report
}

/// The per-op rules (everything but opset, support and types).
fn op_rules(
    n: &NodeProto,
    op: &str,
    vals: &Values,
    err: &mut impl FnMut(&str, String),
    undecided: &mut Vec<String>,
    name: &str,
) {
    let input = |i: usize| n.input.get(i).filter(|s| !s.is_empty());
    match op {
        "TopK" => {
            if attr_int(n, "sorted").unwrap_or(1) != 1 {
                err("topk-sorted", "sorted = 0".into());
            }
            match input(1) {
                Some(k) => match vals.ints(k).as_deref() {
                    Some([k]) if *k < TRT_TOPK_K_LIMIT => {}
                    Some([k]) => err("topk-k", format!("K = {k}, not below {TRT_TOPK_K_LIMIT}")),
                    Some(v) => err(
                        "topk-k",
                        format!("K holds {} values, expected one", v.len()),
                    ),
                    None => err(
                        "topk-k",
                        format!(
                            "K (`{k}`) is computed at run time (here from the image's token \
                             count), so nothing bounds it below {TRT_TOPK_K_LIMIT}"
                        ),
                    ),
                },
                // Opset 9: K is an attribute.
                None => match attr_int(n, "k") {
                    Some(k) if k < TRT_TOPK_K_LIMIT => {}
                    Some(k) => err("topk-k", format!("K = {k}, not below {TRT_TOPK_K_LIMIT}")),
                    None => err("topk-k", "no K input".into()),
                },
            }
        }
        "CumSum" if !input(1).is_some_and(|a| vals.is_const(a)) => {
            err("cumsum-axis", "`axis` is computed at run time".into());
        }
        "ReduceMax" | "ReduceMean" | "ReduceMin" | "ReduceSum" | "ReduceProd" | "Squeeze"
        | "Unsqueeze" => {
            if let Some(a) = input(1) {
                if !vals.is_const(a) {
                    err(
                        "axes-initializer",
                        format!("`axes` (`{a}`) is computed at run time"),
                    );
                }
            }
        }
        "Slice" | "Pad" => {
            if let Some(a) = input(3) {
                if !vals.is_const(a) {
                    err(
                        "axes-initializer",
                        format!("`axes` (`{a}`) is computed at run time"),
                    );
                }
            }
        }
        "ScatterND" => {
            if let Some(r) = attr_str(n, "reduction").filter(|r| r != "none") {
                err("scatternd-reduction", format!("reduction = {r}"));
            }
        }
        "Range" => {
            let tys: Vec<Option<Ty>> = (0..3).map(|i| input(i).and_then(|s| vals.ty(s))).collect();
            if tys.iter().any(Option::is_none) {
                undecided.push(format!(
                    "{name} (Range): [range-dtypes] an input's type is unknown"
                ));
            } else if tys.windows(2).any(|w| w[0] != w[1])
                || !matches!(tys[0], Some(Ty::I32 | Ty::I64 | Ty::F32))
            {
                let t: Vec<String> = tys.iter().flatten().map(Ty::to_string).collect();
                err("range-dtypes", format!("inputs are {}", t.join(", ")));
            }
        }
        "LayerNormalization" => {
            let used = n.output.iter().skip(1).filter(|o| !o.is_empty()).count();
            if used > 0 {
                err(
                    "layernorm-outputs",
                    format!("{} extra output(s) (Mean, InvStdDev)", used),
                );
            }
        }
        "MaxPool" if n.output.get(1).is_some_and(|o| !o.is_empty()) => {
            err("maxpool-indices", "the Indices output is used".into());
        }
        "GridSample" => {
            let mode = attr_str(n, "mode").unwrap_or_else(|| "bilinear".into());
            if !["bilinear", "nearest", "bicubic"].contains(&mode.as_str()) {
                err("gridsample-mode", format!("mode = {mode}"));
            }
            match input(0).and_then(|x| vals.rank(x)) {
                Some(4) => {}
                Some(r) => err("gridsample-mode", format!("input is {r}-D, not 4-D")),
                None => undecided.push(format!(
                    "{name} (GridSample): [gridsample-mode] input rank unknown"
                )),
            }
        }
        "Resize" => {
            let checks: [(&str, &str, &[&str]); 4] = [
                ("mode", "nearest", &["nearest", "linear"]),
                (
                    "coordinate_transformation_mode",
                    "half_pixel",
                    &[
                        "half_pixel",
                        "pytorch_half_pixel",
                        "tf_half_pixel_for_nn",
                        "asymmetric",
                        "align_corners",
                    ],
                ),
                (
                    "nearest_mode",
                    "round_prefer_floor",
                    &["floor", "ceil", "round_prefer_floor", "round_prefer_ceil"],
                ),
                ("keep_aspect_ratio_policy", "stretch", &["stretch"]),
            ];
            for (a, default, ok) in checks {
                let v = attr_str(n, a).unwrap_or_else(|| default.into());
                if !ok.contains(&v.as_str()) {
                    err("resize-modes", format!("{a} = {v}"));
                }
            }
            if attr_int(n, "antialias").unwrap_or(0) != 0 {
                err("resize-modes", "antialias = 1".into());
            }
        }
        "Constant" => {
            for a in ["sparse_value", "value_string", "value_strings"] {
                if attr(n, a).is_some() {
                    err("constant-value", format!("holds `{a}`"));
                }
            }
        }
        _ => {}
    }
}

/// The plugin node against its declaration: input count, types and ranks, output rank and the
/// output's head and channel dims equal to the value's.
fn plugin_contract(
    n: &NodeProto,
    vals: &Values,
    err: &mut impl FnMut(&str, String),
    undecided: &mut Vec<String>,
    name: &str,
) {
    let decl = &TRT_MS_DEFORM_ATTN;
    if n.input.len() != decl.inputs.len() || n.output.len() != decl.outputs.len() {
        err(
            "plugin-contract",
            format!(
                "{} inputs and {} outputs, expected {} and {}",
                n.input.len(),
                n.output.len(),
                decl.inputs.len(),
                decl.outputs.len()
            ),
        );
        return;
    }
    for (i, t) in n.input.iter().zip(decl.inputs) {
        let want: &[Ty] = match t.dtype {
            DType::F32 => F32_F16,
            d => &[decl_ty(d)][..],
        };
        match vals.ty(i) {
            Some(ty) if want.contains(&ty) => {}
            Some(ty) => err(
                "plugin-contract",
                format!("input `{}` is {ty}, expected {}", t.name, want[0]),
            ),
            None => undecided.push(format!(
                "{name}: [plugin-contract] type of `{}` unknown",
                t.name
            )),
        }
        match vals.rank(i) {
            Some(r) if r == t.axes.len() => {}
            Some(r) => err(
                "plugin-contract",
                format!(
                    "input `{}` is {r}-D, expected [{}]",
                    t.name,
                    t.axes.join(", ")
                ),
            ),
            None => undecided.push(format!(
                "{name}: [plugin-contract] rank of `{}` unknown",
                t.name
            )),
        }
    }
    let out = &decl.outputs[0];
    match vals.dims(&n.output[0]) {
        Some(d) if d.len() == out.axes.len() => {
            // Output [N, Lq, M, D]: M and D are the value's.
            if let Some(v) = vals.dims(&n.input[0]).filter(|v| v.len() == 4) {
                for (axis, (o, w)) in [(2, (d[2], v[2])), (3, (d[3], v[3]))] {
                    if let (Some(o), Some(w)) = (o, w) {
                        if o != w {
                            err(
                                "plugin-contract",
                                format!("output axis {axis} is {o}, the value's is {w}"),
                            );
                        }
                    }
                }
            }
        }
        Some(d) => err(
            "plugin-contract",
            format!(
                "output is {}-D, the plugin gives [{}]",
                d.len(),
                out.axes.join(", ")
            ),
        ),
        None => undecided.push(format!(
            "{name}: [plugin-contract] output shape not declared"
        )),
    }
}

/// The rules table as text (`focus-export lint --rules`).
pub fn rules_table() -> String {
    let mut s = String::new();
    for r in RULES {
        s.push_str(&format!(
            "{:<20} {}\n{:<20} ops: {}\n{:<20} source: {}\n",
            r.id,
            r.requirement,
            "",
            r.ops.join(", "),
            "",
            r.source
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Attr, DeclDim, Elem, GraphBuilder};

    fn fixed(d: &[i64]) -> Vec<DeclDim> {
        d.iter().map(|&v| DeclDim::Fixed(v)).collect()
    }

    /// A one-input model built by `f` (input `x`, float32 [2, 8]), linted at `opset`.
    fn lint_with(opset: i64, f: impl FnOnce(&mut GraphBuilder)) -> LintReport {
        let mut g = GraphBuilder::default();
        g.input("x", Elem::F32, &fixed(&[2, 8]));
        f(&mut g);
        lint_tensorrt(&g.finish("t", opset, &[]))
    }

    fn lint(f: impl FnOnce(&mut GraphBuilder)) -> LintReport {
        lint_with(17, f)
    }

    fn only(r: &LintReport, id: &str) {
        assert_eq!(r.rules_broken(), vec![id], "{:#?}", r.violations);
        assert!(!r.violations[0].node.is_empty() && !r.violations[0].fix.is_empty());
    }

    #[test]
    fn every_rule_has_a_source_and_a_fix_and_a_unique_id() {
        let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len());
        for r in RULES {
            assert!(
                !r.source.is_empty() && !r.fix.is_empty() && !r.ops.is_empty(),
                "{}",
                r.id
            );
        }
        assert!(rules_table().contains("cumsum-axis"));
    }

    #[test]
    fn a_clean_model_passes() {
        let r = lint(|g| {
            let k = g.const_i64(&[3], &[1]);
            let o = g.node("TopK", &["x", &k], 2, &[("axis", Attr::Int(1))]);
            let ax = g.const_i64(&[1], &[]);
            g.node("CumSum", &[&o[0], &ax], 1, &[]);
        });
        assert!(r.ok(), "{:#?}", r.violations);
        assert!(r.undecided.is_empty(), "{:?}", r.undecided);
        assert_eq!(r.nodes, 2);
    }

    #[test]
    fn opsets_outside_9_to_20_are_reported() {
        only(&lint_with(21, |_| {}), "opset");
        assert!(lint_with(20, |_| {}).ok());
    }

    #[test]
    fn topk_needs_sorted_and_a_constant_k_below_3840() {
        let r = lint(|g| {
            let k = g.const_i64(&[3], &[1]);
            g.node("TopK", &["x", &k], 2, &[("sorted", Attr::Int(0))]);
        });
        only(&r, "topk-sorted");
        let r = lint(|g| {
            let k = g.const_i64(&[TRT_TOPK_K_LIMIT], &[1]);
            g.node("TopK", &["x", &k], 2, &[]);
        });
        only(&r, "topk-k");
        assert!(r.violations[0].detail.contains("3840"));
        // K from the input's shape: not provably bounded.
        let r = lint(|g| {
            let s = g.node("Shape", &["x"], 1, &[]);
            let i = g.const_i64(&[1], &[1]);
            let k = g.node("Gather", &[&s[0], &i], 1, &[]);
            g.node("TopK", &["x", &k[0]], 2, &[]);
        });
        only(&r, "topk-k");
        assert!(r.violations[0].detail.contains("run time"));
        // Opset 9 spelling: K as an attribute.
        let r = lint(|g| {
            g.node("TopK", &["x"], 2, &[("k", Attr::Int(5000))]);
        });
        only(&r, "topk-k");
        assert!(r.violations[0].detail.contains("5000"));
    }

    #[test]
    fn an_input_used_twice_is_one_violation() {
        let r = lint(|g| {
            let z = g.const_f32(&[0.0], &[]);
            let b = g.node("Greater", &["x", &z], 1, &[]);
            g.node("Add", &[&b[0], &b[0]], 1, &[]);
        });
        only(&r, "dtype");
        assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
    }

    #[test]
    fn cumsum_needs_a_constant_axis_and_a_float_type() {
        let r = lint(|g| {
            let s = g.node("Shape", &["x"], 1, &[]);
            let i = g.const_i64(&[0], &[]);
            let ax = g.node("Gather", &[&s[0], &i], 1, &[]);
            g.node("CumSum", &["x", &ax[0]], 1, &[]);
        });
        only(&r, "cumsum-axis");
        let r = lint(|g| {
            let c = g.node("Cast", &["x"], 1, &[("to", Attr::Int(7))]);
            let ax = g.const_i64(&[1], &[]);
            g.node("CumSum", &[&c[0], &ax], 1, &[]);
        });
        only(&r, "dtype");
        assert!(
            r.violations[0].detail.contains("INT64"),
            "{}",
            r.violations[0]
        );
    }

    #[test]
    fn nonzero_on_bool_is_a_type_violation() {
        let r = lint(|g| {
            let z = g.const_f32(&[0.0], &[]);
            let b = g.node("Greater", &["x", &z], 1, &[]);
            g.node("NonZero", &[&b[0]], 1, &[]);
        });
        only(&r, "dtype");
        assert!(r.violations[0].detail.contains("BOOL"));
    }

    #[test]
    fn axes_computed_at_run_time_are_reported_for_reduce_slice_squeeze_unsqueeze_pad() {
        for op in ["ReduceSum", "ReduceMax", "Squeeze", "Unsqueeze"] {
            let r = lint(|g| {
                let s = g.node("Shape", &["x"], 1, &[]);
                let (a, b) = (g.const_i64(&[0], &[1]), g.const_i64(&[1], &[1]));
                let ax = g.node("Slice", &[&s[0], &a, &b], 1, &[]);
                g.node(op, &["x", &ax[0]], 1, &[]);
            });
            only(&r, "axes-initializer");
        }
        for op in ["Slice", "Pad"] {
            let r = lint(|g| {
                let a = g.const_i64(&[0], &[1]);
                let b = g.const_i64(&[1], &[1]);
                let s = g.node("Shape", &["x"], 1, &[]);
                let ax = g.node("Slice", &[&s[0], &a, &b], 1, &[]);
                g.node(op, &["x", &a, &b, &ax[0]], 1, &[]);
            });
            only(&r, "axes-initializer");
        }
    }

    #[test]
    fn scatternd_reduction_range_types_layernorm_and_maxpool_outputs() {
        let r = lint(|g| {
            let i = g.const_i64(&[0], &[1, 1]);
            let u = g.const_f32(&[0.0; 8], &[1, 8]);
            g.node(
                "ScatterND",
                &["x", &i, &u],
                1,
                &[("reduction", Attr::Str("add".into()))],
            );
        });
        only(&r, "scatternd-reduction");
        let r = lint(|g| {
            let a = g.const_i64(&[0], &[]);
            let b = g.const_f32(&[4.0], &[]);
            let c = g.const_i64(&[1], &[]);
            g.node("Range", &[&a, &b, &c], 1, &[]);
        });
        only(&r, "range-dtypes");
        let r = lint(|g| {
            let w = g.const_f32(&[1.0; 8], &[8]);
            g.node("LayerNormalization", &["x", &w], 3, &[]);
        });
        only(&r, "layernorm-outputs");
        let r = lint(|g| {
            g.node(
                "MaxPool",
                &["x"],
                2,
                &[("kernel_shape", Attr::Ints(vec![1, 1]))],
            );
        });
        only(&r, "maxpool-indices");
    }

    #[test]
    fn gridsample_opset_20_linear_is_reported_and_bilinear_is_not() {
        let grid = |g: &mut GraphBuilder, mode: &str| {
            g.input("img", Elem::F32, &fixed(&[1, 2, 4, 4]));
            g.input("grid", Elem::F32, &fixed(&[1, 3, 3, 2]));
            g.node(
                "GridSample",
                &["img", "grid"],
                1,
                &[("mode", Attr::Str(mode.into()))],
            );
        };
        let r = lint_with(20, |g| grid(g, "linear"));
        only(&r, "gridsample-mode");
        assert!(r.violations[0].detail.contains("linear"));
        assert!(lint_with(17, |g| grid(g, "bilinear")).ok());
    }

    #[test]
    fn resize_modes_and_constant_strings() {
        let r = lint(|g| {
            g.node(
                "Resize",
                &["x"],
                1,
                &[(
                    "coordinate_transformation_mode",
                    Attr::Str("half_pixel_symmetric".into()),
                )],
            );
        });
        only(&r, "resize-modes");
        let r = lint(|g| {
            g.node(
                "Constant",
                &[],
                1,
                &[("value_string", Attr::Str("a".into()))],
            );
        });
        only(&r, "constant-value");
    }

    #[test]
    fn unknown_ops_and_foreign_domains_are_reported() {
        let r = lint(|g| {
            g.node("Einsum2", &["x"], 1, &[]);
        });
        only(&r, "op-supported");
        let r = lint(|g| {
            g.node_in_domain("DynamicTopK", focus_ops::decl::DOMAIN, &["x", "k"], 2, &[]);
        });
        only(&r, "plugin-domain");
    }

    /// A plugin node with the given level-table type and declared output dims.
    fn plugin(table: Elem, out: &[i64]) -> LintReport {
        lint(|g| {
            g.input("value", Elem::F32, &fixed(&[1, 20, 8, 32]));
            g.input("shapes", table, &fixed(&[2, 2]));
            g.input("starts", table, &fixed(&[2]));
            g.input("loc", Elem::F32, &fixed(&[1, 5, 8, 2, 4, 2]));
            g.input("w", Elem::F32, &fixed(&[1, 5, 8, 2, 4]));
            let o = g.node_in_domain(
                TRT_MS_DEFORM_ATTN.op_type,
                TRT_MS_DEFORM_ATTN.domain,
                &["value", "shapes", "starts", "loc", "w"],
                1,
                &[],
            );
            g.annotate(&o[0], Elem::F32, &fixed(out));
        })
    }

    #[test]
    fn the_plugin_contract_is_checked() {
        let r = plugin(Elem::I32, &[1, 5, 8, 32]);
        assert!(
            r.ok() && r.undecided.is_empty(),
            "{:#?} {:?}",
            r.violations,
            r.undecided
        );
        let r = plugin(Elem::I64, &[1, 5, 8, 32]);
        only(&r, "plugin-contract");
        assert!(r.violations.iter().all(|v| v.detail.contains("INT64")));
        only(&plugin(Elem::I32, &[1, 5, 256]), "plugin-contract");
        only(&plugin(Elem::I32, &[1, 5, 8, 16]), "plugin-contract");
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(lint_tensorrt_bytes(b"\xff\xff\xff not onnx").is_err());
    }
}
