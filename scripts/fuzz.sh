#!/usr/bin/env bash
# The fuzzing campaign (not CI): builds fuzz/ (libFuzzer, coverage-instrumented on stable Rust)
# and runs each target of src/fuzzing.rs for RUNS executions from its seed corpus
# (fuzz/corpus/<target>), growing a working corpus in fuzz/work/<target> (git-ignored).
# Crashes, hangs (> 10 s) and allocations over 2 GiB are written to fuzz/artifacts/<target>/;
# copy each into fuzz/regressions/<target>/ once fixed (tests/fuzz_corpus.rs runs them).
# Writes fuzz/work/summary.md (executions, time, exec/s, corpus size, crashes per target).
# Usage: scripts/fuzz.sh [--runs N] [--minimize] [target...]   (default: 1000000, every target)
#   --minimize  afterwards replace fuzz/corpus/<target> by the smallest set of the seeds and
#               the working corpus that reaches every feature both reach (set cover), seeds kept
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs=1000000
minimize=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --minimize) minimize=1; shift ;;
    -*) echo "usage: $0 [--runs N] [--minimize] [target...]" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=(safetensors pth coco_annotations coco_results config_json image onnx tensors)
fi
# Coverage instrumentation as cargo-fuzz sets it, without -Zsanitizer (nightly only);
# +avx as .cargo/config.toml (RUSTFLAGS replaces it).
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks \
-Ctarget-feature=+avx"
(cd fuzz && cargo build --release --locked --target x86_64-unknown-linux-gnu --bin fuzz)
bin="fuzz/target/x86_64-unknown-linux-gnu/release/fuzz"
mkdir -p fuzz/work
summary=fuzz/work/summary.md
{
  echo "| target | executions | seconds | exec/s | corpus (files) | crashes, hangs, OOMs |"
  echo "|---|---|---|---|---|---|"
} > "$summary"
failed=0
for t in "${targets[@]}"; do
  work="fuzz/work/$t"
  art="fuzz/artifacts/$t"
  mkdir -p "$work" "$art"
  log="fuzz/work/$t.log"
  start=$(date +%s)
  set +e
  FOCUS_FUZZ_TARGET="$t" "$bin" "$work" "fuzz/corpus/$t" \
    -runs="$runs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$art/" -print_final_stats=1 > "$log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  found=$(find "$art" -type f | wc -l)
  files=$(find "$work" -type f | wc -l)
  echo "| $t | ${execs:-?} | $secs | ${rate:-?} | $files | $found |" >> "$summary"
  echo "$t: rc $rc, ${execs:-?} executions in $secs s, $found artifact(s) (log: $log)"
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then failed=1; fi
  if [ "$minimize" = 1 ]; then
    mkdir -p "fuzz/work/$t.min"
    # The smallest set of inputs that keeps every feature reached (libFuzzer's set cover),
    # the seeds kept as they are.
    FOCUS_FUZZ_TARGET="$t" "$bin" -set_cover_merge=1 -timeout=10 -max_len=65536 \
      "fuzz/work/$t.min" "fuzz/corpus/$t" "$work" > "fuzz/work/$t.merge.log" 2>&1
    cp -n "fuzz/corpus/$t"/* "fuzz/work/$t.min/"
    rm -rf "fuzz/corpus/$t" && mv "fuzz/work/$t.min" "fuzz/corpus/$t"
  fi
done
cat "$summary"
exit "$failed"
