//! The torch backend (feature `torch`): executes every primitive eagerly with libtorch through
//! `tch`, calling the same ATen kernels the official PyTorch code calls. This is the reference.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use crate::backend::{Backend, ModelError, Result};
use crate::schema::{Param, WeightSchema};
use crate::weights::Weights;

/// A libtorch tensor that clones shallowly (shares storage), as the backend's tensor type.
pub struct TT(pub Tensor);

impl Clone for TT {
    fn clone(&self) -> Self {
        TT(self.0.shallow_clone())
    }
}

impl std::ops::Deref for TT {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.0
    }
}

/// Eager libtorch execution with the checkpoint tensors loaded on one device.
pub struct TorchBackend {
    device: Device,
    params: HashMap<String, Tensor>,
}

fn err(op: &'static str) -> impl Fn(tch::TchError) -> ModelError {
    move |e| ModelError::Backend {
        op,
        message: e.to_string(),
    }
}

fn dims(shape: &[Option<i64>]) -> Vec<i64> {
    shape.iter().map(|d| d.unwrap_or(-1)).collect()
}

/// Row indices [B, k] repeated over the channels of `x` [B, N, C], as the official code builds
/// them for `gather` / `scatter` along the token axis.
fn row_index(x: &Tensor, index: &Tensor) -> std::result::Result<Tensor, tch::TchError> {
    let c = *x.size().last().unwrap_or(&0);
    index.f_unsqueeze(-1).and_then(|i| i.f_repeat([1, 1, c]))
}

impl TorchBackend {
    /// Loads every canonical tensor of `schema` from `weights` onto `device`.
    pub fn new(weights: &Weights, schema: &WeightSchema, device: Device) -> Result<Self> {
        let mut params = HashMap::new();
        // Index buffers are not loaded: the model computes their (checked) values itself.
        for e in schema.canonical().filter(|e| e.is_float()) {
            let p = Param::float(&e.key, &e.shape);
            let data = weights.get(&p)?;
            let shape: Vec<i64> = e.shape.iter().map(|&d| d as i64).collect();
            let t = Tensor::f_from_slice(&data)
                .and_then(|t| t.f_reshape(&shape))
                .and_then(|t| t.f_to_device(device))
                .map_err(err("load weights"))?;
            params.insert(e.key.clone(), t);
        }
        Ok(TorchBackend { device, params })
    }

    /// A backend without parameters, for running single ops.
    pub fn without_params(device: Device) -> Self {
        TorchBackend {
            device,
            params: HashMap::new(),
        }
    }

    /// The device tensors live on.
    pub fn device(&self) -> Device {
        self.device
    }
}

impl Backend for TorchBackend {
    type Tensor = TT;
    type Dim = i64;

    fn param(&self, p: &Param) -> Result<TT> {
        self.params
            .get(&p.key)
            .map(|t| TT(t.shallow_clone()))
            .ok_or_else(|| ModelError::Backend {
                op: "param",
                message: format!("no tensor loaded for `{}`", p.key),
            })
    }
    fn const_f32(&self, values: &[f32], shape: &[usize]) -> Result<TT> {
        let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        Tensor::f_from_slice(values)
            .and_then(|t| t.f_reshape(&shape))
            .and_then(|t| t.f_to_device(self.device))
            .map(TT)
            .map_err(err("const_f32"))
    }
    fn arange_f32(&self, n: &i64) -> Result<TT> {
        Tensor::f_arange(*n, (Kind::Float, self.device))
            .map(TT)
            .map_err(err("arange"))
    }
    fn dims_to_i64(&self, d: &[i64]) -> Result<TT> {
        Tensor::f_from_slice(d)
            .and_then(|t| t.f_to_device(self.device))
            .map(TT)
            .map_err(err("dims_to_i64"))
    }
    fn dim_to_f32(&self, d: &i64) -> Result<TT> {
        // Like an int64 tensor promoted to float32 in an op: exact for sizes < 2^24.
        Tensor::f_from_slice(&[*d as f32])
            .and_then(|t| t.f_reshape([] as [i64; 0]))
            .and_then(|t| t.f_to_device(self.device))
            .map(TT)
            .map_err(err("dim_to_f32"))
    }

