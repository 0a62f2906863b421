//! The bad-input matrix: every command that reads files is fed every class of bad input it can
//! meet (README, "Bad input"), and each row must end with exit code 2, a message naming the
//! file and what is wrong, no panic, no output file (nor a temporary one) left behind, and
//! its input files unchanged. Interrupted runs (SIGINT, SIGTERM mid-export) leave no partial
//! file either.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::pth::Value;
use focus_models::{synth, WeightSchema};
use safetensors::tensor::{Dtype, TensorView};

/// One row: the class of bad input, the command line, and what its error must say (each
/// fragment, besides the bad file's name).
struct Row {
    class: &'static str,
    args: Vec<OsString>,
    /// The row's own output folder (rows run two at a time).
    out: PathBuf,
    names: String,
    says: &'static str,
}

/// Every input of the matrix, good and bad, in one folder (hashed before and after each row).
struct Fixtures {
    dir: tempfile::TempDir,
}

impl Fixtures {
    fn input(&self, name: &str) -> PathBuf {
        self.dir.path().join("in").join(name)
    }
    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }
    fn put(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.input(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

/// A tensor to write: dtype, shape, little-endian bytes.
type RawTensor = (Dtype, Vec<usize>, Vec<u8>);

/// Tensors as safetensors bytes, by key.
fn safetensors_bytes(tensors: &BTreeMap<String, RawTensor>) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (d, s, b))| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// The CRC-32 of PNG chunks (ISO 3309), bit by bit: test data only.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A PNG whose header declares `w`×`h` RGB pixels, with one tiny (wrong) data chunk.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        let body: Vec<u8> = kind.iter().chain(data).copied().collect();
        c.extend_from_slice(&body);
        c.extend_from_slice(&crc32(&body).to_be_bytes());
        c
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

fn os(parts: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_os_string()).collect()
}

