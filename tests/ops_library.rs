//! `libfocus_ops.so` loaded the way users outside focus-export load it: Python onnxruntime's
//! `register_custom_ops_library` (tests/python/run_ort.py). On the pinned onnxruntime 1.31.1 the
//! `--target ort-cpu` export of a golden case equals focus-export's own ORT run bit for bit and
//! meets the golden criterion, forced at the full budget; on the oldest runtime the library
//! supports (1.17.3, in the deploy environment) both ops equal the `focus_ops` kernels bit for
//! bit; one version older (1.16.3) refuses it with a status that says what is needed. The CLI's
//! `ops-library` finds the same file.
#![cfg(feature = "ort")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::golden;
use focus_export::runtimes::ort::{OrtOptions, OrtRuntime, Provider};
use focus_export::runtimes::{Runtime, RuntimeError};
use focus_export::tensors::{read_tensors, write_tensors, HostData, HostTensor, TensorMap};
use focus_ops::decl::LIBRARY_MIN_ORT_API;

/// The golden case run through Python (the smallest: Python adds a process and a session
/// load per run).
const CASE: &str = "astronaut_384x384";
/// Threads of both ORT sessions: the same count on both sides, as in the bit-for-bit claim.
const THREADS: usize = 2;
/// The oldest ONNX Runtime the library supports (C API 17), and the one just before it.
const OLDEST: &str = "1.17.3";
const TOO_OLD: &str = "1.16.3";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn library() -> PathBuf {
    focus_export::ops_library::find()
        .expect("libfocus_ops.so is built by scripts/test.sh (cargo build -p focus-ops-library)")
}

/// An interpreter from one of the project's environments, asserted present.
fn python(venv: &str) -> PathBuf {
    let p = root().join(venv).join("bin/python");
    assert!(
        p.exists(),
        "{} missing: run scripts/setup-env.sh",
        p.display()
    );
    p
}

/// The deploy environment's interpreter with an older onnxruntime (installed by setup-env.sh
/// beside it) first on its path.
fn old_runtime(version: &str) -> (PathBuf, PathBuf) {
    let dir = root()
        .join(".venv-deploy")
        .join(format!("onnxruntime-{version}"));
    assert!(
        dir.is_dir(),
        "{} missing: run scripts/setup-env.sh",
        dir.display()
    );
    (python(".venv-deploy"), dir)
}