    fn select_nonneg(&self, a: &TT, b: &TT) -> Result<TT> {
        a.f_ge(0)
            .and_then(|m| a.f_where_self(&m, b))
            .map(TT)
            .map_err(err("select_nonneg"))
    }

    fn to_f32(&self, x: &TT) -> Result<TT> {
        x.f_to_kind(tch::Kind::Float).map(TT).map_err(err("to_f32"))
    }

    fn dim(&self, x: &TT, axis: usize) -> Result<i64> {
        x.size()
            .get(axis)
            .copied()
            .ok_or_else(|| ModelError::Backend {
                op: "dim",
                message: format!("axis {axis} of a tensor of shape {:?}", x.size()),
            })
    }
    fn dim_const(&self, v: i64) -> i64 {
        v
    }
    fn dim_value(&self, d: &i64) -> Option<i64> {
        Some(*d)
    }
    fn dim_add(&self, a: &i64, b: &i64) -> Result<i64> {
        Ok(a + b)
    }
    fn dim_mul(&self, a: &i64, b: &i64) -> Result<i64> {
        Ok(a * b)
    }
    fn dim_floor_div(&self, a: &i64, m: i64) -> Result<i64> {
        Ok(a.div_euclid(m))
    }
    fn dim_scale(&self, a: &i64, c: f32) -> Result<i64> {
        Ok((c * *a as f32) as i64)
    }

    fn add(&self, a: &TT, b: &TT) -> Result<TT> {
        a.f_add(b).map(TT).map_err(err("add"))
    }
    fn sub(&self, a: &TT, b: &TT) -> Result<TT> {
        a.f_sub(b).map(TT).map_err(err("sub"))
    }
    fn mul(&self, a: &TT, b: &TT) -> Result<TT> {
        a.f_mul(b).map(TT).map_err(err("mul"))
    }
    fn div(&self, a: &TT, b: &TT) -> Result<TT> {
        a.f_div(b).map(TT).map_err(err("div"))
    }
    fn add_scalar(&self, x: &TT, s: f64) -> Result<TT> {
        x.f_add_scalar(s).map(TT).map_err(err("add_scalar"))
    }
    fn mul_scalar(&self, x: &TT, s: f64) -> Result<TT> {
        x.f_mul_scalar(s).map(TT).map_err(err("mul_scalar"))
    }
    fn div_scalar(&self, x: &TT, s: f64) -> Result<TT> {
        x.f_div_scalar(s).map(TT).map_err(err("div_scalar"))
    }
    fn rsub_scalar(&self, x: &TT, s: f64) -> Result<TT> {
        x.f_rsub_scalar(s).map(TT).map_err(err("rsub_scalar"))
    }
    fn scalar_pow(&self, base: f64, x: &TT) -> Result<TT> {
        Tensor::f_pow_scalar(base, x).map(TT).map_err(err("pow"))
    }
    fn relu(&self, x: &TT) -> Result<TT> {
        x.f_relu().map(TT).map_err(err("relu"))
    }
    fn gelu(&self, x: &TT) -> Result<TT> {
        x.f_gelu("none").map(TT).map_err(err("gelu"))
    }
    fn sigmoid(&self, x: &TT) -> Result<TT> {
        x.f_sigmoid().map(TT).map_err(err("sigmoid"))
    }
    fn sin(&self, x: &TT) -> Result<TT> {
        x.f_sin().map(TT).map_err(err("sin"))
    }
    fn cos(&self, x: &TT) -> Result<TT> {
        x.f_cos().map(TT).map_err(err("cos"))
    }
    fn log(&self, x: &TT) -> Result<TT> {
        x.f_log().map(TT).map_err(err("log"))
    }
    fn rsqrt(&self, x: &TT) -> Result<TT> {
        x.f_rsqrt().map(TT).map_err(err("rsqrt"))
    }
    fn clamp(&self, x: &TT, min: Option<f64>, max: Option<f64>) -> Result<TT> {
        match (min, max) {
            (Some(a), Some(b)) => x.f_clamp(a, b),
            (Some(a), None) => x.f_clamp_min(a),
            (None, Some(b)) => x.f_clamp_max(b),
            (None, None) => Ok(x.shallow_clone()),
        }
        .map(TT)
        .map_err(err("clamp"))
    }
    fn gt_scalar(&self, x: &TT, s: f64) -> Result<TT> {
        x.f_gt(s).map(TT).map_err(err("gt"))
    }
    fn lt_scalar(&self, x: &TT, s: f64) -> Result<TT> {
        x.f_lt(s).map(TT).map_err(err("lt"))
    }
    fn and(&self, a: &TT, b: &TT) -> Result<TT> {
        a.f_logical_and(b).map(TT).map_err(err("and"))
    }
    fn not(&self, x: &TT) -> Result<TT> {
        x.f_logical_not().map(TT).map_err(err("not"))
    }
    fn masked_fill(&self, x: &TT, mask: &TT, value: f64) -> Result<TT> {
        x.f_masked_fill(mask, value)
            .map(TT)
            .map_err(err("masked_fill"))
    }
    fn floor_div_scalar(&self, x: &TT, s: i64) -> Result<TT> {
        x.f_div_scalar_mode(s, "floor")
            .map(TT)
            .map_err(err("floor_div"))
    }
    fn rem_scalar(&self, x: &TT, s: i64) -> Result<TT> {
        x.f_remainder(s).map(TT).map_err(err("remainder"))
    }

