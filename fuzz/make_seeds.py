#!/usr/bin/env python3
"""Rebuilds the committed seeds in fuzz/seeds/ (see fuzz/README.md).

Needs Python 3 with Pillow, and `resq` built (`cargo build --release -p resq-cli`) unless
--resq points elsewhere. Run from the repository root: python3 fuzz/make_seeds.py
"""
import argparse, hashlib, io, json, os, shutil, struct, subprocess, sys, tarfile, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--resq", default="target/release/resq")
ap.add_argument("--firmware", default="target/release/resq-fw")
args = ap.parse_args()
S = "fuzz/seeds"
from PIL import Image

tmp = tempfile.mkdtemp(prefix="resq-seeds-")
calib = os.path.join(tmp, "calib")
os.makedirs(calib)
photos = "models/photos"
src = {n: Image.open(os.path.join(photos, n)) for n in
       ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "rocket.jpg"]}
for n, im in src.items():
    im.resize((64, 48) if im.width > im.height else (48, 48)).save(
        os.path.join(calib, os.path.splitext(n)[0] + ".png"))


def run(*a):
    subprocess.run([args.resq, *a], check=True, stdout=subprocess.DEVNULL)


# --- resq_model: small .resq files of every kind the converter writes (< 100 kB each).
R = f"{S}/resq_model"
C = "tests/corpus/models"
run("demo", "-o", f"{R}/resnet8_demo.resq")
run("convert", f"{C}/tv_resnet18_op13.onnx", "--calib", calib, "-o", f"{R}/tv_resnet18.resq")
run("convert", f"{C}/ort_tv_resnet18_qdq_s8s8_pc.onnx", "--calib", calib, "-o", f"{R}/ort_resnet18_qdq.resq")
run("convert", f"{C}/ort_tv_resnet18_qop_u8s8_pc.onnx", "--calib", calib, "-o", f"{R}/ort_resnet18_qop.resq")
run("convert", f"{C}/keras_resnet50v2_op13.onnx", "--layout", "nhwc", "--calib", calib,
    "--resize", "36", "--resize-mode", "squash", "-o", f"{R}/keras_resnet50v2_squash.resq")
run("convert", f"{C}/tv_resnet18_op13.onnx", "--calib", calib, "--bgr", "--resize", "40",
    "--method", "percentile", "-o", f"{R}/tv_resnet18_bgr_resize40.resq")
run("convert", f"{C}/tv_resnet18_op13.onnx", "--calib", calib, "--keep-int16",
    "/layer2/layer2.0/conv2/Conv,/layer1/layer1.1/relu_1/Relu.low", "-o", f"{R}/tv_resnet18_int16.resq")

# --- image_preprocess: tiny PNG / JPEG files behind a 12-byte recipe header.
def head(flags, out_w=31, out_h=31, size_w=0, size_h=0, fmt=0, raw_w=0, raw_h=0):
    return bytes([flags, out_w, out_h]) + struct.pack("<HHBHH", size_w, size_h, fmt, raw_w, raw_h)

I = f"{S}/image_preprocess"
a, c, r, ch = src["astronaut.png"], src["camera.png"], src["rocket.jpg"], src["chelsea.png"]
images = {
    "rgb24.png": lambda f: a.resize((24, 24)).save(f, "PNG"),
    "rgba17x9.png": lambda f: a.resize((17, 9)).convert("RGBA").save(f, "PNG"),
    "grey20x13.png": lambda f: c.resize((20, 13)).save(f, "PNG"),
    "greyalpha.png": lambda f: c.resize((16, 16)).convert("LA").save(f, "PNG"),
    "palette16.png": lambda f: a.resize((16, 12)).convert("P", palette=Image.ADAPTIVE, colors=16).save(f, "PNG"),
    "bilevel.png": lambda f: c.resize((12, 12)).convert("1").save(f, "PNG"),
    "interlaced.png": lambda f: a.resize((20, 20)).save(f, "PNG", interlace=1),
    "grey16.png": lambda f: Image.frombytes("I;16", (8, 8), bytes(range(128))).save(f, "PNG"),
    "one.png": lambda f: Image.new("RGB", (1, 1), (9, 8, 7)).save(f, "PNG"),
    "baseline.jpg": lambda f: r.resize((32, 21)).save(f, "JPEG", quality=80),
    "progressive.jpg": lambda f: r.resize((33, 22)).save(f, "JPEG", quality=70, progressive=True),
    "grey.jpg": lambda f: c.resize((24, 17)).save(f, "JPEG", quality=75),
    "sub420.jpg": lambda f: ch.resize((40, 27)).save(f, "JPEG", quality=60, subsampling=2),
    "sub444.jpg": lambda f: ch.resize((17, 11)).save(f, "JPEG", quality=90, subsampling=0),
    "cmyk.jpg": lambda f: ch.resize((16, 16)).convert("CMYK").save(f, "JPEG", quality=70),
}
for name, save in images.items():
    buf = io.BytesIO()
    save(buf)
    data = buf.getvalue()
    stem = name.replace(".", "_")
    open(f"{I}/file_{stem}", "wb").write(head(0x00) + data)  # decode_image, shorter, RGB
    if name == "rgb24.png":
        open(f"{I}/file_{stem}_squash_grey", "wb").write(head(0x04 | 0x10, 15, 7, 3, 9) + data)
        open(f"{I}/file_{stem}_bgr_resize40", "wb").write(head(0x08, 31, 31, 9, 9) + data)
    if name.endswith(".jpg"):
        w, h = Image.open(io.BytesIO(data)).size
        open(f"{I}/mjpeg_{stem}", "wb").write(head(0x02, 31, 31, 0, 0, 0, w, h) + data)
