//! The custom ops, op by op: every form (decomposed standard ops, our custom node, the threshold
//! selection) on every runtime that can run it (ONNX Runtime CPU, tract) against the torch
//! backend, on seeded problems with edge cases: samples outside the maps, 1×1 levels, a single
//! level, batch > 1; k = 1, k = N, ties.
#![cfg(all(feature = "torch", feature = "ort", feature = "tract"))]

mod common;

use std::path::{Path, PathBuf};

use focus_export::runtimes::ort::{OrtOptions, OrtRuntime, Provider};
use focus_export::runtimes::tract::{TractOptions, TractRuntime};
use focus_export::runtimes::Runtime;
use focus_export::tensors::{HostTensor, TensorMap};
use focus_exporters::opgraph::{ms_deform_attn_model, topk_model};
use focus_exporters::{MsdaForm, OpForms, TopkForm};
use focus_models::backend::Backend;
use focus_models::torch_backend::{TorchBackend, TT};

/// MsDeformAttn fp32 budget (the issue's): float32 sums of L·P·4 bilinear terms in different
/// orders (GridSample per level, then a weighted sum; our kernel accumulates per sample).
const TOL_MSDA: f32 = 1e-5;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * self.next()).collect()
    }
}

fn model_file(bytes: Vec<u8>, name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn runtimes(path: &Path) -> Vec<Box<dyn Runtime>> {
    let ort = OrtRuntime::new(
        path,
        &OrtOptions {
            provider: Provider::Cpu,
            threads: Some(2),
            emulate_trt_plugins: false,
            profile: false,
        },
    )
    .unwrap();
    vec![
        Box::new(ort),
        Box::new(TractRuntime::new(path, &TractOptions::default()).unwrap()),
    ]
}

fn torch(t: &HostTensor) -> TT {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    let x = match (t.as_f32(), t.as_i64()) {
        (Some(v), _) => tch::Tensor::from_slice(v),
        (_, Some(v)) => tch::Tensor::from_slice(v),
        _ => unreachable!(),
    };
    TT(x.reshape(shape))
}

fn f32s(t: &tch::Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
}

fn msda_case(
    seed: u64,
    n: usize,
    levels: &[(usize, usize)],
    m: usize,
    d: usize,
    q: usize,
    p: usize,
) {
    let mut r = Rng(seed);
    let l = levels.len();
    let s: usize = levels.iter().map(|(h, w)| h * w).sum();
    let value = HostTensor::f32(vec![n, s, m, d], r.vec(n * s * m * d, -1.0, 1.0));
    // Locations in [-0.3, 1.3]: many samples fall partly or wholly outside their maps.
    let loc = HostTensor::f32(
        vec![n, q, m, l, p, 2],
        r.vec(n * q * m * l * p * 2, -0.3, 1.3),
    );
    let aw = HostTensor::f32(vec![n, q, m, l, p], r.vec(n * q * m * l * p, 0.0, 1.0));

    let b = TorchBackend::without_params(tch::Device::Cpu);
    let shapes: Vec<(i64, i64)> = levels.iter().map(|&(h, w)| (h as i64, w as i64)).collect();
    let want = f32s(
        &b.ms_deform_attn(&torch(&value), &shapes, &torch(&loc), &torch(&aw))
            .unwrap()
            .0,
    );

    let mut inputs = TensorMap::new();
    inputs.insert("value".into(), value);
    inputs.insert("sampling_locations".into(), loc);
    inputs.insert("attention_weights".into(), aw);
    for form in [MsdaForm::Decomposed, MsdaForm::Custom] {
        let forms = OpForms {
            msda: form,
            ..Default::default()
        };
        let bytes = ms_deform_attn_model(levels, m, d, p, forms, 17).unwrap();
        let path = model_file(bytes, &format!("msda_{seed}_{}.onnx", form.as_str()));
        for mut rt in runtimes(&path) {
            let out = rt.run(&inputs).unwrap();
            let got = out["output"].as_f32().unwrap();
            assert_eq!(out["output"].shape, vec![n, q, m * d]);
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!(
                "MsDeformAttn case {seed}, {} on {}: max|Δ| {worst:.2e}",
                form.as_str(),
                rt.name()
            );
            assert!(
                worst <= TOL_MSDA,
                "case {seed}: {} on {}: max|Δ| {worst}",
                form.as_str(),
                rt.name()
            );
        }
    }
}

#[test]
fn ms_deform_attn_every_form_on_every_runtime_equals_torch() {
    msda_case(1, 1, &[(8, 10), (4, 5), (2, 3), (1, 2)], 8, 4, 30, 4);
    msda_case(2, 2, &[(7, 7), (3, 4)], 2, 3, 11, 2); // batch > 1
    msda_case(3, 1, &[(1, 1)], 1, 5, 6, 3); // a single 1×1 level
    msda_case(4, 1, &[(6, 9), (1, 1), (2, 2)], 3, 2, 5, 1); // a 1×1 level between others
}

/// The selected set of each row, sorted (the only thing the model uses of an encoder selection).
fn sets(idx: &[i64], rows: usize) -> Vec<Vec<i64>> {
    let k = idx.len() / rows;
    idx.chunks(k)
        .map(|c| {
            let mut v = c.to_vec();
            v.sort_unstable();
            v
        })
        .collect()
}

fn topk_case(name: &str, scores: Vec<f32>, rows: usize, n: usize, k: usize) {
    // Expected: the k largest in descending order, exact ties broken by the lower index (the
    // project's one tie rule: every form, every runtime and the torch reference).
    let want: Vec<i64> = (0..rows)
        .flat_map(|r| {
            let row = &scores[r * n..(r + 1) * n];
            let mut o: Vec<usize> = (0..n).collect();
            o.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap().then(a.cmp(&b)));
            o[..k].iter().map(|&i| i as i64).collect::<Vec<_>>()
        })
        .collect();
    let want_sets = sets(&want, rows);
    // The torch backend (the reference) follows the same tie rule, order included.
    let backend = TorchBackend::without_params(tch::Device::Cpu);
    let x = torch(&HostTensor::f32(vec![rows, n], scores.clone()));
    let (_, ti) = backend.topk(&x, &(k as i64)).unwrap();
    let ti = Vec::<i64>::try_from(ti.flatten(0, -1)).unwrap();
    assert_eq!(ti, want, "{name}: the torch backend's order");
    // Object tokens forced by token index find their positions in a selection.
    let m = k + 2; // each row's tokens reversed, then one absent (−1) and one not selected (n)
    let needles: Vec<i64> = ti
        .chunks(k)
        .flat_map(|row| row.iter().rev().copied().chain([-1, n as i64]))
        .collect();
    let hay = torch(&HostTensor::i64(vec![rows, k], ti.clone()));
    let pos = backend
        .index_positions(
            &hay,
            &torch(&HostTensor::i64(vec![rows, m], needles.clone())),
        )
        .unwrap();
    let pos = Vec::<i64>::try_from(pos.flatten(0, -1)).unwrap();
    for (r, (p, t)) in pos.chunks(m).zip(needles.chunks(m)).enumerate() {
        for (&p, &t) in p.iter().zip(t) {
            let row = &ti[r * k..(r + 1) * k];
            let want = row.iter().position(|&x| x == t).map_or(-1, |i| i as i64);
            assert_eq!(p, want, "{name}: position of token {t} in row {r}");
        }
    }

    let mut inputs = TensorMap::new();
    inputs.insert("scores".into(), HostTensor::f32(vec![rows, n], scores));
    inputs.insert("k".into(), HostTensor::i64(vec![1], vec![k as i64]));
    for (form, set_only) in [
        (TopkForm::Onnx, false),
        (TopkForm::Custom, false),
        (TopkForm::Threshold, true),
    ] {
        let forms = OpForms {
            topk: form,
            ..Default::default()
        };
        let path = model_file(
            topk_model(forms, set_only, 17).unwrap(),
            &format!("topk_{name}_{}.onnx", form.as_str()),
        );
        for mut rt in runtimes(&path) {
            // The threshold form is for TensorRT (and runs on ONNX Runtime); tract cannot
            // reshape NonZero's data-dependent output.
            if form == TopkForm::Threshold && rt.name() == "tract" {
                continue;
            }
            let out = rt.run(&inputs).unwrap();
            let got = out["indices"].as_i64().unwrap();
            assert_eq!(
                out["indices"].shape,
                vec![rows, k],
                "{name} {} {}",
                form.as_str(),
                rt.name()
            );
            assert_eq!(
                sets(got, rows),
                want_sets,
                "{name}: {} on {}",
                form.as_str(),
                rt.name()
            );
            if !set_only {
                // Sorted forms: descending scores, ties by ascending index.
                assert_eq!(
                    got,
                    &want[..],
                    "{name}: {} on {} order",
                    form.as_str(),
                    rt.name()
                );
            }
        }
    }
}

#[test]
fn top_k_every_form_on_every_runtime_selects_the_same_set() {
    let mut r = Rng(11);
    let n = 1000;
    let s = r.vec(2 * n, -5.0, 5.0);
    topk_case("random_k1", s.clone(), 2, n, 1);
    topk_case("random_k_n", s.clone(), 2, n, n);
    topk_case("random_k417", s, 2, n, 417);
    // Coarse scores: many exact ties, also at the cut-off.
    let ties: Vec<f32> = r.vec(3 * 300, 0.0, 6.0).iter().map(|v| v.floor()).collect();
    topk_case("ties", ties, 3, 300, 123);
    // Near-ties one ulp apart around the cut-off.
    let base = 0.375f32;
    let ulps: Vec<f32> = (0..64)
        .map(|i| f32::from_bits(base.to_bits() + (i % 7) as u32))
        .collect();
    topk_case("ulps", ulps, 1, 64, 20);
}
