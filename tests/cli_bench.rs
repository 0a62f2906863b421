//! `focus-export bench` end to end on the tiny configuration, and the dense baseline (`--dense`):
//! every encoder layer keeps every token in the reference and in the export, `bench` times it
//! beside the sparse model and reports their ratio (with ORT's per-op profile), and a model in the
//! wrong place is refused. `bench-ops` times both deformable-attention problems.

mod common;

use std::path::{Path, PathBuf};

use focus_export::tensors::{read_tensors, write_tensors, HostTensor, TensorMap};

/// Input side: 128×128 gives the tiny model 340 tokens (16² + 8² + 4² + 2²).
const SIDE: usize = 128;
const TOKENS: i64 = 340;

/// (config, weights, sparse export, dense export, input) in `dir`, all for the tiny config.
fn setup(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf, PathBuf) {
    let config = common::write_tiny_config(dir);
    let weights = dir.join("w.safetensors");
    let mut cmd = common::cli();
    cmd.args(["init-weights", "--seed", "2", "--config"])
        .arg(&config)
        .arg("-o")
        .arg(&weights);
    let (ok, _, e) = common::output(cmd);
    assert!(ok, "{e}");
    let export = |file: &str, dense: bool| {
        let out = dir.join(file);
        let mut cmd = common::cli();
        cmd.arg("--weights")
            .arg(&weights)
            .arg("--config")
            .arg(&config)
            .arg("--debug")
            .arg("-o")
            .arg(&out);
        if dense {
            cmd.arg("--dense");
        }
        let (ok, _, e) = common::output(cmd);
        assert!(ok, "{e}");
        out
    };
    let sparse = export("sparse.onnx", false);
    let dense = export("dense.onnx", true);
    // A smooth pattern: no ties that matter here, and the same on every machine.
    let data: Vec<f32> = (0..3 * SIDE * SIDE)
        .map(|i| ((i as f32) * 0.013).sin())
        .collect();
    let mut m = TensorMap::new();
    m.insert(
        "images".into(),
        HostTensor::f32(vec![1, 3, SIDE, SIDE], data),
    );
    let input = dir.join("in.safetensors");
    write_tensors(&input, &m).unwrap();
    (config, weights, sparse, dense, input)
}

/// `run`'s outputs for `args`.
fn run(dir: &Path, args: &[&std::ffi::OsStr], input: &Path) -> TensorMap {
    let out = dir.join("out.safetensors");
    let mut cmd = common::cli();
    cmd.arg("run")
        .args(args)
        .arg("--debug")
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(&out);
    let (ok, _, e) = common::output(cmd);
    assert!(ok, "{e}");
    read_tensors(&out).unwrap()
}

/// The names in a profile table's rows ([name, seconds, count]).
fn row_names(rows: &serde_json::Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| row[0].as_str().unwrap().to_string())
        .collect()
}

fn i64s(t: &HostTensor) -> Vec<i64> {
    t.as_i64().expect("an integer tensor").to_vec()
}

