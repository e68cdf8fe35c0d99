#!/usr/bin/env python3
"""resq int8 against onnxruntime (int8 and f32) and tract (f32), measured in one run.

For each model (synthetic torchvision ResNets from `resq synth`, 224x224, 1000 classes) and
each thread count, this script times, in the same process tree and interleaved over several
rounds (so load from other users of a shared machine hits every engine alike):

* resq int8           `resq bench MODEL.resq --threads N --json` (converted by `resq convert`)
* onnxruntime int8    `quantize_static` of the same float ONNX: QDQ, per-channel, S8S8
* onnxruntime f32     the float ONNX
* tract f32           `benches/tract-bench` (tract 0.23.9, `multithread-mm` for N > 1)

and prints one Markdown table with each peer's time and resq's time as a fraction of it, the
machine, resq's 2-thread speed-up, its convolution throughput against the measured peak of
its multiply-accumulate instruction, and its peak memory against the file size.

Run from the repository root (not part of the test command; takes several minutes, plus about
8 minutes the first time to build tract):

    pip install onnxruntime onnx numpy sympy
    python3 benches/side_by_side.py                       # ResNet-18 and ResNet-50, 1 and 2 threads
    python3 benches/side_by_side.py --models resnet18 --threads 1 --rounds 3 --iterations 20
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEAN = "123.7,116.3,103.5"
STD = "58.4,57.1,57.4"
NAMES = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kw)


def build(args):
    if args.no_build:
        return
    run(["cargo", "build", "--release", "-p", "resq-cli"], cwd=ROOT)
    run(
        [
            "cargo", "build", "--release",
            "--manifest-path", str(ROOT / "benches/tract-bench/Cargo.toml"),
            "--target-dir", str(ROOT / "target/tract-bench"),
        ],
        cwd=ROOT,
    )


def prepare(model, work, resq):
    """Float ONNX, resq file and onnxruntime int8 model for one architecture."""
    onnx_path = work / f"{model}.onnx"
    resq_path = work / f"{model}.resq"
    int8_path = work / f"{model}.int8.onnx"
    if not onnx_path.exists():
        run([resq, "synth", "--arch", model, "--size", "224", "--classes", "1000",
             "--seed", "1", "-o", onnx_path])
    if not resq_path.exists():
        run([resq, "convert", onnx_path, "--calib", ROOT / "models/photos",
             "--mean", MEAN, "--std", STD, "-o", resq_path])
    if not int8_path.exists():
        quantize_ort(onnx_path, int8_path, work)
    return onnx_path, resq_path, int8_path


def quantize_ort(src, dst, work):
    import numpy as np
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = work / (src.stem + ".pre.onnx")
    log(f"onnxruntime: quant_pre_process + quantize_static {src.name} -> {dst.name}")
    quant_pre_process(str(src), str(pre))
    name = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        # Normalised-image statistics; the data does not change the timing.
        def __init__(self):
            rng = np.random.default_rng(1)
            self.batches = iter(
                [{name: rng.standard_normal((1, 3, 224, 224), dtype=np.float32)} for _ in range(8)]
            )

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)


class Ort:
    def __init__(self, path, threads):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        import numpy as np
        self.feed = {self.session.get_inputs()[0].name:
                     np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)}

    def time(self, iters, warmup):
        for _ in range(warmup):
            self.session.run(None, self.feed)
        ms = []
        for _ in range(iters):
            t = time.perf_counter()
            self.session.run(None, self.feed)
            ms.append((time.perf_counter() - t) * 1e3)
        return ms


def resq_bench(resq, path, threads, iters, warmup, extra=()):
    out = subprocess.run([resq, "bench", "-m", path, "--threads", str(threads), "--iterations", str(iters),
                          "--warmup", str(warmup), "--json", *extra],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def tract_bench(path, threads, iters, warmup):
    exe = ROOT / "target/tract-bench/release/resq-tract-bench"
    out = subprocess.run([exe, path, "--threads", str(threads), "--iterations", str(iters),
                          "--warmup", str(warmup)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def idle_percent(seconds=1.0):
    """CPU idle share of the whole machine over `seconds` (Linux /proc/stat), or None."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
        return 100.0 * (i1 - i0) / max(1, t1 - t0)
    except OSError:
        return None


def wait_idle(limit_s, threshold=85.0):
    """Waits (up to `limit_s`) for other processes to leave the CPUs; returns the idle share."""
    deadline = time.time() + limit_s
    while True:
        idle = idle_percent()
        if idle is None or idle >= threshold or time.time() > deadline:
            return idle
        log(f"   machine busy ({idle:.0f} % idle), waiting")


