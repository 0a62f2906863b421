//! The tracing backend: implements the model's `Backend` by recording ONNX nodes. Sizes the model
//! computes from the input (token counts, every top-k k) become graph arithmetic on `Shape`
//! values, so one file serves every input size; sizes fixed by the weights stay constants.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use focus_models::backend::{Backend, ModelError, Result};
use focus_models::schema::Param;
use focus_models::Weights;

use crate::graph::{Attr, DeclDim, Elem, GraphBuilder};

/// A size: known now, or an int64 [1] value of the graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Dim {
    /// Known at export time.
    Const(i64),
    /// Computed in the graph (name of a 1-d int64 tensor of one element).
    Dyn(Rc<str>),
}

/// A traced tensor: a graph value with its element type and what is known of its shape.
#[derive(Debug, Clone)]
pub struct TV {
    /// Value name.
    pub name: Rc<str>,
    /// Element type.
    pub elem: Elem,
    /// Per axis, the size when known.
    pub dims: Vec<Option<Dim>>,
}

/// Attributes of a square k×k window with stride s and symmetric padding p (Conv, MaxPool).
fn window_attrs(k: i64, s: i64, p: i64) -> [(&'static str, Attr); 3] {
    [
        ("kernel_shape", Attr::Ints(vec![k, k])),
        ("pads", Attr::Ints(vec![p, p, p, p])),
        ("strides", Attr::Ints(vec![s, s])),
    ]
}

/// Output size of a k×k, stride-s, padding-p window over a known input size (⌊(n + 2p − k)/s⌋ + 1).
fn window_out(n: &Option<Dim>, k: i64, s: i64, p: i64) -> Option<Dim> {
    match n {
        Some(Dim::Const(n)) => Some(Dim::Const((n + 2 * p - k).div_euclid(s) + 1)),
        _ => None,
    }
}

/// How multi-scale deformable attention is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MsdaForm {
    /// Standard ops: one GridSample per level (runs everywhere).
    #[default]
    Decomposed,
    /// One `ai.focus_detr::MsDeformAttn` node (focus-export's ORT and tract runtimes).
    Custom,
    /// TensorRT's `MultiscaleDeformableAttnPlugin_TRT` (TensorRT only).
    TrtPlugin,
}

/// How top-k is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopkForm {
    /// ONNX TopK with k computed in the graph.
    #[default]
    Onnx,
    /// `ai.focus_detr::DynamicTopK` nodes (focus-export's ORT and tract runtimes).
    Custom,
    /// Encoder selections (where only the set matters) as an exact threshold selection from
    /// standard ops without TopK (TensorRT caps TopK at k ≤ 3840); the other top-k stay TopK.
    Threshold,
}

impl std::str::FromStr for MsdaForm {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "decomposed" => Ok(MsdaForm::Decomposed),
            "custom" => Ok(MsdaForm::Custom),
            "trt-plugin" => Ok(MsdaForm::TrtPlugin),
            _ => Err(format!("`{s}`: expected decomposed, custom or trt-plugin")),
        }
    }
}

impl std::str::FromStr for TopkForm {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "onnx" => Ok(TopkForm::Onnx),
            "custom" => Ok(TopkForm::Custom),
            "threshold" => Ok(TopkForm::Threshold),
            _ => Err(format!("`{s}`: expected onnx, custom or threshold")),
        }
    }
}

impl MsdaForm {
    /// The option value.
    pub fn as_str(self) -> &'static str {
        match self {
            MsdaForm::Decomposed => "decomposed",
            MsdaForm::Custom => "custom",
            MsdaForm::TrtPlugin => "trt-plugin",
        }
    }
}

impl TopkForm {
    /// The option value.
    pub fn as_str(self) -> &'static str {
        match self {
            TopkForm::Onnx => "onnx",
            TopkForm::Custom => "custom",
            TopkForm::Threshold => "threshold",
        }
    }
}

/// The forms of the two special ops in an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpForms {
    /// Deformable attention.
    pub msda: MsdaForm,
    /// Top-k.
    pub topk: TopkForm,
}

/// Bisection rounds of the threshold selection: each halves the interval holding the k-th
/// largest score; 64 rounds take any float32 range of logits to adjacent floats (values closer
/// than 2^-64 of the range are treated as ties, broken by index).
pub const THRESHOLD_ROUNDS: usize = 64;

/// Records the model into a [`GraphBuilder`].
pub struct OnnxTracer<'w> {
    /// The graph (interior mutability: backend methods take `&self`).
    pub g: RefCell<GraphBuilder>,
    /// Parameters (`None` for graphs of single ops, which have none).
    weights: Option<&'w Weights>,
    opset: i64,
    forms: OpForms,
    added: RefCell<HashSet<String>>,
    /// The weights written as initializers without their data, by name (streamed on writing).
    deferred: RefCell<BTreeMap<String, Param>>,
    shape_cache: RefCell<HashMap<(Rc<str>, usize), Dim>>,
    /// Type and known shape of every node output, for the graph's value_info.
    annotations: RefCell<Vec<TV>>,
}

fn bad(op: &'static str, message: impl Into<String>) -> ModelError {
    ModelError::Backend {
        op,
        message: message.into(),
    }
}

impl<'w> OnnxTracer<'w> {
    /// The weights added as initializers without data so far, by name (see
    /// [`crate::graph::write_model`]); taken, so a second call returns none.
    pub fn take_deferred(&self) -> BTreeMap<String, Param> {
        std::mem::take(&mut self.deferred.borrow_mut())
    }

    /// A tracer reading initializers from `weights`, targeting `opset`.
    pub fn new(weights: Option<&'w Weights>, opset: i64, forms: OpForms) -> Self {
        OnnxTracer {
            g: RefCell::new(GraphBuilder::default()),
            weights,
            opset,
            forms,
            added: RefCell::new(HashSet::new()),
            deferred: RefCell::new(BTreeMap::new()),
            shape_cache: RefCell::new(HashMap::new()),
            annotations: RefCell::new(Vec::new()),
        }
    }

    /// A graph input as a traced tensor.
    pub fn input(&self, name: &str, elem: Elem, dims: Vec<Option<Dim>>) -> TV {
        TV {
            name: name.into(),
            elem,
            dims,
        }
    }

    fn tv(&self, name: String, elem: Elem, dims: Vec<Option<Dim>>) -> TV {
        let t = TV {
            name: name.into(),
            elem,
            dims,
        };
        self.annotations.borrow_mut().push(t.clone());
        t
    }

