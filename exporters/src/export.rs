//! Exporting Focus-DETR to ONNX: trace the model with [`OnnxTracer`], declare inputs and outputs
//! with symbolic batch and image sizes, attach metadata, serialise.

use std::borrow::Cow;
use std::collections::BTreeMap;

use onnx_protobuf::ModelProto;

use focus_models::model::{selections, FocusDetr, ForwardOptions};
use focus_models::postprocess::COCO_NAMES;
use focus_models::schema::Param;
use focus_models::{FocusDetrConfig, Weights};

use crate::graph::{DeclDim, Elem};
use crate::tracer::{Dim, MsdaForm, OnnxTracer, OpForms, TopkForm, TV};

/// Lowest and highest opset the exporter writes (GridSample needs 16).
pub const OPSETS: std::ops::RangeInclusive<i64> = 16..=20;
/// Suffix of a selection-override input's name: `enc_topk_idx_0_in` forces `enc_topk_idx_0`.
pub const SELECTION_INPUT_SUFFIX: &str = "_in";

/// The model input that forces selection `name` (see `focus_models::model::selections`).
pub fn selection_input(name: &str) -> String {
    format!("{name}{SELECTION_INPUT_SUFFIX}")
}

/// The selection an input forces, if it is a selection-override input of `cfg`.
pub fn forced_selection<'a>(cfg: &FocusDetrConfig, input: &'a str) -> Option<&'a str> {
    input
        .strip_suffix(SELECTION_INPUT_SUFFIX)
        .filter(|n| selections::is_selection(cfg, n))
}

/// Name of the optional input with each image's original (height, width), int64 [batch, 2]:
/// `boxes_xyxy` are then scaled to it instead of the input size.
pub const ORIG_SIZES_INPUT: &str = "orig_sizes";

/// The default opset.
pub const DEFAULT_OPSET: i64 = 17;

/// Errors of the export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The opset cannot express the model.
    #[error("opset {0} is not supported: choose {lo}..={hi} (GridSample, used by deformable attention, needs opset 16)", lo = OPSETS.start(), hi = OPSETS.end())]
    Opset(i64),
    /// Tracing the model failed.
    #[error("tracing the model")]
    Model(#[from] focus_models::backend::ModelError),
    /// A `--static-shape` value that is not HxW or BxHxW.
    #[error("static shape `{0}`: expected HxW or BxHxW with positive integers, e.g. 800x1216 or 1x800x1216")]
    StaticShape(String),
    /// Serialisation failed.
    #[error("serialising the ONNX model: {0}")]
    Serialize(String),
    /// The float16 conversion failed.
    #[error(transparent)]
    Fp16(#[from] crate::fp16::Fp16Error),
    /// The int8 rewrite failed.
    #[error(transparent)]
    Int8(#[from] crate::int8::Int8Error),
    /// An int8 export was written before its calibration.
    #[error("an int8 export needs its calibration (ExportSummary::int8_plan, then finish_int8) before it is written")]
    NotCalibrated,
    /// The int8 steps were asked of an export of another precision.
    #[error("the int8 calibration steps need an export with --precision int8; this one is {0}")]
    NotInt8(crate::precision::Precision),
}

/// Metadata key of the exported model's configuration (JSON), which runtimes read back.
pub const CONFIG_METADATA_KEY: &str = "focus_export.config";

/// Metadata key of the computation precision (`fp32`, `fp16` or `int8`).
pub const PRECISION_METADATA_KEY: &str = "focus_export.precision";

/// Export options.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// ONNX opset of the default domain.
    pub opset: i64,
    /// Include `scores`, `labels`, `boxes_xyxy`.
    pub postprocess: bool,
    /// Add the intermediate tensors as outputs (golden names).
    pub debug: bool,
    /// Hex sha256 of the weights file, recorded in the metadata.
    pub weights_sha256: String,
    /// Debugging: inputs (int64 token indices, rows of −1 keep the model's own) that force
    /// selections, so a run can be compared exactly with a reference's selections.
    pub selection_inputs: selections::Forcible,
    /// Add the input [`ORIG_SIZES_INPUT`] (int64 [batch, 2], original height and width) that
    /// `boxes_xyxy` are scaled to.
    pub orig_sizes: bool,
    /// Fixed input size: every size the model computes becomes a constant.
    pub static_shape: Option<StaticShape>,
    /// Forms of deformable attention and top-k.
    pub forms: OpForms,
    /// Computation precision (`fp16`: float16 with float32 islands, see [`crate::fp16`]).
    pub precision: crate::precision::Precision,
}

/// Where the exported model will run: sensible op forms for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// ONNX Runtime on CPU through focus-export: our deformable-attention kernel
    /// (`ai.focus_detr::MsDeformAttn`, 6–8× the GridSample form, registered by focus-export's
    /// ORT sessions) and ONNX TopK. For a file a stock ONNX Runtime loads, export without a
    /// target (standard ops only).
    OrtCpu,
    /// ONNX Runtime with the CUDA provider (standard ops only).
    OrtCuda,
    /// TensorRT (directly or through ONNX Runtime's provider): the deformable-attention plugin
    /// and the TopK-free threshold selection (TensorRT caps TopK at k ≤ 3840).
    TensorRt,
    /// tract through focus-export (our custom ops: tract's GridSample is slow).
    Tract,
}

