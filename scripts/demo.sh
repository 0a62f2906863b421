#!/usr/bin/env bash
# The main job end to end on demo weights, from a fresh clone: installs the runtimes, builds
# focus-export, writes the demo weights (focus-synth-v1, seed 0, the R50 36-epoch preset),
# checks them, and exports them to ONNX.
# Outputs go to demo/ (git-ignored).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-env.sh
cargo build --release --all-features --locked
bin=target/release/focus-export
mkdir -p demo
"$bin" doctor
"$bin" init-weights --config r50_4scale_36ep --seed 0 -o demo/focus_detr_r50_synth.safetensors
"$bin" names --config r50_4scale_36ep --check demo/focus_detr_r50_synth.safetensors
# The main job, ONNX export, is the next milestone (the export issue). When it lands, this script
# runs it here:
#   "$bin" --weights demo/focus_detr_r50_synth.safetensors --config r50_4scale_36ep -o demo/focus_detr_r50.onnx
echo "demo: weights written and checked; ONNX export is not implemented yet, so the demo stops here"
