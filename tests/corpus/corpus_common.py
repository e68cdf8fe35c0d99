"""Shared by generate.py (torch / onnxruntime side) and generate_tf.py (TensorFlow side).

Only numpy, Pillow and onnx are needed here, so both virtual environments can import it.
The CIFAR-10 ic01 images are read from ../shared/assets and never copied into the repository.
"""

import csv
import json
import os
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
MODELS = ROOT / "models"
EXPECTED = ROOT / "expected"
ASSETS = Path(os.environ.get("RESQ_ASSETS", ROOT / "../../../shared/assets")).resolve()
IC01 = ASSETS / "cifar10-ic01"
RESNET8 = ASSETS / "resnet8-mlperf-tiny" / "model_float.onnx"
PHOTOS = ASSETS / "photos"

# Preprocessing conventions, pixel units 0..255, x = (pixel - mean) / std per channel, channel
# order of the model (mean/std are given in that order).
TORCH_PRE = dict(bgr=False, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
CAFFE_PRE = dict(bgr=True, mean=[103.939, 116.779, 123.68], std=[1.0, 1.0, 1.0])
TFMODE_PRE = dict(bgr=False, mean=[127.5] * 3, std=[127.5] * 3)
RAW_PRE = dict(bgr=False, mean=[0.0] * 3, std=[1.0] * 3)

CALIB_IMAGES = 100  # calibration = the first 100 images of labels.csv


def seed_of(name: str) -> int:
    """A stable per-model seed."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def load_ic01():
    """The 200 ic01 images as uint8 [200, 32, 32, 3] RGB, and their labels, in labels.csv order."""
    from PIL import Image

    pixels, labels = [], []
    with open(IC01 / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            img = Image.open(IC01 / "png" / row["png"]).convert("RGB")
            assert img.size == (32, 32), row["png"]
            pixels.append(np.asarray(img, dtype=np.uint8))
            labels.append(int(row["label"]))
    assert len(pixels) == 200
    return np.stack(pixels), np.array(labels, dtype=np.int64)


def load_photos(size: int):
    """The CC0 photos, resized (shorter side) and centre-cropped to size x size, uint8 NHWC RGB."""
    from PIL import Image

    out = []
    for p in sorted(PHOTOS.iterdir()):
        if p.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            continue
        img = Image.open(p).convert("RGB")
        w, h = img.size
        s = size / min(w, h)
        img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        out.append(np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8))
    return np.stack(out)


def preprocess(pixels: np.ndarray, pre: dict, layout: str) -> np.ndarray:
    """uint8 NHWC RGB pixels -> the model's float input (channel order, mean/std, layout)."""
    x = pixels.astype(np.float32)
    if pre["bgr"]:
        x = x[..., ::-1]
    x = (x - np.array(pre["mean"], np.float32)) / np.array(pre["std"], np.float32)
    if layout == "nchw":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32)


def op_types(model) -> list:
    """Sorted unique op types of an onnx ModelProto (subgraphs included)."""
    ops = set()

    def walk(g):
        for n in g.node:
            ops.add(n.op_type)
            for a in n.attribute:
                if a.g is not None and a.g.node:
                    walk(a.g)
                for sg in a.graphs:
                    walk(sg)

    walk(model.graph)
    return sorted(ops)


def opset_of(model) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 0


def write_json(path: Path, obj):
    path.write_text(json.dumps(obj, indent=1) + "\n")
