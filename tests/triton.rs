//! `focus-export triton`: the repository's configs parse as Triton's own `ModelConfig`
//! (tritonclient's `model_config_pb2`, scripts/triton/client.py validate) and agree with the ONNX
//! file they serve, for every target; the Python-backend form is served for real by Triton's
//! server binary (nvidia-pytriton's `tritonserver`, started on 127.0.0.1 with free ports), and
//! its answers for two photos and a batch of four equal `focus-export run` on the same inputs.
//! The tiny config keeps the exports and the server fast.
#![cfg(feature = "ort")]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{cli, output, TINY_CONFIG_JSON};
use focus_export::check::iou;
use focus_export::tensors::{read_tensors, write_tensors, HostData, HostTensor, TensorMap};
use focus_exporters::io::{IoDim, IoElem};
use serde_json::Value;

/// A served detection equals the reference's when its category is the same, its score within
/// SCORE_TOL and its box's IoU at least MIN_IOU: both sides run the same file on ONNX Runtime
/// 1.31.1 with the same kernels; rows the server batches together may round differently in
/// float32 (other matrix-product blockings, ~1e-6 relative).
const SCORE_TOL: f32 = 1e-4;
/// See [`SCORE_TOL`].
const MIN_IOU: f64 = 0.999;
/// The repository's preprocessing (PIL's bilinear resize, as the official pipeline) against
/// ours (image-rs's triangle filter, the same area-aware support): resized pixels differ by at
/// most this many grey levels (rounding; measured: 1 on these photos), so normalised pixels by at
/// most that over the smallest std.
const MAX_GREY_LEVELS: f32 = 1.0;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn photos() -> PathBuf {
    root().join(".runtimes/photos")
}

/// Two photos of different sizes, sent one by one.
const SINGLES: [&str; 2] = ["chelsea.png", "coffee.png"];
/// Four 512×512 photos (one grayscale), sent as one request.
const BATCH: [&str; 4] = ["astronaut.png", "ihc.png", "camera.png", "moon.png"];

/// The deploy environment's interpreter (tritonclient, onnxruntime, pillow).
fn python() -> PathBuf {
    let p = root().join(".venv-deploy/bin/python");
    assert!(
        p.exists(),
        "{} missing: run scripts/setup-env.sh",
        p.display()
    );
    p
}

fn client(args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(root().join("scripts/triton/client.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client.py {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The shared fixture: the tiny config (test-time size 320/512, so served inputs stay small),
/// its seeded weights, and one repository per form.
struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
    weights: PathBuf,
    /// Name → repository.
    repos: BTreeMap<&'static str, PathBuf>,
}

/// The forms written: name and `triton` flags.
const FORMS: [(&str, &[&str]); 5] = [
    ("python", &["--backend", "python"]),
    (
        "ort-cpu",
        &["--target", "ort-cpu", "--instances", "2", "--threads", "1"],
    ),
    (
        "ort-cuda",
        &["--target", "ort-cuda", "--no-dynamic-batching"],
    ),
    ("tensorrt", &["--target", "tensorrt"]),
    (
        "tensorrt-fp16",
        &[
            "--target",
            "tensorrt",
            "--precision",
            "fp16",
            "--max-batch",
            "2",
        ],
    ),
];

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut cfg: Value = serde_json::from_str(TINY_CONFIG_JSON).unwrap();
        cfg["preprocess"] = serde_json::json!({"min_size": 320, "max_size": 512});
        let config = dir.join("tiny.json");
        std::fs::write(&config, cfg.to_string()).unwrap();
        let weights = dir.join("tiny.safetensors");
        let mut c = cli();
        c.args(["init-weights", "--config"])
            .arg(&config)
            .arg("-o")
            .arg(&weights);
        let (ok, _, err) = output(c);
        assert!(ok, "{err}");
        let mut repos = BTreeMap::new();
        for (name, flags) in FORMS {
            let repo = dir.join(name);
            let mut c = cli();
            c.args(["triton", "--weights"])
                .arg(&weights)
                .arg("--config")
                .arg(&config)
                .args(flags)
                .arg("-o")
                .arg(&repo);
            let (ok, out, err) = output(c);
            assert!(ok, "triton {flags:?}: {out}{err}");
            repos.insert(name, repo);
        }
        Fixture {
            _dir: tmp,
            dir,
            config,
            weights,
            repos,
        }
    })
}

