//! The torch reference against the official implementation's outputs (shared/golden), for the
//! four golden cases and focus-synth-v1 seed-0 weights, with the model issue's budgets
//! (tests/common/golden.rs).
#![cfg(feature = "torch")]

mod common;

use common::golden::{self, max_abs, TOL_BOXES, TOL_FEATURES};
use focus_export::runtimes::torch::{TorchOptions, TorchRuntime};
use focus_export::runtimes::Runtime;
use focus_export::tensors::{HostTensor, TensorMap};
use focus_models::model::{FocusDetr, ForwardOptions};
use focus_models::torch_backend::{TorchBackend, TT};
use focus_models::{FocusDetrConfig, WeightSchema, Weights};
use tch::{Device, Kind, Tensor};

fn runtime(override_proposals: bool) -> TorchRuntime {
    tch::set_num_threads(2);
    let cfg = FocusDetrConfig::default();
    let schema = WeightSchema::new(&cfg);
    let w = Weights::load(golden::weights_file(), &schema, &cfg.name).unwrap();
    let opts = TorchOptions {
        debug: true,
        override_proposals,
        clamp_object_tokens: false,
    };
    TorchRuntime::new(cfg, &w, Device::Cpu, opts).unwrap()
}

fn check(name: &str) {
    golden::check_runtimes(
        "torch reference",
        name,
        &mut runtime(false),
        &mut runtime(true),
    );
}

golden_case_tests!(check);

fn run_images(rt: &mut TorchRuntime, images: HostTensor) -> TensorMap {
    let mut m = TensorMap::new();
    m.insert("images".into(), images);
    rt.run(&m).unwrap()
}

#[test]
fn a_batch_of_two_gives_each_image_its_batch_one_result() {
    let mut rt = runtime(false);
    let g = golden::load_case("coffee_480x640");
    let a = g["images"].clone();
    // A different image of the same size: the same photo mirrored.
    let (h, w) = (a.shape[2], a.shape[3]);
    let av = a.as_f32().unwrap();
    let mut bv = vec![0f32; av.len()];
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                bv[(c * h + y) * w + x] = av[(c * h + y) * w + (w - 1 - x)];
            }
        }
    }
    let b = HostTensor::f32(a.shape.clone(), bv.clone());
    let both = HostTensor::f32(vec![2, 3, h, w], [av, bv.as_slice()].concat());
    let singles = [run_images(&mut rt, a), run_images(&mut rt, b)];
    let batched = run_images(&mut rt, both);
    for (i, single) in singles.iter().enumerate() {
        for (key, tol) in [
            ("pred_logits", TOL_FEATURES),
            ("pred_boxes", TOL_BOXES),
            ("scores", TOL_FEATURES),
        ] {
            let t = &batched[key];
            let per = t.shape[1..].iter().product::<usize>();
            let part = HostTensor::f32(
                single[key].shape.clone(),
                t.as_f32().unwrap()[i * per..(i + 1) * per].to_vec(),
            );
            let d = max_abs(&part, &single[key]);
            assert!(d <= tol, "image {i}: {key} batched vs alone max|Δ| {d}");
        }
        let l = batched["labels"].as_i64().unwrap();
        let per = l.len() / 2;
        assert_eq!(
            &l[i * per..(i + 1) * per],
            single["labels"].as_i64().unwrap(),
            "image {i}: labels"
        );
    }
}

#[test]
fn too_small_inputs_are_refused_unless_clamped() {
    tch::set_num_threads(2);
    let cfg = FocusDetrConfig::default();
    let schema = WeightSchema::new(&cfg);
    let w = Weights::load(golden::weights_file(), &schema, &cfg.name).unwrap();
    let backend = TorchBackend::new(&w, &schema, Device::Cpu).unwrap();
    let model = FocusDetr::new(cfg);
    let images = TT(Tensor::zeros([1, 3, 352, 352], (Kind::Float, Device::Cpu)));
    let _guard = tch::no_grad_guard();
    let e = model
        .forward(&backend, &images, &ForwardOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("too small") && e.contains("2998 tokens") && e.contains("--clamp-object-tokens"),
        "{e}"
    );
    let opts = ForwardOptions {
        clamp_object_tokens: true,
        ..Default::default()
    };
    let out = model.forward(&backend, &images, &opts).unwrap();
    assert_eq!(out.scores.size(), vec![1, 300]);
}

#[test]
fn cuda_reference_meets_the_same_budgets_when_a_gpu_is_present() {
    if !tch::Cuda::is_available() {
        eprintln!("skipped: libtorch sees no CUDA device on this machine");
        return;
    }
    let cfg = FocusDetrConfig::default();
    let schema = WeightSchema::new(&cfg);
    let w = Weights::load(golden::weights_file(), &schema, &cfg.name).unwrap();
    let make = |override_proposals| {
        let opts = TorchOptions {
            debug: true,
            override_proposals,
            clamp_object_tokens: false,
        };
        TorchRuntime::new(cfg.clone(), &w, Device::Cuda(0), opts).unwrap()
    };
    let name = golden::CASES[0];
    let g = golden::load_case(name);
    let out = golden::run_case(&mut make(false), &g, false);
    let inj = golden::run_case(&mut make(true), &g, true);
    let report = golden::check_case(name, &out, &inj, &g);
    eprintln!(
        "torch reference on CUDA, {name}:\n  {}",
        report.join("\n  ")
    );
}