/// Runs tests/python/run_ort.py: Ok(outputs), or Err((exit code, stderr)).
fn run_python(
    python: &Path,
    pythonpath: Option<&Path>,
    model: &Path,
    inputs: &TensorMap,
) -> Result<TensorMap, (Option<i32>, String)> {
    let dir = tempfile::tempdir().unwrap();
    let (i, o) = (
        dir.path().join("in.safetensors"),
        dir.path().join("out.safetensors"),
    );
    write_tensors(&i, inputs).unwrap();
    let mut cmd = Command::new(python);
    cmd.arg(root().join("tests/python/run_ort.py"))
        .arg(library())
        .arg(model)
        .arg(&i)
        .arg(&o)
        .arg(THREADS.to_string());
    if let Some(p) = pythonpath {
        cmd.env("PYTHONPATH", p);
    }
    let out = cmd.output().unwrap();
    if !out.status.success() {
        return Err((
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(read_tensors(&o).unwrap())
}

/// Python onnxruntime with the library, as a [`Runtime`] for the golden helpers.
struct PythonOrt {
    model: PathBuf,
}

impl Runtime for PythonOrt {
    fn name(&self) -> String {
        "python-onnxruntime+libfocus_ops".into()
    }
    fn run(&mut self, inputs: &TensorMap) -> Result<TensorMap, RuntimeError> {
        run_python(&python(".venv"), None, &self.model, inputs)
            .map_err(|(code, e)| RuntimeError::Backend(format!("exit {code:?}: {e}")))
    }
}

fn ours(model: &Path) -> OrtRuntime {
    OrtRuntime::new(
        model,
        &OrtOptions {
            provider: Provider::Cpu,
            threads: Some(THREADS),
            emulate_trt_plugins: false,
            profile: false,
        },
    )
    .unwrap()
}

/// The tensors as bits (float32 compared bit for bit, not by value).
fn bits(t: &HostTensor) -> (Vec<usize>, Vec<u64>) {
    let v = match &t.data {
        HostData::F32(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
        HostData::I64(v) => v.iter().map(|&x| x as u64).collect(),
        HostData::U8(v) => v.iter().map(|&x| u64::from(x)).collect(),
    };
    (t.shape.clone(), v)
}

fn assert_bit_identical(what: &str, a: &TensorMap, b: &TensorMap) {
    let ka: Vec<&String> = a.keys().collect();
    let kb: Vec<&String> = b.keys().collect();
    assert_eq!(ka, kb, "{what}: output names");
    for (k, t) in a {
        assert!(bits(t) == bits(&b[k]), "{what}: `{k}` differs");
    }
}

/// The `--target ort-cpu --debug` export and its `--selection-inputs` twin, once.
fn models() -> &'static (PathBuf, PathBuf) {
    static M: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    M.get_or_init(|| {
        let f = ["--target", "ort-cpu", "--debug"];
        let a = golden::export_model(&f, "ort_cpu_lib.onnx").keep();
        let b = golden::export_model(
            &[f.as_slice(), &["--selection-inputs"]].concat(),
            "ort_cpu_lib_inj.onnx",
        )
        .keep();
        (a, b)
    })
}

#[test]
fn python_onnxruntime_with_the_library_equals_our_ort_and_meets_the_golden_budgets() {
    let (plain, forced) = models();
    let g = golden::load_case(CASE);
    let mut py_plain = PythonOrt {
        model: plain.clone(),
    };
    let mut py_forced = PythonOrt {
        model: forced.clone(),
    };
    let out = golden::run_case(&mut py_plain, &g, false);
    let inj = golden::run_case(&mut py_forced, &g, true);
    assert_bit_identical(
        "free running",
        &out,
        &golden::run_case(&mut ours(plain), &g, false),
    );
    assert_bit_identical(
        "forced",
        &inj,
        &golden::run_case(&mut ours(forced), &g, true),
    );
    let report = golden::check_case(CASE, &out, &inj, &g);
    eprintln!(
        "Python onnxruntime + libfocus_ops.so, {CASE}:\n  {}",
        report.join("\n  ")
    );
}

/// A deterministic uniform sequence in [lo, hi).
fn uniform(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// A model of one MsDeformAttn and one DynamicTopK node (IR 8, so that older runtimes load
/// it), its inputs, and the outputs of the `focus_ops` kernels on them.
fn tiny() -> &'static (PathBuf, TensorMap, TensorMap) {
    static T: OnceLock<(PathBuf, TensorMap, TensorMap)> = OnceLock::new();
    T.get_or_init(|| {
        let (n, m, d, q, p) = (2, 2, 4, 5, 2);
        let shapes = [4i64, 6, 2, 3];
        let starts = [0i64, 24];
        let (l, s) = (2, 30);
        let value = uniform(n * s * m * d, 1, -1.0, 1.0);
        // Some locations fall outside [0, 1]: the zero padding is part of the contract.
        let loc = uniform(n * q * m * l * p * 2, 2, -0.1, 1.1);
        let aw = uniform(n * q * m * l * p, 3, 0.0, 1.0);
        let mut scores = uniform(2 * 7, 4, -1.0, 1.0);
        scores[3] = scores[5]; // a tie: the lower index comes first
        let mut inputs = TensorMap::new();
        inputs.insert("value".into(), HostTensor::f32(vec![n, s, m, d], value.clone()));
        inputs.insert("spatial_shapes".into(), HostTensor::i64(vec![l, 2], shapes.to_vec()));
        inputs.insert("level_start_index".into(), HostTensor::i64(vec![l], starts.to_vec()));
        inputs.insert("loc".into(), HostTensor::f32(vec![n, q, m, l, p, 2], loc.clone()));
        inputs.insert("aw".into(), HostTensor::f32(vec![n, q, m, l, p], aw.clone()));
        inputs.insert("scores".into(), HostTensor::f32(vec![2, 7], scores.clone()));
        inputs.insert("k".into(), HostTensor::i64(vec![1], vec![3]));
        let dims = focus_ops::msda::MsdaDims { n, s, m, d, q, l, p };
        let out = focus_ops::msda::ms_deform_attn(&value, &shapes, &starts, &loc, &aw, dims).unwrap();
        let (vals, idx) = focus_ops::topk::dynamic_topk(&scores, 2, 7, 3).unwrap();
        let mut expected = TensorMap::new();
        expected.insert("out".into(), HostTensor::f32(vec![n, q, m * d], out));
        expected.insert("vals".into(), HostTensor::f32(vec![2, 3], vals));
        expected.insert("idx".into(), HostTensor::i64(vec![2, 3], idx));
        let model = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ops_library_tiny.onnx");
        let script = r#"
import sys, onnx
from onnx import helper as h, TensorProto as T
D = "ai.focus_detr"
g = h.make_graph([
    h.make_node("MsDeformAttn", ["value", "spatial_shapes", "level_start_index", "loc", "aw"], ["out"], domain=D, name="msda"),
    h.make_node("DynamicTopK", ["scores", "k"], ["vals", "idx"], domain=D, name="topk")],
  "tiny",
  [h.make_tensor_value_info("value", T.FLOAT, None), h.make_tensor_value_info("spatial_shapes", T.INT64, None),
   h.make_tensor_value_info("level_start_index", T.INT64, None), h.make_tensor_value_info("loc", T.FLOAT, None),
   h.make_tensor_value_info("aw", T.FLOAT, None), h.make_tensor_value_info("scores", T.FLOAT, None),
   h.make_tensor_value_info("k", T.INT64, None)],
  [h.make_tensor_value_info("out", T.FLOAT, None), h.make_tensor_value_info("vals", T.FLOAT, None),
   h.make_tensor_value_info("idx", T.INT64, None)])
onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid(D, 1)], ir_version=8), sys.argv[1])
"#;
        common::run_python_on_model(script, &model);
        (model, inputs, expected)
    })
}

