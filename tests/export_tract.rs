//! The exported model on tract (pure Rust): within the model issue's budgets against the goldens
//! (tests/common/golden.rs), one file for every input size.
#![cfg(feature = "tract")]

mod common;

use common::golden::{self, debug_model, injected_model};
use focus_export::runtimes::tract::TractRuntime;

fn check(name: &str) {
    let g = golden::load_case(name);
    let out = golden::run_case(&mut TractRuntime::new(debug_model()).unwrap(), &g, false);
    let inj = golden::run_case(&mut TractRuntime::new(injected_model()).unwrap(), &g, true);
    let report = golden::check_case(name, &out, &inj, &g);
    eprintln!("tract, {name}:\n  {}", report.join("\n  "));
}

#[test]
fn astronaut_384x384() {
    check(golden::CASES[0]);
}

#[test]
fn chelsea_448x640() {
    check(golden::CASES[1]);
}

#[test]
fn coffee_480x640() {
    check(golden::CASES[2]);
}

#[test]
fn rocket_800x1184() {
    check(golden::CASES[3]);
}
