#!/usr/bin/env bash
# The one prepared GPU check: on a machine with an NVIDIA GPU and the GPU runtimes, it builds
# TensorRT engines (fp32 and fp16) through ONNX Runtime's TensorRT provider with an engine cache,
# runs `check` on the goldens against the CPU torch reference (free and forced passes), does the
# same on the CUDA provider, and times each with `bench` on the largest golden. One JSON summary
# (gpu-check/summary.json). Every part it cannot run is skipped with its reason; a part that runs
# past its share of the 8-minute budget is stopped and reported as timed out. A failure to set up
# (GPU runtimes install, build, export) fails every part, so a broken build never reads as skipped.
#
# Usage: scripts/gpu-check.sh [--setup] [--out DIR]
#   --setup   install the GPU runtimes first (scripts/setup-env.sh --gpu); otherwise the
#             libraries already present are used, as `focus-export doctor --gpu` finds them.
# Exit: 0 when every part passed or was skipped; 1 when a part failed or timed out.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

out=gpu-check
setup=0
while [ $# -gt 0 ]; do
  case "$1" in
    --setup) setup=1 ;;
    --out) out="$2"; shift ;;
    *) echo "usage: $0 [--setup] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
parts="$out/parts.tsv"
: > "$parts"
budget_s=480 # the parts (checks and timings), on one GPU; setting up comes before
bin=target/debug/focus-export
shared="${FOCUS_SHARED_DIR:-$root/../shared}"
golden="$shared/golden"
cases=(astronaut_384x384 chelsea_448x640 coffee_480x640 rocket_800x1184)

say() { printf '[gpu-check] %s\n' "$*"; }
# record NAME STATUS REASON [CHECK_REPORT] [BENCH_JSON] [SECONDS]
record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" "${5:-}" "${6:-}" >> "$parts"
  say "$1: $2${3:+ ($3)}"
}

# What stops every GPU part, if anything: `blocker` skips them (nothing to run them on),
# `broken` fails them (the setting up failed).
blocker=""
broken=""
gpu_name=""
if ! command -v nvidia-smi > /dev/null 2>&1; then
  blocker="no NVIDIA driver on this machine (nvidia-smi not found)"
elif ! gpu_name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2> /dev/null | head -n 1)" || [ -z "$gpu_name" ]; then
  blocker="nvidia-smi finds no GPU"
fi
if [ -z "$blocker" ] && [ "$setup" = 1 ]; then
  bash scripts/setup-env.sh --gpu > "$out/setup.log" 2>&1 || broken="scripts/setup-env.sh --gpu failed (see $out/setup.log)"
fi
if [ -z "$blocker" ] && [ ! -d .runtimes ]; then
  blocker="runtimes not installed: run scripts/setup-env.sh --gpu (or pass --setup)"
fi
if [ -z "$blocker$broken" ]; then
  cargo build --all-features --locked > "$out/build.log" 2>&1 || broken="cargo build failed (see $out/build.log)"
fi
providers=""
if [ -z "$blocker$broken" ]; then
  "$bin" doctor --gpu > "$out/doctor.txt" 2>&1
  # e.g. "ORT providers  CPU, CUDA, TensorRT"
  providers="$(grep -m1 'ORT providers' "$out/doctor.txt" | sed 's/^ *\[[A-Za-z ]*\] *//' || true)"
fi
if [ -z "$blocker$broken" ] && [ ! -f "$golden/${cases[0]}.safetensors" ]; then
  blocker="goldens not found in $golden (set FOCUS_SHARED_DIR)"
fi

# Why one provider's parts cannot run ("" when they can).
provider_blocker() {
  if [ -n "$broken" ]; then
    echo "FAILED: $broken"
  elif [ -n "$blocker" ]; then
    echo "$blocker"
  elif ! grep -q "$1" <<< "$providers"; then
    echo "this ONNX Runtime has no $1 provider (doctor: ${providers:-no report}); install it with scripts/setup-env.sh --gpu"
  fi
}