fn triton_type(e: IoElem) -> &'static str {
    match e {
        IoElem::F32 => "TYPE_FP32",
        IoElem::F16 => "TYPE_FP16",
        IoElem::I64 => "TYPE_INT64",
        IoElem::I32 => "TYPE_INT32",
        IoElem::U8 => "TYPE_UINT8",
        IoElem::Bool => "TYPE_BOOL",
        IoElem::Other(t) => panic!("unmapped ONNX type {t}"),
    }
}

/// `[{name, data_type, dims}]` of a parsed config's `input` or `output` list.
fn tensors(cfg: &Value, key: &str) -> Vec<(String, String, Vec<i64>)> {
    cfg[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let dims = t["dims"]
                        .as_array()
                        .unwrap()
                        .iter()
                        // protobuf's JSON writes int64 as strings.
                        .map(|d| {
                            d.as_str()
                                .map_or_else(|| d.as_i64().unwrap(), |s| s.parse().unwrap())
                        })
                        .collect();
                    (
                        t["name"].as_str().unwrap().to_string(),
                        t["data_type"].as_str().unwrap().to_string(),
                        dims,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn parameter<'a>(cfg: &'a Value, key: &str) -> Option<&'a str> {
    cfg["parameters"][key]["string_value"].as_str()
}

#[test]
fn every_config_parses_as_triton_model_config_and_matches_the_onnx_file() {
    let f = fixture();
    for (name, _) in FORMS {
        let repo = &f.repos[name];
        let parsed: Value =
            serde_json::from_str(&client(&["validate", repo.to_str().unwrap()])).unwrap();
        let models: Vec<&str> = parsed
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = focus_export::triton::MODELS.to_vec();
        want.sort();
        assert_eq!(models, want, "{name}");
        let det = &parsed[focus_export::triton::DETECTOR];
        // The detector's declared tensors are the ONNX file's, batch dimension left out.
        let bytes = std::fs::read(repo.join("focus_detr/1/model.onnx")).unwrap();
        let (gi, go) = focus_exporters::io::graph_io_of_bytes(&bytes).unwrap();
        let from_graph =
            |specs: &[focus_exporters::io::IoSpec]| -> Vec<(String, String, Vec<i64>)> {
                specs
                    .iter()
                    .map(|s| {
                        assert!(
                            matches!(s.dims[0], IoDim::Named(_)),
                            "{name}: {} has a fixed batch",
                            s.name
                        );
                        let dims = s.dims[1..]
                            .iter()
                            .map(|d| if let IoDim::Fixed(v) = d { *v } else { -1 })
                            .collect();
                        (s.name.clone(), triton_type(s.elem).to_string(), dims)
                    })
                    .collect()
            };
        assert_eq!(tensors(det, "input"), from_graph(&gi), "{name}: inputs");
        assert_eq!(tensors(det, "output"), from_graph(&go), "{name}: outputs");
        assert_eq!(
            tensors(det, "input")[0].2,
            vec![3, -1, -1],
            "{name}: images dims"
        );
        let max_batch = det["max_batch_size"].as_i64().unwrap();
        for m in focus_export::triton::MODELS {
            assert_eq!(
                parsed[m]["max_batch_size"].as_i64(),
                Some(max_batch),
                "{name}/{m}"
            );
        }
        let gpu = name != "python" && name != "ort-cpu";
        let kind = det["instance_group"][0]["kind"].as_str().unwrap();
        assert_eq!(kind, if gpu { "KIND_GPU" } else { "KIND_CPU" }, "{name}");
        let library = repo
            .join("focus_detr")
            .join(focus_export::ops_library::file_name());
        match name {
            "python" => {
                assert_eq!(det["backend"], "python");
                assert!(repo.join("focus_detr/1/model.py").is_file());
                assert_eq!(
                    parameter(det, "ops_library"),
                    Some(focus_export::ops_library::file_name().as_str())
                );
                assert!(library.is_file());
            }
            _ => {
                assert_eq!(det["platform"], "onnxruntime_onnx", "{name}");
                let op_lib = det["model_operations"]["op_library_filename"][0].as_str();
                if name == "ort-cpu" {
                    // Named by its absolute serving path, which is where it was written.
                    assert_eq!(
                        op_lib.map(PathBuf::from),
                        Some(std::path::absolute(&library).unwrap())
                    );
                    assert!(library.is_file());
                    assert_eq!(det["instance_group"][0]["count"].as_i64(), Some(2));
                    assert_eq!(parameter(det, "intra_op_thread_count"), Some("1"));
                } else {
                    assert_eq!(
                        op_lib, None,
                        "{name}: standard ops or the TensorRT plugin need no library"
                    );
                    assert!(!library.exists(), "{name}");
                }
            }
        }
        let trt = &det["optimization"]["execution_accelerators"]["gpu_execution_accelerator"];
        if name.starts_with("tensorrt") {
            assert_eq!(trt[0]["name"], "tensorrt");
            let precision = trt[0]["parameters"]["precision_mode"].as_str();
            assert_eq!(
                precision,
                Some(if name.ends_with("fp16") {
                    "FP16"
                } else {
                    "FP32"
                })
            );
            let text = std::fs::read_to_string(repo.join("focus_detr/config.pbtxt")).unwrap();
            assert!(
                text.contains("MultiscaleDeformableAttnPlugin_TRT"),
                "the plugin note"
            );
        } else {
            assert!(trt.is_null(), "{name}");
        }
        if name == "ort-cuda" {
            assert!(det["dynamic_batching"].is_null());
        } else {
            assert!(det["dynamic_batching"].is_object(), "{name}");
        }
        // The preprocessing feeds the detector's inputs, the postprocessing reads its outputs.
        let pre = &parsed[focus_export::triton::PREPROCESS];
        assert_eq!(tensors(pre, "output"), tensors(det, "input"), "{name}");
        assert_eq!(parameter(pre, "min_size"), Some("320"));
        let post = &parsed[focus_export::triton::POSTPROCESS];
        let det_out = tensors(det, "output");
        for t in tensors(post, "input") {
            assert!(
                det_out.contains(&t) || tensors(det, "input").contains(&t),
                "{name}: postprocess input {t:?} is not the detector's"
            );
        }
        // The ensemble: every step reads what an earlier step (or the client) made, maps only
        // tensors its model has, and the outputs are made by a step.
        let ens = &parsed[focus_export::triton::ENSEMBLE];
        assert_eq!(ens["platform"], "ensemble");
        let mut available: Vec<String> = tensors(ens, "input").into_iter().map(|t| t.0).collect();
        for step in ens["ensemble_scheduling"]["step"].as_array().unwrap() {
            let model = &parsed[step["model_name"].as_str().unwrap()];
            let ins: Vec<String> = tensors(model, "input").into_iter().map(|t| t.0).collect();
            let outs: Vec<String> = tensors(model, "output").into_iter().map(|t| t.0).collect();
            for (k, v) in step["input_map"].as_object().unwrap() {
                assert!(
                    ins.contains(k),
                    "{name}: {k} is no input of {}",
                    step["model_name"]
                );
                assert!(
                    available.contains(&v.as_str().unwrap().to_string()),
                    "{name}: {v} not made yet"
                );
            }
            for (k, v) in step["output_map"].as_object().unwrap() {
                assert!(
                    outs.contains(k),
                    "{name}: {k} is no output of {}",
                    step["model_name"]
                );
                available.push(v.as_str().unwrap().to_string());
            }
        }
        for (o, ty, dims) in tensors(ens, "output") {
            assert!(
                available.contains(&o),
                "{name}: ensemble output {o} made by no step"
            );
            assert!(
                tensors(post, "output").contains(&(o.clone(), ty, dims)),
                "{name}: {o}"
            );
        }
        assert!(repo.join("focus_detr_image/1").is_dir());
        assert!(std::fs::read_to_string(repo.join("README.md"))
            .unwrap()
            .contains("tritonserver --model-repository"));
    }
}

/// One served detection, or one from the reference.
#[derive(Debug, Clone)]
struct Det {
    score: f32,
    category_id: i64,
    name: String,
    bbox: [f32; 4],
}

fn served(v: &Value) -> Vec<Vec<Det>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|img| {
            img["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| Det {
                    score: d["score"].as_f64().unwrap() as f32,
                    category_id: d["category_id"].as_i64().unwrap(),
                    name: d["name"].as_str().unwrap().to_string(),
                    bbox: std::array::from_fn(|i| d["bbox_xyxy"][i].as_f64().unwrap() as f32),
                })
                .collect()
        })
        .collect()
}