    /// The exact k-largest set of each row of `x` [B, N] from standard ops, without TopK:
    /// bisection for the k-th largest value t (invariant: at least k scores ≥ lo, fewer than k
    /// ≥ hi), then every score ≥ hi plus the lowest-index scores in [lo, hi) up to k. Returns
    /// int64 indices [B, k] in ascending index order (NonZero's order).
    fn threshold_select(&self, x: &TV, k: &Dim) -> Result<TV> {
        let count_ge = |t: &str| -> String {
            let ge = self.node1("GreaterOrEqual", &[&x.name, t], &[]);
            let c = self.node1("Cast", &[&ge], &[("to", Attr::Int(7))]);
            self.axes_attr_or_input("ReduceSum", &c, &[1], 1) // [B, 1]
        };
        let kn = self.dim_value_name(k); // [1]
        let lo0 = self.axes_attr_or_input("ReduceMin", &x.name, &[1], 1);
        let mx = self.axes_attr_or_input("ReduceMax", &x.name, &[1], 1);
        // hi = max + |max| + 1 > max for every float32 max.
        let abs = self.node1("Abs", &[&mx], &[]);
        let one = self.cf32_scalar(1.0);
        let half = self.cf32_scalar(0.5);
        let hi0 = self.node1("Add", &[&mx, &abs], &[]);
        let hi0 = self.node1("Add", &[&hi0, &one], &[]);
        let (mut lo, mut hi) = (lo0, hi0);
        for _ in 0..THRESHOLD_ROUNDS {
            let sum = self.node1("Add", &[&lo, &hi], &[]);
            let mid = self.node1("Mul", &[&sum, &half], &[]);
            let enough = self.node1("GreaterOrEqual", &[&count_ge(&mid), &kn], &[]);
            lo = self.node1("Where", &[&enough, &mid, &lo], &[]);
            hi = self.node1("Where", &[&enough, &hi, &mid], &[]);
        }
        let above = self.node1("GreaterOrEqual", &[&x.name, &hi], &[]);
        let need = self.node1("Sub", &[&kn, &count_ge(&hi)], &[]); // [B, 1]
        let ge_lo = self.node1("GreaterOrEqual", &[&x.name, &lo], &[]);
        let not_above = self.node1("Not", &[&above], &[]);
        let band = self.node1("And", &[&ge_lo, &not_above], &[]);
        // CumSum and NonZero run on float32: TensorRT's parser takes only floating types for
        // both (onnx-tensorrt docs/operators.md). Counts below 2^24 are exact in float32, and a
        // row has far fewer tokens.
        let band_f = self.node1("Cast", &[&band], &[("to", Attr::Int(1))]);
        let axis = self.g.borrow_mut().const_i64(&[1], &[]); // CumSum's axis is a scalar
        let rank = self.node1("CumSum", &[&band_f, &axis], &[]); // 1-based within the band
        let need_f = self.node1("Cast", &[&need], &[("to", Attr::Int(1))]);
        let within = self.node1("LessOrEqual", &[&rank, &need_f], &[]);
        let tied = self.node1("And", &[&band, &within], &[]);
        let keep = self.node1("Or", &[&above, &tied], &[]); // exactly k per row
        let keep_f = self.node1("Cast", &[&keep], &[("to", Attr::Int(1))]);
        let nz = self.node1("NonZero", &[&keep_f], &[]); // [2, B·k], row-major
        let cols = self.node1(
            "Gather",
            &[&nz, &self.ci64(&[1])],
            &[("axis", Attr::Int(0))],
        ); // [1, B·k]
        let bs = self.dim(x, 0)?;
        // [B, −1]: the row length k follows from the count (a k known only at run time then
        // needs no shape arithmetic).
        let o = self.reshape(
            &self.tv(cols, Elem::I64, vec![Some(Dim::Const(1)), None]),
            &[Some(bs.clone()), None],
        )?;
        Ok(TV {
            dims: vec![Some(bs), Some(k.clone())],
            ..o
        })
    }

    /// Deformable attention as one node: our custom op, or TensorRT's plugin (int32 level
    /// tables, 4-D output reshaped to [B, Q, M·D]).
    fn ms_deform_attn_node(
        &self,
        value: &TV,
        shapes: &[(Dim, Dim)],
        loc: &TV,
        weights: &TV,
    ) -> Result<TV> {
        let flat: Vec<Dim> = shapes
            .iter()
            .flat_map(|(h, w)| [h.clone(), w.clone()])
            .collect();
        let table = self.dims_to_i64(&flat)?;
        let table = self.reshape(
            &table,
            &[Some(Dim::Const(shapes.len() as i64)), Some(Dim::Const(2))],
        )?;
        let mut starts = vec![Dim::Const(0)];
        for (h, w) in &shapes[..shapes.len() - 1] {
            let hw = self.dim_mul(h, w)?;
            starts.push(self.dim_add(starts.last().unwrap_or(&Dim::Const(0)), &hw)?);
        }
        let starts = self.dims_to_i64(&starts)?;
        let (bs, nq) = (self.dim(value, 0)?, self.dim(loc, 1)?);
        let (nh, hd) = (self.dim(value, 2)?, self.dim(value, 3)?);
        let md = self.dim_mul(&nh, &hd)?;
        if self.forms.msda == MsdaForm::Custom {
            let op = &focus_ops::decl::MS_DEFORM_ATTN;
            let o = self.g.borrow_mut().node_in_domain(
                op.op_type,
                op.domain,
                &[
                    &value.name,
                    &table.name,
                    &starts.name,
                    &loc.name,
                    &weights.name,
                ],
                1,
                &[],
            );
            return Ok(self.tv(o[0].clone(), Elem::F32, vec![Some(bs), Some(nq), Some(md)]));
        }
        let op = &focus_ops::decl::TRT_MS_DEFORM_ATTN;
        let i32s = |t: &TV| {
            let o = self.node1("Cast", &[&t.name], &[("to", Attr::Int(6))]);
            self.tv(o, Elem::I32, t.dims.clone())
        };
        let (table, starts) = (i32s(&table), i32s(&starts));
        let o = self.g.borrow_mut().node_in_domain(
            op.op_type,
            op.domain,
            &[
                &value.name,
                &table.name,
                &starts.name,
                &loc.name,
                &weights.name,
            ],
            1,
            &[("plugin_version", Attr::Str(op.version.to_string()))],
        );
        // The plugin has no ONNX shape inference: its output gets explicit value_info (the
        // annotation of this value).
        let o = self.tv(
            o[0].clone(),
            Elem::F32,
            vec![Some(bs.clone()), Some(nq.clone()), Some(nh), Some(hd)],
        );
        self.reshape(&o, &[Some(bs), Some(nq), Some(md)])
    }

