//! The declarations of the custom ops: the single source the exporter's nodes, the runtimes'
//! registrations and the documentation derive from.

/// Domain of our ops.
pub const DOMAIN: &str = "ai.focus_detr";
/// Version of the domain.
pub const DOMAIN_VERSION: i64 = 1;
/// Domain ONNX Runtime's TensorRT provider expects for TensorRT plugin nodes.
pub const TRT_PLUGIN_DOMAIN: &str = "trt.plugins";
/// Version of the plugin domain a model imports.
pub const TRT_PLUGIN_DOMAIN_VERSION: i64 = 1;

/// Base name of the custom-op library (`focus-ops-library`): `libfocus_ops.so` on Linux.
pub const LIBRARY_NAME: &str = "focus_ops";
/// The oldest ONNX Runtime C API the library works with (API N is ONNX Runtime 1.N): its kernels
/// report errors through `KernelComputeV2` (API 16) and run on the session's intra-op pool
/// through `KernelContext_ParallelFor` (API 17). Older runtimes get a refusal, not a crash.
pub const LIBRARY_MIN_ORT_API: u32 = 17;

/// The opset version a model imports for a non-standard `domain` (`None`: not ours).
pub fn domain_version(domain: &str) -> Option<i64> {
    match domain {
        DOMAIN => Some(DOMAIN_VERSION),
        TRT_PLUGIN_DOMAIN => Some(TRT_PLUGIN_DOMAIN_VERSION),
        _ => None,
    }
}

/// Element type of an op input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// float32.
    F32,
    /// int64.
    I64,
    /// int32.
    I32,
}

/// One input or output of an op.
#[derive(Debug, Clone, Copy)]
pub struct TensorDecl {
    /// Name (documentation and error messages).
    pub name: &'static str,
    /// Element type.
    pub dtype: DType,
    /// Axes, by name.
    pub axes: &'static [&'static str],
}

/// An op: where it lives and what it takes and gives.
#[derive(Debug, Clone, Copy)]
pub struct OpDecl {
    /// ONNX op_type.
    pub op_type: &'static str,
    /// ONNX domain.
    pub domain: &'static str,
    /// Version of the domain the op belongs to.
    pub version: i64,
    /// Inputs, in order.
    pub inputs: &'static [TensorDecl],
    /// Outputs, in order.
    pub outputs: &'static [TensorDecl],
    /// What it computes.
    pub doc: &'static str,
}

const fn t(name: &'static str, dtype: DType, axes: &'static [&'static str]) -> TensorDecl {
    TensorDecl { name, dtype, axes }
}

/// Multi-scale deformable attention (the Deformable-DETR core), `ai.focus_detr` v1.
pub const MS_DEFORM_ATTN: OpDecl = OpDecl {
    op_type: "MsDeformAttn",
    domain: DOMAIN,
    version: DOMAIN_VERSION,
    inputs: &[
        t("value", DType::F32, &["N", "S", "M", "D"]),
        t("spatial_shapes", DType::I64, &["L", "2"]),
        t("level_start_index", DType::I64, &["L"]),
        t(
            "sampling_locations",
            DType::F32,
            &["N", "Lq", "M", "L", "P", "2"],
        ),
        t("attention_weights", DType::F32, &["N", "Lq", "M", "L", "P"]),
    ],
    outputs: &[t("output", DType::F32, &["N", "Lq", "M*D"])],
    doc: "For each query, head, level and point: bilinear sample of the level's value map at \
          (x·W − 0.5, y·H − 0.5) with zeros outside (grid_sample bilinear, zeros padding, \
          align_corners=False), weighted and summed over levels and points.",
};

/// The TensorRT plugin form of [`MS_DEFORM_ATTN`]: int32 shapes, 4-D output (reshape after).
pub const TRT_MS_DEFORM_ATTN: OpDecl = OpDecl {
    op_type: "MultiscaleDeformableAttnPlugin_TRT",
    domain: TRT_PLUGIN_DOMAIN,
    version: 1,
    inputs: &[
        t("value", DType::F32, &["N", "S", "M", "D"]),
        t("spatial_shapes", DType::I32, &["L", "2"]),
        t("level_start_index", DType::I32, &["L"]),
        t(
            "sampling_locations",
            DType::F32,
            &["N", "Lq", "M", "L", "P", "2"],
        ),
        t("attention_weights", DType::F32, &["N", "Lq", "M", "L", "P"]),
    ],
    outputs: &[t("output", DType::F32, &["N", "Lq", "M", "D"])],
    doc: "TensorRT's libnvinfer_plugin implementation of the same maths (TensorRT ≥ 8.4.1).",
};

/// Top-k along the last axis with k a runtime value, `ai.focus_detr` v1.
pub const DYNAMIC_TOPK: OpDecl = OpDecl {
    op_type: "DynamicTopK",
    domain: DOMAIN,
    version: DOMAIN_VERSION,
    inputs: &[
        t("scores", DType::F32, &["B", "N"]),
        t("k", DType::I64, &["1"]),
    ],
    outputs: &[
        t("values", DType::F32, &["B", "k"]),
        t("indices", DType::I64, &["B", "k"]),
    ],
    doc: "The k largest scores of each row and their indices, by a selection (not a full sort), \
          returned in descending score order with ties broken by ascending index.",
};

/// Every op of our domain.
pub const DOMAIN_OPS: [OpDecl; 2] = [MS_DEFORM_ATTN, DYNAMIC_TOPK];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_are_consistent() {
        for op in DOMAIN_OPS {
            assert_eq!(op.domain, DOMAIN);
            assert!(!op.inputs.is_empty() && !op.outputs.is_empty());
        }
        // The plugin takes the same inputs, int32 where TensorRT needs it.
        for (a, b) in MS_DEFORM_ATTN.inputs.iter().zip(TRT_MS_DEFORM_ATTN.inputs) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.axes, b.axes);
        }
    }
}