# part NAME PROVIDER_NAME MODEL PART_SECONDS RUNTIME_ARGS...: check on the goldens, then bench.
part() {
  local name="$1" provider="$2" model="$3" share="$4"
  shift 4
  local why
  why="$(provider_blocker "$provider")"
  if [ -n "$why" ]; then
    case "$why" in
      FAILED:*) record "$name" failed "${why#FAILED: }" ;;
      *) record "$name" skipped "$why" ;;
    esac
    return
  fi
  local left=$((budget_s - ($(date +%s) - start)))
  if [ "$left" -lt 60 ]; then
    record "$name" skipped "the 8-minute budget is spent"
    return
  fi
  [ "$share" -gt "$left" ] && share=$left
  # The share covers the check and the timing (60 s of it).
  local bench_s=60
  local check_s=$((share - bench_s))
  local t0 report="$out/$name.check.json" benchf="$out/$name.bench.json" inputs=()
  for c in "${cases[@]}"; do inputs+=(--input "$golden/$c.safetensors"); done
  t0=$(date +%s)
  timeout "$check_s" "$bin" check --runtime ort "$@" --weights "$weights" --model "$model" \
    "${inputs[@]}" --report "$report" > "$out/$name.check.txt" 2>&1
  local rc=$?
  local took=$(($(date +%s) - t0))
  if [ "$rc" = 124 ]; then
    record "$name" timed-out "check ran past its ${check_s} s share of the budget" "" "" "$took"
    return
  fi
  # Timing on the largest golden, engines already built and cached by the check.
  timeout "$bench_s" "$bin" bench --runtimes torch,ort "$@" --weights "$weights" --model "$model" \
    --input "$golden/${cases[3]}.safetensors" --json > "$benchf" 2> "$out/$name.bench.err" || : > "$benchf"
  if [ "$rc" = 0 ]; then
    record "$name" passed "" "$report" "$benchf" "$took"
  else
    record "$name" failed "check exit $rc (see $out/$name.check.txt)" "$report" "$benchf" "$took"
  fi
}

weights="$out/focus_detr_r50_synth.safetensors"
trt_model="$out/focus_detr_tensorrt.onnx"
cuda_model="$out/focus_detr_cuda.onnx"
if [ -z "$blocker$broken" ] && grep -qE 'CUDA|TensorRT' <<< "$providers"; then
  # The goldens' weights (seed 0), and the two exports with the diagnostic outputs and selection
  # inputs, so that `check` runs its forced pass too.
  "$bin" init-weights --seed 0 -o "$weights" > /dev/null &&
    "$bin" --weights "$weights" --target tensorrt --debug --selection-inputs -o "$trt_model" > "$out/export_tensorrt.txt" &&
    "$bin" --weights "$weights" --target ort-cuda --debug --selection-inputs -o "$cuda_model" > "$out/export_cuda.txt" ||
    broken="exporting the models failed (see $out/export_*.txt)"
fi
start=$(date +%s)

engines="$out/engines"
mkdir -p "$engines"
part tensorrt-fp32 TensorRT "$trt_model" 200 --provider tensorrt --engine-cache "$engines"
# fp16 engines are judged by the fp16 budgets (`check --fp16`, focus_export::check::FP16).
part tensorrt-fp16 TensorRT "$trt_model" 160 --provider tensorrt --fp16 --engine-cache "$engines"
part cuda CUDA "$cuda_model" 120 --provider cuda

python="$(command -v python3 || echo .venv/bin/python)"
if ! "$python" -c pass 2> /dev/null; then
  say "no Python to write $out/summary.json; the parts are in $parts"
  exit 1
fi
"$python" - "$parts" "$out/summary.json" "${gpu_name:-}" "$(($(date +%s) - start))" <<'PY'
import json, sys
parts_file, summary_file, gpu, seconds = sys.argv[1:5]
def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
parts = []
for line in open(parts_file):
    name, status, reason, report, bench, took = line.rstrip("\n").split("\t")
    p = {"name": name, "status": status, "reason": reason or None}
    if took:
        p["check_seconds"] = int(took)
    r = load(report) if report else None
    if r:
        p["check"] = {k: r.get(k) for k in ("images", "forced_ok", "free_identical")}
    b = load(bench) if bench else None
    if b is not None:
        p["bench"] = b
    parts.append(p)
summary = {"gpu": gpu or None, "seconds": int(seconds), "parts": parts}
with open(summary_file, "w") as f:
    json.dump(summary, f, indent=2)
print(json.dumps(summary, indent=2))
PY
if grep -qE $'\t(failed|timed-out)\t' "$parts"; then
  exit 1
fi
exit 0
