#!/usr/bin/env bash
# Regenerate everything in this folder (about 5 minutes on 2 cores). See README.md section 1.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="$(dirname "$HERE")"
PY=${PY:-/tmp/gv/bin/python}
SRC=${SRC:-/tmp/src}

# environment (once)
if [ ! -x "$PY" ]; then
  python3.11 -m venv /tmp/gv
  /tmp/gv/bin/pip install torch==2.13.0 torchvision==0.28.0 numpy==2.4.6 scikit-image==0.26.0 \
    safetensors==0.8.0 fvcore==0.1.5.post20221221 iopath==0.1.10 omegaconf==2.4.0 cloudpickle==3.1.2 \
    timm==1.0.31 pycocotools==2.0.11 setuptools==80.9.0
fi
if [ ! -d "$SRC/detrex/projects" ]; then
  mkdir -p "$SRC/detrex" "$SRC/detectron2"
  git -C /work/.mirror/IDEA-Research+detrex/repo archive e244e6c3da3e84566728c52c21fb061d23ce0e2f | tar -x -C "$SRC/detrex"
  git -C /work/.mirror/facebookresearch+detectron2/repo archive 70f454304e1a38378200459dd2dbca0f0f4a5ab4 | tar -x -C "$SRC/detectron2"
  ln -s "$SRC/detrex/configs" "$SRC/detrex/detrex/config/configs"   # what detrex's setup.py does
fi
export DETREX_SRC="$SRC/detrex" DETECTRON2_SRC="$SRC/detectron2" OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
cd "$HERE"

# self-checks against the R50 goldens
$PY synth.py /work/shared/golden/r50_synth_seed0_checks.txt
$PY resize.py /work/shared/golden
$PY make_keys.py --r50-check
$PY r50_repro.py /work/shared/golden astronaut 384 384 chelsea 448 640

# keys / aliases / checks, weights file
$PY make_keys.py "$OUT" swin_t swin_b
$PY make_keys.py --save-weights /tmp/swin_t_synth_seed0.safetensors swin_t

# cases (each: two captured runs compared bit for bit, a plain run compared with them)
$PY sizes.py
for spec in "swin_t --big astronaut 393 395" "swin_t chelsea 401 458" "swin_t coffee+rocket 403 409" \
            "swin_b --big coffee 386 389" "swin_b chelsea 419 447" "swin_b astronaut+chelsea 401 414"; do
  $PY run_case.py make "$OUT" $spec
done
chmod 644 "$OUT"/*.safetensors
$PY mask_check.py swin_t "$OUT/swin_t_astronaut_393x395.safetensors"
$PY mask_check.py swin_b "$OUT/swin_b_coffee_386x389.safetensors"

# timings (run on an otherwise idle machine)
for spec in "r50 astronaut 384 384" "swin_t astronaut 393 395" "swin_t chelsea 401 458" "swin_t coffee+rocket 403 409" \
            "swin_b coffee 386 389" "swin_b chelsea 419 447" "swin_b astronaut+chelsea 401 414"; do
  $PY run_case.py time $spec
done
