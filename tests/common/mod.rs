//! Helpers shared by the integration tests: where the goldens are, and the CLI binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// `shared/` beside the repository (as in CI), or `$FOCUS_SHARED_DIR`.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("FOCUS_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        dir.join("golden").is_dir(),
        "golden data not found at {}/golden: clone the repository beside shared/ or set FOCUS_SHARED_DIR",
        dir.display()
    );
    dir
}

/// A file in `shared/golden/`.
pub fn golden(name: &str) -> PathBuf {
    shared_dir().join("golden").join(name)
}

/// The `focus-export` binary built for these tests.
pub fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_focus-export"))
}

/// Runs a command, returning (success, stdout, stderr).
pub fn output(mut cmd: Command) -> (bool, String, String) {
    let out = cmd.output().expect("the focus-export binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `root` (recursively) by its path relative to `root`, with its bytes.
pub fn files_under(root: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p.strip_prefix(root).unwrap().display().to_string();
                files.insert(name, std::fs::read(&p).unwrap());
            }
        }
    }
    files
}

/// A small configuration (same structure, narrow layers) that keeps weight files tiny.
pub const TINY_CONFIG_JSON: &str = r#"{
  "base": "r50_4scale_36ep",
  "name": "tiny",
  "backbone": {"stem_channels": 8, "res2_channels": 16},
  "neck": {"group_norm_groups": 4},
  "position_embedding": {"num_pos_feats": 16},
  "transformer": {"embed_dim": 32, "ffn_dim": 64},
  "focus": {"mask_predictor_hidden": 16, "object_tokens": 10},
  "heads": {"num_classes": 5, "num_queries": 20, "num_select": 10}
}"#;

/// The tiny configuration with a tiny Swin backbone (two blocks per stage, window 7).
pub const TINY_SWIN_CONFIG_JSON: &str = r#"{
  "base": "swin_tiny_224_4scale_36ep",
  "name": "tiny_swin",
  "backbone": {"embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 2, 2, 4]},
  "neck": {"group_norm_groups": 4},
  "position_embedding": {"num_pos_feats": 16},
  "transformer": {"embed_dim": 32, "ffn_dim": 64},
  "focus": {"mask_predictor_hidden": 16, "object_tokens": 10},
  "heads": {"num_classes": 5, "num_queries": 20, "num_select": 10}
}"#;

/// The tiny Swin configuration, parsed.
pub fn tiny_swin_config() -> focus_models::FocusDetrConfig {
    focus_models::FocusDetrConfig::from_json_str(TINY_SWIN_CONFIG_JSON, "tiny_swin").unwrap()
}

/// The tiny configuration, parsed.
pub fn tiny_config() -> focus_models::FocusDetrConfig {
    focus_models::FocusDetrConfig::from_json_str(TINY_CONFIG_JSON, "tiny").unwrap()
}

/// Writes the tiny config as a JSON file in `dir`.
pub fn write_tiny_config(dir: &std::path::Path) -> PathBuf {
    let p = dir.join("tiny.json");
    std::fs::write(&p, TINY_CONFIG_JSON).unwrap();
    p
}
pub mod golden;
pub mod pth;

/// One `#[test]` per golden case ([`golden::CASES`], in order), each calling `$check(case_name)`.
#[macro_export]
macro_rules! golden_case_tests {
    ($check:path) => {
        #[test]
        fn astronaut_384x384() {
            $check($crate::common::golden::CASES[0]);
        }

        #[test]
        fn chelsea_448x640() {
            $check($crate::common::golden::CASES[1]);
        }

        #[test]
        fn coffee_480x640() {
            $check($crate::common::golden::CASES[2]);
        }

        #[test]
        fn rocket_800x1184() {
            $check($crate::common::golden::CASES[3]);
        }
    };
}

/// pycocotools 2.0.11 (in the project's .venv) on a ground truth and a results file: its twelve
/// stats and the lines `summarize()` printed.
pub fn pycocotools(gt: &std::path::Path, dt: &std::path::Path) -> (Vec<f64>, Vec<String>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("a temporary folder");
    let cases = dir.path().join("cases.json");
    let out = dir.path().join("out.json");
    let list = serde_json::json!([{"gt": gt, "dt": dt, "full": false}]);
    std::fs::write(&cases, list.to_string()).expect("writing the case list");
    let status = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("cocoeval/tests/pycocotools_eval.py"))
        .arg(&cases)
        .arg(&out)
        .status()
        .expect("the project's Python runs (scripts/setup-env.sh)");
    assert!(status.success(), "pycocotools failed");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("pycocotools' output"))
            .expect("pycocotools' output is JSON");
    let case = &v[0];
    assert_eq!(case["version"], "2.0.11", "pycocotools version");
    let stats = case["stats"]
        .as_array()
        .expect("stats")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect();
    let lines = case["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|x| x.as_str().expect("a line").to_string())
        .collect();
    (stats, lines)
}

/// Asserts that `text` parses as HTML without errors and loads nothing from elsewhere: every
/// `src`/`href`-like attribute is a data URI or an in-page anchor, and there is no script,
/// stylesheet link, frame, embedded object, `<base>`, CSS `url(…)` or `@import`.
pub fn assert_self_contained_html(text: &str) {
    let doc = scraper::Html::parse_document(text);
    assert!(doc.errors.is_empty(), "HTML parse errors: {:?}", doc.errors);
    let all = scraper::Selector::parse("*").unwrap();
    let mut elements = 0;
    for el in doc.select(&all) {
        elements += 1;
        let name = el.value().name();
        assert!(
            !["script", "link", "iframe", "frame", "object", "embed", "base"].contains(&name),
            "<{name}> in a self-contained report"
        );
        for (attr, value) in el.value().attrs() {
            if [
                "src",
                "href",
                "srcset",
                "poster",
                "data",
                "action",
                "background",
            ]
            .contains(&attr)
            {
                assert!(
                    value.starts_with("data:") || value.starts_with('#'),
                    "<{name} {attr}=\"{}…\"> refers outside the file",
                    &value[..value.len().min(60)]
                );
            }
            assert!(!attr.starts_with("on"), "event handler {attr} on <{name}>");
        }
        if name == "style" {
            let css: String = el.text().collect();
            assert!(!css.contains("url(") && !css.contains("@import"), "{css}");
        }
    }
    assert!(elements > 10, "an almost empty page");
}

/// Asserts the TensorRT lint finds no violation and leaves nothing undecided in `model`.
#[allow(dead_code)]
pub fn assert_tensorrt_clean(model: &std::path::Path, what: &str) {
    let r = focus_exporters::lint::lint_tensorrt_file(model).unwrap();
    assert!(
        r.ok() && r.undecided.is_empty(),
        "{what}: {:#?} {:?}",
        r.violations,
        r.undecided
    );
}

/// Runs `script` with the pinned Python (.venv, with `onnx`) on `model` (`sys.argv[1]`) and
/// asserts that it succeeds; returns its stdout.
#[allow(dead_code)]
pub fn run_python_on_model(script: &str, model: &std::path::Path) -> String {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/setup-env.sh",
        python.display()
    );
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
