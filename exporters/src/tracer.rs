//! The tracing backend: implements the model's `Backend` by recording ONNX nodes. Sizes the model
//! computes from the input (token counts, every top-k k) become graph arithmetic on `Shape`
//! values, so one file serves every input size; sizes fixed by the weights stay constants.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use focus_models::backend::{Backend, ModelError, Result};
use focus_models::schema::Param;
use focus_models::Weights;

use crate::graph::{Attr, Elem, GraphBuilder};

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

/// Records the model into a [`GraphBuilder`].
pub struct OnnxTracer<'w> {
    /// The graph (interior mutability: backend methods take `&self`).
    pub g: RefCell<GraphBuilder>,
    weights: &'w Weights,
    opset: i64,
    added: RefCell<HashSet<String>>,
    shape_cache: RefCell<HashMap<(Rc<str>, usize), Dim>>,
}

fn bad(op: &'static str, message: impl Into<String>) -> ModelError {
    ModelError::Backend {
        op,
        message: message.into(),
    }
}

impl<'w> OnnxTracer<'w> {
    /// A tracer reading initializers from `weights`, targeting `opset`.
    pub fn new(weights: &'w Weights, opset: i64) -> Self {
        OnnxTracer {
            g: RefCell::new(GraphBuilder::default()),
            weights,
            opset,
            added: RefCell::new(HashSet::new()),
            shape_cache: RefCell::new(HashMap::new()),
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
        TV {
            name: name.into(),
            elem,
            dims,
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
        let c = self.cf32_scalar(s as f32);
        let o = self.node1(op, &[&x.name, &c], &[]);
        self.tv(o, x.elem, x.dims.clone())
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

    /// Row indices [B, k] broadcast over the channels of `x` [B, N, C] (the element-wise index
    /// GatherElements / ScatterElements take), and C.
    fn row_index(&self, x: &TV, index: &TV) -> Result<(TV, Dim)> {
        let c = self.dim(x, 2)?;
        let idx = self.expand(&self.unsqueeze(index, 2)?, &[None, None, Some(c.clone())])?;
        Ok((idx, c))
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
            let data = self.weights.get(p)?;
            let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            let dims: Vec<i64> = p.shape.iter().map(|&d| d as i64).collect();
            self.g
                .borrow_mut()
                .initializer(&p.key, Elem::F32, &dims, raw);
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
        let ax = self.ci64(&[0]);
        let limit = self.node1("Squeeze", &[&self.dim_value_name(n), &ax], &[]);
        let z = self.g.borrow_mut().const_i64(&[0], &[]);
        let one = self.g.borrow_mut().const_i64(&[1], &[]);
        let r = self.node1("Range", &[&z, &limit, &one], &[]);
        let o = self.node1("Cast", &[&r], &[("to", Attr::Int(1))]);
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
        let mut t = self.scalar_binary("Greater", x, s);
        t.elem = Elem::Bool;
        Ok(t)
    }
    fn lt_scalar(&self, x: &TV, s: f64) -> Result<TV> {
        let mut t = self.scalar_binary("Less", x, s);
        t.elem = Elem::Bool;
        Ok(t)
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
            vec![x.dims[0].clone(), w.dims[0].clone(), None, None],
        ))
    }
    fn max_pool2d(&self, x: &TV, kernel: usize, stride: usize, padding: usize) -> Result<TV> {
        let (k, s, p) = (kernel as i64, stride as i64, padding as i64);
        let o = self.node1("MaxPool", &[&x.name], &window_attrs(k, s, p));
        Ok(self.tv(
            o,
            Elem::F32,
            vec![x.dims[0].clone(), x.dims[1].clone(), None, None],
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
        let g = self.reshape(x, &[Some(bs), Some(Dim::Const(groups as i64)), None])?;
        let mean = self.mean_keepdim(&g, 2)?;
        let d = self.sub(&g, &mean)?;
        let var = self.mean_keepdim(&self.mul(&d, &d)?, 2)?;
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
    fn unsqueeze(&self, x: &TV, axis: usize) -> Result<TV> {
        let ax = self.ci64(&[axis as i64]);
        let o = self.node1("Unsqueeze", &[&x.name, &ax], &[]);
        let mut dims = x.dims.clone();
        dims.insert(axis, Some(Dim::Const(1)));
        Ok(self.tv(o, x.elem, dims))
    }
    fn expand(&self, x: &TV, shape: &[Option<Dim>]) -> Result<TV> {
        // A 1 in Expand's shape keeps the input's size, which is what `None` asks for.
        let s = self.shape_tensor(shape, 1);
        let o = self.node1("Expand", &[&x.name, &s], &[]);
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
        let outs = self.g.borrow_mut().node(
            "TopK",
            &[&x.name, &kn],
            2,
            &[
                ("axis", Attr::Int(-1)),
                ("largest", Attr::Int(1)),
                ("sorted", Attr::Int(1)),
            ],
        );
        let mut dims = x.dims.clone();
        if let Some(last) = dims.last_mut() {
            *last = Some(k.clone());
        }
        Ok((
            self.tv(outs[0].clone(), x.elem, dims.clone()),
            self.tv(outs[1].clone(), Elem::I64, dims),
        ))
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
        let (idx, c) = self.row_index(x, index)?;
        let o = self.node1(
            "GatherElements",
            &[&x.name, &idx.name],
            &[("axis", Attr::Int(1))],
        );
        Ok(self.tv(
            o,
            x.elem,
            vec![index.dims[0].clone(), index.dims[1].clone(), Some(c)],
        ))
    }
    fn scatter_rows(&self, x: &TV, index: &TV, src: &TV) -> Result<TV> {
        let (idx, _) = self.row_index(x, index)?;
        let o = self.node1(
            "ScatterElements",
            &[&x.name, &idx.name, &src.name],
            &[("axis", Attr::Int(1))],
        );
        Ok(self.tv(o, x.elem, x.dims.clone()))
    }

    fn ms_deform_attn(
        &self,
        value: &TV,
        shapes: &[(Dim, Dim)],
        loc: &TV,
        weights: &TV,
    ) -> Result<TV> {
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
