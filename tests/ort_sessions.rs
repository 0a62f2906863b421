//! ONNX Runtime sessions with our custom-op domains, created from many threads at once. ORT adds a
//! custom domain to a process-wide table the first time a session uses it, and two sessions
//! created at the same moment used to collide there ("the domain is already exist",
//! onnxruntime#22663). This binary holds only this test, so its sessions are the process's first.
#![cfg(feature = "ort")]

use std::path::PathBuf;
use std::sync::Barrier;

use focus_export::runtimes::ort::{OrtOptions, OrtRuntime, Provider};
use focus_exporters::opgraph::ms_deform_attn_model;
use focus_exporters::{MsdaForm, OpForms};

/// Sessions started together: enough that, without the guard, several reach ORT's domain table
/// in the same instant on a 2-core machine.
const THREADS: usize = 8;

fn model(form: MsdaForm, name: &str) -> PathBuf {
    let bytes = ms_deform_attn_model(
        &[(4, 6), (2, 3)],
        2,
        4,
        2,
        OpForms {
            msda: form,
            ..Default::default()
        },
        17,
    )
    .expect("a small deformable-attention model");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, bytes).expect("writing the model");
    path
}

#[test]
fn custom_op_sessions_created_on_many_threads_at_once_all_load() {
    // Even threads: our `ai.focus_detr` domain; odd ones: it and the `trt.plugins` emulation.
    let custom = model(MsdaForm::Custom, "ort_sessions_custom.onnx");
    let plugin = model(MsdaForm::TrtPlugin, "ort_sessions_plugin.onnx");
    let start = Barrier::new(THREADS);
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (path, emulate) = if i % 2 == 0 {
                    (&custom, false)
                } else {
                    (&plugin, true)
                };
                let start = &start;
                s.spawn(move || {
                    let opts = OrtOptions {
                        provider: Provider::Cpu,
                        threads: Some(1),
                        emulate_trt_plugins: emulate,
                        profile: false,
                    };
                    start.wait();
                    OrtRuntime::new(path, &opts)
                        .err()
                        .map(|e| format!("thread {i}: {e}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("a session thread panicked"))
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
