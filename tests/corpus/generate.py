"""Generates resq's conformance corpus: ONNX ResNets written by real exporters, their reference
outputs (onnxruntime f32 and onnxruntime's own int8) on the 200 CIFAR-10 ic01 images, and
manifest.json. See README.md.

    python generate.py                 # small models -> models/, expected/, manifest.json
    python generate.py --full OUTDIR   # full-size architectures -> OUTDIR (not committed)

The TensorFlow part (generate_tf.py) runs in this Python if it can import tensorflow, otherwise in
the one given by --tf-python or $CORPUS_TF_PYTHON.
"""

import argparse
import copy
import importlib.metadata as md
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models import resnet as tvr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_common import (  # noqa: E402
    CALIB_IMAGES,
    EXPECTED,
    MODELS,
    RAW_PRE,
    RESNET8,
    ROOT,
    TORCH_PRE,
    CAFFE_PRE,
    TFMODE_PRE,
    load_ic01,
    load_photos,
    op_types,
    opset_of,
    preprocess,
    seed_of,
    write_json,
)

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning)
torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

TS = f"torch.onnx (TorchScript) {torch.__version__}"
PRE_BY_NAME = {"torch": TORCH_PRE, "caffe": CAFFE_PRE, "tf": TFMODE_PRE, "raw": RAW_PRE}


def ver(pkg):
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return "?"


# ---------------------------------------------------------------------------------------------
# torchvision's ResNet with reduced widths