# Raw camera frames, 8×6 pixels, every pixel format.
for i, fmt in enumerate(["rgb24", "bgr24", "rgbx32", "bgrx32", "grey8", "yuyv", "uyvy", "nv12", "nv21", "i420"]):
    w, h = 8, 6
    bpp = {"rgb24": 3, "bgr24": 3, "rgbx32": 4, "bgrx32": 4, "grey8": 1, "yuyv": 2, "uyvy": 2}.get(fmt)
    n = w * h * bpp if bpp else w * h * 3 // 2
    pixels = bytes((j * 29 + 7) % 256 for j in range(n))
    open(f"{I}/raw_{fmt}", "wb").write(head(0x03 | (0x20 if i % 2 else 0), 3, 3, 1, 2, i, w, h) + pixels)

# --- onnx_import: the smallest corpus models, behind a layout byte (0 NCHW, 1 NHWC).
O = f"{S}/onnx_import"
for name, flag in [("ort_tv_resnet18_qop_u8s8_pc", 0), ("ort_tv_resnet18_qdq_u8u8_pt", 0),
                   ("ort_resnet8_qop_u8s8_pc", 0), ("ort_resnet8_qdq_s8s8_pc", 0),
                   ("patho_base_bn", 0), ("fp16_tv_resnet18_op13", 0), ("err_nan_weight", 0),
                   ("timm_resnet50d_op13", 0), ("keras_resnet50v2_op13", 1)]:
    data = open(f"{C}/{name}.onnx", "rb").read()
    open(f"{O}/{name}", "wb").write(bytes([flag]) + data)

# --- bundle_reader: a real bundle, with a stand-in firmware (its first 64 bytes: an ELF
# header) so the seed stays small; the manifest is rewritten to match, as `resq bundle` would.
B = f"{S}/bundle_reader"
real = os.path.join(tmp, "real.tar")
run("bundle", "--board", "x86_64-host", "--model", f"{R}/resnet8_demo.resq", "--firmware",
    args.firmware, "-o", real)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def rebundle(out, replace):
    with tarfile.open(real) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    files = {os.path.basename(m.name): d for m, d in members}
    files.update(replace)
    manifest = json.loads(files["manifest.json"])
    for e in manifest["files"]:
        e["size"] = len(files[e["name"]])
        e["sha256"] = sha(files[e["name"]])
    h = hashlib.sha256()
    h.update(f"board {manifest['board']['name']}\n".encode())
    for e in manifest["files"]:
        h.update(f"{e['name']} {e['size']} {e['sha256']} {e['mode']:o}\n".encode())
    manifest["content_sha256"] = h.hexdigest()
    files["SHA256SUMS"] = "".join(f"{e['sha256']}  {e['name']}\n" for e in manifest["files"]).encode()
    files["manifest.json"] = (json.dumps(manifest, separators=(",", ":")) + "\n").encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for m, _ in members:
            d = files[os.path.basename(m.name)]
            m.size = len(d)
            t.addfile(m, io.BytesIO(d))
    open(out, "wb").write(buf.getvalue())
    return files["manifest.json"]


fw = open(args.firmware, "rb").read()[:64]
rebundle(f"{B}/bundle_small_fw.tar", {"resq-fw": fw})
m = rebundle(f"{B}/bundle_small_fw_model.tar", {"resq-fw": fw, "model.resq": b"\x89RESQ\r\n\x1a"})
open(f"{B}/manifest.json", "wb").write(m)
shutil.rmtree(tmp)
print("seeds written under", S)
