//! One tie rule everywhere, on inputs with large flat regions (a constant-colour block; a photo
//! letterboxed with grey borders). Each input is first shown to hold exact ties at a selection's
//! cut-off in the reference (else the test would prove nothing). Measured: the tied tokens are
//! the P3 border ring (their foreground-selector input is zeroed; LayerNorm removes the
//! per-token scale), which the flat region moves to the cut-off; their scores are equal only up
//! to a few ulps, differently on each runtime's kernels. So:
//! - on one runtime, every top-k form (`onnx`, `custom`, `threshold`) selects exactly alike: the
//!   scores are the same bits there and the tie rule alone decides;
//! - against the reference, free running may differ only at near-ties of the reference's own
//!   scores, and forced to the reference's selections every tensor is within its full budget.
//!
//! Exact ties between bit-identical scores (the tie rule itself) are checked op by op, on every
//! form and runtime and the torch backend, in `tests/ops_parity.rs`.
#![cfg(all(feature = "torch", feature = "ort", feature = "tract"))]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use common::golden;
use focus_export::check::{check_input, lead_line, Status};
use focus_export::runtimes::ort::{OrtOptions, OrtRuntime, Provider};
use focus_export::runtimes::torch::{TorchOptions, TorchRuntime};
use focus_export::runtimes::tract::{TractOptions, TractRuntime};
use focus_export::runtimes::Runtime;
use focus_export::tensors::TensorMap;
use focus_models::model::selections;
use focus_models::{FocusDetrConfig, WeightSchema, Weights};
use image::{Rgb, RgbImage};

/// An RGB image from a golden case's resized photo.
fn golden_photo(case: &str) -> RgbImage {
    let g = golden::load_case(case);
    let t = &g["image_rgb_u8"];
    let (h, w) = (t.shape[0] as u32, t.shape[1] as u32);
    let focus_export::tensors::HostData::U8(bytes) = t.data.clone() else {
        panic!("{case}: image_rgb_u8 is not uint8");
    };
    RgbImage::from_raw(w, h, bytes).expect("an HxWx3 image")
}

/// The coffee photo (480×640) with a 240×320 block of one colour in its middle.
fn constant_block() -> RgbImage {
    let mut img = golden_photo("coffee_480x640");
    for y in 120..360 {
        for x in 160..480 {
            img.put_pixel(x, y, Rgb([200, 40, 40]));
        }
    }
    img
}

/// The astronaut photo (384×384) letterboxed to 384×512 with grey borders (64 px each side).
fn letterboxed() -> RgbImage {
    let photo = golden_photo("astronaut_384x384");
    let mut img = RgbImage::from_pixel(512, 384, Rgb([114, 114, 114]));
    image::imageops::replace(&mut img, &photo, 64, 0);
    img
}

/// The inputs, normalised as the model expects.
fn inputs() -> Vec<(&'static str, TensorMap)> {
    let p = FocusDetrConfig::default().preprocess;
    [
        ("constant block", constant_block()),
        ("letterboxed", letterboxed()),
    ]
    .into_iter()
    .map(|(name, img)| {
        let mut m = TensorMap::new();
        m.insert("images".into(), focus_export::images::normalise(&img, &p));
        (name, m)
    })
    .collect()
}

