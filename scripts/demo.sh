#!/usr/bin/env bash
# The main job end to end on demo weights, from a fresh clone: installs the runtimes, builds
# focus-export, writes the demo weights (focus-synth-v1, seed 0, the R50 36-epoch preset),
# checks them, exports them to ONNX, runs the exported model on ONNX Runtime next to the
# libtorch reference, and checks their parity on real photos.
# Outputs go to demo/ (git-ignored).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-env.sh
# The dev profile is optimised (Cargo.toml) and shares its build with the test suite.
cargo build --all-features --locked
# libfocus_ops.so: our custom ops for any ONNX Runtime (printed by `focus-export ops-library`).
cargo build -p focus-ops-library --locked
bin=target/debug/focus-export
mkdir -p demo
"$bin" doctor
"$bin" ops-library --info
"$bin" init-weights --config r50_4scale_36ep --seed 0 -o demo/focus_detr_r50_synth.safetensors
"$bin" names --config r50_4scale_36ep --check demo/focus_detr_r50_synth.safetensors
# The main job: export.
"$bin" --weights demo/focus_detr_r50_synth.safetensors --config r50_4scale_36ep -o demo/focus_detr_r50.onnx
# Run it on ONNX Runtime next to the libtorch reference: a golden input if ../shared
# is beside this checkout, else a grey 480×640 image.
input=../shared/golden/coffee_480x640.safetensors
if [ ! -f "$input" ]; then
  input=demo/grey_480x640.safetensors
  .venv/bin/python - "$input" <<'PY'
import json, struct, sys
h, w = 480, 640
data = struct.pack("<%df" % (3 * h * w), *([0.0] * (3 * h * w)))
header = json.dumps({"images": {"dtype": "F32", "shape": [1, 3, h, w], "data_offsets": [0, len(data)]}}).encode()
header += b" " * (-len(header) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(header)) + header + data)
PY
fi
"$bin" run --runtime ort --model demo/focus_detr_r50.onnx --threads 2 --input "$input" --output demo/ort_out.safetensors
"$bin" run --runtime torch --weights demo/focus_detr_r50_synth.safetensors --threads 2 --input "$input" --output demo/torch_out.safetensors
# Parity check on real photos (a COCO-format subset made from the scikit-image photos), with the
# diagnostic export (intermediate outputs and an override input for every selection): each photo
# runs free (what a deployment computes) and forced to the reference's selections (every tensor
# at its full budget). On the subset it also reports COCO AP of both sides, ΔAP and agreement AP,
# and writes both sides' detections as COCO results files. The accuracy gate judges the forced
# pass: with synthetic weights the free-running detections reshuffle after any near-tie (see
# the README's "Parity gate in CI"; gate free running, the default, on trained weights).
"$bin" --weights demo/focus_detr_r50_synth.safetensors --debug --selection-inputs -o demo/focus_detr_r50_check.onnx
"$bin" check --runtime ort --threads 2 --weights demo/focus_detr_r50_synth.safetensors \
  --model demo/focus_detr_r50_check.onnx \
  --coco-ann tests/data/coco_subset/annotations.json --coco-images .runtimes/photos --limit 2 \
  --results-dir demo/coco_results --accuracy-pass forced --report demo/check_report.json \
  --html demo/check_report.html
# Pictures: what the exported model keeps on a photo (foreground scores, kept tokens per layer,
# object tokens, proposals, detections; demo/explain/sheet.png shows them side by side), and its
# labelled detections (synthetic weights score low: threshold 0.1).
"$bin" explain --model demo/focus_detr_r50_check.onnx --threads 2 --image .runtimes/photos/astronaut.png --score-threshold 0.1 -o demo/explain
"$bin" predict --model demo/focus_detr_r50.onnx --threads 2 --image .runtimes/photos/astronaut.png --score-threshold 0.1 --draw demo/astronaut_detections.png
echo "demo: exported demo/focus_detr_r50.onnx, ran it on ONNX Runtime and the torch reference, checked parity on photos (report: demo/check_report.html), and drew what it selects (demo/explain/sheet.png)"