/// Writes every fixture; exports the tiny model once.
fn fixtures() -> Fixtures {
    let fx = Fixtures {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::create_dir_all(fx.dir.path().join("out")).unwrap();
    // The tiny model at a small input size, so that the commands that get as far as running
    // it take a moment.
    let config = common::TINY_CONFIG_JSON
        .trim_end()
        .trim_end_matches('}')
        .to_string()
        + r#", "preprocess": {"min_size": 96, "max_size": 128}}"#;
    fx.put("tiny.json", config.as_bytes());
    let schema = WeightSchema::new(&common::tiny_config());
    let tensors = synth::synthesize(&schema, 0).unwrap();
    let raw: BTreeMap<String, RawTensor> = tensors
        .iter()
        .map(|t| {
            let b = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (t.key.clone(), (Dtype::F32, t.shape.clone(), b))
        })
        .collect();
    let good = safetensors_bytes(&raw);
    let weights = fx.put("w.safetensors", &good);

    // Weight files.
    fx.put("truncated.safetensors", &good[..good.len() * 3 / 5]);
    let mut lying = good.clone();
    lying[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    fx.put("lying.safetensors", &lying);
    fx.put("empty.safetensors", b"");
    let variant = |name: &str, edit: &dyn Fn(&mut RawTensor)| {
        let mut r = raw.clone();
        edit(r.get_mut("neck.convs.0.norm.bias").unwrap());
        fx.put(name, &safetensors_bytes(&r));
    };
    variant("dtype.safetensors", &|t| t.0 = Dtype::I32);
    variant("shape.safetensors", &|t| t.1 = vec![t.1[0] / 2, 2]);
    variant("nan.safetensors", &|t| {
        t.2[8..12].copy_from_slice(&f32::NAN.to_le_bytes())
    });

    // PyTorch checkpoints.
    let entries: Vec<(&str, Value)> = tensors
        .iter()
        .map(|t| (t.key.as_str(), Value::F32(&t.shape, &t.data)))
        .collect();
    let pth = fx.input("w.pth");
    common::pth::write(&pth, &entries, true, "little");
    let pth_bytes = std::fs::read(&pth).unwrap();
    fx.put("truncated.pth", &pth_bytes[..pth_bytes.len() / 2]);
    let mut hostile = entries[..3].to_vec();
    let marker = fx.out("pwned");
    let touch = format!("touch {}", marker.display());
    hostile.push(("backbone.evil", Value::Call("posix", "system", &touch)));
    common::pth::write(&fx.input("code.pth"), &hostile, true, "little");
    common::pth::write_zip_bomb(&fx.input("bomb.zip"), "model_final.pth");

    // Configs.
    fx.put("truncated.json", &config.as_bytes()[..config.len() / 2]);
    fx.put(
        "wrongtype.json",
        br#"{"base": "r50_4scale_36ep", "transformer": {"embed_dim": "wide"}}"#,
    );

    // Models.
    let cfg = fx.input("tiny.json");
    let model = fx.input("m.onnx");
    let mut cmd = common::cli();
    cmd.arg("--weights")
        .arg(&weights)
        .arg("--config")
        .arg(&cfg)
        .arg("-o")
        .arg(&model);
    let (ok, _, stderr) = common::output(cmd);
    assert!(ok, "the tiny export failed: {stderr}");
    let onnx = std::fs::read(&model).unwrap();
    fx.put("truncated.onnx", &onnx[..onnx.len() / 2]);
    fx.put("junk.onnx", &[0xffu8; 4096]);
    fx.put("empty.onnx", b"");
    let other = focus_exporters::opgraph::topk_model(Default::default(), false, 17).unwrap();
    fx.put("other.onnx", &other);

    // Input tensors and photos.
    let mut inputs = BTreeMap::new();
    let x: Vec<u8> = vec![0u8; 3 * 96 * 128 * 4];
    inputs.insert("images".to_string(), (Dtype::F32, vec![1, 3, 96, 128], x));
    let tensors_file = safetensors_bytes(&inputs);
    fx.put("x.safetensors", &tensors_file);
    fx.put(
        "truncated_x.safetensors",
        &tensors_file[..tensors_file.len() - 100],
    );
    let mut wrong = BTreeMap::new();
    wrong.insert(
        "pixels".to_string(),
        (Dtype::F32, vec![2, 2], vec![0u8; 16]),
    );
    fx.put("noimages.safetensors", &safetensors_bytes(&wrong));
    let photo =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(".runtimes/photos/astronaut.png"))
            .expect("scikit-image's photos (scripts/setup-env.sh)");
    fx.put("photo.png", &photo);
    fx.put("img_good/photo.png", &photo);
    for (folder, name, bytes) in [
        (
            "img_corrupt",
            "corrupt.png",
            [&photo[..16], &[7u8; 512][..]].concat(),
        ),
        ("img_empty", "empty.png", Vec::new()),
        (
            "img_truncated",
            "truncated.png",
            photo[..photo.len() / 3].to_vec(),
        ),
        ("img_huge", "huge.png", png_declaring(100_000, 100_000)),
    ] {
        fx.put(&format!("{folder}/{name}"), &bytes);
    }

    // COCO files.
    let ann = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/coco_subset/annotations.json"),
    )
    .unwrap();
    fx.put("ann.json", ann.as_bytes());
    fx.put("truncated_ann.json", &ann.as_bytes()[..ann.len() / 2]);
    fx.put(
        "wrong_ann.json",
        br#"{"images": 3, "annotations": [], "categories": []}"#,
    );
    fx.put(
        "results.json",
        br#"[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.5}]"#,
    );
    fx.put(
        "truncated_results.json",
        br#"[{"image_id": 1, "category_id": 1, "bb"#,
    );
    fx.put(
        "wrong_results.json",
        br#"[{"image_id": 1, "category_id": 1, "bbox": "box", "score": 0.5}]"#,
    );
    fx.put("plain.txt", b"a file where a folder is expected\n");
    fx
}