    /// Declares the type and shape of every traced value in the graph's value_info; computed
    /// sizes that are a graph input's own size get that input's dimension name (`names` maps
    /// (input, axis) to it), others stay unnamed.
    pub fn annotate_values(&self, names: &[(&str, usize, &str)]) {
        let named: HashMap<Rc<str>, &str> = names
            .iter()
            .filter_map(|(input, axis, n)| {
                match self.shape_cache.borrow().get(&(Rc::from(*input), *axis)) {
                    Some(Dim::Dyn(v)) => Some((v.clone(), *n)),
                    _ => None,
                }
            })
            .collect();
        let mut seen = HashSet::new();
        let mut g = self.g.borrow_mut();
        for TV { name, elem, dims } in self.annotations.borrow().iter() {
            // Node outputs only (initializers and graph inputs are declared elsewhere).
            if !g.is_node_output(name) || !seen.insert(name.clone()) {
                continue;
            }
            let decl: Vec<DeclDim> = dims
                .iter()
                .map(|d| match d {
                    Some(Dim::Const(v)) => DeclDim::Fixed(*v),
                    Some(Dim::Dyn(v)) => named
                        .get(v)
                        .map_or(DeclDim::Unknown, |n| DeclDim::Named((*n).to_string())),
                    None => DeclDim::Unknown,
                })
                .collect();
            g.annotate(name, *elem, &decl);
        }
    }

    fn node1(&self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.g.borrow_mut().node(op, inputs, 1, attrs).remove(0)
    }

    fn ci64(&self, v: &[i64]) -> String {
        self.g.borrow_mut().const_i64(v, &[v.len() as i64])
    }

    fn cf32_scalar(&self, v: f32) -> String {
        self.g.borrow_mut().const_f32(&[v], &[])
    }

    /// The [1] int64 value of a dim.
    fn dim_value_name(&self, d: &Dim) -> String {
        match d {
            Dim::Const(v) => self.ci64(&[*v]),
            Dim::Dyn(n) => n.to_string(),
        }
    }

    /// A 1-d int64 shape tensor from dims (`None` → `fill`).
    fn shape_tensor(&self, dims: &[Option<Dim>], fill: i64) -> String {
        if dims.iter().all(|d| !matches!(d, Some(Dim::Dyn(_)))) {
            let v: Vec<i64> = dims
                .iter()
                .map(|d| match d {
                    Some(Dim::Const(v)) => *v,
                    _ => fill,
                })
                .collect();
            return self.ci64(&v);
        }
        let parts: Vec<String> = dims
            .iter()
            .map(|d| match d {
                Some(d) => self.dim_value_name(d),
                None => self.ci64(&[fill]),
            })
            .collect();
        let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
        self.node1("Concat", &refs, &[("axis", Attr::Int(0))])
    }

    fn axes_attr_or_input(&self, op: &str, x: &str, axes: &[i64], keepdims: i64) -> String {
        // ReduceSum takes axes as an input from opset 13, the other Reduce ops from opset 18.
        if self.opset >= 18 || op == "ReduceSum" {
            let a = self.ci64(axes);
            self.node1(op, &[x, &a], &[("keepdims", Attr::Int(keepdims))])
        } else {
            self.node1(
                op,
                &[x],
                &[
                    ("axes", Attr::Ints(axes.to_vec())),
                    ("keepdims", Attr::Int(keepdims)),
                ],
            )
        }
    }

    fn unary(&self, op: &str, x: &TV) -> TV {
        let o = self.node1(op, &[&x.name], &[]);
        self.tv(o, x.elem, x.dims.clone())
    }

    fn broadcast_dims(a: &[Option<Dim>], b: &[Option<Dim>]) -> Vec<Option<Dim>> {
        let n = a.len().max(b.len());
        (0..n)
            .map(|i| {
                let da = if i + a.len() >= n {
                    a[i + a.len() - n].clone()
                } else {
                    Some(Dim::Const(1))
                };
                let db = if i + b.len() >= n {
                    b[i + b.len() - n].clone()
                } else {
                    Some(Dim::Const(1))
                };
                match (da, db) {
                    (Some(Dim::Const(1)), d) | (d, Some(Dim::Const(1))) => d,
                    (Some(x), Some(y)) if x == y => Some(x),
                    (Some(Dim::Const(x)), _) | (_, Some(Dim::Const(x))) => Some(Dim::Const(x)),
                    _ => None,
                }
            })
            .collect()
    }

    fn binary(&self, op: &str, a: &TV, b: &TV, elem: Elem) -> TV {
        let o = self.node1(op, &[&a.name, &b.name], &[]);
        self.tv(o, elem, Self::broadcast_dims(&a.dims, &b.dims))
    }

    fn scalar_binary(&self, op: &str, x: &TV, s: f64) -> TV {
        self.scalar_op(op, x, s, x.elem)
    }

    /// `x op s` with a float32 scalar, giving `elem` (Bool for comparisons).
    fn scalar_op(&self, op: &str, x: &TV, s: f64, elem: Elem) -> TV {
        let c = self.cf32_scalar(s as f32);
        let o = self.node1(op, &[&x.name, &c], &[]);
        self.tv(o, elem, x.dims.clone())
    }

    fn i64_scalar_binary(&self, op: &str, x: &TV, s: i64) -> TV {
        let c = self.g.borrow_mut().const_i64(&[s], &[]);
        let o = self.node1(op, &[&x.name, &c], &[]);
        self.tv(o, x.elem, x.dims.clone())
    }

    fn dim_binary(&self, op: &str, a: &Dim, b: &Dim, f: fn(i64, i64) -> i64) -> Dim {
        match (a, b) {
            (Dim::Const(x), Dim::Const(y)) => Dim::Const(f(*x, *y)),
            _ => {
                let (x, y) = (self.dim_value_name(a), self.dim_value_name(b));
                Dim::Dyn(self.node1(op, &[&x, &y], &[]).into())
            }
        }
    }

    /// 0, 1, …, n − 1 as int64 [n] (a constant when n is).
    fn arange_i64(&self, n: &Dim) -> Result<TV> {
        let name = match n {
            Dim::Const(v) => {
                let vals: Vec<i64> = (0..*v).collect();
                self.g.borrow_mut().const_i64(&vals, &[*v])
            }
            Dim::Dyn(_) => {
                let ax = self.ci64(&[0]);
                let limit = self.node1("Squeeze", &[&self.dim_value_name(n), &ax], &[]);
                let z = self.g.borrow_mut().const_i64(&[0], &[]);
                let one = self.g.borrow_mut().const_i64(&[1], &[]);
                self.node1("Range", &[&z, &limit, &one], &[])
            }
        };
        Ok(self.tv(name, Elem::I64, vec![Some(n.clone())]))
    }

    fn rank_axis(x: &TV, axis: usize) -> Result<usize> {
        if axis < x.dims.len() {
            Ok(axis)
        } else {
            Err(bad(
                "axis",
                format!("axis {axis} of a rank-{} tensor", x.dims.len()),
            ))
        }
    }
}

