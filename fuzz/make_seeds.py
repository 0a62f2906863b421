"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/): small valid files of
every format, so that the fuzzer starts from inputs that get past the first checks. Run once by
hand (it needs Pillow and onnx: the project's .venv-deploy has Pillow, .venv onnx):

    .venv-deploy/bin/python fuzz/make_seeds.py --images    # the photos
    .venv/bin/python fuzz/make_seeds.py                     # everything else
"""
import io
import json
import os
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype, shape, raw bytes)."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def f32(*v):
    return struct.pack(f"<{len(v)}f", *v)


def images():
    from PIL import Image

    img = Image.new("RGB", (7, 5))
    for x in range(7):
        for y in range(5):
            img.putpixel((x, y), (x * 30, y * 50, 128))
    for fmt, name, kw in [("PNG", "rgb.png", {}), ("JPEG", "rgb.jpg", {"quality": 80}),
                          ("WEBP", "rgb.webp", {"lossless": True}), ("WEBP", "lossy.webp", {})]:
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        put("image", name, b.getvalue())
    b = io.BytesIO()
    img.convert("L").save(b, "PNG")
    put("image", "gray.png", b.getvalue())
    # A JPEG with an EXIF orientation (rotated 90°).
    exif = Image.Exif()
    exif[0x0112] = 6
    b = io.BytesIO()
    img.save(b, "JPEG", exif=exif.tobytes())
    put("image", "exif_rotated.jpg", b.getvalue())


def rest():
    import onnx
    from onnx import TensorProto, helper

    # Weights: the default preset's names, tiny shapes (the schema check fails, as it should,
    # past the header), every float dtype, metadata, an int64 index buffer.
    put("safetensors", "two_f32.safetensors", safetensors(
        {"backbone.stem.conv1.weight": ("F32", [2, 2], f32(1, 2, 3, 4)),
         "transformer.level_embeds": ("F32", [1], f32(0.5))}))
    put("safetensors", "dtypes.safetensors", safetensors(
        {"a": ("F16", [2], struct.pack("<2e", 1.5, -2)),
         "b": ("BF16", [1], b"\x80\x3f"),
         "c": ("F64", [1], struct.pack("<d", 0.1)),
         "idx": ("I64", [2], struct.pack("<2q", 0, 1))},
        {"generator": "seed", "format": "pt"}))
    put("safetensors", "empty_tensor.safetensors", safetensors({"z": ("F32", [0, 3], b"")}))

    # Checkpoints: the real torch.save fixtures (zip, legacy, protocol 4, a release archive).
    fixtures = os.path.join(ROOT, "tests", "data", "pth")
    os.makedirs(os.path.join(CORPUS, "pth"), exist_ok=True)
    for f in sorted(os.listdir(fixtures)):
        if os.path.isfile(os.path.join(fixtures, f)):
            shutil.copy(os.path.join(fixtures, f), os.path.join(CORPUS, "pth", f))

    # COCO files.
    with open(os.path.join(ROOT, "tests", "data", "coco_subset", "annotations.json")) as f:
        put("coco_annotations", "subset.json", f.read())
    put("coco_annotations", "crowd_and_area.json", json.dumps({
        "images": [{"id": 1, "width": 10, "height": 10}],
        "categories": [{"id": 2, "name": "x"}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 2, "bbox": [1, 1, 3, 4],
                         "area": 12.0, "iscrowd": 1, "ignore": 0}]}))
    put("coco_results", "two.json", json.dumps([
        {"image_id": 1, "category_id": 1, "bbox": [2, 3, 19, 11], "score": 0.9},
        {"image_id": 2, "category_id": 3, "bbox": [0, 0, 8, 8], "score": 0.4}]))
    put("coco_results", "unknown_category.json", json.dumps([
        {"image_id": 1, "category_id": 7, "bbox": [0, 0, 1, 1], "score": 1.0}]))

    # Configs: a preset by base with overrides of every section, and a Swin one.
    put("config_json", "tiny.json", json.dumps({
        "base": "r50_4scale_36ep", "name": "tiny",
        "backbone": {"stem_channels": 8, "res2_channels": 16}, "neck": {"group_norm_groups": 4},
        "position_embedding": {"num_pos_feats": 16},
        "transformer": {"embed_dim": 32, "ffn_dim": 64},
        "focus": {"mask_predictor_hidden": 16, "object_tokens": 10},
        "heads": {"num_classes": 5, "num_queries": 20, "num_select": 10},
        "preprocess": {"min_size": 96, "max_size": 128}}))
    put("config_json", "tiny_swin.json", json.dumps({
        "base": "swin_tiny_224_4scale_36ep", "name": "tiny_swin",
        "backbone": {"embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 2, 2, 4]},
        "neck": {"group_norm_groups": 4}, "transformer": {"embed_dim": 32, "ffn_dim": 64}}))
    put("config_json", "base_only.json", json.dumps({"base": "r101_4scale_12ep"}))

    # ONNX: small graphs of the ops the lint has rules for.
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["B", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 1, 1], [0.1] * 12)
    k = helper.make_tensor("k", TensorProto.INT64, [1], [2])
    nodes = [helper.make_node("Conv", ["images", "w"], ["c"], name="conv"),
             helper.make_node("Flatten", ["c"], ["f"], axis=2, name="flat"),
             helper.make_node("TopK", ["f", "k"], ["y", "i"], axis=-1, name="topk")]
    g = helper.make_graph(nodes, "seed", [x], [y], [w, k])
    put("onnx", "conv_topk.onnx", helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    nodes = [helper.make_node("GridSample", ["images", "grid"], ["y"], align_corners=0, name="gs"),
             helper.make_node("MsDeformAttn", ["images"], ["z"], domain="ai.focus_detr", name="custom")]
    gi = helper.make_tensor_value_info("grid", TensorProto.FLOAT, [1, 2, 2, 2])
    g = helper.make_graph(nodes, "seed2", [x, gi], [y], [])
    put("onnx", "gridsample_custom.onnx", helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.focus_detr", 1)]).SerializeToString())

    # Input tensor files.
    put("tensors", "images.safetensors", safetensors(
        {"images": ("F32", [1, 3, 2, 2], f32(*range(12)))}))
    put("tensors", "mixed.safetensors", safetensors(
        {"images": ("F16", [1, 1, 1, 2], struct.pack("<2e", 1, 2)),
         "topk_proposals_in": ("I32", [1, 2], struct.pack("<2i", 3, 4)),
         "u": ("U8", [3], b"abc")}))


if __name__ == "__main__":
    images() if "--images" in sys.argv else rest()