/// `focus-export --weights W --config C -o O`.
fn export(w: &Path, cfg: &Path, o: &Path) -> Vec<OsString> {
    os(&[&"--weights", &w, &"--config", &cfg, &"-o", &o])
}

/// `focus-export run`: `source` is `("--weights", W)` (torch) or `("--model", M)`.
fn run(runtime: &str, source: (&str, &Path), cfg: &Path, x: &Path, o: &Path) -> Vec<OsString> {
    let (flag, file) = source;
    os(&[
        &"run",
        &"--runtime",
        &runtime,
        &flag,
        &file,
        &"--config",
        &cfg,
        &"--input",
        &x,
        &"--output",
        &o,
    ])
}

/// `focus-export check` on ORT: `input` is `("--input", F)`, `("--images", DIR)` or the COCO pair.
fn check(
    w: &Path,
    cfg: &Path,
    m: &Path,
    input: &[&dyn AsRef<std::ffi::OsStr>],
    report: &Path,
) -> Vec<OsString> {
    let mut a = os(&[
        &"check",
        &"--weights",
        &w,
        &"--config",
        &cfg,
        &"--model",
        &m,
    ]);
    a.extend(os(input));
    a.extend(os(&[&"--report", &report]));
    a
}

/// `focus-export predict` on ORT, drawing into `draw`.
fn predict(m: &Path, cfg: &Path, image: &Path, draw: &Path) -> Vec<OsString> {
    os(&[
        &"predict",
        &"--model",
        &m,
        &"--config",
        &cfg,
        &"--image",
        &image,
        &"--draw",
        &draw,
    ])
}

/// `focus-export eval`, writing `json`.
fn eval(ann: &Path, results: &Path, json: &Path) -> Vec<OsString> {
    os(&[
        &"eval",
        &"--coco-ann",
        &ann,
        &"--results",
        &results,
        &"--json",
        &json,
    ])
}

/// `focus-export triton` with the standard-op detector (no ops library needed).
fn triton(w: &Path, cfg: &Path, o: &Path) -> Vec<OsString> {
    os(&[
        &"triton",
        &"--weights",
        &w,
        &"--config",
        &cfg,
        &"--target",
        &"ort-cuda",
        &"-o",
        &o,
    ])
}

/// `focus-export convert P --config C -o O`.
fn convert(p: &Path, cfg: &Path, o: &Path) -> Vec<OsString> {
    os(&[&"convert", &p, &"--config", &cfg, &"-o", &o])
}