impl Target {
    /// The name `--target` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::OrtCpu => "ort-cpu",
            Target::OrtCuda => "ort-cuda",
            Target::TensorRt => "tensorrt",
            Target::Tract => "tract",
        }
    }

    /// The op forms for this target.
    pub fn forms(self) -> OpForms {
        match self {
            // Measured (`bench`, 2 threads): the custom kernel makes the whole model 15–25 %
            // faster than GridSample; DynamicTopK against TopK is within noise, so TopK stays.
            Target::OrtCpu => OpForms {
                msda: MsdaForm::Custom,
                topk: TopkForm::Onnx,
            },
            Target::OrtCuda => OpForms::default(),
            Target::TensorRt => OpForms {
                msda: MsdaForm::TrtPlugin,
                topk: TopkForm::Threshold,
            },
            Target::Tract => OpForms {
                msda: MsdaForm::Custom,
                topk: TopkForm::Custom,
            },
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ort-cpu" => Ok(Target::OrtCpu),
            "ort-cuda" => Ok(Target::OrtCuda),
            "tensorrt" => Ok(Target::TensorRt),
            "tract" => Ok(Target::Tract),
            _ => Err(format!(
                "`{s}`: expected ort-cpu, ort-cuda, tensorrt or tract"
            )),
        }
    }
}

/// A fixed input size for `--static-shape`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticShape {
    /// Batch size (`None`: stays dynamic).
    pub batch: Option<usize>,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
}

impl std::str::FromStr for StaticShape {
    type Err = ExportError;
    /// Parses `HxW` or `BxHxW`.
    fn from_str(s: &str) -> Result<Self, ExportError> {
        let parts: Option<Vec<usize>> = s
            .split(['x', 'X', '×'])
            .map(|p| p.trim().parse().ok().filter(|&v: &usize| v > 0))
            .collect();
        match parts.as_deref() {
            Some(&[height, width]) => Ok(StaticShape {
                batch: None,
                height,
                width,
            }),
            Some(&[b, height, width]) => Ok(StaticShape {
                batch: Some(b),
                height,
                width,
            }),
            _ => Err(ExportError::StaticShape(s.to_string())),
        }
    }
}

/// What was exported: the model, to be written with [`ExportSummary::write_to`].
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// The model, whose weight initializers (float32) hold no data: [`ExportSummary::write_to`]
    /// streams it from the weights file.
    pub model: ModelProto,
    /// Those initializers, by name.
    deferred: BTreeMap<String, Param>,
    /// Opset written.
    pub opset: i64,
    /// Graph inputs (name, shape as text).
    pub inputs: Vec<(String, String)>,
    /// Graph outputs (name, shape as text).
    pub outputs: Vec<(String, String)>,
    /// Nodes per op type.
    pub op_histogram: BTreeMap<String, usize>,
    /// Total nodes.
    pub nodes: usize,
    /// The forms of the special ops written.
    pub forms: OpForms,
    /// Non-standard nodes in the graph: (domain::op_type, count).
    pub custom_ops: Vec<(String, usize)>,
    /// What the float16 conversion did (`--precision fp16` only).
    pub fp16: Option<crate::fp16::Fp16Summary>,
    /// The precision asked for.
    pub precision: crate::precision::Precision,
    /// What the int8 rewrite did (`--precision int8`, once [`ExportSummary::finish_int8`] ran).
    pub int8: Option<crate::int8::Int8Summary>,
}

impl ExportSummary {
    /// Writes the model to `out`, each weight's data streamed from `weights` (the file the
    /// export read) as it is written: the weights are never held twice. Returns the bytes
    /// written.
    pub fn write_to(
        &self,
        weights: &Weights,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, ExportError> {
        if self.precision == crate::precision::Precision::Int8 && self.int8.is_none() {
            return Err(ExportError::NotCalibrated);
        }
        let io = |e: std::io::Error| ExportError::Serialize(e.to_string());
        let fetch = |name: &str| -> std::io::Result<Cow<'_, [u8]>> {
            let p = self
                .deferred
                .get(name)
                .ok_or_else(|| std::io::Error::other(format!("no weight `{name}`")))?;
            let data = weights
                .get(p)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok(f32_le_bytes(data))
        };
        crate::graph::write_model(
            &self.model,
            |name| self.deferred.contains_key(name),
            fetch,
            out,
        )
        .map_err(io)
    }
}

