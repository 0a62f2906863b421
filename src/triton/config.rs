//! The `config.pbtxt` of each model in the repository, generated from the exported graph's
//! inputs and outputs ([`focus_exporters::io`]) and the model config: Triton's names, types and
//! dims are never written by hand.

use focus_exporters::io::{IoDim, IoElem, IoSpec};

use super::options::{Backend, RepositoryOptions, TritonError, Where};
use super::options::{DETECTOR, ENSEMBLE, POSTPROCESS, PREPROCESS};
use super::pbtxt::Message;

/// The tensor names the repository's own models add around the detector.
pub mod names {
    /// Encoded image bytes (JPEG, PNG, ...): the ensemble's and the preprocessing's input.
    pub const IMAGE_BYTES: &str = "image_bytes";
    /// Detections kept per image (the rest of each row is padding).
    pub const NUM_DETECTIONS: &str = "num_detections";
    /// Scores, best first.
    pub const DETECTION_SCORES: &str = "detection_scores";
    /// COCO category ids.
    pub const DETECTION_CATEGORY_IDS: &str = "detection_category_ids";
    /// COCO category names.
    pub const DETECTION_NAMES: &str = "detection_names";
    /// Boxes (x1, y1, x2, y2) in original-image pixels, clipped to the image.
    pub const DETECTION_BOXES: &str = "detection_boxes";
    /// The detector's post-processed outputs the postprocessing reads.
    pub const SCORES: &str = "scores";
    /// Contiguous class labels.
    pub const LABELS: &str = "labels";
    /// Boxes (x1, y1, x2, y2) scaled to `orig_sizes`.
    pub const BOXES: &str = "boxes_xyxy";
    /// The image tensor.
    pub const IMAGES: &str = "images";
}

/// Triton's data type name of an element type.
fn triton_type(e: IoElem, name: &str) -> Result<&'static str, TritonError> {
    Ok(match e {
        IoElem::F32 => "TYPE_FP32",
        IoElem::F16 => "TYPE_FP16",
        IoElem::I64 => "TYPE_INT64",
        IoElem::I32 => "TYPE_INT32",
        IoElem::U8 => "TYPE_UINT8",
        IoElem::Bool => "TYPE_BOOL",
        IoElem::Other(t) => {
            return Err(TritonError::Graph(format!(
                "tensor `{name}` has ONNX element type {t}, which the repository does not map to a Triton type"
            )))
        }
    })
}

/// A tensor as Triton declares it: name, type, dims without the batch dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct TritonTensor {
    /// Name.
    pub name: String,
    /// `TYPE_*`.
    pub data_type: &'static str,
    /// Dims after the batch dimension, -1 where dynamic.
    pub dims: Vec<i64>,
}

impl TritonTensor {
    fn new(name: &str, data_type: &'static str, dims: &[i64]) -> Self {
        Self {
            name: name.into(),
            data_type,
            dims: dims.to_vec(),
        }
    }

    /// From a graph input or output whose first dimension is the (symbolic) batch.
    pub fn from_spec(s: &IoSpec) -> Result<Self, TritonError> {
        match s.dims.first() {
            Some(IoDim::Named(_) | IoDim::Unknown) => {}
            _ => {
                return Err(TritonError::Graph(format!(
                    "tensor `{}` has no dynamic first (batch) dimension ({:?}): Triton batches along it; export without a fixed batch",
                    s.name, s.dims
                )))
            }
        }
        let dims = s.dims[1..]
            .iter()
            .map(|d| match d {
                IoDim::Fixed(v) => *v,
                IoDim::Named(_) | IoDim::Unknown => -1,
            })
            .collect();
        Ok(Self {
            name: s.name.clone(),
            data_type: triton_type(s.elem, &s.name)?,
            dims,
        })
    }

    fn write(&self, m: &mut Message) {
        m.string("name", &self.name)
            .raw("data_type", self.data_type)
            .list("dims", &self.dims);
    }
}

