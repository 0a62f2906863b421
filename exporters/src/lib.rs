//! ONNX export of Focus-DETR by tracing the model (export issue).