    fn mean_keepdim(&self, x: &TT, axis: usize) -> Result<TT> {
        x.f_mean_dim(Some([axis as i64].as_slice()), true, None::<Kind>)
            .map(TT)
            .map_err(err("mean"))
    }
    fn max(&self, x: &TT, axis: usize) -> Result<TT> {
        x.f_max_dim(axis as i64, false)
            .map(|(v, _)| TT(v))
            .map_err(err("max"))
    }
    fn all_keepdim(&self, x: &TT, axis: usize) -> Result<TT> {
        x.f_all_dim(axis as i64, true).map(TT).map_err(err("all"))
    }
    fn softmax(&self, x: &TT, axis: usize) -> Result<TT> {
        x.f_softmax(axis as i64, None::<Kind>)
            .map(TT)
            .map_err(err("softmax"))
    }

    fn linear(&self, x: &TT, w: &TT, b: Option<&TT>) -> Result<TT> {
        x.f_linear(w, b.map(|b| &b.0))
            .map(TT)
            .map_err(err("linear"))
    }
    fn bmm(&self, a: &TT, b: &TT) -> Result<TT> {
        a.f_bmm(b).map(TT).map_err(err("bmm"))
    }
    fn conv2d(&self, x: &TT, w: &TT, b: Option<&TT>, stride: usize, padding: usize) -> Result<TT> {
        let (s, p) = (stride as i64, padding as i64);
        if self.device.is_cuda() {
            // cuDNN runs float32 convolutions in TF32 by default (PyTorch's
            // cudnn.allow_tf32 = True), about 1e-3 relative: the reference stays float32.
            return x
                .f_internal_convolution(
                    w,
                    b.map(|b| &b.0),
                    [s, s],
                    [p, p],
                    [1, 1],
                    false,
                    [0, 0],
                    1,
                    false,
                    false,
                    true,
                    false,
                )
                .map(TT)
                .map_err(err("conv2d"));
        }
        x.f_conv2d(w, b.map(|b| &b.0), [s, s], [p, p], [1, 1], 1)
            .map(TT)
            .map_err(err("conv2d"))
    }
    fn max_pool2d(&self, x: &TT, kernel: usize, stride: usize, padding: usize) -> Result<TT> {
        let (k, s, p) = (kernel as i64, stride as i64, padding as i64);
        x.f_max_pool2d([k, k], [s, s], [p, p], [1, 1], false)
            .map(TT)
            .map_err(err("max_pool2d"))
    }
    fn layer_norm(&self, x: &TT, w: &TT, b: &TT, eps: f64) -> Result<TT> {
        let n = *x.size().last().unwrap_or(&0);
        x.f_layer_norm([n], Some(&w.0), Some(&b.0), eps, true)
            .map(TT)
            .map_err(err("layer_norm"))
    }
    fn batch_norm(&self, x: &TT, w: &TT, b: &TT, mean: &TT, var: &TT, eps: f64) -> Result<TT> {
        x.f_batch_norm(
            Some(&w.0),
            Some(&b.0),
            Some(&mean.0),
            Some(&var.0),
            false,
            0.1,
            eps,
            true,
        )
        .map(TT)
        .map_err(err("batch_norm"))
    }
    fn group_norm(&self, x: &TT, groups: usize, w: &TT, b: &TT, eps: f64) -> Result<TT> {
        x.f_group_norm(groups as i64, Some(&w.0), Some(&b.0), eps, true)
            .map(TT)
            .map_err(err("group_norm"))
    }
    fn resize_bilinear_align_corners(&self, x: &TT, h: &i64, w: &i64) -> Result<TT> {
        x.f_upsample_bilinear2d([*h, *w], true, None, None)
            .map(TT)
            .map_err(err("resize"))
    }