fn find<'a>(
    specs: &'a [TritonTensor],
    name: &str,
    what: &str,
) -> Result<&'a TritonTensor, TritonError> {
    specs.iter().find(|t| t.name == name).ok_or_else(|| {
        TritonError::Graph(format!(
            "the exported model has no {what} `{name}` (it has: {})",
            specs
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// The detector's graph inputs and outputs as Triton tensors, checked to hold what the
/// repository's other models exchange with it.
pub struct DetectorIo {
    /// Inputs (`images`, `orig_sizes`).
    pub inputs: Vec<TritonTensor>,
    /// Outputs (every graph output).
    pub outputs: Vec<TritonTensor>,
}

impl DetectorIo {
    /// From the graph; errors name what is missing.
    pub fn new(inputs: &[IoSpec], outputs: &[IoSpec]) -> Result<Self, TritonError> {
        let io = Self {
            inputs: inputs
                .iter()
                .map(TritonTensor::from_spec)
                .collect::<Result<_, _>>()?,
            outputs: outputs
                .iter()
                .map(TritonTensor::from_spec)
                .collect::<Result<_, _>>()?,
        };
        find(&io.inputs, names::IMAGES, "input")?;
        find(
            &io.inputs,
            focus_exporters::export::ORIG_SIZES_INPUT,
            "input",
        )?;
        for o in [names::SCORES, names::LABELS, names::BOXES] {
            find(&io.outputs, o, "output")?;
        }
        Ok(io)
    }

    fn input(&self, name: &str) -> &TritonTensor {
        // Checked in `new`.
        self.inputs
            .iter()
            .find(|t| t.name == name)
            .unwrap_or(&self.inputs[0])
    }

    fn output(&self, name: &str) -> &TritonTensor {
        self.outputs
            .iter()
            .find(|t| t.name == name)
            .unwrap_or(&self.outputs[0])
    }

    /// Detections per image (the `scores` row length; -1 when dynamic).
    pub fn per_image(&self) -> i64 {
        self.output(names::SCORES)
            .dims
            .first()
            .copied()
            .unwrap_or(-1)
    }
}

fn header(m: &mut Message, name: &str, opts: &RepositoryOptions, what: &str) {
    m.comment(&format!(
        "{what}\nGenerated by focus-export {} (`focus-export triton`); regenerate rather than edit.",
        env!("CARGO_PKG_VERSION")
    ));
    m.string("name", name);
    m.raw("max_batch_size", opts.max_batch);
}

fn tensors(m: &mut Message, key: &str, ts: &[TritonTensor]) {
    for t in ts {
        m.message(key, |b| t.write(b));
    }
}

fn instances(m: &mut Message, count: u32, gpu: bool) {
    m.message("instance_group", |g| {
        g.raw("count", count)
            .raw("kind", if gpu { "KIND_GPU" } else { "KIND_CPU" });
    });
}

fn batching(m: &mut Message, opts: &RepositoryOptions) {
    if let Some(us) = opts.queue_delay_us {
        m.message("dynamic_batching", |d| {
            d.raw("max_queue_delay_microseconds", us);
        });
    }
}

/// The detector's config: Triton's ONNX Runtime backend, or the Python backend running the same
/// file on Python onnxruntime.
pub fn detector(io: &DetectorIo, opts: &RepositoryOptions, library: Option<&Where>) -> String {
    let mut m = Message::new();
    let gpu = opts.target != focus_exporters::Target::OrtCpu;
    match opts.backend {
        Backend::Onnxruntime => {
            header(
                &mut m,
                DETECTOR,
                opts,
                "The Focus-DETR detector on Triton's ONNX Runtime backend.",
            );
            m.raw("platform", "\"onnxruntime_onnx\"");
        }
        Backend::Python => {
            header(
                &mut m,
                DETECTOR,
                opts,
                "The Focus-DETR detector: 1/model.onnx run by 1/model.py on Python onnxruntime.",
            );
            m.string("backend", "python");
        }
    }
    tensors(&mut m, "input", &io.inputs);
    tensors(&mut m, "output", &io.outputs);
    instances(&mut m, opts.instances, gpu);
    batching(&mut m, opts);
    match (opts.backend, library) {
        (Backend::Onnxruntime, Some(lib)) => {
            m.comment("The ai.focus_detr custom ops (MsDeformAttn, DynamicTopK), loaded into the backend's ONNX Runtime.");
            m.message("model_operations", |o| {
                o.string("op_library_filename", &lib.serve.display().to_string());
            });
        }
        (Backend::Python, Some(lib)) => {
            m.parameter("ops_library", &lib.relative);
        }
        (_, None) => {}
    }
    if let Some(t) = opts.threads {
        let key = match opts.backend {
            Backend::Onnxruntime => "intra_op_thread_count",
            Backend::Python => "intra_op_num_threads",
        };
        m.parameter(key, &t.to_string());
    }
    if opts.backend == Backend::Python {
        let provider = if gpu {
            "CUDAExecutionProvider"
        } else {
            "CPUExecutionProvider"
        };
        m.parameter("execution_provider", provider);
    }
    if opts.target == focus_exporters::Target::TensorRt {
        m.comment(
            "Deformable attention is TensorRT's built-in MultiscaleDeformableAttnPlugin_TRT (libnvinfer_plugin,\nTensorRT >= 8.4.1; node domain trt.plugins): no other provider has a kernel for it, so TensorRT\nmust take the whole graph. Top-k is the TopK-free threshold selection.",
        );
        m.message("optimization", |o| {
            o.message("execution_accelerators", |e| {
                e.message("gpu_execution_accelerator", |g| {
                    g.string("name", "tensorrt");
                    g.map_entry(
                        "parameters",
                        "precision_mode",
                        if opts.fp16 { "FP16" } else { "FP32" },
                    );
                    g.map_entry("parameters", "max_workspace_size_bytes", "4294967296");
                    g.map_entry("parameters", "trt_engine_cache_enable", "1");
                });
            });
        });
    }
    m.finish()
}

/// The preprocessing's config: encoded bytes in, the detector's `images` and `orig_sizes` out,
/// with the official test-time resize and normalisation as parameters.
pub fn preprocess(
    io: &DetectorIo,
    opts: &RepositoryOptions,
    p: &focus_models::config::PreprocessConfig,
) -> String {
    let mut m = Message::new();
    header(
        &mut m,
        PREPROCESS,
        opts,
        "Decodes JPEG/PNG bytes (EXIF orientation applied, RGB), resizes the shortest side to min_size with\nthe longest at most max_size (PIL bilinear, as detectron2's ResizeShortestEdge) and normalises.",
    );
    m.string("backend", "python");
    let images = io.input(names::IMAGES);
    let sizes = io.input(focus_exporters::export::ORIG_SIZES_INPUT);
    tensors(
        &mut m,
        "input",
        &[TritonTensor::new(names::IMAGE_BYTES, "TYPE_STRING", &[1])],
    );
    tensors(&mut m, "output", &[images.clone(), sizes.clone()]);
    instances(&mut m, opts.instances, false);
    let join = |v: &[f32]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    m.parameter("bytes_input", names::IMAGE_BYTES)
        .parameter("image_output", &images.name)
        .parameter("size_output", &sizes.name)
        .parameter("min_size", &p.min_size.to_string())
        .parameter("max_size", &p.max_size.to_string())
        .parameter("pixel_mean", &join(&p.pixel_mean))
        .parameter("pixel_std", &join(&p.pixel_std));
    m.finish()
}

/// The postprocessed tensors (the postprocessing's outputs, the ensemble's outputs).
fn detections(io: &DetectorIo) -> Vec<TritonTensor> {
    let k = io.per_image();
    vec![
        TritonTensor::new(names::NUM_DETECTIONS, "TYPE_INT64", &[1]),
        TritonTensor::new(
            names::DETECTION_SCORES,
            io.output(names::SCORES).data_type,
            &[k],
        ),
        TritonTensor::new(names::DETECTION_CATEGORY_IDS, "TYPE_INT64", &[k]),
        TritonTensor::new(names::DETECTION_NAMES, "TYPE_STRING", &[k]),
        TritonTensor::new(
            names::DETECTION_BOXES,
            io.output(names::BOXES).data_type,
            &[k, 4],
        ),
    ]
}

/// The postprocessing's config: boxes clipped to the image, emptied ones dropped, scores under
/// the threshold dropped, labels as COCO categories; the kept detections first in each row.
pub fn postprocess(
    io: &DetectorIo,
    opts: &RepositoryOptions,
    categories: &[(u32, &str)],
) -> String {
    let mut m = Message::new();
    header(
        &mut m,
        POSTPROCESS,
        opts,
        "Clips boxes to the original image, drops emptied boxes and scores under score_threshold, maps labels\nto COCO categories; each row holds num_detections detections, then padding (score 0, id -1, name \"\").",
    );
    m.string("backend", "python");
    let ins = [
        io.output(names::SCORES).clone(),
        io.output(names::LABELS).clone(),
        io.output(names::BOXES).clone(),
        io.input(focus_exporters::export::ORIG_SIZES_INPUT).clone(),
    ];
    tensors(&mut m, "input", &ins);
    tensors(&mut m, "output", &detections(io));
    instances(&mut m, opts.instances, false);
    let ids: Vec<String> = categories.iter().map(|(i, _)| i.to_string()).collect();
    let names_json = serde_json::to_string(&categories.iter().map(|(_, n)| *n).collect::<Vec<_>>())
        .unwrap_or_default();
    m.parameter("scores_input", names::SCORES)
        .parameter("labels_input", names::LABELS)
        .parameter("boxes_input", names::BOXES)
        .parameter("size_input", focus_exporters::export::ORIG_SIZES_INPUT)
        .parameter("num_output", names::NUM_DETECTIONS)
        .parameter("scores_output", names::DETECTION_SCORES)
        .parameter("ids_output", names::DETECTION_CATEGORY_IDS)
        .parameter("names_output", names::DETECTION_NAMES)
        .parameter("boxes_output", names::DETECTION_BOXES)
        .parameter("score_threshold", &opts.score_threshold.to_string())
        .parameter("category_ids", &ids.join(","))
        .parameter("category_names", &names_json);
    m.finish()
}

/// The ensemble: image bytes → preprocessing → detector → postprocessing.
pub fn ensemble(io: &DetectorIo, opts: &RepositoryOptions) -> String {
    let mut m = Message::new();
    header(
        &mut m,
        ENSEMBLE,
        opts,
        "Encoded image bytes in, COCO-labelled boxes in original-image pixels out.",
    );
    m.raw("platform", "\"ensemble\"");
    tensors(
        &mut m,
        "input",
        &[TritonTensor::new(names::IMAGE_BYTES, "TYPE_STRING", &[1])],
    );
    let outs = detections(io);
    tensors(&mut m, "output", &outs);
    let sizes = focus_exporters::export::ORIG_SIZES_INPUT;
    let step = |m: &mut Message, model: &str, ins: &[&str], outs: &[&str]| {
        m.message("step", |s| {
            s.string("model_name", model).raw("model_version", -1);
            for i in ins {
                s.map_entry("input_map", i, i);
            }
            for o in outs {
                s.map_entry("output_map", o, o);
            }
        });
    };
    m.message("ensemble_scheduling", |e| {
        step(
            e,
            PREPROCESS,
            &[names::IMAGE_BYTES],
            &[names::IMAGES, sizes],
        );
        step(
            e,
            DETECTOR,
            &[names::IMAGES, sizes],
            &[names::SCORES, names::LABELS, names::BOXES],
        );
        let post_outs: Vec<&str> = outs.iter().map(|t| t.name.as_str()).collect();
        step(
            e,
            POSTPROCESS,
            &[names::SCORES, names::LABELS, names::BOXES, sizes],
            &post_outs,
        );
    });
    m.finish()
}