impl ExportSummary {
    /// `--precision int8`, step 1: the batch norms folded and the layers and tensors to
    /// quantise planned; calibrate [`crate::int8::Int8Plan::calibration_model`] on images.
    pub fn int8_plan(
        &self,
        opts: &crate::int8::Int8Options,
    ) -> Result<crate::int8::Int8Plan, ExportError> {
        if self.precision != crate::precision::Precision::Int8 {
            return Err(ExportError::NotInt8(self.precision));
        }
        Ok(crate::int8::prepare(self.model.clone(), opts)?)
    }

    /// `--precision int8`, step 2: the QDQ model written from the calibrated ranges.
    pub fn finish_int8(
        &mut self,
        plan: crate::int8::Int8Plan,
        ranges: &crate::int8::Ranges,
        method: crate::int8::CalibrationMethod,
        images: usize,
    ) -> Result<&crate::int8::Int8Summary, ExportError> {
        let (mut m, s) = crate::int8::quantize(plan, ranges, method, images)?;
        for e in m.metadata_props.iter_mut() {
            if e.key == PRECISION_METADATA_KEY {
                e.value = crate::precision::Precision::Int8.as_str().into();
            }
        }
        self.model = m;
        let (nodes, op_histogram, custom_ops) = crate::graph::op_counts(&self.model);
        (self.nodes, self.op_histogram, self.custom_ops) = (nodes, op_histogram, custom_ops);
        Ok(self.int8.insert(s))
    }
}

