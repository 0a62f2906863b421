"""Runs an ONNX model on the Python onnxruntime of this interpreter with libfocus_ops.so loaded,
the way a user outside focus-export would (SessionOptions.register_custom_ops_library).

usage: run_ort.py LIBRARY MODEL INPUTS.safetensors OUTPUTS.safetensors [THREADS]

Feeds every model input from INPUTS (by name) and writes every output to OUTPUTS. Exits 3, with
the runtime's message on stderr, when the library is refused at registration.
Safetensors are read and written with numpy alone (scripts/python/safetensors_np.py), so this
runs in any environment that has onnxruntime.
"""
import os
import sys

import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "python"))
from safetensors_np import read, write  # noqa: E402

def main():
    lib, model, inputs, outputs = sys.argv[1:5]
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    try:
        so.register_custom_ops_library(lib)
    except Exception as e:  # the library's refusal (or a broken file)
        print(f"REFUSED: {e}", file=sys.stderr)
        sys.exit(3)
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    given = read(inputs)
    feed = {i.name: given[i.name] for i in sess.get_inputs()}
    names = [o.name for o in sess.get_outputs()]
    write(outputs, dict(zip(names, sess.run(names, feed))))
    print(f"onnxruntime {ort.__version__}: {len(names)} outputs")


if __name__ == "__main__":
    main()