    fn reshape(&self, x: &TT, shape: &[Option<i64>]) -> Result<TT> {
        x.f_reshape(dims(shape)).map(TT).map_err(err("reshape"))
    }
    fn permute(&self, x: &TT, perm: &[usize]) -> Result<TT> {
        let p: Vec<i64> = perm.iter().map(|&a| a as i64).collect();
        x.f_permute(p).map(TT).map_err(err("permute"))
    }
    fn concat(&self, xs: &[TT], axis: usize) -> Result<TT> {
        Tensor::f_cat(&xs.iter().map(|x| &x.0).collect::<Vec<_>>(), axis as i64)
            .map(TT)
            .map_err(err("concat"))
    }
    fn stack(&self, xs: &[TT], axis: usize) -> Result<TT> {
        Tensor::f_stack(&xs.iter().map(|x| &x.0).collect::<Vec<_>>(), axis as i64)
            .map(TT)
            .map_err(err("stack"))
    }
    fn slice(&self, x: &TT, axis: usize, start: &i64, end: Option<&i64>) -> Result<TT> {
        x.f_slice(axis as i64, *start, end.copied(), 1)
            .map(TT)
            .map_err(err("slice"))
    }
    fn slice_step(&self, x: &TT, axis: usize, start: usize, step: usize) -> Result<TT> {
        x.f_slice(axis as i64, start as i64, None::<i64>, step as i64)
            .map(TT)
            .map_err(err("slice"))
    }
    fn pad_end(&self, x: &TT, axis: usize, size: &i64) -> Result<TT> {
        let rank = x.dim();
        let n = x.size().get(axis).copied().unwrap_or(0);
        // F.pad's list runs from the last axis: (begin, end) pairs.
        let mut pads = vec![0i64; 2 * (rank - axis)];
        pads[2 * (rank - 1 - axis) + 1] = size - n;
        x.f_constant_pad_nd(pads).map(TT).map_err(err("pad_end"))
    }
    fn take(&self, x: &TT, axis: usize, indices: &[i64]) -> Result<TT> {
        Tensor::f_from_slice(indices)
            .and_then(|i| i.f_to_device(self.device))
            .and_then(|i| x.f_index_select(axis as i64, &i))
            .map(TT)
            .map_err(err("take"))
    }
    fn unsqueeze(&self, x: &TT, axis: usize) -> Result<TT> {
        x.f_unsqueeze(axis as i64).map(TT).map_err(err("unsqueeze"))
    }
    fn expand(&self, x: &TT, shape: &[Option<i64>]) -> Result<TT> {
        x.f_expand(dims(shape), false)
            .map(TT)
            .map_err(err("expand"))
    }