/// The reference's debug outputs per input, computed once.
fn reference() -> &'static Vec<(&'static str, TensorMap, TensorMap)> {
    static R: OnceLock<Vec<(&'static str, TensorMap, TensorMap)>> = OnceLock::new();
    R.get_or_init(|| {
        tch::set_num_threads(2);
        let cfg = FocusDetrConfig::default();
        let w = Weights::load(golden::weights_file(), &WeightSchema::new(&cfg), &cfg.name).unwrap();
        let opts = TorchOptions {
            debug: true,
            ..Default::default()
        };
        let mut rt = TorchRuntime::new(cfg, &w, tch::Device::Cpu, opts).unwrap();
        inputs()
            .into_iter()
            .map(|(name, m)| {
                let out = rt.run(&m).unwrap();
                (name, m, out)
            })
            .collect()
    })
}

/// The lowest score among the `chosen` candidates and how many other candidates share it
/// exactly.
fn tie_at_cut_off(scores: &[f64], chosen: &HashSet<i64>) -> (f64, usize) {
    let cut = chosen
        .iter()
        .map(|&t| scores[t as usize])
        .fold(f64::INFINITY, f64::min);
    let tied_out = (0..scores.len() as i64)
        .filter(|t| !chosen.contains(t) && scores[*t as usize] == cut)
        .count();
    (cut, tied_out)
}

/// The exact ties at the cut-offs of the encoder's selections (candidates: tokens, scored by the
/// fg logits) and of the object tokens (candidates: positions in the layer's selection, scored
/// by the multi-category score), one line per tied stage.
fn exact_ties_at_cut_offs(out: &TensorMap) -> Vec<String> {
    let mut found = Vec::new();
    let fg = golden::f64s(&out["fg_logits"]);
    for l in 0..6 {
        let sel = golden::i64s(&out[&selections::encoder_tokens(l)]);
        let (cut, tied_out) = tie_at_cut_off(&fg, &sel.iter().copied().collect());
        if tied_out > 0 {
            let tied_in = sel.iter().filter(|&&t| fg[t as usize] == cut).count();
            let where_: Vec<String> = (0..fg.len() as i64)
                .filter(|t| fg[*t as usize] == cut)
                .take(6)
                .map(|t| token_place(out, t))
                .collect();
            found.push(format!(
                "enc_topk_idx_{l}: {tied_in} selected and {tied_out} unselected token(s) share the cut-off score exactly (e.g. {})",
                where_.join(", ")
            ));
        }
        let score = golden::f64s(&out[&format!("enc_oesm_score_{l}")]);
        let sub = golden::i64s(&out[&format!("enc_oesm_subidx_{l}")]);
        let (_, tied_out) = tie_at_cut_off(&score, &sub.into_iter().collect());
        if tied_out > 0 {
            found.push(format!(
                "enc_oesm_token_idx_{l}: {tied_out} unselected token(s) tie exactly with the cut-off"
            ));
        }
    }
    found
}

/// "level l (y, x)" of token `t`.
fn token_place(out: &TensorMap, t: i64) -> String {
    let shapes = golden::i64s(&out["spatial_shapes"]);
    let mut start = 0;
    for (l, hw) in shapes.chunks(2).enumerate() {
        let n = hw[0] * hw[1];
        if t < start + n {
            let i = t - start;
            return format!("P{} ({}, {})", l + 3, i / hw[1], i % hw[1]);
        }
        start += n;
    }
    format!("token {t}")
}

#[test]
fn the_flat_inputs_hold_exact_ties_at_cut_offs() {
    for (name, _, out) in reference() {
        let ties = exact_ties_at_cut_offs(out);
        eprintln!("{name}: {ties:?}");
        assert!(
            !ties.is_empty(),
            "{name}: no exact tie at any cut-off: the input does not test the tie rule"
        );
    }
}

/// Every selection of `a` equals `b`'s: the encoder's and the object tokens as sets (the
/// threshold form returns ascending token order), the proposals in order.
fn assert_same_selections(what: &str, a: &TensorMap, b: &TensorMap) {
    for n in selections::names(&FocusDetrConfig::default()) {
        let (x, y) = (golden::i64s(&a[&n]), golden::i64s(&b[&n]));
        if n == selections::PROPOSALS {
            let first = x.iter().zip(&y).position(|(p, q)| p != q);
            assert!(
                first.is_none(),
                "{what}: {n} differs first at rank {first:?}"
            );
        } else {
            let (sx, sy): (HashSet<i64>, HashSet<i64>) =
                (x.into_iter().collect(), y.into_iter().collect());
            assert!(
                sx == sy,
                "{what}: {n}: {} token(s) only in one, {} only in the other",
                sx.difference(&sy).count(),
                sy.difference(&sx).count()
            );
        }
    }
}

/// A `--debug --selection-inputs` export with `flags`, once per test binary.
fn export(flags: &[&str], file: &str) -> golden::ExportedModel {
    let f: Vec<&str> = flags
        .iter()
        .copied()
        .chain(["--debug", "--selection-inputs"])
        .collect();
    golden::export_model(&f, file)
}

fn ort(model: &Path) -> Box<dyn Runtime> {
    let opts = OrtOptions {
        provider: Provider::Cpu,
        threads: Some(2),
        emulate_trt_plugins: false,
        profile: false,
    };
    Box::new(OrtRuntime::new(model, &opts).unwrap())
}

fn tract(model: &Path) -> Box<dyn Runtime> {
    Box::new(TractRuntime::new(model, &TractOptions::default()).unwrap())
}

/// Runs every (form, model) on `rt` for each input: (1) all forms select identically (their
/// scores are the same bits up to each selection, so the tie rule alone decides); (2) against
/// the reference, free running differs only at near-ties of the reference's own scores, and
/// forced to the reference's selections every tensor is within its full budget.
fn check_runtime(
    what: &str,
    models: &[(&str, golden::ExportedModel)],
    rt: fn(&Path) -> Box<dyn Runtime>,
) {
    let mut runtimes: Vec<(&str, Box<dyn Runtime>)> =
        models.iter().map(|(form, m)| (*form, rt(m))).collect();
    for (name, input, want) in reference() {
        let mut first: Option<(&str, TensorMap)> = None;
        for (form, rt) in runtimes.iter_mut() {
            let stages = selections::names(&FocusDetrConfig::default());
            let checked = check_input(
                name,
                rt.as_mut(),
                input,
                want,
                &stages,
                &focus_export::check::FP32,
            )
            .unwrap();
            let (rep, free) = (checked.report, checked.free);
            eprintln!("{what} ({form}): {}", lead_line(&rep));
            assert_ne!(
                rep.status,
                Status::Fail,
                "{what} ({form}), {name}: {:?}",
                rep.failures()
            );
            assert_eq!(rep.forced_within_budget, Some(true));
            match &first {
                None => first = Some((form, free)),
                Some((f0, out0)) => {
                    assert_same_selections(&format!("{what}, {name}: {form} vs {f0}"), &free, out0)
                }
            }
        }
    }
}

#[test]
fn every_topk_form_on_ort_selects_alike_and_forcing_reproduces_the_reference() {
    let models = [
        ("TopK", export(&[], "ties_onnx.onnx")),
        (
            "DynamicTopK",
            export(&["--topk", "custom"], "ties_custom.onnx"),
        ),
        (
            "threshold",
            export(&["--topk", "threshold"], "ties_threshold.onnx"),
        ),
    ];
    check_runtime("ONNX Runtime", &models, ort);
}

#[test]
fn every_topk_form_on_tract_selects_alike_and_forcing_reproduces_the_reference() {
    // tract's GridSample is slow: the custom deformable attention with each top-k form tract
    // runs (it cannot reshape NonZero's data-dependent output, which the threshold form needs).
    let models = [
        ("TopK", export(&["--msda", "custom"], "ties_onnx_msda.onnx")),
        (
            "DynamicTopK",
            export(&["--target", "tract"], "ties_custom_msda.onnx"),
        ),
    ];
    check_runtime("tract", &models, tract);
}