#[test]
fn dense_keeps_every_token_and_bench_reports_the_sparse_dense_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let (config, weights, sparse, dense, input) = setup(dir.path());
    let os = |s: &'static str| std::ffi::OsStr::new(s);

    // Every encoder layer keeps all N tokens, in the reference and in the export.
    let torch = run(
        dir.path(),
        &[
            os("--weights"),
            weights.as_os_str(),
            os("--config"),
            config.as_os_str(),
            os("--dense"),
        ],
        &input,
    );
    let ort = run(
        dir.path(),
        &[os("--runtime"), os("ort"), os("--model"), dense.as_os_str()],
        &input,
    );
    for (what, out) in [("torch", &torch), ("ort", &ort)] {
        assert_eq!(i64s(&out["enc_k_per_layer"]), [TOKENS; 6], "{what}");
        assert_eq!(i64s(&out["focus_token_num"]), [TOKENS], "{what}");
    }
    // The sparse export keeps K = int(ρ·N) + 1 and the cascade's share of it.
    let plain = run(
        dir.path(),
        &[
            os("--runtime"),
            os("ort"),
            os("--model"),
            sparse.as_os_str(),
        ],
        &input,
    );
    assert_eq!(i64s(&plain["focus_token_num"]), [TOKENS / 2 + 1]);

    let mut cmd = common::cli();
    cmd.arg("bench")
        .arg("--weights")
        .arg(&weights)
        .arg("--config")
        .arg(&config)
        .arg("--model")
        .arg(&sparse)
        .arg("--dense-model")
        .arg(&dense)
        .args([
            "--runtimes",
            "torch,ort,tract",
            "--warmup",
            "0",
            "--runs",
            "1",
            "--rounds",
            "2",
        ])
        .args(["--threads", "1", "--profile", "--json"])
        .arg("--input")
        .arg(&input);
    let (ok, stdout, e) = common::output(cmd);
    assert!(ok, "{e}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let forms: Vec<(String, bool)> = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["runtime"].as_str().unwrap().to_string(),
                r["dense"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        forms,
        [
            ("torch-cpu".into(), false),
            ("torch-cpu".into(), true),
            ("ort-cpu".into(), false),
            ("ort-cpu".into(), true),
            ("tract".into(), false),
            ("tract".into(), true)
        ],
        "{stdout}"
    );
    // Two rounds, the forms taking turns: each result holds both rounds' runs.
    assert_eq!(doc["rounds"], 2, "{stdout}");
    for r in doc["results"].as_array().unwrap() {
        assert_eq!(r["rounds"], 2, "{r}");
        assert_eq!(r["runs_s"].as_array().unwrap().len(), 2, "{r}");
        assert!(r["peak_rss_mib"].as_f64().unwrap() > 0.0, "{r}");
    }
    // ORT's and tract's profiles of the timed run (ORT's: every op type of the model,
    // convolutions and TopK among them); torch has none.
    for r in doc["results"].as_array().unwrap() {
        let p = &r["profile"];
        if r["runtime"] == "torch-cpu" {
            assert!(p.is_null(), "{r}");
            continue;
        }
        assert!(p["kernel_s"].as_f64().unwrap() > 0.0, "{p}");
        assert_eq!(p["runs"], 1);
        assert!(!p["top_nodes"].as_array().unwrap().is_empty(), "{p}");
        // Time per model part, from the module paths in the node names (ORT renames the
        // convolutions it rewrites, so only the transformer's parts are sure to be there).
        let parts = row_names(&p["by_module"]);
        let has = |list: &[String], name: &str| list.iter().any(|x| x == name);
        assert!(
            has(&parts, "transformer.encoder") && has(&parts, "transformer.decoder"),
            "{parts:?}"
        );
        if r["runtime"] == "tract" {
            assert!(has(&parts, "backbone.res2"), "{parts:?}");
            continue;
        }
        let ops = row_names(&p["by_op"]);
        // (ORT may fuse a convolution with its activation: FusedConv.)
        assert!(
            ops.iter().any(|o| o.ends_with("Conv")) && has(&ops, "TopK"),
            "{ops:?}"
        );
    }
    let ratios = doc["sparse_dense_p50"].as_array().unwrap();
    assert_eq!(ratios.len(), 3, "{stdout}");
    for r in ratios {
        let x = r["ratio"].as_f64().unwrap();
        assert!(x.is_finite() && x > 0.0, "{r}");
    }
    assert_eq!(
        doc["paper_sparse_dense_latency"].as_f64(),
        Some(focus_export::bench::PAPER_SPARSE_DENSE_LATENCY)
    );
}