/// The rows that need no mount: every command × every class of bad input it reads.
fn rows(fx: &Fixtures) -> Vec<Row> {
    let i = |n: &str| fx.input(n);
    let cfg = i("tiny.json");
    let (w, m, x) = (i("w.safetensors"), i("m.onnx"), i("x.safetensors"));
    // Each row writes into a folder of its own: out/<row number>/.
    let next = std::cell::Cell::new(0usize);
    let out = |n: &str| fx.out(&next.get().to_string()).join(n);
    let mut rows = Vec::new();
    let mut row = |class: &'static str, args: Vec<OsString>, names: &str, says: &'static str| {
        let out = fx.out(&next.get().to_string());
        std::fs::create_dir_all(&out).unwrap();
        next.set(next.get() + 1);
        rows.push(Row {
            class,
            args,
            out,
            names: names.to_string(),
            says,
        })
    };
    // Weight files, to every command that reads weights.
    for (class, file, says) in [
        (
            "truncated",
            "truncated.safetensors",
            "not a valid safetensors file",
        ),
        (
            "lying header",
            "lying.safetensors",
            "not a valid safetensors file",
        ),
        (
            "zero-size",
            "empty.safetensors",
            "not a valid safetensors file",
        ),
        (
            "wrong dtype",
            "dtype.safetensors",
            "wrong dtype for `neck.convs.0.norm.bias`",
        ),
        (
            "wrong shape",
            "shape.safetensors",
            "wrong shape for `neck.convs.0.norm.bias`",
        ),
        (
            "NaN",
            "nan.safetensors",
            "`neck.convs.0.norm.bias`: 1 NaN, the first at [2]",
        ),
        ("missing", "absent.safetensors", "No such file"),
    ] {
        let bad = i(file);
        row(
            class,
            os(&[&"names", &"--config", &cfg, &"--check", &bad]),
            file,
            says,
        );
        row(class, export(&bad, &cfg, &out("m.onnx")), file, says);
        row(
            class,
            run(
                "torch",
                ("--weights", &bad),
                &cfg,
                &x,
                &out("y.safetensors"),
            ),
            file,
            says,
        );
        row(
            class,
            check(&bad, &cfg, &m, &[&"--input", &x], &out("r.json")),
            file,
            says,
        );
        row(class, triton(&bad, &cfg, &out("repo")), file, says);
        let matrix = os(&[
            &"matrix",
            &"--weights",
            &bad,
            &"--config",
            &cfg,
            &"--images",
            &i("img_good"),
            &"--runtimes",
            &"ort",
            &"--precisions",
            &"fp32",
            &"-o",
            &out("matrix"),
        ]);
        row(class, matrix, file, says);
    }
    // PyTorch checkpoints, to convert and the export.
    for (class, file, says) in [
        ("truncated", "truncated.pth", "zip"),
        ("pickle calling code", "code.pth", "posix.system"),
        ("zip bomb", "bomb.zip", "zip bomb"),
    ] {
        let bad = i(file);
        row(
            class,
            convert(&bad, &cfg, &out("c.safetensors")),
            file,
            says,
        );
        row(class, export(&bad, &cfg, &out("m.onnx")), file, says);
    }
    // Configs.
    for (class, file, says) in [
        ("truncated", "truncated.json", "EOF"),
        ("wrong type", "wrongtype.json", "transformer.embed_dim"),
    ] {
        let bad = i(file);
        row(class, os(&[&"names", &"--config", &bad]), file, says);
        row(class, export(&w, &bad, &out("m.onnx")), file, says);
    }
    // Models, to every command that reads one.
    for (class, file, says) in [
        ("truncated", "truncated.onnx", "onnx"),
        ("not a model", "junk.onnx", "onnx"),
        ("zero-size", "empty.onnx", "onnx"),
        (
            "model of the wrong graph",
            "other.onnx",
            "not a Focus-DETR export",
        ),
    ] {
        let bad = i(file);
        for runtime in ["ort", "tract"] {
            row(
                class,
                run(runtime, ("--model", &bad), &cfg, &x, &out("y.safetensors")),
                file,
                says,
            );
        }
        row(
            class,
            check(&w, &cfg, &bad, &[&"--input", &x], &out("r.json")),
            file,
            says,
        );
        row(
            class,
            predict(&bad, &cfg, &i("photo.png"), &out("d.png")),
            file,
            says,
        );
        let bench = os(&[
            &"bench",
            &"--runtimes",
            &"ort",
            &"--model",
            &bad,
            &"--config",
            &cfg,
            &"--input",
            &x,
            &"--warmup",
            &"0",
            &"--runs",
            &"1",
            &"--rounds",
            &"1",
        ]);
        row(class, bench, file, says);
        if class != "model of the wrong graph" {
            row(class, os(&[&"lint", &bad]), file, says);
        }
    }
    // Input tensor files.
    for (class, file, says) in [
        (
            "truncated",
            "truncated_x.safetensors",
            "not a valid safetensors file",
        ),
        ("wrong tensors", "noimages.safetensors", "images"),
    ] {
        let bad = i(file);
        row(
            class,
            run("ort", ("--model", &m), &cfg, &bad, &out("y.safetensors")),
            file,
            says,
        );
        row(
            class,
            check(&w, &cfg, &m, &[&"--input", &bad], &out("r.json")),
            file,
            says,
        );
        let mut forced = run("torch", ("--weights", &w), &cfg, &x, &out("y.safetensors"));
        forced.extend(os(&[&"--force-selections", &bad]));
        row(class, forced, file, says);
        let explain = os(&[
            &"explain",
            &"--weights",
            &w,
            &"--config",
            &cfg,
            &"--input",
            &bad,
            &"-o",
            &out("pictures"),
        ]);
        row(class, explain, file, says);
    }
    // Photos.
    for (class, folder, file, says) in [
        (
            "corrupt image",
            "img_corrupt",
            "corrupt.png",
            "cannot read the image",
        ),
        (
            "zero-size image",
            "img_empty",
            "empty.png",
            "cannot read the image",
        ),
        (
            "truncated image",
            "img_truncated",
            "truncated.png",
            "cannot read the image",
        ),
        (
            "huge dimensions",
            "img_huge",
            "huge.png",
            "declares 100000×100000 pixels",
        ),
    ] {
        let bad = i(&format!("{folder}/{file}"));
        row(class, predict(&m, &cfg, &bad, &out("d.png")), file, says);
        let explain = os(&[
            &"explain",
            &"--weights",
            &w,
            &"--config",
            &cfg,
            &"--image",
            &bad,
            &"-o",
            &out("pictures"),
        ]);
        row(class, explain, file, says);
        row(
            class,
            check(&w, &cfg, &m, &[&"--images", &i(folder)], &out("r.json")),
            file,
            says,
        );
    }
    // COCO files.
    for (class, ann, results, file, says) in [
        (
            "truncated annotations",
            "truncated_ann.json",
            "results.json",
            "truncated_ann.json",
            "EOF",
        ),
        (
            "wrong annotations",
            "wrong_ann.json",
            "results.json",
            "wrong_ann.json",
            "images",
        ),
        (
            "truncated results",
            "ann.json",
            "truncated_results.json",
            "truncated_results.json",
            "EOF",
        ),
        (
            "wrong results",
            "ann.json",
            "wrong_results.json",
            "wrong_results.json",
            "bbox",
        ),
    ] {
        row(
            class,
            eval(&i(ann), &i(results), &out("ap.json")),
            file,
            says,
        );
    }
    let coco = [
        &"--coco-ann" as &dyn AsRef<std::ffi::OsStr>,
        &i("truncated_ann.json"),
        &"--coco-images",
        &i("img_corrupt"),
    ];
    row(
        "truncated annotations",
        check(&w, &cfg, &m, &coco, &out("r.json")),
        "truncated_ann.json",
        "EOF",
    );
    // Output paths that cannot be written.
    let under_file = i("plain.txt").join("m.onnx");
    for (class, names) in [
        ("output in a missing folder", "missing/m.onnx"),
        ("output under a file", "plain.txt/m.onnx"),
    ] {
        let o = || {
            if names.starts_with("missing") {
                out(names)
            } else {
                under_file.clone()
            }
        };
        row(class, export(&w, &cfg, &o()), names, "");
        row(class, convert(&i("w.pth"), &cfg, &o()), names, "");
        row(
            class,
            run("ort", ("--model", &m), &cfg, &x, &o()),
            names,
            "",
        );
        row(
            class,
            eval(&i("ann.json"), &i("results.json"), &o()),
            names,
            "",
        );
        row(
            class,
            os(&[&"init-weights", &"--config", &cfg, &"-o", &o()]),
            names,
            "",
        );
        let html = check(
            &w,
            &cfg,
            &m,
            &[&"--input", &x, &"--html", &o()],
            &out("r.json"),
        );
        row(class, html, names, "");
    }
    rows
}

