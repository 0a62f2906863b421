//! The fuzz targets' corpora as a plain test: every file of fuzz/corpus/<target>/ (seeds and
//! the minimised corpus of past campaigns) and of fuzz/regressions/<target>/ (inputs that once
//! crashed, hung or over-allocated) goes through its target in `focus_export::fuzzing`, which
//! must return without a panic. scripts/fuzz.sh runs the campaigns themselves.

use std::path::Path;

#[test]
fn every_corpus_and_regression_input_is_handled_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    for (name, target) in focus_export::fuzzing::TARGETS {
        let mut n = 0;
        for folder in ["corpus", "regressions"] {
            let dir = root.join(folder).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                assert!(folder == "regressions", "no seed corpus {}", dir.display());
                continue;
            };
            let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
            files.sort();
            for f in files {
                let data = std::fs::read(&f).unwrap();
                if std::panic::catch_unwind(|| target(&data)).is_err() {
                    failures.push(format!("{name}: {}", f.display()));
                }
                n += 1;
            }
        }
        assert!(n > 0, "target {name} has no corpus");
        counts.push(format!("{name} {n}"));
    }
    focus_export::fuzzing::remove_scratch();
    eprintln!("inputs per target: {}", counts.join(", "));
    assert!(failures.is_empty(), "panicked on:\n{}", failures.join("\n"));
}