/// Float32 values as little-endian bytes, borrowed where the host is little-endian.
fn f32_le_bytes(data: Cow<'_, [f32]>) -> Cow<'_, [u8]> {
    match data {
        Cow::Borrowed(v) if cfg!(target_endian = "little") => {
            Cow::Borrowed(bytemuck::cast_slice(v))
        }
        v => Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    }
}

fn decl(dims: &[Option<Dim>], names: &[(usize, &str)]) -> Vec<DeclDim> {
    dims.iter()
        .enumerate()
        .map(|(i, d)| match (d, names.iter().find(|(a, _)| *a == i)) {
            (_, Some((_, n))) => DeclDim::Named((*n).to_string()),
            (Some(Dim::Const(v)), _) => DeclDim::Fixed(*v),
            _ => DeclDim::Unknown,
        })
        .collect()
}

fn shape_text(d: &[DeclDim]) -> String {
    let parts: Vec<String> = d
        .iter()
        .map(|d| match d {
            DeclDim::Fixed(v) => v.to_string(),
            DeclDim::Named(n) => n.clone(),
            DeclDim::Unknown => "?".into(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Traces `cfg` with `weights` into an ONNX model.
pub fn export(
    cfg: &FocusDetrConfig,
    weights: &Weights,
    opts: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    if !OPSETS.contains(&opts.opset) {
        return Err(ExportError::Opset(opts.opset));
    }
    let model = FocusDetr::new(cfg.clone());
    let t = OnnxTracer::new(Some(weights), opts.opset, opts.forms);
    let fixed = |v: Option<usize>| v.map(|v| Dim::Const(v as i64));
    let st = opts.static_shape;
    let images = t.input(
        "images",
        Elem::F32,
        vec![
            fixed(st.and_then(|s| s.batch)),
            Some(Dim::Const(3)),
            fixed(st.map(|s| s.height)),
            fixed(st.map(|s| s.width)),
        ],
    );
    let decl_of = |d: &Option<Dim>, name: &str| match d {
        Some(Dim::Const(v)) => DeclDim::Fixed(*v),
        _ => DeclDim::Named(name.into()),
    };
    let image_decl: Vec<DeclDim> = images
        .dims
        .iter()
        .zip(["batch", "channels", "height", "width"])
        .map(|(d, n)| decl_of(d, n))
        .collect();
    let batch_decl = image_decl[0].clone();
    t.g.borrow_mut().input("images", Elem::F32, &image_decl);
    // Forcing inputs: [batch, len]; len is fixed for the object tokens and proposals, and for a
    // static shape; otherwise it follows the image size (named `<selection>_len`). Any token
    // count gives the fixed lengths; a static shape gives them all.
    let n_tokens = st.map_or_else(|| cfg.min_tokens(), |s| cfg.token_count(s.height, s.width));
    let mut force = BTreeMap::new();
    let mut force_inputs = Vec::new();
    for spec in selections::specs(cfg, n_tokens) {
        let name = spec.name;
        if !opts.selection_inputs.includes(&name) {
            continue;
        }
        let fixed_len = (st.is_some() || !spec.follows_image_size).then_some(spec.len as i64);
        let input = selection_input(&name);
        let len_decl = match fixed_len {
            Some(v) => DeclDim::Fixed(v),
            None => DeclDim::Named(format!("{name}_len")),
        };
        let decl = [batch_decl.clone(), len_decl];
        t.g.borrow_mut().input(&input, Elem::I64, &decl);
        force_inputs.push((input.clone(), shape_text(&decl)));
        let tv = t.input(
            &input,
            Elem::I64,
            vec![images.dims[0].clone(), fixed_len.map(Dim::Const)],
        );
        force.insert(name, tv);
    }
    let orig_sizes = opts.orig_sizes.then(|| {
        let decl = [batch_decl.clone(), DeclDim::Fixed(2)];
        t.g.borrow_mut().input(ORIG_SIZES_INPUT, Elem::I64, &decl);
        t.input(
            ORIG_SIZES_INPUT,
            Elem::I64,
            vec![images.dims[0].clone(), Some(Dim::Const(2))],
        )
    });
    let fo = ForwardOptions {
        debug: opts.debug,
        force,
        orig_sizes,
        ..Default::default()
    };
    let out = model.forward(&t, &images, &fo)?;
    t.annotate_values(&[
        ("images", 0, "batch"),
        ("images", 2, "height"),
        ("images", 3, "width"),
    ]);

    let batch: Vec<(usize, &str)> = if st.and_then(|s| s.batch).is_some() {
        Vec::new()
    } else {
        vec![(0usize, "batch")]
    };
    let mut outputs: Vec<(String, TV, Vec<DeclDim>)> = vec![
        (
            "pred_logits".into(),
            out.pred_logits.clone(),
            decl(&out.pred_logits.dims, &batch),
        ),
        (
            "pred_boxes".into(),
            out.pred_boxes.clone(),
            decl(&out.pred_boxes.dims, &batch),
        ),
    ];
    if opts.postprocess {
        for (n, v) in [
            ("scores", &out.scores),
            ("labels", &out.labels),
            ("boxes_xyxy", &out.boxes_xyxy),
        ] {
            outputs.push((n.into(), v.clone(), decl(&v.dims, &batch)));
        }
    }
    for (n, v) in &out.debug {
        outputs.push((n.clone(), v.clone(), decl(&v.dims, &[])));
    }
    let mut deferred = t.take_deferred();
    let mut g = t.g.into_inner();
    for (n, v, d) in &outputs {
        g.output(n, &v.name, v.elem, d);
    }
    let classes: Vec<&str> = COCO_NAMES
        .iter()
        .copied()
        .take(cfg.heads.num_classes)
        .collect();
    let metadata = vec![
        (
            CONFIG_METADATA_KEY.to_string(),
            serde_json::to_string(cfg).map_err(|e| ExportError::Serialize(e.to_string()))?,
        ),
        (
            "focus_export.classes".to_string(),
            serde_json::to_string(&classes).map_err(|e| ExportError::Serialize(e.to_string()))?,
        ),
        (
            "focus_export.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (
            "focus_export.weights_sha256".to_string(),
            opts.weights_sha256.clone(),
        ),
        (
            PRECISION_METADATA_KEY.to_string(),
            opts.precision.as_str().to_string(),
        ),
    ];
    let mut m = g.finish("focus_detr", opts.opset, &metadata);
    let precision = opts.precision;
    if precision != crate::precision::Precision::Fp32 {
        // Both rewrites change the weights (float16, int8): they need their data in the model.
        if let Some(g) = m.graph.as_mut() {
            for init in g.initializer.iter_mut() {
                if let Some(p) = deferred.remove(&init.name) {
                    let data = weights
                        .get(&p)
                        .map_err(focus_models::backend::ModelError::from)?;
                    init.raw_data = f32_le_bytes(data).into_owned();
                }
            }
        }
    }
    let fp16 = match precision {
        crate::precision::Precision::Fp16 => Some(crate::fp16::convert(&mut m)?),
        _ => None,
    };
    let (nodes, op_histogram, custom_ops) = crate::graph::op_counts(&m);
    let mut inputs = vec![("images".into(), shape_text(&image_decl))];
    let batch_text = shape_text(std::slice::from_ref(&batch_decl));
    let batch_text = batch_text.trim_matches(['[', ']']);
    inputs.extend(force_inputs);
    if opts.orig_sizes {
        inputs.push((ORIG_SIZES_INPUT.into(), format!("[{batch_text}, 2]")));
    }
    Ok(ExportSummary {
        model: m,
        deferred,
        opset: opts.opset,
        inputs,
        outputs: outputs
            .iter()
            .map(|(n, _, d)| (n.clone(), shape_text(d)))
            .collect(),
        op_histogram,
        nodes,
        forms: opts.forms,
        custom_ops,
        fp16,
        precision,
        int8: None,
    })
}