/// Runs one row and returns what is wrong with how it ended (`None`: as required).
fn judge(row: &Row, fx: &Fixtures, before: &BTreeMap<String, Vec<u8>>) -> Option<String> {
    judge_ignoring(row, fx, before, &[])
}

/// [`judge`], where the output folder may hold `keep` (files the test put there).
fn judge_ignoring(
    row: &Row,
    fx: &Fixtures,
    before: &BTreeMap<String, Vec<u8>>,
    keep: &[&Path],
) -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_focus-export"))
        .args(&row.args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut wrong = Vec::new();
    if out.status.code() != Some(2) {
        wrong.push(format!("exit status {:?}, expected 2", out.status.code()));
    }
    if stderr.contains("panicked") {
        wrong.push("it panicked".into());
    }
    for want in [row.names.as_str(), row.says] {
        if !want.is_empty() && !stderr.contains(want) {
            wrong.push(format!("the message does not say {want:?}"));
        }
    }
    let left: Vec<String> = std::fs::read_dir(&row.out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !keep.contains(&p.as_path()))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    if !left.is_empty() {
        wrong.push(format!("it left {left:?} in the output folder"));
    }
    if common::files_under(&fx.dir.path().join("in")) != *before {
        wrong.push("it changed its input files".into());
    }
    (!wrong.is_empty()).then(|| {
        let cmd: Vec<String> = row
            .args
            .iter()
            .map(|a| {
                a.to_string_lossy()
                    .replace(&*fx.dir.path().to_string_lossy(), "…")
            })
            .collect();
        format!(
            "[{}] focus-export {}: {}\n    stderr: {}",
            row.class,
            cmd.join(" "),
            wrong.join("; "),
            stderr.trim().replace('\n', "\n            ")
        )
    })
}

