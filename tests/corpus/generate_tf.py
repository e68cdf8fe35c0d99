"""The TensorFlow side of the corpus: Keras ResNets exported by tf2onnx, and TFLite models converted
by tf2onnx's TFLite path. Run by generate.py with the Python of the TensorFlow venv
(see README.md); it writes ONNX files into --out and a JSON list describing them into --meta.
Reference outputs, onnxruntime's int8 and the manifest are made by generate.py afterwards.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
import tf2onnx  # noqa: E402
from keras.src.applications import resnet as kr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_common import (  # noqa: E402
    CAFFE_PRE,
    CALIB_IMAGES,
    TFMODE_PRE,
    load_ic01,
    load_photos,
    preprocess,
    seed_of,
)

EXPORTER = f"tf2onnx {tf2onnx.__version__} (tensorflow {tf.__version__}, keras {keras.__version__})"

# arch -> (preact, blocks per stack, preprocessing, application name)
ARCHS = {
    "resnet50": (False, [3, 4, 6, 3], "caffe"),
    "resnet101": (False, [3, 4, 23, 3], "caffe"),
    "resnet50v2": (True, [3, 4, 6, 3], "tf"),
}
PRE = {"caffe": CAFFE_PRE, "tf": TFMODE_PRE}


def build(arch: str, filters, size: int, classes: int, seed: int):
    """keras.applications.resnet's own ResNet() and stack functions, with `filters` per stack."""
    preact, blocks, _ = ARCHS[arch]
    keras.utils.set_random_seed(seed)

    def stack_fn(x):
        if preact:
            x = kr.stack_residual_blocks_v2(x, filters[0], blocks[0], name="conv2")
            x = kr.stack_residual_blocks_v2(x, filters[1], blocks[1], name="conv3")
            x = kr.stack_residual_blocks_v2(x, filters[2], blocks[2], name="conv4")
            return kr.stack_residual_blocks_v2(x, filters[3], blocks[3], stride1=1, name="conv5")
        x = kr.stack_residual_blocks_v1(x, filters[0], blocks[0], stride1=1, name="conv2")
        x = kr.stack_residual_blocks_v1(x, filters[1], blocks[1], name="conv3")
        x = kr.stack_residual_blocks_v1(x, filters[2], blocks[2], name="conv4")
        return kr.stack_residual_blocks_v1(x, filters[3], blocks[3], name="conv5")

    return kr.ResNet(
        stack_fn,
        preact,
        True,  # use_bias, as ResNet50 / ResNet101 / ResNet50V2 do
        include_top=True,
        weights=None,
        input_shape=(size, size, 3),
        classes=classes,
        classifier_activation="softmax",
        name=arch,
    )


def reestimate_bn(model, x: np.ndarray):
    """Moving mean/variance of every BatchNormalization = the statistics of `x` (one batch).

    With momentum 0, one training-mode call assigns the batch statistics to the moving ones; each
    layer sees its inputs normalised by the earlier layers' same statistics, so inference mode
    afterwards reproduces exactly the normalisation seen here.
    """
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in bns:
        layer.momentum = 0.0
    model(x, training=True)
    for layer in bns:
        layer.momentum = 0.99
    return len(bns)


EPOCHS = 15


def train(model, x, y, seed):
    """A short SGD run on the 200 images (weight decay), so predictions are not degenerate: random
    deep ResNets quantize badly and make weak references. The same images are the evaluation set:
    top-1 is then no accuracy figure."""
    keras.utils.set_random_seed(seed)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.02, momentum=0.9, weight_decay=5e-4),
        loss="sparse_categorical_crossentropy",
    )
    model.fit(x, y, batch_size=25, epochs=EPOCHS, shuffle=True, verbose=0)