class SmallResNet(tvr.ResNet):
    """torchvision.models.resnet.ResNet, unchanged structure, every width divided by `div`: the
    stem (64), the planes of the four stages (64, 128, 256, 512) and so the fc input. `groups` and
    `width_per_group` keep their meaning (bottleneck width = int(planes * width_per_group / 64) *
    groups)."""

    def __init__(self, block, layers, div, num_classes=10, **kw):
        object.__setattr__(self, "_div", div)
        object.__setattr__(self, "_first_layer", True)
        super().__init__(block, layers, num_classes=num_classes, **kw)
        stem = 64 // div
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(stem)
        self.fc = nn.Linear(512 // div * block.expansion, num_classes)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if self._first_layer:
            self.inplanes = 64 // self._div
            object.__setattr__(self, "_first_layer", False)
        return super()._make_layer(block, planes // self._div, blocks, stride, dilate)


B, BN_ = tvr.BasicBlock, tvr.Bottleneck
# Random-weight deep ResNets quantize badly even with re-estimated BatchNorm statistics (onnxruntime
# int8 SQNR 1-5 dB), which makes weak references: every small model is trained briefly.
EPOCHS = 20
# name -> (block, layers, div, kwargs, trained, note)
TV_SMALL = {
    "resnet18": (B, [2, 2, 2, 2], 16, {}, True, ""),
    "resnet34": (B, [3, 4, 6, 3], 16, {}, True, ""),
    "resnet50": (BN_, [3, 4, 6, 3], 16, {}, True, ""),
    "resnet101": (BN_, [3, 4, 23, 3], 32, {}, True, ""),
    "resnet152": (BN_, [3, 8, 36, 3], 32, {}, True, ""),
    "resnext50_32x4d": (BN_, [3, 4, 6, 3], 32, dict(groups=2, width_per_group=64), True,
                        "groups=2, width_per_group=64 (torchvision: 32, 4) so the grouped 3x3 "
                        "width stays 2x planes as in 32x4d, with 2/4/8/16 channels per group; "),
    "wide_resnet50_2": (BN_, [3, 4, 6, 3], 32, dict(width_per_group=128), True,
                        "width_per_group=128 as torchvision's wide_resnet50_2; "),
}
TV_FULL = {
    "resnet18": tvr.resnet18, "resnet34": tvr.resnet34, "resnet50": tvr.resnet50,
    "resnet101": tvr.resnet101, "resnet152": tvr.resnet152,
    "resnext50_32x4d": tvr.resnext50_32x4d, "wide_resnet50_2": tvr.wide_resnet50_2,
}


def bn_layers(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def reestimate_bn(model, x, frozen=()):
    """BatchNorm running statistics = the statistics of `x` (one batch, momentum=None: a plain
    average). BN layers in `frozen` keep theirs (and run in eval mode)."""
    model.train()
    for m in bn_layers(model):
        if any(m is f for f in frozen):
            m.eval()
        else:
            m.reset_running_stats()
            m.momentum = None
    model(x)
    model.eval()
    for m in bn_layers(model):
        m.momentum = 0.1


def train(model, x, y, epochs, seed):
    """A short SGD run on the 200 images (random flips, weight decay) so predictions are not
    degenerate. The same images are the evaluation set: top-1 is then no accuracy figure."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    steps = epochs * (len(x) // 25)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 25):
            idx = perm[i : i + 25]
            xb = x[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).sum().item()
    print(f"  trained {epochs} epochs: train top-1 {acc}/{len(x)}", flush=True)


def export_ts(model, x, path, opset, keep_bn=False):
    """TorchScript exporter, dynamic batch axis N. keep_bn: BatchNormalization stays a node."""
    from torch.onnx import TrainingMode

    model.eval()
    torch.onnx.export(
        model, (x[:2],), str(path), opset_version=opset, dynamo=False,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        training=TrainingMode.PRESERVE if keep_bn else TrainingMode.EVAL,
        do_constant_folding=not keep_bn,
    )
    check_torch(model, x, path)


def export_dynamo(model, x, path):
    model.eval()
    prog = torch.onnx.export(
        model, (x[:2],), dynamo=True, external_data=False,
        input_names=["input"], output_names=["logits"],
        dynamic_shapes={"x": {0: torch.export.Dim("N", min=1, max=4096)}},
    )
    prog.save(str(path), external_data=False)
    check_torch(model, x, path)


@torch.no_grad()
def check_torch(model, x, path):
    s = session(onnx.load(str(path)).SerializeToString())
    y = s.run(None, {s.get_inputs()[0].name: x[:8].numpy()})[0]
    d = np.abs(y - model(x[:8]).numpy()).max()
    print(f"  {Path(path).name}: |onnxruntime - torch| max {d:.3g}", flush=True)


# ---------------------------------------------------------------------------------------------
# onnxruntime: sessions, logits, quantization


def session(model_bytes):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def logits_model(path):
    """A copy of the model whose extra output is the input of its final Softmax (stepping back over
    trailing Q/DQ, Identity, Cast). Returns (bytes, output name, dequant (scale, zp) or None,
    ends_in_softmax)."""
    m = onnx.load(str(path))
    producer = {o: n for n in m.graph.node for o in n.output}
    out = m.graph.output[0].name
    n = producer.get(out)
    while n is not None and n.op_type in ("QuantizeLinear", "DequantizeLinear", "Identity", "Cast"):
        n = producer.get(n.input[0])
    if n is None or n.op_type not in ("Softmax", "QLinearSoftmax"):
        return m.SerializeToString(), out, None, False
    target = n.input[0]
    dq = None
    elem = onnx.TensorProto.FLOAT
    if n.op_type == "QLinearSoftmax":
        init = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
        zp = init[n.input[2]]
        dq = (float(init[n.input[1]]), int(zp))
        elem = onnx.helper.np_dtype_to_tensor_dtype(zp.dtype)
    if target not in [o.name for o in m.graph.output]:
        vi = [v for v in m.graph.value_info if v.name == target]
        if not vi:
            try:
                inferred = onnx.shape_inference.infer_shapes(m)
                vi = [v for v in inferred.graph.value_info if v.name == target]
            except Exception:
                vi = []
        if vi and vi[0].type.tensor_type.elem_type == elem:
            m.graph.output.append(copy.deepcopy(vi[0]))
        else:
            m.graph.output.append(onnx.helper.make_tensor_value_info(target, elem, None))
    return m.SerializeToString(), target, dq, True


def run_logits(path, x):
    data, name, dq, softmax = logits_model(path)
    s = session(data)
    inp = s.get_inputs()[0].name
    try:
        y = s.run([name], {inp: x})[0]
    except Exception:  # batch fixed to 1 (TFLite, ORT's value_info): one image at a time
        y = np.concatenate([s.run([name], {inp: x[i : i + 1]})[0] for i in range(len(x))])
    y = y.reshape(len(x), -1).astype(np.float32)
    if dq is not None:
        y = (y - dq[1]) * dq[0]
    return y, softmax


class Reader:
    """Calibration data: one image per call (works for batch-1 models too)."""

    def __init__(self, name, x):
        self.items = [{name: x[i : i + 1]} for i in range(len(x))]
        self.it = iter(self.items)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        self.it = iter(self.items)


QVARIANTS = {
    # suffix: (format, activation type, weight type, per_channel, description)
    "qdq_s8s8_pc": ("QDQ", "QInt8", "QInt8", True, "QDQ, activations int8, weights int8 per-channel"),
    "qdq_u8u8_pt": ("QDQ", "QUInt8", "QUInt8", False, "QDQ, activations uint8, weights uint8 per-tensor"),
    "qdq_u8u8_pc": ("QDQ", "QUInt8", "QUInt8", True, "QDQ, activations uint8, weights uint8 per-channel"),
    "qop_u8s8_pc": ("QOperator", "QUInt8", "QInt8", True,
                    "QOperator (QLinearConv etc.), activations uint8, weights int8 per-channel"),
}


def ort_quantize(src, dst, x_calib, variant):
    """quant_pre_process, then quantize_static with MinMax calibration."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fmt, act, wt, pc, _ = QVARIANTS[variant]
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(src), str(pre))
        except Exception as e:  # noqa: BLE001
            print(f"  quant_pre_process failed on {Path(src).name}: {e!r:.200}", flush=True)
            pre = src
        name = onnx.load(str(pre)).graph.input[0].name
        quantize_static(
            str(pre), str(dst), Reader(name, x_calib),
            quant_format=getattr(QuantFormat, fmt), activation_type=getattr(QuantType, act),
            weight_type=getattr(QuantType, wt), per_channel=pc,
            calibrate_method=CalibrationMethod.MinMax,
        )


# ---------------------------------------------------------------------------------------------
# the corpus


class Corpus:
    def __init__(self, out: Path, small: bool):
        self.out = out
        self.small = small
        self.entries = []

    def add(self, name, path, **kw):
        e = dict(name=name, path=Path(path), kind="float", expect_error=None, source=None,
                 trained=False, notes="")
        e.update(kw)
        self.entries.append(e)
        return e


def torch_small(c: Corpus, pixels, labels):
    x = torch.from_numpy(preprocess(pixels, TORCH_PRE, "nchw"))
    y = torch.from_numpy(labels)
    base = dict(layout="nchw", pre="torch")

    for arch, (block, layers, div, kw, trained, note) in TV_SMALL.items():
        torch.manual_seed(seed_of("tv_" + arch))
        model = SmallResNet(block, layers, div, **kw)
        params = sum(p.numel() for p in model.parameters())
        print(f"torchvision {arch} /{div}: {params} parameters", flush=True)
        if trained:
            train(model, x, y, EPOCHS, seed_of("train_" + arch))
        reestimate_bn(model, x)
        widths = f"widths /{div} (stem {64 // div}, planes {[p // div for p in (64, 128, 256, 512)]})"
        notes = (f"torchvision.models.resnet.ResNet ({arch} layers {layers}) with {widths}; {note}"
                 + (f"trained {EPOCHS} epochs on the 200 ic01 images (so top-1 is not an "
                    "accuracy figure), " if trained else "random weights, ")
                 + "BatchNorm statistics re-estimated on the 200 ic01 images")
        opsets = (9, 11, 13, 17) if arch == "resnet18" else (13,)
        for op in opsets:
            name = f"tv_{arch}_op{op}"
            path = c.out / f"{name}.onnx"
            export_ts(model, x, path, op)
            c.add(name, path, exporter=TS, arch=arch, trained=trained, notes=notes, **base)
        if arch == "resnet18":
            name = "tv_resnet18_dynamo"
            path = c.out / f"{name}.onnx"
            exporter = f"torch.onnx (dynamo) {torch.__version__}, onnxscript {ver('onnxscript')}"
            try:
                export_dynamo(model, x, path)
                c.add(name, path, exporter=exporter, arch=arch, trained=trained,
                      notes=notes + "; torch.export-based exporter (dynamo=True), dynamic batch Dim N",
                      **base)
            except Exception as e:  # noqa: BLE001
                msg = f"dynamo export failed: {type(e).__name__}: {str(e)[:300]}"
                print("  " + msg, flush=True)
                c.failures.append((name, msg))
            c.resnet18 = model
            c.resnet18_notes = notes

    import timm

    timm_exporter = f"timm {timm.__version__} + {TS}"
    for arch, kw, desc in [
        ("resnet18d", dict(channels=(4, 8, 16, 32), stem_width=2, zero_init_last=False),
         "ResNet-D: deep stem (3x3 convs, stem_width 2 instead of 32), avg-pool downsampling "
         "shortcut; channels (4,8,16,32) instead of (64,128,256,512)"),
        ("resnet50d", dict(channels=(2, 4, 8, 16), stem_width=2, zero_init_last=False),
         "ResNet-D bottleneck: deep stem (stem_width 2 instead of 32), avg-pool downsampling "
         "shortcut; channels (2,4,8,16) instead of (64,128,256,512)"),
        ("resnetv2_50", dict(channels=(8, 16, 32, 64), stem_chs=4),
         "pre-activation ResNetV2 (BatchNormAct), channels (8,16,32,64) instead of "
         "(256,512,1024,2048), stem_chs 4 instead of 64"),
    ]:
        torch.manual_seed(seed_of("timm_" + arch))
        model = timm.create_model(arch, pretrained=False, num_classes=10, **kw)
        print(f"timm {arch}: {sum(p.numel() for p in model.parameters())} parameters", flush=True)
        train(model, x, y, EPOCHS, seed_of("train_timm_" + arch))
        reestimate_bn(model, x)
        name = f"timm_{arch}_op13"
        path = c.out / f"{name}.onnx"
        export_ts(model, x, path, 13)
        c.add(name, path, exporter=timm_exporter, arch=arch, trained=True,
              notes=f"timm.create_model('{arch}', {kw}): {desc}; trained {EPOCHS} epochs on the "
                    "200 ic01 images, BatchNorm statistics re-estimated on them", **base)

    pathologies(c, x, y)


def pathologies(c: Corpus, x, y):
    torch.manual_seed(seed_of("tv_resnet10"))
    base = SmallResNet(tvr.BasicBlock, [1, 1, 1, 1], 16)
    print(f"pathology base resnet10 /16: {sum(p.numel() for p in base.parameters())} parameters",
          flush=True)
    train(base, x, y, EPOCHS, seed_of("train_resnet10"))
    reestimate_bn(base, x)
    common = dict(layout="nchw", pre="torch", arch="resnet10", trained=True)
    bn_note = ("BatchNormalization kept as nodes (TrainingMode.PRESERVE, no constant folding, "
               "eval mode); ")
    base_note = (f"torchvision ResNet(BasicBlock, [1,1,1,1]) widths /16, trained {EPOCHS} epochs on the "
                 "200 ic01 images, BN statistics re-estimated; ")
    pre = f"{TS}, weights edited in the state_dict"

    def emit(name, model, notes, keep_bn=True, exporter=pre):
        path = c.out / f"{name}.onnx"
        export_ts(model, x, path, 13, keep_bn=keep_bn)
        ops = op_types(onnx.load(str(path)))
        assert (not keep_bn) or "BatchNormalization" in ops, (name, ops)
        return c.add(name, path, exporter=exporter, notes=base_note + (bn_note if keep_bn else "")
                     + notes, **common)

    emit("patho_base_bn", base, "no edit: the control for the patho_* models", exporter=TS)

    with torch.no_grad():
        m = copy.deepcopy(base)
        for conv, bn, ch in [(m.conv1, m.bn1, [3]), (m.layer1[0].conv2, m.layer1[0].bn2, [0]),
                             (m.layer3[0].conv1, m.layer3[0].bn1, [2, 5])]:
            conv.weight[ch] = 0
            bn.bias[ch] = 0
        reestimate_bn(m, x)
        emit("patho_zero_channels", m,
             "all-zero output channels: conv weights 0 and BN beta 0 (running mean/var 0 after "
             "re-estimation) for conv1 ch 3, layer1.0.conv2 ch 0, layer3.0.conv1 ch 2 and 5")

        m = copy.deepcopy(base)
        g = torch.Generator().manual_seed(7)
        for conv, bn, ch in [(m.layer1[0].conv1, m.layer1[0].bn1, [0, 2]),
                             (m.layer2[0].conv2, m.layer2[0].bn2, [1])]:
            for c_ in ch:
                w = torch.randn(conv.weight[c_].shape, generator=g)
                tiny = torch.sign(w) * (1e-34 * w.abs())
                denorm = torch.sign(w) * 1e-40  # subnormal in float32
                conv.weight[c_] = torch.where(torch.arange(w.numel()).reshape(w.shape) % 2 == 0,
                                              tiny, denorm)
                bn.bias[c_] = 0.25
        reestimate_bn(m, x)
        emit("patho_denormal_weights", m,
             "channels whose weights are ~1e-34 or subnormal (1e-40), as weight decay leaves them, "
             "with BN beta 0.25 (running var underflows to 0): layer1.0.conv1 ch 0, 2; "
             "layer2.0.conv2 ch 1")

        m = copy.deepcopy(base)
        edited = [m.layer1[0].bn1, m.layer2[0].bn1, m.layer2[0].bn2, m.layer3[0].bn2]
        m.layer1[0].bn1.running_var[0] = 0
        m.layer2[0].bn1.weight[1] = 1e-30
        m.layer2[0].bn2.weight[[0, 3, 5]] *= -1
        m.layer3[0].bn2.weight[2] = -m.layer3[0].bn2.weight[2].abs()
        m.layer3[0].bn2.running_var[4] = 0
        reestimate_bn(m, x, frozen=edited)
        emit("patho_bn_edge", m,
             "BatchNormalization edge cases: running_var 0 on an active channel (layer1.0.bn1 "
             "ch 0, layer3.0.bn2 ch 4), gamma 1e-30 (layer2.0.bn1 ch 1), negative gamma "
             "(layer2.0.bn2 ch 0,3,5; layer3.0.bn2 ch 2); the BN layers after them re-estimated")

        m = copy.deepcopy(base)
        for conv, bn, ch, beta in [(m.layer1[0].conv1, m.layer1[0].bn1, 1, 0.7),
                                   (m.layer2[0].conv1, m.layer2[0].bn1, 3, 1.5)]:
            conv.weight[ch] = 0
            bn.bias[ch] = beta
        reestimate_bn(m, x)
        emit("patho_const_channel", m,
             "channels whose activations are constant: zero conv weights + a BN bias (0.7 for "
             "layer1.0.conv1 ch 1, 1.5 for layer2.0.conv1 ch 3)")

        m = copy.deepcopy(base)
        m.layer1[0].bn1.bias[0] = 1e4
        m.layer2[0].bn2.bias[2] = 1e4
        reestimate_bn(m, x)
        emit("patho_huge_bias", m,
             "BN folded into the convs by the exporter (eval mode), conv biases ~1e4 on "
             "layer1.0.conv1 ch 0 and layer2.0.conv2 ch 2 (before the residual Add)", keep_bn=False)

    # Error models: the folded export, one initializer edited with the onnx API.
    folded = c.out / "_folded.onnx"
    export_ts(base, x, folded, 13)
    for name, what in [("err_nan_weight", "nan"), ("err_inf_bias", "inf")]:
        m = onnx.load(str(folded))
        convs = [n for n in m.graph.node if n.op_type == "Conv"]
        conv = convs[3]
        target = conv.input[1] if what == "nan" else conv.input[2]
        for t in m.graph.initializer:
            if t.name == target:
                a = onnx.numpy_helper.to_array(t).copy()
                a.flat[5 if what == "nan" else 1] = np.nan if what == "nan" else np.inf
                t.CopyFrom(onnx.numpy_helper.from_array(a, t.name))
        path = c.out / f"{name}.onnx"
        onnx.save(m, str(path))
        c.add(name, path, exporter=f"{TS}, initializer edited with onnx {onnx.__version__}",
              kind="error", expect_error=target,
              notes=base_note + f"BN folded; {'a NaN in one weight' if what == 'nan' else 'an +Inf in one bias'} "
                    f"of initializer '{target}' (input {1 if what == 'nan' else 2} of Conv "
                    f"'{conv.name}'): conversion must fail naming the initializer", **common)
    folded.unlink()


def ort_prequantized(c: Corpus, pixels):
    x8 = preprocess(pixels, RAW_PRE, "nchw")[:CALIB_IMAGES]
    xt = preprocess(pixels, TORCH_PRE, "nchw")[:CALIB_IMAGES]
    r18 = next(e for e in c.entries if e["name"] == "tv_resnet18_op13")
    exporter = f"onnxruntime.quantization {ort.__version__} quant_pre_process + quantize_static"
    for src_name, src, xc, pre, arch, trained, srcdesc in [
        ("resnet8", RESNET8, x8, "raw", "resnet8", True,
         "the shipped MLPerf Tiny ResNet-8 (shared/assets/resnet8-mlperf-tiny/model_float.onnx, "
         "trained on CIFAR-10)"),
        ("tv_resnet18", r18["path"], xt, "torch", "resnet18", True,
         "tv_resnet18_op13"),
    ]:
        for variant, (_, _, _, _, desc) in QVARIANTS.items():
            name = f"ort_{src_name}_{variant}"
            path = c.out / f"{name}.onnx"
            ort_quantize(src, path, xc, variant)
            print(f"  {name}", flush=True)
            c.add(name, path, exporter=exporter, arch=arch, kind="prequantized", trained=trained,
                  layout="nchw", pre=pre,
                  source=src_name if src_name == "resnet8" else "tv_resnet18_op13",
                  source_path=src,
                  notes=f"{srcdesc}, quantized by onnxruntime ({desc}, MinMax calibration on the "
                        "first 100 ic01 images), written exactly as onnxruntime writes it "
                        "(value_info with batch 1)")


def simplified(c: Corpus):
    import onnxsim
    import onnxslim

    for src_name in ("tv_resnet18_op13", "keras_resnet50_op13"):
        src = next((e for e in c.entries if e["name"] == src_name), None)
        if src is None:
            continue
        m = onnx.load(str(src["path"]))
        for tool in ("onnxsim", "onnxslim"):
            name = f"{tool}_{src_name}"
            path = c.out / f"{name}.onnx"
            try:
                if tool == "onnxsim":
                    s, ok = onnxsim.simplify(copy.deepcopy(m))
                    assert ok, "onnxsim check failed"
                else:
                    s = onnxslim.slim(copy.deepcopy(m))
                onnx.save(s, str(path))
            except Exception as e:  # noqa: BLE001
                msg = f"{tool} failed: {type(e).__name__}: {str(e)[:300]}"
                print("  " + msg, flush=True)
                c.failures.append((name, msg))
                continue
            keys = {k: src[k] for k in ("arch", "layout", "pre", "trained")}
            c.add(name, path, exporter=f"{tool} {ver(tool)}", **keys,
                  notes=f"{src_name} simplified by {tool} {ver(tool)} (defaults)")

    from onnxconverter_common import float16

    src = next(e for e in c.entries if e["name"] == "tv_resnet18_op13")
    name = "fp16_tv_resnet18_op13"
    path = c.out / f"{name}.onnx"
    m = float16.convert_float_to_float16(onnx.load(str(src["path"])), keep_io_types=True)
    onnx.save(m, str(path))
    c.add(name, path, exporter=f"onnxconverter-common {ver('onnxconverter-common')} float16",
          arch="resnet18", layout="nchw", pre="torch", trained=True,
          notes="tv_resnet18_op13 through convert_float_to_float16(keep_io_types=True): float16 "
                "initializers and activations, float32 input/output with Cast nodes")


def tf_side(c: Corpus, tf_python, full: bool):
    with tempfile.TemporaryDirectory() as tmp:
        meta = Path(tmp) / "meta.json"
        cmd = [tf_python, str(ROOT / "generate_tf.py"), "--out", str(c.out), "--meta", str(meta)]
        if full:
            cmd.append("--full")
        print("running " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        for e in json.loads(meta.read_text()):
            path = c.out / Path(e.pop("file")).name
            kind = e.pop("kind", None) or "float"
            src = e.pop("source", None)
            name = e.pop("name")
            entry = c.add(name, path, kind=kind, source=src, **e)
            if src:
                entry["source_path"] = c.out / f"{src}.onnx"


def find_tf_python(arg):
    if arg:
        return arg
    if os.environ.get("CORPUS_TF_PYTHON"):
        return os.environ["CORPUS_TF_PYTHON"]
    try:
        import tensorflow  # noqa: F401
        import tf2onnx  # noqa: F401

        return sys.executable
    except ImportError:
        sys.exit("tensorflow/tf2onnx are not importable here: pass --tf-python or set CORPUS_TF_PYTHON")


def expected_and_manifest(c: Corpus, pixels, labels, manifest_path: Path, with_expected: bool):
    if with_expected:
        EXPECTED.mkdir(exist_ok=True)
        for f in EXPECTED.glob("*.bin"):
            f.unlink()
    cache = {}

    def logits(path, x):
        key = str(path)
        if key not in cache:
            cache[key] = run_logits(path, x)
        return cache[key]

    out = []
    for e in c.entries:
        model = onnx.load(str(e["path"]))
        pre = PRE_BY_NAME[e["pre"]]
        rel = e["path"].relative_to(manifest_path.parent).as_posix()
        size = 32 if c.small else 224
        item = {
            "name": e["name"], "file": rel, "exporter": e["exporter"], "opset": opset_of(model),
            "arch": e["arch"], "ops": op_types(model), "layout": e["layout"], "bgr": pre["bgr"],
            "mean": pre["mean"], "std": pre["std"], "input": [size, size],
            "classes": 10 if c.small else 1000, "kind": e["kind"], "ends_in_softmax": None,
            "trained": e["trained"], "expected": None, "expect_error": e["expect_error"],
            "notes": e["notes"],
        }
        if e.get("source"):
            item["source"] = e["source"]
        item["ends_in_softmax"] = logits_model(e["path"])[3]
        if with_expected and e["kind"] != "error":
            x = preprocess(pixels, pre, e["layout"])
            exp = {"images": len(x), "f32_logits": None, "ort_int8_logits": None,
                   "ort_top1_f32": None, "ort_top1_int8": None}
            f32_src = e.get("source_path", e["path"])
            f32, _ = logits(f32_src, x)
            if e["kind"] == "prequantized":
                int8, _ = logits(e["path"], x)
            else:
                int8 = None
                with tempfile.TemporaryDirectory() as tmp:
                    q = Path(tmp) / "q.onnx"
                    src = e["path"]
                    if opset_of(model) < 13:
                        # onnxruntime's QDQ (per-channel axis, int32 bias DequantizeLinear) needs
                        # opset 13: quantize the same graph converted to opset 13.
                        from onnx import version_converter

                        src = Path(tmp) / "op13.onnx"
                        onnx.save(version_converter.convert_version(model, 13), str(src))
                        item["notes"] += ("; the onnxruntime int8 reference quantized this graph "
                                          "converted to opset 13 by onnx.version_converter "
                                          "(onnxruntime's QDQ needs opset >= 13)")
                    try:
                        ort_quantize(src, q, x[:CALIB_IMAGES], "qdq_s8s8_pc")
                        int8, _ = run_logits(q, x)
                    except Exception as err:  # noqa: BLE001
                        msg = f"onnxruntime int8 reference failed: {type(err).__name__}: {str(err)[:200]}"
                        print(f"  {e['name']}: {msg}", flush=True)
                        item["notes"] += "; " + msg
            f = f"expected/{e['name']}.f32.bin"
            f32.astype("<f4").tofile(ROOT / f)
            exp["f32_logits"] = f
            exp["ort_top1_f32"] = int((f32.argmax(1) == labels).sum())
            if int8 is not None:
                f = f"expected/{e['name']}.ort_int8.bin"
                int8.astype("<f4").tofile(ROOT / f)
                exp["ort_int8_logits"] = f
                exp["ort_top1_int8"] = int((int8.argmax(1) == labels).sum())
                sq = 10 * np.log10((f32.astype(np.float64) ** 2).sum()
                                   / max(((f32 - int8).astype(np.float64) ** 2).sum(), 1e-30))
                print(f"  {e['name']}: ort f32 top-1 {exp['ort_top1_f32']}, int8 "
                      f"{exp['ort_top1_int8']}, int8 SQNR {sq:.1f} dB", flush=True)
            item["expected"] = exp
        out.append(item)
    write_json(manifest_path, out)
    return out


def small_corpus(args):
    MODELS.mkdir(exist_ok=True)
    for f in MODELS.glob("*.onnx"):
        f.unlink()
    pixels, labels = load_ic01()
    c = Corpus(MODELS, small=True)
    c.failures = []
    torch_small(c, pixels, labels)
    tf_side(c, find_tf_python(args.tf_python), full=False)
    ort_prequantized(c, pixels)
    simplified(c)
    expected_and_manifest(c, pixels, labels, ROOT / "manifest.json", with_expected=True)
    report_failures(c)


def full_corpus(args):
    out = args.full.resolve()
    out.mkdir(parents=True, exist_ok=True)
    photos = load_photos(224)
    x = torch.from_numpy(preprocess(photos, TORCH_PRE, "nchw"))
    c = Corpus(out, small=False)
    c.failures = []
    for arch, ctor in TV_FULL.items():
        torch.manual_seed(seed_of("full_" + arch))
        model = ctor(num_classes=1000)
        reestimate_bn(model, x)
        name = f"tv_{arch}_224_op13"
        path = out / f"{name}.onnx"
        export_ts(model, x, path, 13)
        c.add(name, path, exporter=TS, arch=arch, layout="nchw", pre="torch",
              notes=f"torchvision.models.{arch}(num_classes=1000), random weights, BN statistics "
                    "re-estimated on the CC0 photos (224x224)")
    if not args.no_tf:
        tf_side(c, find_tf_python(args.tf_python), full=True)
    expected_and_manifest(c, None, None, out / "manifest.json", with_expected=False)
    report_failures(c)


def report_failures(c):
    if c.failures:
        print("\nnot generated:", flush=True)
        for name, msg in c.failures:
            print(f"  {name}: {msg}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", type=Path, metavar="OUTDIR",
                    help="write the full-size architectures (224x224, 1000 classes) to OUTDIR")
    ap.add_argument("--tf-python", help="Python with tensorflow + tf2onnx, for generate_tf.py")
    ap.add_argument("--no-tf", action="store_true", help="--full only: skip the Keras model")
    args = ap.parse_args()
    if args.full:
        full_corpus(args)
    else:
        small_corpus(args)


if __name__ == "__main__":
    main()