#[test]
fn every_command_refuses_every_class_of_bad_input_cleanly() {
    let fx = fixtures();
    let before = common::files_under(&fx.dir.path().join("in"));
    let rows = rows(&fx);
    // Two rows at a time (the machine's two cores); each has its own output folder.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(r) = rows.get(n) else { break };
                if let Some(f) = judge(r, &fx, &before) {
                    failures.lock().unwrap().push(f);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(!fx.out("pwned").exists(), "a checkpoint's pickle ran code");
    let classes: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.class).collect();
    eprintln!(
        "{} rows, {} classes of bad input",
        rows.len(),
        classes.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// A tmpfs mounted for the test, unmounted when dropped; `None` where mounting is not allowed
/// (not root, or no CAP_SYS_ADMIN in a container).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, options: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn outputs_on_a_full_or_read_only_filesystem_fail_cleanly() {
    let fx = fixtures();
    let before = common::files_under(&fx.dir.path().join("in"));
    let (full_dir, ro_dir) = (fx.dir.path().join("full"), fx.dir.path().join("ro"));
    let (Some(_full), Some(_ro)) = (
        Tmpfs::mount(&full_dir, "size=256k"),
        Tmpfs::mount(&ro_dir, "ro,size=64k"),
    ) else {
        eprintln!("skipped: this machine does not let the test mount a tmpfs (needs root)");
        return;
    };
    // Fill the small filesystem: every later write meets ENOSPC.
    let filler = full_dir.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = [0u8; 4096];
        while f.write_all(&block).is_ok() {}
    }
    let i = |n: &str| fx.input(n);
    let cfg = i("tiny.json");
    let mut failures = Vec::new();
    for (class, dir, says) in [
        ("full disk", &full_dir, "No space left on device"),
        ("read-only folder", &ro_dir, "Read-only file system"),
    ] {
        let o = |n: &str| dir.join(n);
        let commands = [
            export(&i("w.safetensors"), &cfg, &o("m.onnx")),
            convert(&i("w.pth"), &cfg, &o("c.safetensors")),
            run(
                "ort",
                ("--model", &i("m.onnx")),
                &cfg,
                &i("x.safetensors"),
                &o("y.safetensors"),
            ),
            check(
                &i("w.safetensors"),
                &cfg,
                &i("m.onnx"),
                &[&"--input", &i("x.safetensors")],
                &o("r.json"),
            ),
            eval(&i("ann.json"), &i("results.json"), &o("ap.json")),
            predict(&i("m.onnx"), &cfg, &i("photo.png"), &o("d.png")),
            triton(&i("w.safetensors"), &cfg, &o("repo")),
        ];
        for args in commands {
            let row = Row {
                class,
                args,
                out: dir.to_path_buf(),
                names: dir.file_name().unwrap().to_string_lossy().into_owned(),
                says,
            };
            if let Some(f) = judge_ignoring(&row, &fx, &before, &[filler.as_path()]) {
                failures.push(f);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// How a signalled run ended.
enum Interrupted {
    /// Mid-write: it exited with 128 + signal and left nothing.
    Caught,
    /// The signal came after the output was renamed into place: it is there, complete.
    TooLate,
}

/// Starts `args`, waits until its temporary output appears in `out` (a name starting with
/// `.focus-export`) and sends `signal`. What it leaves in `out` must be nothing or the
/// complete output `name` (`complete`: the files of an uninterrupted run under `out`), never
/// a partial file nor a temporary one; the output is removed afterwards.
fn interrupt(
    args: &[OsString],
    out: &Path,
    name: &str,
    complete: &BTreeMap<String, Vec<u8>>,
    signal: i32,
) -> Result<Interrupted, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_focus-export"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let writing = || {
        std::fs::read_dir(out).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".focus-export")
        })
    };
    while !writing() {
        if child.try_wait().unwrap().is_some() || started.elapsed().as_secs() > 300 {
            let _ = child.kill();
            return Err("it ended (or took 5 min) before writing its output".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // SAFETY: kill(2) on our own child's pid, with a valid signal number.
    unsafe { libc::kill(child.id() as i32, signal) };
    let o = child.wait_with_output().unwrap();
    let left = common::files_under(out);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let code = o.status.code();
    remove(&out.join(name));
    if stderr.contains("panicked") {
        Err(format!("it panicked: {stderr}"))
    } else if left.is_empty() && code == Some(128 + signal) {
        Ok(Interrupted::Caught)
    } else if left == *complete && (code == Some(0) || code == Some(128 + signal)) {
        Ok(Interrupted::TooLate)
    } else {
        Err(format!(
            "exit {code:?} (expected {}), left {:?} (the complete output: {}), stderr: {stderr}",
            128 + signal,
            left.keys().collect::<Vec<_>>(),
            left == *complete
        ))
    }
}

/// Removes a file or a folder.
fn remove(p: &Path) {
    let _ = std::fs::remove_dir_all(p).or_else(|_| std::fs::remove_file(p));
}

/// Interrupts `args` until one try is caught mid-write (at most five; each must leave
/// nothing or the complete output).
fn interrupt_until_caught(args: &[OsString], out: &Path, name: &str, signal: i32) {
    // The complete output, from an uninterrupted run (exports are byte-identical).
    let (ok, _, stderr) = common::output({
        let mut c = Command::new(env!("CARGO_BIN_EXE_focus-export"));
        c.args(args);
        c
    });
    assert!(ok, "{stderr}");
    let complete = common::files_under(out);
    remove(&out.join(name));
    for _ in 0..5 {
        match interrupt(args, out, name, &complete, signal) {
            Ok(Interrupted::Caught) => return,
            Ok(Interrupted::TooLate) => continue,
            Err(e) => panic!("{name}, signal {signal}: {e}"),
        }
    }
    panic!("{name}: five runs finished writing before the signal reached them");
}

#[test]
fn an_interrupted_export_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    // The full-size R50 weights: their export writes 197 MB, long enough to interrupt.
    let weights = common::golden::weights_file();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let export = os(&[&"--weights", weights, &"-o", &out.join("m.onnx")]);
    interrupt_until_caught(&export, &out, "m.onnx", libc::SIGINT);
    let triton = os(&[
        &"triton",
        &"--weights",
        weights,
        &"--target",
        &"ort-cuda",
        &"-o",
        &out.join("repo"),
    ]);
    interrupt_until_caught(&triton, &out, "repo", libc::SIGTERM);
}
