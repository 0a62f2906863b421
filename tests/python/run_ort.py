"""Runs an ONNX model on the Python onnxruntime of this interpreter with libfocus_ops.so loaded,
the way a user outside focus-export would (SessionOptions.register_custom_ops_library).

usage: run_ort.py LIBRARY MODEL INPUTS.safetensors OUTPUTS.safetensors [THREADS]

Feeds every model input from INPUTS (by name) and writes every output to OUTPUTS. Exits 3, with
the runtime's message on stderr, when the library is refused at registration.
Safetensors are read and written with numpy alone (the format: u64 header length, a JSON header,
the raw little-endian data), so this runs in any environment that has onnxruntime.
"""
import json
import struct
import sys

import numpy as np
import onnxruntime as ort

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
          "I32": np.int32, "U8": np.uint8, "I8": np.int8, "BOOL": np.bool_}


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        dt = np.dtype(DTYPES[t["dtype"]]).newbyteorder("<")
        out[name] = np.frombuffer(raw[base + a:base + b], dtype=dt).reshape(t["shape"])
    return out


def write(path, tensors):
    names = {np.dtype(v).name: k for k, v in DTYPES.items()}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if a.dtype == np.bool_:
            a = a.astype(np.uint8)
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": names[a.dtype.name], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


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