/// `focus-export run` on the repository's own preprocessed inputs of `photos`, as one batch
/// (the same input the server ran), post-processed by our Rust code (detectron2's
/// clip-and-drop; the model already scaled the boxes to each photo).
fn reference(f: &Fixture, repo: &Path, photos_in: &[&str]) -> Vec<Vec<Det>> {
    let dir = f.dir.join("reference");
    let mut args = vec![
        "prepare".to_string(),
        repo.display().to_string(),
        dir.display().to_string(),
    ];
    args.extend(
        photos_in
            .iter()
            .map(|p| photos().join(p).display().to_string()),
    );
    client(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // The batch: every photo's `images` and `orig_sizes` stacked along the first dimension.
    let mut stacked = TensorMap::new();
    for p in photos_in {
        let one = read_tensors(&dir.join(p.replace(".png", ".safetensors"))).unwrap();
        for (k, t) in one {
            let entry = stacked.entry(k).or_insert_with(|| {
                let mut shape = t.shape.clone();
                shape[0] = 0;
                match t.as_f32() {
                    Some(_) => HostTensor::f32(shape, vec![]),
                    None => HostTensor::i64(shape, vec![]),
                }
            });
            entry.shape[0] += 1;
            match (&mut entry.data, &t.data) {
                (HostData::F32(a), HostData::F32(b)) => a.extend_from_slice(b),
                (HostData::I64(a), HostData::I64(b)) => a.extend_from_slice(b),
                _ => panic!("mixed types"),
            }
        }
    }
    let input = dir.join("batch.safetensors");
    write_tensors(&input, &stacked).unwrap();
    let out = dir.join("batch.out.safetensors");
    let mut c = cli();
    c.args(["run", "--runtime", "ort", "--model"])
        .arg(repo.join("focus_detr/1/model.onnx"))
        .arg("--config")
        .arg(&f.config)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&out);
    let (ok, o, e) = output(c);
    assert!(ok, "{o}{e}");
    let ran = read_tensors(&out).unwrap();
    let sizes = stacked["orig_sizes"].as_i64().unwrap();
    let k = *ran["scores"].shape.last().unwrap();
    (0..photos_in.len())
        .map(|row| {
            let hw = (sizes[2 * row] as f32, sizes[2 * row + 1] as f32);
            let boxes: Vec<[f32; 4]> = ran["boxes_xyxy"].as_f32().unwrap()
                [4 * k * row..4 * k * (row + 1)]
                .chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect();
            let d = focus_models::postprocess::clip_and_drop(
                &ran["scores"].as_f32().unwrap()[k * row..k * (row + 1)],
                &ran["labels"].as_i64().unwrap()[k * row..k * (row + 1)],
                &boxes,
                hw,
                hw,
            );
            (0..d.scores.len())
                .map(|i| {
                    let l = d.labels[i] as usize;
                    Det {
                        score: d.scores[i],
                        category_id: i64::from(focus_models::postprocess::COCO_IDS[l]),
                        name: focus_models::postprocess::COCO_NAMES[l].to_string(),
                        bbox: d.boxes[i],
                    }
                })
                .collect()
        })
        .collect()
}

