//! The `Backend` trait: the primitives the Focus-DETR forward pass is written in. The torch
//! backend executes them eagerly (the reference); the ONNX backend records them as graph nodes.
//! Shape arithmetic goes through [`Backend::Dim`] values so that token counts and top-k sizes can
//! stay symbolic in a traced graph.

use crate::schema::Param;

/// Errors of the forward pass.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A backend operation failed (shape mismatch, out of memory, ...).
    #[error("{op}: {message}")]
    Backend {
        /// The primitive that failed.
        op: &'static str,
        /// What the backend said.
        message: String,
    },
    /// The input cannot be processed by the model.
    #[error("{0}")]
    Input(String),
    /// A weight could not be read.
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightError),
}

/// Result of a model or backend operation.
pub type Result<T> = std::result::Result<T, ModelError>;

/// Element type of a tensor the model creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit signed integer (indices).
    I64,
    /// Boolean masks.
    Bool,
}

/// The primitives of the model. Axes are non-negative; tensors are batch-first.
pub trait Backend {
    /// A tensor (float, integer or boolean).
    type Tensor: Clone;
    /// A scalar integer that may only be known at run time (a size, a token count, a k).
    type Dim: Clone;

    /// Opens a named scope (a module path such as `transformer.encoder.layers.3`); names the
    /// nodes recorded inside it. Eager backends ignore it.
    fn scope(&self, _name: &str) {}
    /// Closes the innermost scope.
    fn end_scope(&self) {}

    // ---- weights and constants ----
    /// A checkpoint tensor, by its schema entry.
    fn param(&self, p: &Param) -> Result<Self::Tensor>;
    /// A float tensor from values (row-major) and a static shape.
    fn const_f32(&self, values: &[f32], shape: &[usize]) -> Result<Self::Tensor>;
    /// `[0, 1, …, n−1]` as float32 (like `torch.arange(n, dtype=float32)`).
    fn arange_f32(&self, n: &Self::Dim) -> Result<Self::Tensor>;
    /// A 1-d int64 tensor of sizes (for reporting shapes and budgets as outputs).
    fn dims_to_i64(&self, dims: &[Self::Dim]) -> Result<Self::Tensor>;
    /// A 0-d float32 tensor holding `d`.
    fn dim_to_f32(&self, d: &Self::Dim) -> Result<Self::Tensor>;
    /// An integer tensor converted to float32 (exact below 2^24).
    fn to_f32(&self, x: &Self::Tensor) -> Result<Self::Tensor>;

    // ---- shape arithmetic ----
    /// Size of `x` along `axis`.
    fn dim(&self, x: &Self::Tensor, axis: usize) -> Result<Self::Dim>;
    /// A constant size.
    fn dim_const(&self, v: i64) -> Self::Dim;
    /// The value of `d` when it is known now (always, for eager backends).
    fn dim_value(&self, d: &Self::Dim) -> Option<i64>;
    /// `a + b`.
    fn dim_add(&self, a: &Self::Dim, b: &Self::Dim) -> Result<Self::Dim>;
    /// `a · b`.
    fn dim_mul(&self, a: &Self::Dim, b: &Self::Dim) -> Result<Self::Dim>;
    /// `a // m` for a ≥ 0 and a constant m ≥ 1.
    fn dim_floor_div(&self, a: &Self::Dim, m: i64) -> Result<Self::Dim>;
    /// `int(float32(c) · float32(a))`: the float32 product truncated toward zero.
    fn dim_scale(&self, a: &Self::Dim, c: f32) -> Result<Self::Dim>;

