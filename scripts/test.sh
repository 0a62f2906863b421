#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the pinned runtimes (scripts/setup-env.sh),
# checks formatting and lints, then builds and runs every test with every feature.
# The goldens are read from ../shared (or $FOCUS_SHARED_DIR).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-env.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
# libfocus_ops.so, beside target/debug/focus-export: the deployment tests load it into Python's
# onnxruntime (cargo test builds no cdylib).
cargo build -p focus-ops-library --locked
cargo test --workspace --all-features --locked --no-fail-fast
