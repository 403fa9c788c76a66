"""Model load time, memory and batch size: importing the runtime (onnxruntime for EfficientNet-Lite0,
torch for CLIP), building the embedder, the first
batch, then the bare forward rate at that batch size; each in a fresh process (what a cold build
pays before its first image), repeated; medians. Then the head: what a warm build reads (its
sidecar, checked against the file's digest) and what a build that decides new images loads
(skops, scikit-learn, the forest).

    python benchmarks/bench_model.py                                    # batches 8 and 32, both models
    python benchmarks/bench_model.py --batches 4 8 16 32 --models efficientnet-lite0

Peak memory of whole builds (cold and warm) is bench_warm.py's.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, proc_status, save_results, table  # noqa: E402


def load_once(model: str, batch: int) -> dict:
    """Child process: the timings of one model load, and the resident memory after each step."""
    import numpy as np

    start = time.perf_counter()
    base = proc_status("VmRSS")
    import importlib

    importlib.import_module("onnxruntime" if model == "efficientnet-lite0" else "torch")
    t_torch = time.perf_counter()
    rss_torch = proc_status("VmRSS")
    from PIL import Image

    from invertornot_ssg.embedders import get_embedder

    embedder = get_embedder(model, progress=False)
    t_model = time.perf_counter()
    rss_model = proc_status("VmRSS")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)) for _ in range(batch)]
    batch_input = embedder.preprocess(images)
    embedder.forward(batch_input)
    t_batch = time.perf_counter()
    rounds = max(2, 128 // batch)
    for _ in range(rounds):
        embedder.forward(batch_input)
    rate = rounds * batch / (time.perf_counter() - t_batch)
    return {
        "forward_images_per_s": rate,
        "import_torch_s": t_torch - start,
        "load_model_s": t_model - t_torch,
        "first_batch_s": t_batch - t_model,
        "rss_python_mb": base / 2**20,
        "rss_after_torch_mb": rss_torch / 2**20,
        "rss_after_model_mb": rss_model / 2**20,
        "peak_rss_mb": proc_status("VmHWM") / 2**20,
    }


def head_once() -> dict:
    """Child process: reading the shipped head's sidecar, then loading the head itself."""
    from invertornot_ssg import shipped
    from invertornot_ssg.embedders import embedder_id
    from invertornot_ssg.head import load_head, read_head_info

    start = time.perf_counter()
    info = read_head_info(shipped.default_head_path(embedder_id("efficientnet-lite0")))
    t_info = time.perf_counter()
    rss_info = proc_status("VmRSS")
    load_head(info)
    return {"read_sidecar_s": t_info - start, "load_head_s": time.perf_counter() - t_info,
            "rss_after_sidecar_mb": rss_info / 2**20, "peak_rss_mb": proc_status("VmHWM") / 2**20,
            "imported_torch": "torch" in sys.modules}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["efficientnet-lite0", "clip:ViT-B-32"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--load-once", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--head-once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.head_once:
        print(json.dumps(head_once()))
        return 0
    if args.load_once:
        print(json.dumps(load_once(args.load_once, args.batches[0])))
        return 0
    rows, raw = [], {}
    for model in args.models:
        for batch in args.batches:
            runs = []
            for _ in range(args.repeat):
                proc = subprocess.run([sys.executable, __file__, "--load-once", model, "--batches", str(batch)],
                                      capture_output=True, text=True, check=True)
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            raw[f"{model} batch {batch}"] = runs
            m = {key: median(r[key] for r in runs) for key in runs[0]}
            rows.append([model, batch, f"{m['import_torch_s']:.2f} s", f"{m['load_model_s']:.2f} s",
                         f"{m['first_batch_s']:.2f} s", f"{m['forward_images_per_s']:.1f}",
                         f"{m['rss_after_model_mb']:.0f} MB", f"{m['peak_rss_mb']:.0f} MB"])
    print(table(["model", "batch", "import torch", "load model", "first batch", "forward (img/s)",
                 "RSS after load", "peak RSS"], rows))
    heads = [json.loads(subprocess.run([sys.executable, __file__, "--head-once"], capture_output=True, text=True,
                                       check=True).stdout.strip().splitlines()[-1]) for _ in range(args.repeat)]
    raw["head"] = heads
    h = {key: median(r[key] for r in heads) for key in heads[0] if key != "imported_torch"}
    print()
    print(table(["shipped head (efficientnet-lite0)", "time", "RSS"], [
        ["read the sidecar, check the digest (every build)", f"{h['read_sidecar_s'] * 1e3:.0f} ms",
         f"{h['rss_after_sidecar_mb']:.0f} MB"],
        ["import skops + scikit-learn, load the forest (builds that decide new images)",
         f"{h['load_head_s']:.2f} s", f"{h['peak_rss_mb']:.0f} MB peak"],
    ]))
    save_results("model", {"runs": raw})
    return 0


if __name__ == "__main__":
    sys.exit(main())