def export(model, size: int, opset: int, path: Path):
    spec = (tf.TensorSpec((None, size, size, 3), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset, output_path=str(path))


def tflite_convert(model, path: Path, calib: np.ndarray | None):
    size = model.input_shape[1]
    saved = path.parent / (path.stem + "_saved")
    # A SavedModel with a batch-1 signature (TFLite models are batch 1).
    model.export(str(saved), format="tf_saved_model", verbose=False,
                 input_signature=[tf.TensorSpec((1, size, size, 3), tf.float32, name="input")])
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    if calib is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative():
            for i in range(len(calib)):
                yield [calib[i : i + 1]]

        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # float input and output: a Quantize op at the start and a Dequantize at the end.
    path.write_bytes(conv.convert())


def tflite_to_onnx(tflite: Path, onnx_path: Path, opset: int):
    subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--tflite", str(tflite), "--output",
         str(onnx_path), "--opset", str(opset)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def check(model, onnx_path: Path, x: np.ndarray, what: str):
    try:
        import onnxruntime as ort
    except ImportError:
        return
    s = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    y = s.run(None, {s.get_inputs()[0].name: x})[0]
    ref = model(x, training=False).numpy()
    print(f"  {what}: |onnxruntime - keras| max {np.abs(y - ref).max():.3g}", flush=True)


def small(out: Path, meta: list):
    pixels, labels = load_ic01()
    for arch, filters in [
        ("resnet50", (2, 4, 8, 16)),
        ("resnet50v2", (2, 4, 8, 16)),
        ("resnet101", (2, 4, 8, 16)),
    ]:
        pre_name = ARCHS[arch][2]
        pre = PRE[pre_name]
        x = preprocess(pixels, pre, "nhwc")
        model = build(arch, filters, 32, 10, seed_of("keras_" + arch))
        reestimate_bn(model, x)
        train(model, x, labels, seed_of("train_keras_" + arch))
        nbn = reestimate_bn(model, x)
        acc = int((model.predict(x, verbose=0).argmax(1) == labels).sum())
        print(f"  trained {EPOCHS} epochs: train top-1 {acc}/{len(x)}", flush=True)
        print(f"keras {arch}: {model.count_params()} parameters, {nbn} BN re-estimated", flush=True)
        for opset in (9, 13):
            name = f"keras_{arch}_op{opset}"
            path = out / f"{name}.onnx"
            export(model, 32, opset, path)
            check(model, path, x[:8], name)
            meta.append(dict(
                name=name, file=f"models/{name}.onnx", exporter=EXPORTER, arch=f"keras_{arch}",
                layout="nhwc", pre=pre_name, ends_in_softmax=True, trained=True,
                notes=(f"keras.applications.resnet ResNet() with stack filters {list(filters)} "
                       f"(application: 64,128,256,512; stem conv stays 64), trained {EPOCHS} "
                       f"epochs on the 200 ic01 images (top-1 is no accuracy figure), "
                       f"BatchNorm moving statistics re-estimated on them; "
                       f"tf2onnx from_keras, NHWC input, ends MatMul/Add/Softmax; "
                       f"preprocessing '{pre_name}' mode"),
            ))
        if arch == "resnet50":
            calib = x[:CALIB_IMAGES]
            with tempfile.TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                tflite_convert(model, tmp / "f32.tflite", None)
                tflite_convert(model, tmp / "int8.tflite", calib)
                for kind, src in (("f32", "f32.tflite"), ("int8", "int8.tflite")):
                    name = f"tflite_keras_resnet50_{kind}"
                    path = out / f"{name}.onnx"
                    tflite_to_onnx(tmp / src, path, 13)
                    check(model, path, x[:1], name)
                    meta.append(dict(
                        name=name, file=f"models/{name}.onnx",
                        exporter=f"{EXPORTER} --tflite (TFLiteConverter, tensorflow {tf.__version__})",
                        arch="keras_resnet50", layout="nhwc", pre="caffe", ends_in_softmax=True,
                        trained=True,
                        source="tflite_keras_resnet50_f32" if kind == "int8" else None,
                        kind="prequantized" if kind == "int8" else "float",
                        notes=("keras_resnet50 (the model of keras_resnet50_op9/13) converted to "
                               + ("a float TFLite model" if kind == "f32" else
                                  "a full-integer int8 TFLite model (TFLITE_BUILTINS_INT8, float "
                                  "input/output, representative dataset = the first 100 ic01 "
                                  "images)")
                               + " with batch 1, then by python -m tf2onnx.convert --tflite "
                                 "--opset 13"),
                    ))


def full(out: Path, meta: list):
    photos = load_photos(224)
    x = preprocess(photos, CAFFE_PRE, "nhwc")
    model = build("resnet50", (64, 128, 256, 512), 224, 1000, seed_of("keras_resnet50_224"))
    reestimate_bn(model, x)
    name = "keras_resnet50_224_op13"
    export(model, 224, 13, out / f"{name}.onnx")
    meta.append(dict(
        name=name, file=f"{name}.onnx", exporter=EXPORTER, arch="keras_resnet50", layout="nhwc",
        pre="caffe", ends_in_softmax=True, trained=False,
        notes="full-size keras.applications ResNet50 structure, random weights, BN statistics "
              "re-estimated on the CC0 photos",
    ))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--meta", type=Path, required=True)
    ap.add_argument("--full", action="store_true")
    a = ap.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.experimental.enable_op_determinism()
    a.out.mkdir(parents=True, exist_ok=True)
    meta = []
    (full if a.full else small)(a.out, meta)
    import json

    a.meta.write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
