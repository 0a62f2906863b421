#!/usr/bin/env bash
# The float32 latency targets as a benchmark (issue 26; not a test: this machine class is noisy):
# ORT-CPU (--target ort-cpu) at most 0.55x the torch reference, and tract (--target tract) at
# most 1.8x ORT-CPU, at 480x640 and 800x1184 (the coffee and rocket goldens), all three timed
# side by side in one `bench` run per size, each form in a process of its own, the runtimes
# taking turns over --rounds (default 3), p50 over every timed run.
#
#   bash scripts/bench-float32.sh [--threads N] [--rounds R] [--runs K] [--out DIR]
#
# Prints each size's table and the ratios against the targets; writes DIR/bench_<size>.json.
# Exit 0 whatever the ratios (a benchmark reports, it does not gate).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
threads=2 rounds=3 runs=3 out="target/bench-float32"
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "unknown argument $1 (expected --threads, --rounds, --runs, --out)" >&2; exit 2 ;;
  esac
done
shared="${FOCUS_SHARED_DIR:-$root/../shared}"
bin=target/debug/focus-export
cargo build --all-features --locked
mkdir -p "$out"
[ -f "$out/demo.safetensors" ] || "$bin" init-weights --seed 0 -o "$out/demo.safetensors"
"$bin" --weights "$out/demo.safetensors" --target ort-cpu -o "$out/ort_cpu.onnx" >/dev/null
"$bin" --weights "$out/demo.safetensors" --target tract -o "$out/tract.onnx" >/dev/null
for size in coffee_480x640 rocket_800x1184; do
  "$bin" bench --runtimes torch,ort,tract --weights "$out/demo.safetensors" \
    --model "$out/ort_cpu.onnx" --tract-model "$out/tract.onnx" \
    --input "$shared/golden/$size.safetensors" --threads "$threads" --rounds "$rounds" \
    --runs "$runs" --json > "$out/bench_$size.json"
done
python3 - "$out" <<'EOF'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"float32 targets ({cpu}):")
for size in ["coffee_480x640", "rocket_800x1184"]:
    d = json.loads((out / f"bench_{size}.json").read_text())
    p = {r["runtime"]: r for r in d["results"]}
    t, o, r = p["torch-cpu"]["p50_s"], p["ort-cpu"]["p50_s"], p["tract"]["p50_s"]
    runs = len(p["ort-cpu"]["runs_s"])
    print(f"  {size}: torch {t:.3f} s, ort-cpu {o:.3f} s, tract {r:.3f} s (p50 of {runs} runs, {d['rounds']} rounds, {d['threads']} threads)")
    print(f"    ort-cpu / torch = {o / t:.2f} (target <= 0.55: {'met' if o / t <= 0.55 else 'MISSED'})")
    print(f"    tract / ort-cpu = {r / o:.2f} (target <= 1.8: {'met' if r / o <= 1.8 else 'MISSED'})")
EOF