    fn topk(&self, x: &TT, k: &i64) -> Result<(TT, TT)> {
        let n = *x.size().last().unwrap_or(&0);
        if *k > n {
            return Err(ModelError::Input(format!(
                "top-k of {k} from only {n} values"
            )));
        }
        // The project's tie rule (descending score, exact ties by the lower index): a stable
        // descending sort keeps equal values in index order. `torch.topk` orders ties
        // arbitrarily (and differently per CPU kernel), which ONNX TopK does not.
        x.f_sort_stable(true, -1, true)
            .and_then(|(v, i)| Ok((v.f_narrow(-1, 0, *k)?, i.f_narrow(-1, 0, *k)?)))
            .map(|(v, i)| (TT(v), TT(i)))
            .map_err(err("topk"))
    }
    fn index_positions(&self, haystack: &TT, needles: &TT) -> Result<TT> {
        // [B, k, 1] == [B, 1, m] → [B, k, m]; the 1-based rank of the match, 0 where none.
        let k = haystack.size().get(1).copied().unwrap_or(0);
        (|| {
            let eq = haystack
                .f_unsqueeze(2)?
                .f_eq_tensor(&needles.f_unsqueeze(1)?)?
                .f_to_kind(Kind::Int64)?;
            let ranks = Tensor::f_arange_start(1, k + 1, (Kind::Int64, self.device))?
                .f_reshape([1, k, 1])?;
            eq.f_mul(&ranks)?
                .f_amax([1i64].as_slice(), false)?
                .f_sub_scalar(1)
        })()
        .map(TT)
        .map_err(err("index_positions"))
    }
    fn gather(&self, x: &TT, axis: usize, index: &TT) -> Result<TT> {
        x.f_gather(axis as i64, index, false)
            .map(TT)
            .map_err(err("gather"))
    }
    fn gather_rows(&self, x: &TT, index: &TT) -> Result<TT> {
        // torch.gather(x, 1, index.unsqueeze(-1).repeat(1, 1, C)), as the official code does.
        row_index(x, index)
            .and_then(|i| x.f_gather(1, &i, false))
            .map(TT)
            .map_err(err("gather_rows"))
    }
    fn scatter_rows(&self, x: &TT, index: &TT, src: &TT) -> Result<TT> {
        row_index(x, index)
            .and_then(|i| x.f_scatter(1, &i, src))
            .map(TT)
            .map_err(err("scatter_rows"))
    }

    fn ms_deform_attn(
        &self,
        value: &TT,
        shapes: &[(i64, i64)],
        loc: &TT,
        weights: &TT,
    ) -> Result<TT> {
        // detrex `multi_scale_deformable_attn_pytorch`, step by step.
        let e = err("ms_deform_attn");
        let vs = value.size();
        let (bs, nh, hd) = (vs[0], vs[2], vs[3]);
        let ls = loc.size();
        let (nq, nl, np) = (ls[1], ls[3], ls[4]);
        let grids = loc
            .f_mul_scalar(2.0)
            .and_then(|g| g.f_sub_scalar(1.0))
            .map_err(&e)?;
        let mut start = 0;
        let mut sampled = Vec::with_capacity(shapes.len());
        for (l, (h, w)) in shapes.iter().enumerate() {
            let v = value
                .f_narrow(1, start, h * w)
                .and_then(|v| v.f_flatten(2, -1))
                .and_then(|v| v.f_transpose(1, 2))
                .and_then(|v| v.f_reshape([bs * nh, hd, *h, *w]))
                .map_err(&e)?;
            let g = grids
                .f_select(3, l as i64)
                .and_then(|g| g.f_transpose(1, 2))
                .and_then(|g| g.f_flatten(0, 1))
                .map_err(&e)?;
            sampled.push(v.f_grid_sampler(&g, 0, 0, false).map_err(&e)?);
            start += h * w;
        }
        let aw = weights
            .f_transpose(1, 2)
            .and_then(|a| a.f_reshape([bs * nh, 1, nq, nl * np]))
            .map_err(&e)?;
        Tensor::f_stack(&sampled, -2)
            .and_then(|s| s.f_flatten(-2, -1))
            .and_then(|s| s.f_mul(&aw))
            .and_then(|s| s.f_sum_dim_intlist(Some([-1i64].as_slice()), false, None::<Kind>))
            .and_then(|s| s.f_view([bs, nh * hd, nq]))
            .and_then(|s| s.f_transpose(1, 2))
            .and_then(|s| s.f_contiguous())
            .map(TT)
            .map_err(&e)
    }
}