/// `--tract-model`: tract times its own export (our custom ops) beside ORT on --model (the
/// standard ops), in one run; the profiles show which file each ran.
#[test]
fn tract_times_its_own_export_beside_ort() {
    let dir = tempfile::tempdir().unwrap();
    let (config, weights, sparse, _, input) = setup(dir.path());
    let tract_model = dir.path().join("tract.onnx");
    let mut cmd = common::cli();
    cmd.arg("--weights")
        .arg(&weights)
        .arg("--config")
        .arg(&config)
        .args(["--target", "tract", "-o"])
        .arg(&tract_model);
    let (ok, _, e) = common::output(cmd);
    assert!(ok, "{e}");
    let mut cmd = common::cli();
    cmd.arg("bench")
        .arg("--model")
        .arg(&sparse)
        .arg("--tract-model")
        .arg(&tract_model)
        .arg("--config")
        .arg(&config)
        .args([
            "--warmup",
            "0",
            "--runs",
            "1",
            "--threads",
            "1",
            "--profile",
            "--json",
        ])
        .arg("--input")
        .arg(&input);
    let (ok, stdout, e) = common::output(cmd);
    assert!(ok, "{e}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let results = doc["results"].as_array().unwrap();
    let runtimes: Vec<&str> = results
        .iter()
        .map(|r| r["runtime"].as_str().unwrap())
        .collect();
    assert_eq!(
        runtimes,
        ["ort-cpu", "tract"],
        "the default runtimes: {stdout}"
    );
    let op_types = |r: &serde_json::Value| row_names(&r["profile"]["by_op"]);
    let custom = focus_ops::decl::MS_DEFORM_ATTN.op_type;
    assert!(
        !op_types(&results[0]).iter().any(|o| o == custom),
        "ort ran the standard export: {:?}",
        op_types(&results[0])
    );
    assert!(
        op_types(&results[1]).iter().any(|o| o == custom),
        "tract ran --tract-model: {:?}",
        op_types(&results[1])
    );
}

#[test]
fn misplaced_models_and_rho_one_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (config, weights, sparse, dense, input) = setup(dir.path());
    let bench = |model: &Path, dense_model: &Path| {
        let mut cmd = common::cli();
        cmd.arg("bench")
            .arg("--model")
            .arg(model)
            .arg("--dense-model")
            .arg(dense_model)
            .args(["--runtimes", "ort", "--warmup", "0", "--runs", "1"])
            .arg("--input")
            .arg(&input);
        let (ok, _, e) = common::output(cmd);
        assert!(!ok);
        e
    };
    let e = bench(&sparse, &sparse);
    assert!(
        e.contains("sparse.onnx (--dense-model) is not a dense export"),
        "{e}"
    );
    let e = bench(&dense, &dense);
    assert!(e.contains("dense.onnx is a dense export"), "{e}");
    // The reference follows the flags: --dense beside --dense-model would time dense twice.
    let mut cmd = common::cli();
    cmd.arg("bench")
        .arg("--weights")
        .arg(&weights)
        .arg("--config")
        .arg(&config)
        .arg("--dense")
        .arg("--dense-model")
        .arg(&dense)
        .args(["--runtimes", "torch", "--warmup", "0", "--runs", "1"])
        .arg("--input")
        .arg(&input);
    let (ok, _, e) = common::output(cmd);
    assert!(!ok && e.contains("--dense with --dense-model"), "{e}");

    // ρ = 1 would ask for N + 1 of N tokens: the configuration is refused, naming the field.
    let rho_one = dir.path().join("rho1.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    json["focus"]["rho"] = 1.0.into();
    std::fs::write(&rho_one, json.to_string()).unwrap();
    let out = dir.path().join("rho1.onnx");
    let mut cmd = common::cli();
    cmd.args(["init-weights", "--config"])
        .arg(&rho_one)
        .arg("-o")
        .arg(&out);
    let (ok, _, e) = common::output(cmd);
    assert!(
        !ok && e.contains("focus.rho") && e.contains("--dense"),
        "{e}"
    );
    assert!(!out.exists());
}

#[test]
fn bench_ops_times_the_kernel_on_every_token_and_on_encoder_layer_0s_selection() {
    // The full configuration at a small size: few tokens, so one run of each form is quick.
    let cfg = focus_models::FocusDetrConfig::default();
    let s: usize = cfg.level_sizes(64, 96).iter().map(|(h, w)| h * w).sum();
    let k0 = cfg.focus.layer_token_counts(cfg.focus.token_budget(s))[0];
    assert!(k0 < s, "layer 0 must select a subset here ({k0} of {s})");
    let mut cmd = common::cli();
    cmd.args([
        "bench-ops",
        "--size",
        "64x96",
        "--warmup",
        "0",
        "--runs",
        "1",
        "--threads",
        "1",
        "--json",
    ]);
    let (ok, out, e) = common::output(cmd);
    assert!(ok, "{e}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let forms_of = |needle: &str| -> Vec<String> {
        doc.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["problem"].as_str().unwrap().contains(needle))
            .map(|r| r["form"].as_str().unwrap().to_string())
            .collect()
    };
    for needle in [
        format!("MsDeformAttn {s} queries"),
        format!("its {k0} selected of {s} tokens"),
    ] {
        let forms = forms_of(&needle);
        assert!(
            forms.iter().any(|f| f.starts_with("decomposed"))
                && forms.iter().any(|f| f.starts_with("native")),
            "{needle}: {forms:?}\n{out}"
        );
    }
}