#[test]
fn both_ops_equal_the_kernels_on_the_pinned_and_the_oldest_supported_runtime() {
    let (model, inputs, expected) = tiny();
    let got = run_python(&python(".venv"), None, model, inputs).unwrap();
    assert_bit_identical("onnxruntime 1.31.1", &got, expected);
    let (py, dir) = old_runtime(OLDEST);
    let got = run_python(&py, Some(&dir), model, inputs)
        .unwrap_or_else(|(c, e)| panic!("onnxruntime {OLDEST}: exit {c:?}: {e}"));
    assert_bit_identical(&format!("onnxruntime {OLDEST}"), &got, expected);
    // The minimum the library asks for is this version's C API.
    assert_eq!(
        OLDEST.split('.').nth(1),
        Some(LIBRARY_MIN_ORT_API.to_string().as_str())
    );
}

#[test]
fn an_older_runtime_refuses_the_library_with_what_it_needs() {
    let (model, inputs, _) = tiny();
    let (py, dir) = old_runtime(TOO_OLD);
    let (code, stderr) = run_python(&py, Some(&dir), model, inputs)
        .expect_err("onnxruntime 1.16.3 must refuse the library");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("ONNX Runtime {TOO_OLD}"))
            && stderr.contains(&format!("1.{LIBRARY_MIN_ORT_API} or newer")),
        "{stderr}"
    );
}

#[test]
fn the_cli_prints_the_library_and_what_it_is() {
    let mut cmd = common::cli();
    cmd.args(["ops-library", "--info"]);
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(ok, "{stderr}");
    let mut lines = stdout.lines();
    // The same file (cargo puts it in target/<profile> and, for test binaries, deps/).
    let printed = PathBuf::from(lines.next().unwrap_or_default());
    assert_eq!(
        std::fs::read(&printed).ok(),
        std::fs::read(library()).ok(),
        "{stdout}"
    );
    let info = lines.next().unwrap_or_default();
    assert!(
        info.contains("ai.focus_detr")
            && info.contains("MsDeformAttn")
            && info.contains("DynamicTopK"),
        "{info}"
    );
    let mut cmd = common::cli();
    cmd.arg("ops-library").env(
        focus_export::ops_library::OPS_LIBRARY_ENV_VAR,
        "/nonexistent/libfocus_ops.so",
    );
    let (ok, _, stderr) = common::output(cmd);
    assert!(
        !ok && stderr.contains("/nonexistent/libfocus_ops.so"),
        "{stderr}"
    );
}
