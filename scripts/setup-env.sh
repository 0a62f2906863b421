#!/usr/bin/env bash
# Installs the pinned native runtimes into the git-ignored Python environment .venv and links
# what the build and the binaries need into .runtimes/:
#   .runtimes/libtorch           -> the torch wheel's package folder (LIBTORCH for tch, via .cargo/config.toml)
#   .runtimes/libonnxruntime.so  -> the onnxruntime wheel's shared library (found by focus-export at run time)
#   .runtimes/site-packages      -> the environment's site-packages (CUDA / TensorRT libraries)
#   .runtimes/photos             -> the photos of the scikit-image wheel (test data: tests/data/coco_subset)
# and a second environment, .venv-deploy, for the deployment tests (libfocus_ops.so loaded into
# other ONNX Runtimes: the pinned one and older ones; requirements/deploy.txt, old-onnxruntime.txt)
# with Triton Inference Server's own binary from the nvidia-pytriton wheel (requirements/triton.txt):
#   .venv-deploy/triton/tritonserver      -> the wheel's server binary
#   .venv-deploy/triton/backends/python/  -> its Python backend, with the stub for this Python
# Usage: scripts/setup-env.sh [--gpu]    (idempotent: does nothing when already up to date)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
variant=cpu
case "${1:-}" in
  --gpu) variant=gpu ;;
  "") ;;
  *) echo "usage: $0 [--gpu]" >&2; exit 2 ;;
esac
python="${PYTHON:-python3}"
req="scripts/requirements"
stamp=".venv/.focus-export-$variant-$(cat "$req/cpu.txt" "$req/torch-cpu.txt" "$req/gpu.txt" "$req/test-data.txt" | sha256sum | cut -c1-16)"

if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  pip=(.venv/bin/python -m pip install --disable-pip-version-check --no-input --progress-bar off)
  if [ "$variant" = gpu ]; then
    .venv/bin/python -m pip uninstall -y onnxruntime >/dev/null 2>&1 || true
    "${pip[@]}" -r "$req/gpu.txt"
  else
    .venv/bin/python -m pip uninstall -y onnxruntime-gpu >/dev/null 2>&1 || true
    # torch is installed without its Python dependencies on purpose: only its libtorch is used
    # (by tch), and `import torch` is never run. pip would report each of them as a "dependency
    # conflict" (an ERROR line that is no error here), so that warning is switched off.
    "${pip[@]}" --no-deps -r "$req/torch-cpu.txt"
    "${pip[@]}" --no-warn-conflicts -r "$req/cpu.txt"
    echo "note: torch is installed without its Python dependencies on purpose (only libtorch is used); pip check would list them as missing, which is expected"
  fi
  "${pip[@]}" --no-deps -r "$req/test-data.txt"
  rm -f .venv/.focus-export-*
  touch "$stamp"
fi

deploy_stamp=".venv-deploy/.focus-export-$(cat "$req/deploy.txt" "$req/old-onnxruntime.txt" "$req/triton.txt" | sha256sum | cut -c1-16)"
if [ ! -f "$deploy_stamp" ]; then
  [ -x .venv-deploy/bin/python ] || "$python" -m venv .venv-deploy
  pipd=(.venv-deploy/bin/python -m pip install --disable-pip-version-check --no-input --progress-bar off)
  "${pipd[@]}" -r "$req/deploy.txt"
  grep -E '^onnxruntime==' "$req/old-onnxruntime.txt" | while read -r spec; do
    "${pipd[@]}" --no-deps --upgrade --target ".venv-deploy/onnxruntime-${spec#onnxruntime==}" "$spec"
  done
  "${pipd[@]}" --no-deps -r "$req/triton.txt"
  # The server's Python backend runs model.py in a stub built per Python version: the backend
  # folder Triton is pointed at holds the backend library and the stub of the Python we run.
  dsite="$(.venv-deploy/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  pyver="$(.venv-deploy/bin/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  ts="$dsite/pytriton/tritonserver"
  rm -rf .venv-deploy/triton
  mkdir -p .venv-deploy/triton/backends/python
  ln -sfn "$ts/bin/tritonserver" .venv-deploy/triton/tritonserver
  for f in libtriton_python.so triton_python_backend_utils.py; do
    ln -sfn "$ts/backends/python/$f" ".venv-deploy/triton/backends/python/$f"
  done
  ln -sfn "$ts/python_backend_stubs/$pyver/triton_python_backend_stub" .venv-deploy/triton/backends/python/triton_python_backend_stub
  rm -f .venv-deploy/.focus-export-*
  touch "$deploy_stamp"
fi

site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
ortlib="$(ls "$site"/onnxruntime/capi/libonnxruntime.so.* | sort -V | tail -n 1)"
mkdir -p .runtimes
ln -sfn "$site/torch" .runtimes/libtorch
ln -sfn "$ortlib" .runtimes/libonnxruntime.so
ln -sfn "$site" .runtimes/site-packages
ln -sfn "$site/skimage/data" .runtimes/photos
echo "runtimes ($variant) ready in $root/.runtimes: libtorch $(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$site/torch/version.py"), $(basename "$ortlib")"
