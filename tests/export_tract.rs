//! The exported model on tract (pure Rust): within the model issue's budgets against the goldens
//! (tests/common/golden.rs), one file for every input size.
#![cfg(feature = "tract")]

mod common;

use common::golden::{self, debug_model, forced_model};
use focus_export::runtimes::tract::{TractOptions, TractRuntime};

fn check(name: &str) {
    let (mut a, mut b) = (
        TractRuntime::new(debug_model(), &TractOptions::default()).unwrap(),
        TractRuntime::new(forced_model(), &TractOptions::default()).unwrap(),
    );
    golden::check_runtimes("tract", name, &mut a, &mut b);
}

golden_case_tests!(check);