def machine():
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "asimddp", "i8mm")
           if f in flags]
    import onnxruntime
    return (f"{model}, {os.cpu_count()} cores, {', '.join(isa)}; {platform.system()} "
            f"{platform.release()}; onnxruntime {onnxruntime.__version__}, tract 0.23.9")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="resnet18,resnet50")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--iterations", dest="iters", type=int, default=20, help="timed inferences per round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median of medians)")
    p.add_argument("--work", default=str(ROOT / "target/bench"), help="models are cached here")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--wait-idle", type=float, default=120.0,
                   help="before each round, wait up to this many seconds for an idle machine")
    p.add_argument("--markdown", help="also write the table to this file")
    args = p.parse_args()

    build(args)
    resq = ROOT / "target/release/resq"
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    models = args.models.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    files = {m: prepare(m, work, resq) for m in models}

    engines = ["resq int8", "onnxruntime int8", "onnxruntime f32", "tract f32"]
    results = {}  # (model, threads, engine) -> [round medians], plus mins
    extras = {}
    idles = []
    for m in models:
        onnx_path, resq_path, int8_path = files[m]
        for t in threads:
            log(f"== {NAMES.get(m, m)}, {t} thread(s)")
            ort_int8, ort_f32 = Ort(int8_path, t), Ort(onnx_path, t)
            for r in range(args.rounds):
                idle = wait_idle(args.wait_idle)
                if idle is not None:
                    idles.append(idle)
                timings = {
                    "resq int8": lambda: resq_bench(resq, resq_path, t, args.iters, args.warmup),
                    "onnxruntime int8": lambda: ort_int8.time(args.iters, args.warmup),
                    "onnxruntime f32": lambda: ort_f32.time(args.iters, args.warmup),
                    "tract f32": lambda: tract_bench(onnx_path, t, args.iters, args.warmup),
                }
                for e in engines:
                    v = timings[e]()
                    if isinstance(v, dict):
                        med, lo = v["inference_ms"]["median"], v["inference_ms"]["min"]
                        if e == "resq int8":
                            extras[(m, t, "kernel")] = v["kernel"]
                            extras[(m, t, "mem")] = (v.get("peak_rss_mib"), v.get("file_mib"))
                    else:
                        med, lo = statistics.median(v), min(v)
                    results.setdefault((m, t, e), []).append((med, lo))
                    log(f"   round {r + 1}: {e:18} median {med:7.2f} ms  min {lo:7.2f} ms")
            del ort_int8, ort_f32
        # Convolution throughput and peak, 1 thread; and the peak on all threads at once (whether
        # the threads had cores of their own).
        v = resq_bench(resq, resq_path, 1, args.iters, args.warmup, ["--layers"])
        extras[(m, "layers")] = v["layers"]
        for t in threads:
            if t > 1:
                v = resq_bench(resq, resq_path, t, 3, 1, ["--layers"])
                extras[(m, t, "peak_all")] = v["layers"].get("peak_all_threads_gmac_per_s")

    def ms(m, t, e):
        # Best round: on a shared machine other processes (and the hypervisor's placement of
        # the vCPUs) only ever add time, and every engine gets the same number of rounds.
        return min(r[0] for r in results[(m, t, e)])

    lines = [f"Machine: {machine()}. Each cell is the best of {args.rounds} interleaved rounds, "
             f"each round the median of {args.iters} inferences (after {args.warmup} warm-up); "
             f"peer cells show their time and resq's time as a fraction of it."
             + (f" CPU idle before each round: {min(idles):.0f}–{max(idles):.0f} %." if idles else ""),
             ""]
    lines.append("| model (224², int8 vs f32) | threads | " + " | ".join(engines) + " |")
    lines.append("|---|---|" + "---|" * len(engines))
    for m in models:
        for t in threads:
            base = ms(m, t, "resq int8")
            cells = [f"**{base:.1f} ms**"]
            for e in engines[1:]:
                v = ms(m, t, e)
                cells.append(f"{v:.1f} ms ({base / v:.2f}×)")
            lines.append(f"| {NAMES.get(m, m)} | {t} | " + " | ".join(cells) + " |")
    lines.append("")
    for m in models:
        name = NAMES.get(m, m)
        for t in threads:
            base = ms(m, t, "resq int8")
            ort, tract = ms(m, t, "onnxruntime int8"), ms(m, t, "tract f32")
            ok = base <= 0.75 * ort and base <= 0.35 * tract
            lines.append(f"- {name}, {t} thread(s): resq / onnxruntime int8 = {base / ort:.2f} "
                         f"(≤ 0.75), resq / tract f32 = {base / tract:.2f} (≤ 0.35): "
                         f"{'pass' if ok else 'FAIL'}.")
        if 1 in threads and 2 in threads:
            s = ms(m, 1, "resq int8") / ms(m, 2, "resq int8")
            lines.append(f"- {name}: resq 2-thread speed-up over 1 thread {s:.2f}× (≥ 1.8: "
                         f"{'pass' if s >= 1.8 else 'FAIL'}).")
        layers = extras[(m, "layers")]
        peak = layers.get("peak_gmac_per_s")
        for t in threads:
            p_all = extras.get((m, t, "peak_all"))
            if p_all and peak:
                lines.append(f"- {name}: the multiply-accumulate peak on {t} threads at once is "
                             f"{p_all:.0f} GMAC/s = {p_all / peak:.2f}× one core's (below {t}× "
                             f"when the hypervisor puts the vCPUs on shared cores).")
        conv = layers["conv_gmac_per_s"]
        peak_txt = (f" = {100 * conv / peak:.0f} % of the {peak:.0f} GMAC/s peak of one core's "
                    f"multiply-accumulate instruction, measured in the same run") if peak else ""
        lines.append(f"- {name}: convolutions {layers['conv_gmac']:.2f} GMAC at {conv:.0f} "
                     f"GMAC/s on 1 thread{peak_txt} (kernels: {extras[(m, threads[0], 'kernel')]}).")
        rss, mib = extras[(m, threads[0], "mem")]
        if rss and mib:
            limit = 1.2 * mib + 16
            lines.append(f"- {name}: `resq bench` peak memory {rss:.1f} MiB for a {mib:.1f} MiB "
                         f"file (1.2 × file + 16 MiB = {limit:.1f} MiB: "
                         f"{'pass' if rss <= limit else 'FAIL'}).")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