    // ---- elementwise (numpy broadcasting) ----
    /// `a + b`.
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// `a − b`.
    fn sub(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// `a · b`.
    fn mul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// `a / b`.
    fn div(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// `x + s`.
    fn add_scalar(&self, x: &Self::Tensor, s: f64) -> Result<Self::Tensor>;
    /// `x · s`.
    fn mul_scalar(&self, x: &Self::Tensor, s: f64) -> Result<Self::Tensor>;
    /// `x / s`.
    fn div_scalar(&self, x: &Self::Tensor, s: f64) -> Result<Self::Tensor>;
    /// `s − x`.
    fn rsub_scalar(&self, x: &Self::Tensor, s: f64) -> Result<Self::Tensor>;
    /// `base ^ x` (float32).
    fn scalar_pow(&self, base: f64, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// max(x, 0).
    fn relu(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Exact (erf) GELU.
    fn gelu(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Logistic sigmoid.
    fn sigmoid(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// sin.
    fn sin(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// cos.
    fn cos(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Natural logarithm.
    fn log(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// 1/√x.
    fn rsqrt(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Clamps to `[min, max]` (either bound optional).
    fn clamp(&self, x: &Self::Tensor, min: Option<f64>, max: Option<f64>) -> Result<Self::Tensor>;
    /// `x > s` (bool).
    fn gt_scalar(&self, x: &Self::Tensor, s: f64) -> Result<Self::Tensor>;
    /// `x < s` (bool).
    fn lt_scalar(&self, x: &Self::Tensor, s: f64) -> Result<Self::Tensor>;
    /// Logical and of bool tensors.
    fn and(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// Logical not.
    fn not(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Where `mask` is true, `value`; elsewhere `x`.
    fn masked_fill(
        &self,
        x: &Self::Tensor,
        mask: &Self::Tensor,
        value: f64,
    ) -> Result<Self::Tensor>;
    /// Integer division rounding down, by a constant (index tensors).
    fn floor_div_scalar(&self, x: &Self::Tensor, s: i64) -> Result<Self::Tensor>;
    /// Remainder by a constant (index tensors).
    fn rem_scalar(&self, x: &Self::Tensor, s: i64) -> Result<Self::Tensor>;

    // ---- reductions ----
    /// Mean over `axis`, keeping it as size 1.
    fn mean_keepdim(&self, x: &Self::Tensor, axis: usize) -> Result<Self::Tensor>;
    /// Maximum over `axis` (dropped).
    fn max(&self, x: &Self::Tensor, axis: usize) -> Result<Self::Tensor>;
    /// Logical all over `axis`, keeping it as size 1.
    fn all_keepdim(&self, x: &Self::Tensor, axis: usize) -> Result<Self::Tensor>;
    /// Softmax over `axis`.
    fn softmax(&self, x: &Self::Tensor, axis: usize) -> Result<Self::Tensor>;

    // ---- layers ----
    /// `x · wᵀ + b` over the last axis (`torch.nn.functional.linear`).
    fn linear(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor>;
    /// Batched matrix product of 3-d tensors.
    fn bmm(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// 2-d convolution, NCHW, square kernel, symmetric padding.
    fn conv2d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
        stride: usize,
        padding: usize,
    ) -> Result<Self::Tensor>;
    /// 2-d max pooling (padding counts as −∞).
    fn max_pool2d(
        &self,
        x: &Self::Tensor,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self::Tensor>;
    /// LayerNorm over the last axis.
    fn layer_norm(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: &Self::Tensor,
        eps: f64,
    ) -> Result<Self::Tensor>;
    /// Inference batch norm of an NCHW tensor (`F.batch_norm(training=False)`).
    fn batch_norm(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: &Self::Tensor,
        mean: &Self::Tensor,
        var: &Self::Tensor,
        eps: f64,
    ) -> Result<Self::Tensor>;
    /// GroupNorm of an NCHW tensor.
    fn group_norm(
        &self,
        x: &Self::Tensor,
        groups: usize,
        w: &Self::Tensor,
        b: &Self::Tensor,
        eps: f64,
    ) -> Result<Self::Tensor>;
    /// Bilinear resize of an NCHW tensor to (h, w) with `align_corners=True`.
    fn resize_bilinear_align_corners(
        &self,
        x: &Self::Tensor,
        h: &Self::Dim,
        w: &Self::Dim,
    ) -> Result<Self::Tensor>;

    // ---- layout ----
    /// Reshape; at most one `None` (inferred).
    fn reshape(&self, x: &Self::Tensor, shape: &[Option<Self::Dim>]) -> Result<Self::Tensor>;
    /// Permutes axes.
    fn permute(&self, x: &Self::Tensor, perm: &[usize]) -> Result<Self::Tensor>;
    /// Concatenates along `axis`.
    fn concat(&self, xs: &[Self::Tensor], axis: usize) -> Result<Self::Tensor>;
    /// Stacks along a new `axis`.
    fn stack(&self, xs: &[Self::Tensor], axis: usize) -> Result<Self::Tensor>;
    /// `x[..., start:end, ...]` along `axis` (`end = None`: to the end).
    fn slice(
        &self,
        x: &Self::Tensor,
        axis: usize,
        start: &Self::Dim,
        end: Option<&Self::Dim>,
    ) -> Result<Self::Tensor>;
    /// Every `step`-th element along `axis`, from `start`.
    fn slice_step(
        &self,
        x: &Self::Tensor,
        axis: usize,
        start: usize,
        step: usize,
    ) -> Result<Self::Tensor>;
    /// Zeros appended along `axis` up to `size` (≥ the current size; `F.pad` with zeros).
    fn pad_end(&self, x: &Self::Tensor, axis: usize, size: &Self::Dim) -> Result<Self::Tensor>;
    /// `x` indexed along `axis` by constant indices (`torch.index_select`).
    fn take(&self, x: &Self::Tensor, axis: usize, indices: &[i64]) -> Result<Self::Tensor>;
    /// Inserts a size-1 axis.
    fn unsqueeze(&self, x: &Self::Tensor, axis: usize) -> Result<Self::Tensor>;
    /// Broadcasts to a shape (`None` keeps that axis).
    fn expand(&self, x: &Self::Tensor, shape: &[Option<Self::Dim>]) -> Result<Self::Tensor>;

    // ---- selection ----
    /// The k largest along the last axis: (values, int64 indices), ordered by descending
    /// value with exact ties broken by the lower index (the project's one tie rule: ONNX
    /// TopK's, and one of the orders `torch.topk` may return).
    fn topk(&self, x: &Self::Tensor, k: &Self::Dim) -> Result<(Self::Tensor, Self::Tensor)>;
    /// For each of `needles` [B, m] (int64), its position in the same row of `haystack`
    /// [B, k] (int64, distinct values), or −1 where the row does not hold it.
    fn index_positions(
        &self,
        haystack: &Self::Tensor,
        needles: &Self::Tensor,
    ) -> Result<Self::Tensor>;
    /// Per element, `a` where it is ≥ 0, else `b` (int64 tensors of the same shape).
    fn select_nonneg(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// The indices of the k largest of each row where only the selected SET matters to the
    /// caller (any order): backends may use a cheaper or more portable selection, with the
    /// same set as [`Backend::topk`] (ties at the cut-off by the lower index). By default the
    /// sorted [`Backend::topk`].
    fn topk_set(&self, x: &Self::Tensor, k: &Self::Dim) -> Result<Self::Tensor> {
        self.topk(x, k).map(|(_, i)| i)
    }
    /// `torch.gather(x, axis, index)` with an index of the output's shape.
    fn gather(&self, x: &Self::Tensor, axis: usize, index: &Self::Tensor) -> Result<Self::Tensor>;
    /// Rows of `x` [B, N, C] at `index` [B, k] → [B, k, C].
    fn gather_rows(&self, x: &Self::Tensor, index: &Self::Tensor) -> Result<Self::Tensor>;
    /// A copy of `x` [B, N, C] with rows `index` [B, k] replaced by `src` [B, k, C].
    fn scatter_rows(
        &self,
        x: &Self::Tensor,
        index: &Self::Tensor,
        src: &Self::Tensor,
    ) -> Result<Self::Tensor>;

    // ---- special ----
    /// Multi-scale deformable attention, the semantics of `grid_sample(bilinear, zeros,
    /// align_corners=False)` summed over levels and points: value [B, S, M, D], per-level
    /// (H, W), sampling locations [B, Q, M, L, P, 2] in [0, 1] (x, y), weights [B, Q, M, L, P]
    /// → [B, Q, M·D].
    fn ms_deform_attn(
        &self,
        value: &Self::Tensor,
        shapes: &[(Self::Dim, Self::Dim)],
        locations: &Self::Tensor,
        weights: &Self::Tensor,
    ) -> Result<Self::Tensor>;
}
