//! Exporting Focus-DETR to ONNX: trace the model with [`OnnxTracer`], declare inputs and outputs
//! with symbolic batch and image sizes, attach metadata, serialise.

use std::collections::BTreeMap;

use focus_models::model::{FocusDetr, ForwardOptions};
use focus_models::postprocess::COCO_NAMES;
use focus_models::{FocusDetrConfig, Weights};

use crate::graph::{DeclDim, Elem};
use crate::tracer::{Dim, OnnxTracer, TV};

/// Lowest and highest opset the exporter writes (GridSample needs 16).
pub const OPSETS: std::ops::RangeInclusive<i64> = 16..=20;
/// Name of the debug input that replaces the two-stage selection (distinct from the debug
/// output `topk_proposals`, which reports the selection used).
pub const PROPOSALS_INPUT: &str = "topk_proposals_in";

/// The default opset.
pub const DEFAULT_OPSET: i64 = 17;

/// Errors of the export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The opset cannot express the model.
    #[error("opset {0} is not supported: choose {lo}..={hi} (GridSample, used by deformable attention, needs opset 16)", lo = OPSETS.start(), hi = OPSETS.end())]
    Opset(i64),
    /// Tracing the model failed.
    #[error("tracing the model: {0}")]
    Model(#[from] focus_models::backend::ModelError),
    /// Serialisation failed.
    #[error("serialising the ONNX model: {0}")]
    Serialize(String),
}

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
    /// Debugging: add an input [`PROPOSALS_INPUT`] (int64 [batch, num_queries]) that replaces the
    /// two-stage selection, so decoders can be compared with a reference's proposal order.
    pub proposals_input: bool,
}

/// What was exported.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// Serialised model.
    pub bytes: Vec<u8>,
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
    let t = OnnxTracer::new(weights, opts.opset);
    let images = t.input(
        "images",
        Elem::F32,
        vec![None, Some(Dim::Const(3)), None, None],
    );
    let image_decl = vec![
        DeclDim::Named("batch".into()),
        DeclDim::Fixed(3),
        DeclDim::Named("height".into()),
        DeclDim::Named("width".into()),
    ];
    t.g.borrow_mut().input("images", Elem::F32, &image_decl);
    let proposals = opts.proposals_input.then(|| {
        let q = cfg.heads.num_queries as i64;
        let decl = [DeclDim::Named("batch".into()), DeclDim::Fixed(q)];
        t.g.borrow_mut().input(PROPOSALS_INPUT, Elem::I64, &decl);
        t.input(PROPOSALS_INPUT, Elem::I64, vec![None, Some(Dim::Const(q))])
    });
    let fo = ForwardOptions {
        debug: opts.debug,
        topk_proposals: proposals,
        ..Default::default()
    };
    let out = model.forward(&t, &images, &fo)?;

    let batch = [(0usize, "batch")];
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
            "focus_export.config".to_string(),
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
    ];
    let op_histogram = g.op_histogram();
    let nodes = g.node_count();
    let m = g.finish("focus_detr", opts.opset, &[], &metadata);
    let bytes = crate::graph::to_bytes(&m).map_err(|e| ExportError::Serialize(e.to_string()))?;
    let mut inputs = vec![("images".into(), shape_text(&image_decl))];
    if opts.proposals_input {
        inputs.push((
            PROPOSALS_INPUT.into(),
            format!("[batch, {}]", cfg.heads.num_queries),
        ));
    }
    Ok(ExportSummary {
        bytes,
        opset: opts.opset,
        inputs,
        outputs: outputs
            .iter()
            .map(|(n, _, d)| (n.clone(), shape_text(d)))
            .collect(),
        op_histogram,
        nodes,
    })
}
