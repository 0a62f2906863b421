#!/usr/bin/env bash
# Load test of the Triton repository (focus-export triton), bounded and on loopback only: for
# dynamic batching on and off, Triton's own server (nvidia-pytriton's tritonserver, Python-backend
# form of the detector) is started on 127.0.0.1 with free ports, and K concurrent clients
# (tritonclient) send N single-image requests over HTTP and over gRPC. Every response is
# compared with `focus-export run` on the same image (the repository's preprocessed input);
# a failed or different response fails the script. Prints one Markdown table; the figures and
# Triton's metrics are in OUT/load-*.json.
#
# usage: scripts/load-test.sh [--weights W --config C] [--clients 1,4] [--requests N]
#                             [--max-seconds S] [--instances K] [--threads T] [--out DIR]
# Default model: the demo weights (focus-synth-v1 seed 0, r50_4scale_36ep) at a test-time
# size of 480/640 (shortest/longest side: the R50 at 800/1333 takes seconds per image on 2 cores).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
weights="" config="" clients="1,4" requests=32 max_seconds=300 out=load-test instances=1 threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --weights) weights="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --requests) requests="$2"; shift 2 ;;
    --max-seconds) max_seconds="$2"; shift 2 ;;
    --instances) instances="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--weights W --config C] [--clients 1,4] [--requests N] [--max-seconds S] [--instances K] [--threads T] [--out DIR]" >&2; exit 2 ;;
  esac
done
bash scripts/setup-env.sh >/dev/null
cargo build --all-features --locked -q
cargo build -p focus-ops-library --locked -q
bin=target/debug/focus-export
py=.venv-deploy/bin/python
client=scripts/triton/client.py
mkdir -p "$out"
if [ -z "$weights" ]; then
  weights="$out/focus_detr_r50_synth.safetensors"
  [ -f "$weights" ] || "$bin" init-weights --config r50_4scale_36ep --seed 0 -o "$weights" >/dev/null
  config="$out/r50_480.json"
  echo '{"base": "r50_4scale_36ep", "name": "r50_4scale_36ep at 480/640", "preprocess": {"min_size": 480, "max_size": 640}}' > "$config"
fi
config="${config:-r50_4scale_36ep}"
photos=.runtimes/photos
# Four photos of one size (512×512, one grayscale): the dynamic batcher only joins requests of
# the same resized size, so photos of mixed sizes would never batch.
images=("$photos/astronaut.png" "$photos/ihc.png" "$photos/camera.png" "$photos/moon.png")
for mode in on off; do
  flag=(); [ "$mode" = off ] && flag=(--no-dynamic-batching)
  "$bin" triton --weights "$weights" --config "$config" --backend python --force \
    --instances "$instances" --threads "$threads" "${flag[@]}" -o "$out/repo-batching-$mode" >/dev/null
done
# The reference: `focus-export run` (ONNX Runtime, our kernels) on the repository's own input.
"$py" "$client" prepare "$out/repo-batching-on" "$out/reference" "${images[@]}" >/dev/null
for img in "${images[@]}"; do
  s="$(basename "${img%.*}")"
  "$bin" run --runtime ort --model "$out/repo-batching-on/focus_detr/1/model.onnx" --config "$config" \
    --threads "$threads" --input "$out/reference/$s.safetensors" --output "$out/reference/$s.out.safetensors" >/dev/null
done
echo "load test: $requests requests per run, clients $clients, $instances instance(s) x $threads thread(s), $(nproc) CPU(s), $(basename "$weights") with $config"
echo
echo "| dynamic batching | protocol | clients | completed | failed | mismatched | differ where batched | p50 ms | p90 ms | p99 ms | requests/s | detector mean batch |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
status=0
for mode in on off; do
  tolerate=(); [ "$mode" = on ] && tolerate=(--tolerate-batched)
  "$py" "$client" load --serve "$out/repo-batching-$mode" --reference "$out/reference" \
    --clients "$clients" --requests "$requests" --max-seconds "$max_seconds" "${tolerate[@]}" \
    --json-out "$out/load-batching-$mode.json" "${images[@]}" || status=1
done
# A batched row may differ from the image alone only by a near-tie selection flip: the batch
# of the four, through the diagnostic export, against the torch reference on the same batch;
# `check` fails unless every difference is an explained near-tie and the forced pass (the
# reference's selections) holds every tensor within its budget.
echo
"$bin" --weights "$weights" --config "$config" --target ort-cpu --debug --selection-inputs -o "$out/debug.onnx" >/dev/null
"$py" - "$out" "${images[@]}" <<'PY'
import os, sys
sys.path.insert(0, "scripts/python")
import numpy as np
from safetensors_np import read, write
out, images = sys.argv[1], sys.argv[2:]
rows = [read(os.path.join(out, "reference", os.path.splitext(os.path.basename(i))[0] + ".safetensors")) for i in images]
write(os.path.join(out, "batch.safetensors"), {"images": np.concatenate([r["images"] for r in rows])})
PY
"$bin" check --weights "$weights" --config "$config" --model "$out/debug.onnx" --threads "$threads" \
  --input "$out/batch.safetensors" | tail -n 3 || status=1
exit $status