fn assert_same(photo: &str, got: &[Det], want: &[Det]) {
    assert!(!want.is_empty(), "{photo}: the reference kept no detection");
    assert_eq!(got.len(), want.len(), "{photo}: {got:?}\nvs {want:?}");
    let mut used = vec![false; got.len()];
    for w in want {
        let j = (0..got.len()).find(|&j| {
            !used[j]
                && got[j].category_id == w.category_id
                && got[j].name == w.name
                && (got[j].score - w.score).abs() <= SCORE_TOL
                && iou(&got[j].bbox, &w.bbox) >= MIN_IOU
        });
        let j =
            j.unwrap_or_else(|| panic!("{photo}: no served detection matches {w:?} in {got:?}"));
        used[j] = true;
    }
}

#[test]
fn triton_serves_the_ensemble_two_photos_and_a_batch_of_four_as_focus_export_run() {
    let f = fixture();
    let repo = &f.repos["python"];
    let log = f.dir.join("server.log");
    for n in SINGLES.iter().chain(&BATCH) {
        assert!(
            photos().join(n).exists(),
            "{n} missing: run scripts/setup-env.sh"
        );
    }
    // `client.py infer` with a server of its own on the repository, `extra` flags, the photos.
    let infer = |extra: &[&str], names: &[&str]| -> Vec<Vec<Det>> {
        let mut args: Vec<String> = ["infer", "--serve", repo.to_str().unwrap()]
            .iter()
            .chain(&["--server-log", log.to_str().unwrap()])
            .chain(extra)
            .map(|a| a.to_string())
            .collect();
        args.extend(names.iter().map(|n| photos().join(n).display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        served(&serde_json::from_str(&client(&args)).unwrap())
    };
    // Two photos, one request each, over HTTP; then the four in one request, over gRPC.
    let got = infer(&[], &SINGLES);
    for (photo, dets) in SINGLES.iter().zip(&got) {
        assert_same(photo, dets, &reference(f, repo, &[photo])[0]);
    }
    let got = infer(&["--protocol", "grpc", "--batch"], &BATCH);
    assert_eq!(got.len(), 4);
    // The same batch through `focus-export run`: a batch's rows may differ from each image run
    // alone where a near-tie selection flips (synthetic weights are flat: see
    // tests/golden_reference.rs, a batch of two), so the reference is the same batch.
    let want = reference(f, repo, &BATCH);
    for ((photo, dets), want) in BATCH.iter().zip(&got).zip(&want) {
        assert_same(photo, dets, want);
    }
}

#[test]
fn the_served_preprocessing_is_close_to_ours() {
    let f = fixture();
    let repo = &f.repos["python"];
    let cfg = focus_models::FocusDetrConfig::resolve(f.config.to_str().unwrap()).unwrap();
    let dir = f.dir.join("preprocess");
    let all: Vec<String> = SINGLES
        .iter()
        .chain(&BATCH)
        .map(|n| photos().join(n).to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["prepare", repo.to_str().unwrap(), dir.to_str().unwrap()];
    args.extend(all.iter().map(String::as_str));
    client(&args);
    for n in SINGLES.iter().chain(&BATCH) {
        let img = focus_export::images::load_rgb(&photos().join(n)).unwrap();
        let (_, ours) = focus_export::images::preprocess(&img, &cfg.preprocess);
        let theirs = read_tensors(&dir.join(n.replace(".png", ".safetensors"))).unwrap();
        let t = &theirs["images"];
        assert_eq!(t.shape, ours.shape, "{n}: the resize rule");
        let sizes = theirs["orig_sizes"].as_i64().unwrap();
        assert_eq!(
            sizes,
            [i64::from(img.height()), i64::from(img.width())],
            "{n}"
        );
        let worst = t
            .as_f32()
            .unwrap()
            .iter()
            .zip(ours.as_f32().unwrap())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{n}: worst normalised pixel difference {worst}");
        let min_std = cfg
            .preprocess
            .pixel_std
            .iter()
            .copied()
            .fold(f32::MAX, f32::min);
        assert!(
            worst <= MAX_GREY_LEVELS / min_std * (1.0 + 1e-5),
            "{n}: worst normalised pixel differs by {worst}"
        );
    }
}

#[test]
fn repositories_are_deterministic_atomic_and_refuse_bad_options() {
    let f = fixture();
    let again = f.dir.join("python-again");
    let mut c = cli();
    c.args(["triton", "--weights"])
        .arg(&f.weights)
        .arg("--config")
        .arg(&f.config);
    // Served from the same place: every file, the README's paths too, must be the same.
    c.args(["--backend", "python", "--serve-path"])
        .arg(std::path::absolute(&f.repos["python"]).unwrap());
    c.arg("-o").arg(&again);
    let (ok, out, err) = output(c);
    assert!(ok, "{out}{err}");
    let (a, b) = (
        common::files_under(&f.repos["python"]),
        common::files_under(&again),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(b[k] == *v, "{k} differs between two identical runs");
    }
    // An existing repository is kept unless --force.
    let run = |extra: &[&str], out: &Path, env: Option<(&str, &str)>| {
        let mut c = cli();
        c.args(["triton", "--weights"])
            .arg(&f.weights)
            .arg("--config")
            .arg(&f.config);
        c.args(extra).arg("-o").arg(out);
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        output(c)
    };
    let (ok, _, err) = run(&[], &again, None);
    assert!(
        !ok && err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    let (ok, _, err) = run(&["--force", "--max-batch", "2"], &again, None);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(again.join("focus_detr/config.pbtxt")).unwrap();
    assert!(text.contains("max_batch_size: 2"), "--force replaced it");
    // Bad options and a missing library: a clear error, and no repository, not even a partial one.
    let none = f.dir.join("never");
    for (extra, env, says) in [
        (&["--target", "tract"][..], None, "no tract backend"),
        (&["--max-batch", "0"][..], None, "--max-batch"),
        (
            &["--backend", "python", "--target", "tensorrt"][..],
            None,
            "--backend onnxruntime",
        ),
        (&["--serve-path", "relative/dir"][..], None, "absolute"),
        (
            &[][..],
            Some(("FOCUS_OPS_LIBRARY", "/nonexistent/libfocus_ops.so")),
            "libfocus_ops.so",
        ),
    ] {
        let (ok, _, err) = run(extra, &none, env);
        assert!(!ok && err.contains(says), "{extra:?}: {err}");
        assert!(!none.exists(), "{extra:?} left {}", none.display());
    }
    let leftovers: Vec<_> = std::fs::read_dir(&f.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".focus-export-triton")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary folders left: {leftovers:?}"
    );
}