impl Backend for OnnxTracer<'_> {
    type Tensor = TV;
    type Dim = Dim;

    fn scope(&self, name: &str) {
        self.g.borrow_mut().push_scope(name);
    }
    fn end_scope(&self) {
        self.g.borrow_mut().pop_scope();
    }

    fn param(&self, p: &Param) -> Result<TV> {
        if self.added.borrow_mut().insert(p.key.clone()) {
            // Checked now (present, convertible to float32); the data itself is streamed from
            // the weights file when the model is written (`ExportSummary::write_to`).
            let data = self
                .weights
                .ok_or_else(|| bad("param", format!("no weights for `{}`", p.key)))?
                .get(p)?;
            let want: usize = p.shape.iter().product();
            if data.len() != want {
                return Err(bad(
                    "param",
                    format!(
                        "`{}` holds {} values, its shape {:?} needs {want}",
                        p.key,
                        data.len(),
                        p.shape
                    ),
                ));
            }
            let dims: Vec<i64> = p.shape.iter().map(|&d| d as i64).collect();
            self.g
                .borrow_mut()
                .initializer(&p.key, Elem::F32, &dims, Vec::new());
            self.deferred.borrow_mut().insert(p.key.clone(), p.clone());
        }
        Ok(TV {
            name: p.key.as_str().into(),
            elem: Elem::F32,
            dims: p
                .shape
                .iter()
                .map(|&d| Some(Dim::Const(d as i64)))
                .collect(),
        })
    }
    fn const_f32(&self, values: &[f32], shape: &[usize]) -> Result<TV> {
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let n = self.g.borrow_mut().const_f32(values, &dims);
        Ok(self.tv(
            n,
            Elem::F32,
            dims.iter().map(|&d| Some(Dim::Const(d))).collect(),
        ))
    }
    fn arange_f32(&self, n: &Dim) -> Result<TV> {
        if let Dim::Const(v) = n {
            let vals: Vec<f32> = (0..*v).map(|i| i as f32).collect();
            return self.const_f32(&vals, &[*v as usize]);
        }
        // An integer Range (its length follows the size symbolically), then float32.
        let r = self.arange_i64(n)?;
        let o = self.node1("Cast", &[&r.name], &[("to", Attr::Int(1))]);
        Ok(self.tv(o, Elem::F32, vec![Some(n.clone())]))
    }
    fn dims_to_i64(&self, dims: &[Dim]) -> Result<TV> {
        let s = self.shape_tensor(&dims.iter().cloned().map(Some).collect::<Vec<_>>(), 0);
        Ok(self.tv(s, Elem::I64, vec![Some(Dim::Const(dims.len() as i64))]))
    }
    fn dim_to_f32(&self, d: &Dim) -> Result<TV> {
        let name = match d {
            Dim::Const(v) => self.cf32_scalar(*v as f32),
            Dim::Dyn(n) => {
                let f = self.node1("Cast", &[n], &[("to", Attr::Int(1))]);
                let ax = self.ci64(&[0]);
                self.node1("Squeeze", &[&f, &ax], &[])
            }
        };
        Ok(self.tv(name, Elem::F32, vec![]))
    }

    fn select_nonneg(&self, a: &TV, b: &TV) -> Result<TV> {
        let zero = self.g.borrow_mut().const_i64(&[0], &[]);
        let m = self.node1("GreaterOrEqual", &[&a.name, &zero], &[]);
        let o = self.node1("Where", &[&m, &a.name, &b.name], &[]);
        Ok(self.tv(o, Elem::I64, b.dims.clone()))
    }

    fn to_f32(&self, x: &TV) -> Result<TV> {
        let o = self.node1("Cast", &[&x.name], &[("to", Attr::Int(1))]);
        Ok(self.tv(o, Elem::F32, x.dims.clone()))
    }

    fn dim(&self, x: &TV, axis: usize) -> Result<Dim> {
        let axis = Self::rank_axis(x, axis)?;
        if let Some(d) = &x.dims[axis] {
            return Ok(d.clone());
        }
        let key = (x.name.clone(), axis);
        if let Some(d) = self.shape_cache.borrow().get(&key) {
            return Ok(d.clone());
        }
        let s = self.node1(
            "Shape",
            &[&x.name],
            &[
                ("start", Attr::Int(axis as i64)),
                ("end", Attr::Int(axis as i64 + 1)),
            ],
        );
        let d = Dim::Dyn(s.into());
        self.shape_cache.borrow_mut().insert(key, d.clone());
        Ok(d)
    }
    fn dim_const(&self, v: i64) -> Dim {
        Dim::Const(v)
    }
    fn dim_value(&self, d: &Dim) -> Option<i64> {
        match d {
            Dim::Const(v) => Some(*v),
            Dim::Dyn(_) => None,
        }
    }
    fn dim_add(&self, a: &Dim, b: &Dim) -> Result<Dim> {
        Ok(self.dim_binary("Add", a, b, |x, y| x + y))
    }
    fn dim_mul(&self, a: &Dim, b: &Dim) -> Result<Dim> {
        Ok(self.dim_binary("Mul", a, b, |x, y| x * y))
    }
    fn dim_floor_div(&self, a: &Dim, m: i64) -> Result<Dim> {
        // Sizes are non-negative, where ONNX's integer Div (truncating) is floor division.
        Ok(self.dim_binary("Div", a, &Dim::Const(m), i64::div_euclid))
    }
    fn dim_scale(&self, a: &Dim, c: f32) -> Result<Dim> {
        Ok(match a {
            Dim::Const(v) => Dim::Const((c * *v as f32) as i64),
            Dim::Dyn(n) => {
                // Integer form when it is exact (shape-inferring runtimes can follow it)...
                if let Some((p, q)) = focus_models::config::exact_ratio(c) {
                    let m = self.dim_binary("Mul", a, &Dim::Const(p as i64), |x, y| x * y);
                    return Ok(self.dim_binary("Div", &m, &Dim::Const(q as i64), |x, y| x / y));
                }
                // ...else the float32 product truncated toward zero, as int(float32 tensor) does.
                let f = self.node1("Cast", &[n], &[("to", Attr::Int(1))]);
                let cc = self.g.borrow_mut().const_f32(&[c], &[1]);
                let p = self.node1("Mul", &[&f, &cc], &[]);
                Dim::Dyn(self.node1("Cast", &[&p], &[("to", Attr::Int(7))]).into())
            }
        })
    }

    fn add(&self, a: &TV, b: &TV) -> Result<TV> {
        Ok(self.binary("Add", a, b, a.elem))
    }
    fn sub(&self, a: &TV, b: &TV) -> Result<TV> {
        Ok(self.binary("Sub", a, b, a.elem))
    }
    fn mul(&self, a: &TV, b: &TV) -> Result<TV> {
        Ok(self.binary("Mul", a, b, a.elem))
    }
    fn div(&self, a: &TV, b: &TV) -> Result<TV> {
        Ok(self.binary("Div", a, b, a.elem))
    }
    fn add_scalar(&self, x: &TV, s: f64) -> Result<TV> {
        Ok(self.scalar_binary("Add", x, s))
    }
    fn mul_scalar(&self, x: &TV, s: f64) -> Result<TV> {
        Ok(self.scalar_binary("Mul", x, s))
    }
    fn div_scalar(&self, x: &TV, s: f64) -> Result<TV> {
        Ok(self.scalar_binary("Div", x, s))
    }
    fn rsub_scalar(&self, x: &TV, s: f64) -> Result<TV> {
        let c = self.cf32_scalar(s as f32);
        let o = self.node1("Sub", &[&c, &x.name], &[]);
        Ok(self.tv(o, x.elem, x.dims.clone()))
    }
    fn scalar_pow(&self, base: f64, x: &TV) -> Result<TV> {
        let c = self.cf32_scalar(base as f32);
        let o = self.node1("Pow", &[&c, &x.name], &[]);
        Ok(self.tv(o, x.elem, x.dims.clone()))
    }
    fn relu(&self, x: &TV) -> Result<TV> {
        Ok(self.unary("Relu", x))
    }
    fn gelu(&self, x: &TV) -> Result<TV> {
        if self.opset >= 20 {
            return Ok(self.unary("Gelu", x));
        }
        // 0.5·x·(1 + erf(x/√2))
        let r = self.scalar_binary("Div", x, std::f64::consts::SQRT_2);
        let e = self.unary("Erf", &r);
        let e1 = self.scalar_binary("Add", &e, 1.0);
        let m = self.binary("Mul", x, &e1, Elem::F32);
        Ok(self.scalar_binary("Mul", &m, 0.5))
    }
    fn sigmoid(&self, x: &TV) -> Result<TV> {
        Ok(self.unary("Sigmoid", x))
    }
    fn sin(&self, x: &TV) -> Result<TV> {
        Ok(self.unary("Sin", x))
    }
    fn cos(&self, x: &TV) -> Result<TV> {
        Ok(self.unary("Cos", x))
    }
    fn log(&self, x: &TV) -> Result<TV> {
        Ok(self.unary("Log", x))
    }
    fn rsqrt(&self, x: &TV) -> Result<TV> {
        Ok(self.unary("Reciprocal", &self.unary("Sqrt", x)))
    }
    fn clamp(&self, x: &TV, min: Option<f64>, max: Option<f64>) -> Result<TV> {
        let lo = min.map(|v| self.cf32_scalar(v as f32)).unwrap_or_default();
        let hi = max.map(|v| self.cf32_scalar(v as f32)).unwrap_or_default();
        let o = self.node1("Clip", &[&x.name, &lo, &hi], &[]);
        Ok(self.tv(o, x.elem, x.dims.clone()))
    }
    fn gt_scalar(&self, x: &TV, s: f64) -> Result<TV> {
        Ok(self.scalar_op("Greater", x, s, Elem::Bool))
    }
    fn lt_scalar(&self, x: &TV, s: f64) -> Result<TV> {
        Ok(self.scalar_op("Less", x, s, Elem::Bool))
    }
    fn and(&self, a: &TV, b: &TV) -> Result<TV> {
        Ok(self.binary("And", a, b, Elem::Bool))
    }
    fn not(&self, x: &TV) -> Result<TV> {
        Ok(self.unary("Not", x))
    }
    fn masked_fill(&self, x: &TV, mask: &TV, value: f64) -> Result<TV> {
        let c = self.cf32_scalar(value as f32);
        let o = self.node1("Where", &[&mask.name, &c, &x.name], &[]);
        Ok(self.tv(o, x.elem, Self::broadcast_dims(&x.dims, &mask.dims)))
    }
    fn floor_div_scalar(&self, x: &TV, s: i64) -> Result<TV> {
        // Indices are non-negative: integer division truncates = floors.
        Ok(self.i64_scalar_binary("Div", x, s))
    }
    fn rem_scalar(&self, x: &TV, s: i64) -> Result<TV> {
        Ok(self.i64_scalar_binary("Mod", x, s))
    }

    fn mean_keepdim(&self, x: &TV, axis: usize) -> Result<TV> {
        let a = Self::rank_axis(x, axis)?;
        let o = self.axes_attr_or_input("ReduceMean", &x.name, &[a as i64], 1);
        let mut dims = x.dims.clone();
        dims[a] = Some(Dim::Const(1));
        Ok(self.tv(o, x.elem, dims))
    }
    fn max(&self, x: &TV, axis: usize) -> Result<TV> {
        let a = Self::rank_axis(x, axis)?;
        let o = self.axes_attr_or_input("ReduceMax", &x.name, &[a as i64], 0);
        let mut dims = x.dims.clone();
        dims.remove(a);
        Ok(self.tv(o, x.elem, dims))
    }
    fn all_keepdim(&self, x: &TV, axis: usize) -> Result<TV> {
        let a = Self::rank_axis(x, axis)?;
        let f = self.node1("Cast", &[&x.name], &[("to", Attr::Int(1))]);
        let m = self.axes_attr_or_input("ReduceMin", &f, &[a as i64], 1);
        let o = self.node1("Cast", &[&m], &[("to", Attr::Int(9))]);
        let mut dims = x.dims.clone();
        dims[a] = Some(Dim::Const(1));
        Ok(self.tv(o, Elem::Bool, dims))
    }
    fn softmax(&self, x: &TV, axis: usize) -> Result<TV> {
        let a = Self::rank_axis(x, axis)?;
        let o = self.node1("Softmax", &[&x.name], &[("axis", Attr::Int(a as i64))]);
        Ok(self.tv(o, x.elem, x.dims.clone()))
    }

    fn linear(&self, x: &TV, w: &TV, b: Option<&TV>) -> Result<TV> {
        let wt = self.node1("Transpose", &[&w.name], &[("perm", Attr::Ints(vec![1, 0]))]);
        let mut o = self.node1("MatMul", &[&x.name, &wt], &[]);
        if let Some(b) = b {
            o = self.node1("Add", &[&o, &b.name], &[]);
        }
        let mut dims = x.dims.clone();
        if let Some(last) = dims.last_mut() {
            *last = w.dims[0].clone();
        }
        Ok(self.tv(o, Elem::F32, dims))
    }
    fn bmm(&self, a: &TV, b: &TV) -> Result<TV> {
        let o = self.node1("MatMul", &[&a.name, &b.name], &[]);
        Ok(self.tv(
            o,
            Elem::F32,
            vec![a.dims[0].clone(), a.dims[1].clone(), b.dims[2].clone()],
        ))
    }
    fn conv2d(&self, x: &TV, w: &TV, b: Option<&TV>, stride: usize, padding: usize) -> Result<TV> {
        let (s, p) = (stride as i64, padding as i64);
        let k = match &w.dims[2] {
            Some(Dim::Const(k)) => *k,
            _ => return Err(bad("conv2d", "kernel size must be static")),
        };
        let mut ins = vec![x.name.to_string(), w.name.to_string()];
        if let Some(b) = b {
            ins.push(b.name.to_string());
        }
        let refs: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
        let o = self.node1("Conv", &refs, &window_attrs(k, s, p));
        Ok(self.tv(
            o,
            Elem::F32,
            vec![
                x.dims[0].clone(),
                w.dims[0].clone(),
                window_out(&x.dims[2], k, s, p),
                window_out(&x.dims[3], k, s, p),
            ],
        ))
    }
    fn max_pool2d(&self, x: &TV, kernel: usize, stride: usize, padding: usize) -> Result<TV> {
        let (k, s, p) = (kernel as i64, stride as i64, padding as i64);
        let o = self.node1("MaxPool", &[&x.name], &window_attrs(k, s, p));
        Ok(self.tv(
            o,
            Elem::F32,
            vec![
                x.dims[0].clone(),
                x.dims[1].clone(),
                window_out(&x.dims[2], k, s, p),
                window_out(&x.dims[3], k, s, p),
            ],
        ))
    }
    fn layer_norm(&self, x: &TV, w: &TV, b: &TV, eps: f64) -> Result<TV> {
        if self.opset >= 17 {
            let o = self.node1(
                "LayerNormalization",
                &[&x.name, &w.name, &b.name],
                &[
                    ("axis", Attr::Int(-1)),
                    ("epsilon", Attr::Float(eps as f32)),
                ],
            );
            return Ok(self.tv(o, Elem::F32, x.dims.clone()));
        }
        let last = x.dims.len() - 1;
        let mean = self.mean_keepdim(x, last)?;
        let c = self.sub(x, &mean)?;
        let var = self.mean_keepdim(&self.mul(&c, &c)?, last)?;
        let den = self.rsqrt(&self.add_scalar(&var, eps)?)?;
        let n = self.mul(&c, &den)?;
        self.add(&self.mul(&n, w)?, b)
    }
    fn batch_norm(&self, x: &TV, w: &TV, b: &TV, mean: &TV, var: &TV, eps: f64) -> Result<TV> {
        let o = self.node1(
            "BatchNormalization",
            &[&x.name, &w.name, &b.name, &mean.name, &var.name],
            &[("epsilon", Attr::Float(eps as f32))],
        );
        Ok(self.tv(o, Elem::F32, x.dims.clone()))
    }
    fn group_norm(&self, x: &TV, groups: usize, w: &TV, b: &TV, eps: f64) -> Result<TV> {
        // Per (image, group) normalisation over channels-in-group × H × W, then per-channel affine.
        let bs = self.dim(x, 0)?;
        let c = self.dim(x, 1)?;
        // [B, G, C/G, H·W]: means over H·W, then over the group's channels (equal counts, so
        // the mean of means is the mean). Two short reductions instead of one over
        // (C/G)·H·W values keep float32 sums accurate on runtimes that add sequentially
        // (tract: 118 000 values per group at 800×1184).
        let cg = match &c {
            Dim::Const(c) if *c % groups as i64 == 0 => Some(Dim::Const(*c / groups as i64)),
            _ => None,
        };
        let g = self.reshape(x, &[Some(bs), Some(Dim::Const(groups as i64)), cg, None])?;
        let two_level = |t: &TV| -> Result<TV> { self.mean_keepdim(&self.mean_keepdim(t, 3)?, 2) };
        let mean = two_level(&g)?;
        let d = self.sub(&g, &mean)?;
        let var = two_level(&self.mul(&d, &d)?)?;
        let n = self.mul(&d, &self.rsqrt(&self.add_scalar(&var, eps)?)?)?;
        let shape = self.node1("Shape", &[&x.name], &[]);
        let n = self.tv(
            self.node1("Reshape", &[&n.name, &shape], &[]),
            Elem::F32,
            x.dims.clone(),
        );
        let one = Some(Dim::Const(1));
        let w4 = self.reshape(w, &[Some(c.clone()), one.clone(), one.clone()])?;
        let b4 = self.reshape(b, &[Some(c), one.clone(), one])?;
        self.add(&self.mul(&n, &w4)?, &b4)
    }
    fn resize_bilinear_align_corners(&self, x: &TV, h: &Dim, w: &Dim) -> Result<TV> {
        let sizes = self.shape_tensor(
            &[
                x.dims[0].clone().or_else(|| self.dim(x, 0).ok()),
                x.dims[1].clone().or_else(|| self.dim(x, 1).ok()),
                Some(h.clone()),
                Some(w.clone()),
            ],
            1,
        );
        let o = self.g.borrow_mut().node(
            "Resize",
            &[&x.name, "", "", &sizes],
            1,
            &[
                ("mode", Attr::Str("linear".into())),
                (
                    "coordinate_transformation_mode",
                    Attr::Str("align_corners".into()),
                ),
            ],
        );
        Ok(self.tv(
            o[0].clone(),
            Elem::F32,
            vec![
                x.dims[0].clone(),
                x.dims[1].clone(),
                Some(h.clone()),
                Some(w.clone()),
            ],
        ))
    }

    fn reshape(&self, x: &TV, shape: &[Option<Dim>]) -> Result<TV> {
        // A computed size that is the input's own size at the same axis is written as 0 ("copy
        // from the input"): runtimes that reason about shapes symbolically (tract) then need not
        // prove two size formulas equal.
        let request: Vec<Option<Dim>> = shape
            .iter()
            .enumerate()
            .map(|(i, d)| match (d, x.dims.get(i)) {
                (Some(Dim::Dyn(a)), Some(Some(Dim::Dyn(b)))) if a == b => Some(Dim::Const(0)),
                _ => d.clone(),
            })
            .collect();
        let s = self.shape_tensor(&request, -1);
        let o = self.node1("Reshape", &[&x.name, &s], &[]);
        Ok(self.tv(o, x.elem, shape.to_vec()))
    }
    fn permute(&self, x: &TV, perm: &[usize]) -> Result<TV> {
        let o = self.node1(
            "Transpose",
            &[&x.name],
            &[("perm", Attr::Ints(perm.iter().map(|&p| p as i64).collect()))],
        );
        Ok(self.tv(o, x.elem, perm.iter().map(|&p| x.dims[p].clone()).collect()))
    }
    fn concat(&self, xs: &[TV], axis: usize) -> Result<TV> {
        let refs: Vec<&str> = xs.iter().map(|x| &*x.name).collect();
        let o = self.node1("Concat", &refs, &[("axis", Attr::Int(axis as i64))]);
        let mut dims = xs[0].dims.clone();
        dims[axis] = xs
            .iter()
            .try_fold(0i64, |acc, x| match &x.dims[axis] {
                Some(Dim::Const(v)) => Some(acc + v),
                _ => None,
            })
            .map(Dim::Const);
        Ok(self.tv(o, xs[0].elem, dims))
    }
    fn stack(&self, xs: &[TV], axis: usize) -> Result<TV> {
        let us = xs
            .iter()
            .map(|x| self.unsqueeze(x, axis))
            .collect::<Result<Vec<_>>>()?;
        self.concat(&us, axis)
    }
    fn slice(&self, x: &TV, axis: usize, start: &Dim, end: Option<&Dim>) -> Result<TV> {
        let a = Self::rank_axis(x, axis)?;
        let s = self.dim_value_name(start);
        let e = match end {
            Some(e) => self.dim_value_name(e),
            None => self.ci64(&[i64::MAX]),
        };
        let ax = self.ci64(&[a as i64]);
        let o = self.node1("Slice", &[&x.name, &s, &e, &ax], &[]);
        let mut dims = x.dims.clone();
        dims[a] = match (start, end, &x.dims[a]) {
            (Dim::Const(s), Some(Dim::Const(e)), _) => Some(Dim::Const(e - s)),
            (Dim::Const(s), None, Some(Dim::Const(n))) => Some(Dim::Const(n - s)),
            _ => None,
        };
        Ok(self.tv(o, x.elem, dims))
    }
    fn slice_step(&self, x: &TV, axis: usize, start: usize, step: usize) -> Result<TV> {
        let a = Self::rank_axis(x, axis)?;
        let (s, e, ax, st) = (
            self.ci64(&[start as i64]),
            self.ci64(&[i64::MAX]),
            self.ci64(&[a as i64]),
            self.ci64(&[step as i64]),
        );
        let o = self.node1("Slice", &[&x.name, &s, &e, &ax, &st], &[]);
        let mut dims = x.dims.clone();
        dims[a] = match &x.dims[a] {
            Some(Dim::Const(n)) => Some(Dim::Const(
                (n - start as i64 + step as i64 - 1).max(0) / step as i64,
            )),
            _ => None,
        };
        Ok(self.tv(o, x.elem, dims))
    }
    fn pad_end(&self, x: &TV, axis: usize, size: &Dim) -> Result<TV> {
        let a = Self::rank_axis(x, axis)?;
        let cur = self.dim(x, a)?;
        if cur == *size {
            return Ok(x.clone());
        }
        let amount = self.dim_binary("Sub", size, &cur, |s, n| s - n);
        // Pad's pads: every axis' begin, then every axis' end.
        let rank = x.dims.len();
        let pads: Vec<Option<Dim>> = (0..2 * rank)
            .map(|i| {
                Some(if i == rank + a {
                    amount.clone()
                } else {
                    Dim::Const(0)
                })
            })
            .collect();
        let p = self.shape_tensor(&pads, 0);
        let o = self.node1("Pad", &[&x.name, &p], &[]);
        let mut dims = x.dims.clone();
        dims[a] = Some(size.clone());
        Ok(self.tv(o, x.elem, dims))
    }
    fn take(&self, x: &TV, axis: usize, indices: &[i64]) -> Result<TV> {
        let a = Self::rank_axis(x, axis)?;
        let i = self.ci64(indices);
        let o = self.node1("Gather", &[&x.name, &i], &[("axis", Attr::Int(a as i64))]);
        let mut dims = x.dims.clone();
        dims[a] = Some(Dim::Const(indices.len() as i64));
        Ok(self.tv(o, x.elem, dims))
    }
    fn unsqueeze(&self, x: &TV, axis: usize) -> Result<TV> {
        let ax = self.ci64(&[axis as i64]);
        let o = self.node1("Unsqueeze", &[&x.name, &ax], &[]);
        let mut dims = x.dims.clone();
        dims.insert(axis, Some(Dim::Const(1)));
        Ok(self.tv(o, x.elem, dims))
    }
    fn expand(&self, x: &TV, shape: &[Option<Dim>]) -> Result<TV> {
        // One enlarged axis of known size 1 is written as a Gather of row 0 repeated: tract
        // 0.23.9's declutter mis-rewrites a MatMul over Concat(x, Expand(g)) (or Tile), replacing
        // the broadcast operand by the un-broadcast g; the Gather computes the same values.
        let enlarged: Vec<usize> = (0..shape.len())
            .filter(|&i| !matches!(shape[i], None | Some(Dim::Const(1))) && x.dims[i] != shape[i])
            .collect();
        let o = match enlarged[..] {
            [axis] if x.dims[axis] == Some(Dim::Const(1)) => {
                let n = shape[axis].clone().unwrap_or(Dim::Const(1));
                let n = self.dim_value_name(&n);
                // [n] zeros: ConstantOfShape's default value is float 0.
                let zeros = self.node1("ConstantOfShape", &[&n], &[]);
                let rows = self.node1("Cast", &[&zeros], &[("to", Attr::Int(7))]);
                self.node1(
                    "Gather",
                    &[&x.name, &rows],
                    &[("axis", Attr::Int(axis as i64))],
                )
            }
            _ => {
                // A 1 in Expand's shape keeps the input's size, which is what `None` asks for.
                let s = self.shape_tensor(shape, 1);
                self.node1("Expand", &[&x.name, &s], &[])
            }
        };
        let dims = shape
            .iter()
            .zip(&x.dims)
            .map(|(s, d)| match s {
                None | Some(Dim::Const(1)) => d.clone(),
                Some(v) => Some(v.clone()),
            })
            .collect();
        Ok(self.tv(o, x.elem, dims))
    }

    fn topk(&self, x: &TV, k: &Dim) -> Result<(TV, TV)> {
        let kn = self.dim_value_name(k);
        let outs = if self.forms.topk == TopkForm::Custom && x.dims.len() == 2 {
            let op = &focus_ops::decl::DYNAMIC_TOPK;
            self.g
                .borrow_mut()
                .node_in_domain(op.op_type, op.domain, &[&x.name, &kn], 2, &[])
        } else {
            self.g.borrow_mut().node(
                "TopK",
                &[&x.name, &kn],
                2,
                &[
                    ("axis", Attr::Int(-1)),
                    ("largest", Attr::Int(1)),
                    ("sorted", Attr::Int(1)),
                ],
            )
        };
        let mut dims = x.dims.clone();
        if let Some(last) = dims.last_mut() {
            *last = Some(k.clone());
        }
        Ok((
            self.tv(outs[0].clone(), x.elem, dims.clone()),
            self.tv(outs[1].clone(), Elem::I64, dims),
        ))
    }
    fn index_positions(&self, haystack: &TV, needles: &TV) -> Result<TV> {
        // [B, k, 1] == [B, 1, m] → [B, k, m]; the 1-based rank of the match (0 where none) is a
        // ReduceMax over k, in float32 (exact below 2^24 tokens), minus one.
        let h = self.unsqueeze(haystack, 2)?;
        let n = self.unsqueeze(needles, 1)?;
        let eq = self.node1("Equal", &[&h.name, &n.name], &[]);
        let eq = self.node1("Cast", &[&eq], &[("to", Attr::Int(1))]);
        let k = self.dim(haystack, 1)?;
        let ranks = self.add_scalar(&self.arange_f32(&k)?, 1.0)?; // [k]
        let ranks = self.unsqueeze(&self.unsqueeze(&ranks, 0)?, 2)?; // [1, k, 1]
        let w = self.node1("Mul", &[&eq, &ranks.name], &[]);
        let best = self.axes_attr_or_input("ReduceMax", &w, &[1], 0); // [B, m]
        let best = self.tv(best, Elem::F32, needles.dims.clone());
        let pos = self.add_scalar(&best, -1.0)?;
        let o = self.node1("Cast", &[&pos.name], &[("to", Attr::Int(7))]);
        Ok(self.tv(o, Elem::I64, needles.dims.clone()))
    }
    fn topk_set(&self, x: &TV, k: &Dim) -> Result<TV> {
        if self.forms.topk != TopkForm::Threshold || x.dims.len() != 2 {
            return self.topk(x, k).map(|(_, i)| i);
        }
        self.threshold_select(x, k)
    }

    fn gather(&self, x: &TV, axis: usize, index: &TV) -> Result<TV> {
        let o = self.node1(
            "GatherElements",
            &[&x.name, &index.name],
            &[("axis", Attr::Int(axis as i64))],
        );
        Ok(self.tv(o, x.elem, index.dims.clone()))
    }
    fn gather_rows(&self, x: &TV, index: &TV) -> Result<TV> {
        // GatherND over batch rows copies whole C-long rows; GatherElements with the index
        // broadcast over C (what `torch.gather` is) reads one index per element and was 10–35×
        // slower on tract, several times on ORT.
        let c = self.dim(x, 2)?;
        let rows = self.unsqueeze(index, 2)?; // [B, k, 1]
        let o = self.node1(
            "GatherND",
            &[&x.name, &rows.name],
            &[("batch_dims", Attr::Int(1))],
        );
        Ok(self.tv(
            o,
            x.elem,
            vec![index.dims[0].clone(), index.dims[1].clone(), Some(c)],
        ))
    }
    fn scatter_rows(&self, x: &TV, index: &TV, src: &TV) -> Result<TV> {
        // ScatterND of whole rows at (batch, row) pairs [B, k, 2]: ScatterND has no batch_dims,
        // so the batch index is spelled out.
        let b = self.dim(x, 0)?;
        let k = self.dim(index, 1)?;
        let batch = self.unsqueeze(&self.unsqueeze(&self.arange_i64(&b)?, 1)?, 2)?; // [B, 1, 1]
        let batch = self.expand(&batch, &[Some(b), Some(k), Some(Dim::Const(1))])?; // [B, k, 1]
        let rows = self.unsqueeze(index, 2)?; // [B, k, 1]
        let at = self.concat(&[batch, rows], 2)?; // [B, k, 2]
        let o = self.node1("ScatterND", &[&x.name, &at.name, &src.name], &[]);
        Ok(self.tv(o, x.elem, x.dims.clone()))
    }

    fn ms_deform_attn(
        &self,
        value: &TV,
        shapes: &[(Dim, Dim)],
        loc: &TV,
        weights: &TV,
    ) -> Result<TV> {
        if self.forms.msda != MsdaForm::Decomposed {
            return self.ms_deform_attn_node(value, shapes, loc, weights);
        }
        // The decomposed form: one GridSample per level, like the PyTorch reference.
        let bs = self.dim(value, 0)?;
        let nh = self.dim(value, 2)?;
        let hd = self.dim(value, 3)?;
        let nq = self.dim(loc, 1)?;
        let bm = self.dim_mul(&bs, &nh)?;
        let grids = self.add_scalar(&self.mul_scalar(loc, 2.0)?, -1.0)?;
        let mode = if self.opset >= 20 {
            "linear"
        } else {
            "bilinear"
        };
        let mut start = Dim::Const(0);
        let mut sampled = Vec::new();
        for (l, (h, w)) in shapes.iter().enumerate() {
            let hw = self.dim_mul(h, w)?;
            let end = self.dim_add(&start, &hw)?;
            let v = self.slice(value, 1, &start, Some(&end))?; // [B, HW, M, D]
            let v = self.permute(&v, &[0, 2, 3, 1])?; // [B, M, D, HW]
            let v = self.reshape(
                &v,
                &[
                    Some(bm.clone()),
                    Some(hd.clone()),
                    Some(h.clone()),
                    Some(w.clone()),
                ],
            )?;
            let g = self.slice(
                &grids,
                3,
                &Dim::Const(l as i64),
                Some(&Dim::Const(l as i64 + 1)),
            )?; // [B, Q, M, 1, P, 2]
            let g = self.permute(&g, &[0, 2, 1, 3, 4, 5])?; // [B, M, Q, 1, P, 2]
            let g = self.reshape(
                &g,
                &[
                    Some(bm.clone()),
                    Some(nq.clone()),
                    None,
                    Some(Dim::Const(2)),
                ],
            )?;
            let o = self.node1(
                "GridSample",
                &[&v.name, &g.name],
                &[
                    ("mode", Attr::Str(mode.into())),
                    ("padding_mode", Attr::Str("zeros".into())),
                    ("align_corners", Attr::Int(0)),
                ],
            );
            let o = self.tv(
                o,
                Elem::F32,
                vec![Some(bm.clone()), Some(hd.clone()), Some(nq.clone()), None],
            );
            sampled.push(self.unsqueeze(&o, 3)?); // [B·M, D, Q, 1, P]
            start = end;
        }
        let s = self.concat(&sampled, 3)?; // [B·M, D, Q, L, P]
        let s = self.reshape(
            &s,
            &[Some(bm.clone()), Some(hd.clone()), Some(nq.clone()), None],
        )?;
        let aw = self.permute(weights, &[0, 2, 1, 3, 4])?; // [B, M, Q, L, P]
        let aw = self.reshape(
            &aw,
            &[Some(bm), Some(Dim::Const(1)), Some(nq.clone()), None],
        )?;
        let p = self.mul(&s, &aw)?;
        let r = self.axes_attr_or_input("ReduceSum", &p.name, &[3], 0);
        let r = self.tv(r, Elem::F32, vec![None, Some(hd.clone()), Some(nq.clone())]);
        let md = self.dim_mul(&nh, &hd)?;
        let r = self.reshape(&r, &[Some(bs.clone()), Some(md.clone()), Some(nq.clone())])?;
        let r = self.permute(&r, &[0, 2, 1])?;
        Ok(TV {
            dims: vec![Some(bs), Some(nq), Some(md)],
            ..r
        })
    }
}
