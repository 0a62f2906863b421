//! focus-exporters: ONNX export of Focus-DETR. The model is traced through its `Backend` trait
//! ([`tracer::OnnxTracer`]) into a graph ([`graph::GraphBuilder`]) and serialised with
//! `onnx-protobuf` ([`export::export`]).

pub mod export;
pub mod fp16;
pub mod graph;
pub mod int8;
pub mod io;
pub mod lint;
pub mod opgraph;
pub mod precision;
pub mod tracer;

pub use export::{export, ExportError, ExportOptions, ExportSummary, Target};
pub use tracer::{MsdaForm, OpForms, TopkForm};
