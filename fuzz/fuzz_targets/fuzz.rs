//! One libFuzzer binary for every target of `focus_export::fuzzing`: the target is chosen by
//! the environment variable FOCUS_FUZZ_TARGET (scripts/fuzz.sh sets it), so that a single
//! instrumented build serves them all.
#![no_main]

use std::sync::OnceLock;

fn chosen() -> fn(&[u8]) {
    static TARGET: OnceLock<fn(&[u8])> = OnceLock::new();
    *TARGET.get_or_init(|| {
        let name = std::env::var("FOCUS_FUZZ_TARGET").unwrap_or_default();
        focus_export::fuzzing::target(&name).unwrap_or_else(|| {
            let names: Vec<&str> = focus_export::fuzzing::TARGETS.iter().map(|t| t.0).collect();
            eprintln!("FOCUS_FUZZ_TARGET must be one of {}", names.join(", "));
            std::process::exit(2)
        })
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    chosen()(data);
});
